"""cis-profile: advisory by default, mandatory with policy/examples/cis.json; one fixture,
one changed property per case. The program side (cluster.profile -> the `profile` prop on
every node) is checked through the real program under mocks at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rke2_guard import cis, common
from tests.policy.support import UNKNOWN_STRING, agent, ha_server, resource_args, run, server
from tests.policy.test_wire import ADVISORY, MANDATORY, diagnostics, named
from tests.stacks import load_stack, with_changes

ROOT = Path(__file__).resolve().parents[2]
CIS_CONFIG = json.loads((ROOT / "policy" / "examples" / "cis.json").read_text())


@pytest.mark.parametrize("typ, props", [(common.SERVER, server(profile="cis")),
                                        (common.SERVER, ha_server(2, profile="cis")),
                                        (common.AGENT, agent(profile="cis"))])
def test_nodes_with_the_cis_profile_comply(typ, props):
    assert run(cis.validate_cis_profile, resource_args(typ, props["nodeName"], props)).calls == []


@pytest.mark.parametrize("typ, props, shown", [
    (common.SERVER, server(profile=None), "without a profile"),
    (common.SERVER, server(), "without a profile"),  # props registered before the key existed
    (common.SERVER, ha_server(1, profile="etcd"), "with profile 'etcd'"),
    (common.AGENT, agent(profile=""), "without a profile"),
    (common.AGENT, agent(profile="cis-1.23"), "with profile 'cis-1.23'"),
])
def test_nodes_without_it_are_reported_with_the_fix(typ, props, shown):
    message = run(cis.validate_cis_profile, resource_args(typ, props["nodeName"], props)).only()
    assert message.startswith(f"{common.label(typ, props['nodeName'])}: RKE2 runs {shown}")
    assert "Fix: set cluster.profile: cis" in message


def test_unknown_profile_during_preview_is_skipped():
    props = server(profile=UNKNOWN_STRING)
    assert run(cis.validate_cis_profile, resource_args(common.SERVER, "jjtestserver", props)).calls == []


def test_other_resources_are_ignored():
    props = {"profile": None, "name": "rke2-lb"}
    assert run(cis.validate_cis_profile, resource_args(common.LOAD_BALANCER, "rke2-lb", props)).calls == []


def test_example_config_only_raises_this_policy():
    assert CIS_CONFIG == {"cis-profile": {"enforcementLevel": "mandatory"}}


def test_program_props_advisory_by_default_mandatory_with_the_example():
    raw, secrets = load_stack("ha")
    found = named(diagnostics(raw, secrets), "cis-profile")
    nodes = len(raw["servers"]) + len(raw["agents"])
    assert len(found) == nodes and {d.enforcementLevel for d in found} == {ADVISORY}
    strict = named(diagnostics(raw, secrets, CIS_CONFIG), "cis-profile")
    assert len(strict) == nodes and {d.enforcementLevel for d in strict} == {MANDATORY}
    hardened = with_changes(raw, cluster__profile="cis")
    assert named(diagnostics(hardened, secrets, CIS_CONFIG), "cis-profile") == []
    # The node-wide extraConfig key counts too (servers, and agents through node-wide copying).
    via_extra = with_changes(raw, cluster__extraConfig={"profile": "cis"})
    assert named(diagnostics(via_extra, secrets, CIS_CONFIG), "cis-profile") == []
