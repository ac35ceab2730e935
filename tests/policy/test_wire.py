"""The pack as the engine talks to it, without the CLI.

The sample stacks are evaluated under mocks (tests/harness.py); each registration's
serialized inputs (secrets still wire-wrapped) are sent to pulumi_policy's analyzer servicer
as AnalyzeRequest/AnalyzeStackRequest protobufs, after a Configure call built the way the
engine builds it from a `--policy-pack-config` file (schema defaults, then "all", then each
policy). This checks deserialization, secrets, config and enforcement levels end to end.
The servicer class is private to pulumi-policy (pinned at 1.21.0 in requirements.txt).

AnalyzeStack receives each resource's OUTPUTS; a component's outputs are what it passes to
`register_outputs`. These tests send the registered props as the outputs, which is what the
stack policies need the components to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

from rke2_guard import PACK_NAME, build_policies
from tests.harness import evaluate
from tests.stacks import load_stack, with_changes

ROOT = Path(__file__).resolve().parents[2]
STRICT = json.loads((ROOT / "policy" / "examples" / "strict.json").read_text())
MANDATORY = proto.EnforcementLevel.Value("MANDATORY")
ADVISORY = proto.EnforcementLevel.Value("ADVISORY")
LEVELS = {"advisory": ADVISORY, "mandatory": MANDATORY, "disabled": proto.EnforcementLevel.Value("DISABLED")}


def struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def servicer(config_file: dict | None = None) -> _PolicyAnalyzerServicer:
    policies = build_policies()
    svc = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", policies, EnforcementLevel.ADVISORY)
    info = svc.GetAnalyzerInfo(None, None)
    # The engine's ReconcilePolicyPackConfig: schema defaults, then "all", then per policy.
    config: dict[str, dict] = {}
    for p in info.policies:
        props = {k: v["default"] for k, v in json_format.MessageToDict(p.configSchema).get("properties", {}).items()
                 if "default" in v}
        config[p.name] = {"level": p.enforcementLevel, "properties": props}
    for name, given in (config_file or {}).items():
        given = {"enforcementLevel": given} if isinstance(given, str) else dict(given)
        targets = list(config) if name == "all" else [name]
        for target in targets:
            if "enforcementLevel" in given:
                config[target]["level"] = LEVELS[given["enforcementLevel"]]
            if name != "all":
                config[target]["properties"].update({k: v for k, v in given.items() if k != "enforcementLevel"})
    svc.Configure(proto.ConfigureAnalyzerRequest(policyConfig={
        name: proto.PolicyConfig(enforcementLevel=c["level"], properties=struct(c["properties"]))
        for name, c in config.items()}), None)
    return svc


def diagnostics(raw: dict, secret_keys: set, config_file: dict | None = None) -> list:
    """Every diagnostic the pack returns for a stack: Analyze per resource, then AnalyzeStack."""
    evaluation = evaluate(raw, secret_keys, preview=True)
    svc = servicer(config_file)
    found = []
    resources = []
    for r in evaluation.registrations:
        properties = struct(r.raw_inputs)
        options = proto.AnalyzerResourceOptions(parent=r.parent)
        found += svc.Analyze(proto.AnalyzeRequest(urn=r.urn, type=r.type, name=r.name, properties=properties,
                                                  options=options), None).diagnostics
        resources.append(proto.AnalyzerResource(urn=r.urn, type=r.type, name=r.name, properties=properties,
                                                options=options, parent=r.parent))
    found += svc.AnalyzeStack(proto.AnalyzeStackRequest(resources=resources), None).diagnostics
    return list(found)


def named(found: list, policy: str) -> list:
    return [d for d in found if d.policyName == policy]


def mandatory(found: list) -> list:
    return [(d.policyName, d.message) for d in found if d.enforcementLevel == MANDATORY]


@pytest.fixture(scope="module")
def dev():
    return load_stack("dev")


def test_analyzer_info_lists_every_policy_with_its_level():
    info = servicer().GetAnalyzerInfo(None, None)
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels["rancher-single-node-replicas"] == MANDATORY
    assert levels["san-hygiene"] == MANDATORY
    assert levels["san-hygiene-volatile-ip"] == ADVISORY
    types = {p.name: p.policy_type for p in info.policies}
    assert types["rancher-single-node-replicas"] == proto.PolicyType.POLICY_TYPE_STACK


def test_dev_stack_has_no_mandatory_violation(dev):
    found = diagnostics(*dev)
    assert mandatory(found) == []
    # The sample has no ssh.hostKeys and no CIS profile: reported, advisory.
    assert {d.policyName for d in found} <= {"ssh-host-key-verification", "cis-profile"}


def test_dev_stack_with_strict_config_still_passes(dev):
    assert mandatory(diagnostics(*dev, STRICT)) == []


def test_ha_stack_has_no_violation():
    assert mandatory(diagnostics(*load_stack("ha"))) == []


def test_dev_stack_with_three_replicas_is_blocked(dev):
    raw, secrets = dev
    found = diagnostics(with_changes(raw, rancher__replicas=3), secrets)
    blocking = mandatory(found)
    assert [name for name, _ in blocking] == ["rancher-single-node-replicas"]
    assert "RancherRelease 'rancher'" in blocking[0][1] and "set rancher.replicas to 1" in blocking[0][1]
    assert named(found, "rancher-single-node-replicas")[0].urn.endswith("rke2:index:RancherRelease::rancher")


def test_volatile_san_is_advisory_by_default_and_blocking_with_strict_config(dev):
    raw, secrets = dev
    raw = with_changes(raw, cluster__tlsSans=["jjtestserver", "localhost", "127.0.0.1", "192.168.1.100"])
    found = named(diagnostics(raw, secrets), "san-hygiene-volatile-ip")
    assert [d.enforcementLevel for d in found] == [ADVISORY]
    assert "san-hygiene" in found[0].policyName and "192.168.1.100" in found[0].message
    strict = named(diagnostics(raw, secrets, STRICT), "san-hygiene-volatile-ip")
    assert [d.enforcementLevel for d in strict] == [MANDATORY]


def test_allow_list_in_config_silences_the_volatile_ip(dev):
    raw, secrets = dev
    raw = with_changes(raw, cluster__tlsSans=["jjtestserver", "192.168.1.100"])
    config = {"san-hygiene-volatile-ip": {**STRICT["san-hygiene-volatile-ip"], "allowedIps": ["192.168.1.0/24"]}}
    assert named(diagnostics(raw, secrets, config), "san-hygiene-volatile-ip") == []


def test_wildcard_san_is_blocked_by_san_hygiene(dev):
    raw, secrets = dev
    found = mandatory(diagnostics(with_changes(raw, cluster__tlsSans=["jjtestserver", "*.lan"]), secrets))
    assert [name for name, _ in found] == ["san-hygiene"] and "'*.lan' is a wildcard" in found[0][1]


def test_secret_bootstrap_password_is_visible_to_the_policy(dev):
    raw, secrets = dev
    # A secret in the stack config, wire-wrapped inside the helm Release's values.
    found = mandatory(diagnostics(with_changes(raw, rancher__bootstrapPassword="defaultSecret12345"), secrets))
    assert [name for name, _ in found] == ["rancher-bootstrap-password"]
    assert "well-known default" in found[0][1] and "defaultSecret12345" not in found[0][1]
    short = mandatory(diagnostics(with_changes(raw, rancher__bootstrapPassword="x7#Kp2!q"), secrets))
    assert [name for name, _ in short] == ["rancher-bootstrap-password"] and "has 8 characters" in short[0][1]


def test_all_mandatory_config_flips_the_advisories(dev):
    found = mandatory(diagnostics(*dev, {"all": "mandatory"}))
    assert {name for name, _ in found} == {"ssh-host-key-verification", "cis-profile"}


def test_unknown_password_during_preview_is_not_a_violation():
    svc = servicer()
    props = struct({"chart": "rancher", "version": "2.12.3",
                    "values": {"bootstrapPassword": "04da6b54-80e4-46f7-96ec-b56ff0331ba9"}})
    response = svc.Analyze(proto.AnalyzeRequest(urn="urn:pulumi:d::p::kubernetes:helm.sh/v3:Release::r",
                                                type="kubernetes:helm.sh/v3:Release", name="r",
                                                properties=props), None)
    assert list(response.diagnostics) == []


def test_main_serves_the_pack_over_grpc():
    """policy/__main__.py run the way the language host runs it: it prints its port and serves."""
    import subprocess
    import sys

    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2_grpc

    process = subprocess.Popen([sys.executable, "-m", "pulumi.policy", "127.0.0.1:1", "."],
                               cwd=ROOT / "policy", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            info = analyzer_pb2_grpc.AnalyzerStub(channel).GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
        assert info.name == PACK_NAME
        assert {p.name for p in info.policies} == {p.name for p in build_policies()}
    finally:
        process.kill()
        process.wait(timeout=10)
