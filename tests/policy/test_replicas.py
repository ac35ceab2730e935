"""rancher-single-node-replicas: one compliant stack, one change per failing case."""

import pytest

from rke2_guard import common
from rke2_guard.replicas import node_schedulable, validate_rancher_replicas
from tests.policy.support import (UNKNOWN_ARRAY, UNKNOWN_BOOL, UNKNOWN_NUMBER, UNKNOWN_OBJECT, Res, agent,
                                  dev_stack, engine_props, ha_server, ha_stack, rancher, rancher_helm, run,
                                  server, stack_args, urn)

RANCHER_URN = urn(common.RANCHER, "rancher")


def check(resources):
    return run(validate_rancher_replicas, stack_args(resources))


def test_dev_stack_complies():
    assert check(dev_stack()).calls == []


def test_ha_stack_complies():
    assert check(ha_stack()).calls == []


def test_three_replicas_on_a_single_node():
    reporter = check(dev_stack(rancher=rancher(replicas=3, values={"replicas": 3}),
                               rancher_release=rancher_helm(replicas=3)))
    message, where = reporter.calls[0]
    assert len(reporter.calls) == 1
    assert where == RANCHER_URN
    assert "RancherRelease 'rancher'" in message and "replicas is 3" in message
    assert "single schedulable node (jjtestserver)" in message and "set rancher.replicas to 1" in message


def test_component_replicas_alone_are_read():
    # First preview: the helm Release's outputs are empty (its provider is not configured yet).
    reporter = check(dev_stack(rancher=rancher(replicas=3, values={}), rancher_release={}))
    assert "replicas is 3 (replicas)" in reporter.only()


def test_helm_values_win_over_component_props():
    reporter = check(dev_stack(rancher_release=rancher_helm(replicas=2)))
    assert "replicas is 2 (helm values.replicas)" in reporter.only()


def test_chart_default_when_helm_values_omit_replicas():
    values = rancher_helm()["values"]
    del values["replicas"]
    reporter = check(dev_stack(rancher_release={**rancher_helm(), "values": values}))
    assert "replicas is 3 (the chart default for replicas)" in reporter.only()


def test_helm_release_without_component():
    resources = [r for r in dev_stack() if r.typ != common.RANCHER]
    resources[-1] = Res(common.HELM_RELEASE, "rancher", rancher_helm(replicas=3))
    reporter = check(resources)
    message, where = reporter.calls[0]
    assert "helm Release 'rancher'" in message and where == urn(common.HELM_RELEASE, "rancher")


def test_more_replicas_than_schedulable_nodes():
    # HA stack: 3 servers + 2 agents; both agents tainted and one server tainted -> 2 schedulable.
    taint = ["dedicated=infra:NoSchedule"]
    reporter = check(ha_stack(
        rke2_agent_1=agent("rke2-agent-1", taints=taint, schedulable=False),
        rke2_agent_2=agent("rke2-agent-2", taints=taint, schedulable=False),
        rke2_server_3=ha_server(2, taints=taint, schedulable=False)))
    message = reporter.only()
    assert "only 2 nodes are schedulable (rke2-server-1, rke2-server-2)" in message
    assert "at most 2" in message


def test_no_schedulable_node():
    reporter = check(dev_stack(jjtestserver=server(taints=["CriticalAddonsOnly=true:NoExecute"],
                                                   schedulable=False)))
    message = reporter.only()
    assert "no node is schedulable" in message and "jjtestserver" in message
    assert "remove the taint" in message


def test_prefer_no_schedule_taint_still_counts():
    resources = dev_stack(jjtestserver=server(taints=["role=edge:PreferNoSchedule"], schedulable=True))
    assert check(resources).calls == []


def test_taints_used_when_schedulable_prop_is_absent():
    props = server(taints=["node-role.kubernetes.io/control-plane=true:NoSchedule"])
    del props["schedulable"]
    reporter = check(dev_stack(jjtestserver=props))
    assert "no node is schedulable" in reporter.only()


def test_falls_back_to_schedulable_nodes_prop():
    # Component outputs without node props (register_outputs not repeating them).
    reporter = check(dev_stack(jjtestserver={"ready": "ok"}, rancher=rancher(replicas=2, values={},
                                                                           schedulableNodes=1),
                               rancher_release={}))
    assert "single schedulable node;" in reporter.only()


def test_nothing_known_means_nothing_reported():
    resources = dev_stack(jjtestserver={"ready": "ok"},
                          rancher={"url": "https://jjtestserver"}, rancher_release={})
    assert check(resources).calls == []


def test_nodes_that_do_not_say_count_as_schedulable():
    resources = ha_stack(rancher=rancher(replicas=3, values={}, schedulableNodes=None), rancher_release={},
                         rke2_agent_1={"ready": "x"}, rke2_agent_2={"ready": "x"},
                         rke2_server_2=ha_server(1, schedulable=False, taints=["a=b:NoSchedule"]),
                         rke2_server_3=ha_server(2, schedulable=False, taints=["a=b:NoSchedule"]))
    # 1 known schedulable server + 2 agents that do not say = 3: no block.
    assert check(resources).calls == []


def test_unknown_values_during_preview_are_skipped():
    resources = dev_stack(rancher=rancher(replicas=UNKNOWN_NUMBER, values=UNKNOWN_OBJECT,
                                          schedulableNodes=UNKNOWN_NUMBER),
                          rancher_release={"values": UNKNOWN_OBJECT},
                          jjtestserver=server(schedulable=UNKNOWN_BOOL, taints=UNKNOWN_ARRAY))
    assert check(resources).calls == []


@pytest.mark.parametrize("replicas", [0, -1, "3", 2.5])
def test_non_positive_or_odd_replica_values_are_not_compared(replicas):
    resources = dev_stack(rancher=rancher(replicas=replicas, values={}), rancher_release={})
    assert check(resources).calls == []


@pytest.mark.parametrize("props, expected", [
    ({"schedulable": False}, False),
    ({"taints": ["a=b:NoExecute"]}, False),
    ({"taints": ["a:NoSchedule"]}, False),
    ({"taints": ["a=b:PreferNoSchedule"]}, True),
    ({"taints": []}, True),
    ({}, None),
    ({"taints": UNKNOWN_ARRAY}, None),
])
def test_node_schedulable(props, expected):
    assert node_schedulable(engine_props(props)) is expected
