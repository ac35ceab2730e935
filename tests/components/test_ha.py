"""The ha stack (3 servers, LB with VIP, 2 agents) under Pulumi mocks."""

import pytest

from tests.harness import evaluate, plaintext_outside_secrets
from tests.stacks import SAMPLE_SECRETS, load_stack, with_changes

RAW, SECRETS = load_stack("ha")
SERVERS = ["rke2-server-1", "rke2-server-2", "rke2-server-3"]
AGENTS = ["rke2-agent-1", "rke2-agent-2"]


@pytest.fixture(scope="module")
def ha():
    return evaluate(RAW, SECRETS)


def test_components(ha):
    assert sorted(ha.names("rke2:index:RKE2Server")) == SERVERS
    assert sorted(ha.names("rke2:index:RKE2Agent")) == AGENTS
    assert ha.names("rke2:index:HALoadBalancer") == ["rke2-lb"]
    assert sorted(n for n in ha.names("command:remote:Command") if n.startswith("rke2-lb")) == [
        "rke2-lb-haproxy", "rke2-lb-keepalived", "rke2-lb-packages"]


def test_servers_join_one_at_a_time(ha):
    for prev, cur in zip(SERVERS, SERVERS[1:]):
        assert ha.depends_on(f"{cur}-service", f"{prev}-san-refresh"), f"{cur} must wait for {prev}"
        assert not ha.depends_on(f"{prev}-service", f"{cur}-service")
    for s in SERVERS[1:]:
        assert ha.depends_on(f"{s}-service", "rke2-lb-keepalived")


def test_agents_join_in_parallel_after_the_registration_check(ha):
    for a in AGENTS:
        assert ha.depends_on(f"{a}-service", f"{a}-registration-check")
        assert ha.depends_on(f"{a}-registration-check", "rke2-server-3-san-refresh")
        assert ha.depends_on(f"{a}-registration-check", "rke2-lb-haproxy")
    # In parallel within one upgrade batch (issue 14: cluster.upgrade.agentBatch; the default
    # 10 % of 2 agents is 1 agent per batch, tests/components/test_upgrade.py).
    ev = evaluate(with_changes(RAW, cluster__upgrade={"agentBatch": "100%"}), SECRETS)
    assert not ev.depends_on("rke2-agent-2-service", "rke2-agent-1-node")
    assert not ev.depends_on("rke2-agent-1-service", "rke2-agent-2-node")


def test_rancher_waits_for_agents(ha):
    for a in AGENTS:
        assert ha.depends_on("rancher-release", f"{a}-node")


def test_lb_backends_are_all_servers(ha):
    props = ha.by_name("rke2-lb").raw_inputs
    assert props["backends"] == ["rke2-server-1=10.20.0.11", "rke2-server-2=10.20.0.12", "rke2-server-3=10.20.0.13"]
    cfg = ha.by_name("rke2-lb-haproxy").input("stdin")
    for port in (9345, 6443):
        assert sorted(line.split()[1] for line in cfg.splitlines() if line.endswith(f":{port} check")) == SERVERS
    # RKE2's bundled ingress-nginx runs on every schedulable node, servers and agents: upstream
    # rancher/rke2-charts packages/rke2-ingress-nginx/generated-changes/patch/values.yaml.patch
    # sets controller.kind: DaemonSet and controller.hostPort.enabled: true (ports 80/443), and
    # leaves the chart's empty tolerations (so a NoSchedule-tainted server gets no pod).
    for port in (80, 443):
        assert sorted(line.split()[1] for line in cfg.splitlines() if line.endswith(f":{port} check")) == \
            sorted(SERVERS + AGENTS)
    assert ha.by_name("rke2-lb").raw_inputs["ports"] == [9345, 6443, 80, 443]


def test_adding_a_server_changes_only_lb_backends_and_the_new_server(ha):
    raw = with_changes(RAW, servers=RAW["servers"] + [{"name": "rke2-server-4", "address": "10.20.0.14"}])
    ev = evaluate(raw, SECRETS)
    lb_changes = {r.name for r in ev.registrations if r.name.startswith("rke2-lb-") and r.custom
                  and r.raw_inputs != ha.by_name(r.name).raw_inputs}
    assert lb_changes == {"rke2-lb-haproxy"}
    for s in SERVERS:
        for step in ("config", "install", "service", "san-refresh"):
            assert ev.by_name(f"{s}-{step}").raw_inputs == ha.by_name(f"{s}-{step}").raw_inputs, f"{s}-{step}"


def test_sans_include_lb_address_and_vip(ha):
    for s in SERVERS:
        props = ha.by_name(s).raw_inputs
        assert {"rke2-lb.example.internal", "10.20.0.100", "rke2.example.internal"} <= set(props["tlsSans"])
        assert "DNS:rke2-lb.example.internal\nIP Address:10.20.0.100" in ha.by_name(f"{s}-san-refresh").input("stdin")


def test_joiners_register_through_the_vip(ha):
    for name in ("rke2-server-2-config", "rke2-agent-1-config"):
        assert "server: https://10.20.0.100:9345" in ha.by_name(name).input("stdin")
    assert "server:" not in ha.by_name("rke2-server-1-config").input("stdin")


def test_token_and_kubeconfig_are_secret(ha):
    for name in ["rke2-server-1-token", "rke2-server-2-token", "rke2-agent-1-token"]:
        assert "stdin" in ha.by_name(name).secret_paths(), name
    for reg in ha.registrations:
        visible = plaintext_outside_secrets(reg.raw_inputs)
        assert SAMPLE_SECRETS["token"] not in visible, reg.urn
        assert SAMPLE_SECRETS["rancher.bootstrapPassword"] not in visible, reg.urn
    assert "kubeconfig" in ha.secret_outputs
    assert ha.by_name("rke2-server-1").raw_inputs["tokenSource"] == "secret"


def test_generated_token_is_read_from_the_first_server():
    ev = evaluate(with_changes(RAW, token=None, cluster__ca="rke2"), SECRETS - {"rke2-rancher:token"})
    assert "rke2-server-1-read-token" in ev.names()
    assert "rke2-server-1-token" not in ev.names()
    for name in ("rke2-server-2-token", "rke2-agent-1-token"):
        assert ev.depends_on(name, "rke2-server-1-read-token"), name
        assert "stdin" in ev.by_name(name).secret_paths()


def test_agent_readiness_is_checked_from_a_server(ha):
    node = ha.by_name("rke2-agent-1-node")
    assert node.input("connection")["host"] == "10.20.0.11"
    assert "ACTION=remove" in node.input("delete")


def test_rancher_replicas(ha):
    assert ha.by_name("rancher-release").input("values")["replicas"] == 3


def test_first_server_guards_against_founding_a_second_cluster(ha):
    guard = ha.by_name("rke2-server-1-join-guard")
    assert "REGISTRATION_URL=https://10.20.0.100:9345" in guard.input("create")
    assert ha.depends_on("rke2-server-1-service", "rke2-server-1-join-guard")
    assert ha.depends_on("rke2-server-1-join-guard", "rke2-server-1-token")
    assert "rke2-server-2-join-guard" not in ha.names()


def test_etcd_s3_credentials_go_to_a_secret_drop_in_on_every_server():
    secret_key = "etcd-s3-secret-value-0123"
    raw = with_changes(RAW, cluster__etcdS3={"accessKey": "AKIAEXAMPLE", "secretKey": secret_key},
                       cluster__etcdSnapshots={"s3": {"bucket": "snapshots"}})
    ev = evaluate(raw, SECRETS | {"rke2-rancher:cluster"})
    for s in SERVERS:
        step = ev.by_name(f"{s}-etcd-s3")
        assert "stdin" in step.secret_paths()
        assert "60-rke2-rancher-etcd-s3.yaml" in step.input("create")
        assert f"etcd-s3-secret-key: {secret_key}" in step.input("stdin")
        assert ev.depends_on(f"{s}-service", f"{s}-etcd-s3")
        config = ev.by_name(f"{s}-config").input("stdin")
        assert "etcd-s3-bucket: snapshots" in config and secret_key not in config
    assert "rke2-agent-1-etcd-s3" not in ev.names()
    for reg in ev.registrations:
        visible = plaintext_outside_secrets(reg.raw_inputs)
        assert secret_key not in visible and "AKIAEXAMPLE" not in visible, reg.urn


def test_agents_get_agent_extra_config_and_the_node_wide_keys():
    raw = with_changes(RAW, cluster__extraConfig={"profile": "cis", "system-default-registry": "reg.example",
                                                  "etcd-snapshot-compress": True},
                       cluster__agentExtraConfig={"kubelet-arg": ["max-pods=200"], "profile": "cis"})
    ev = evaluate(raw, SECRETS)
    agent = ev.by_name("rke2-agent-1-config").input("stdin")
    assert "system-default-registry: reg.example" in agent and "max-pods=200" in agent
    assert "profile: cis" in agent and "etcd-snapshot-compress" not in agent
    assert "max-pods=200" not in ev.by_name("rke2-server-1-config").input("stdin")
