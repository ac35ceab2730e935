"""Issue 15 host steps under mocks: registries.yaml on every node (secret with credentials), the
restart it triggers in the safe order, image archives before the first start, the CIS steps."""

from __future__ import annotations

import pytest
import yaml

from components import render
from tests.harness import evaluate, plaintext_outside_secrets
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("ha")
REG_SECRETS = SECRETS | {"rke2-rancher:registries"}
PASSWORD = "Zq9-registry-password-secret-77"
REGISTRIES = {
    "mirrors": {"docker.io": {"endpoints": ["https://registry.example.internal:5000"]}},
    "configs": {"registry.example.internal:5000": {"auth": {"username": "puller", "password": PASSWORD},
                                                   "tls": {"caFile": "/etc/pki/registry-ca.pem"}}},
}
PLAIN = {"mirrors": {"docker.io": {"endpoints": ["https://registry.example.internal:5000"]}}}
SERVERS = [s["name"] for s in RAW["servers"]]
AGENTS = [a["name"] for a in RAW["agents"]]
NODES = SERVERS + AGENTS


@pytest.fixture(scope="module")
def with_auth():
    return evaluate(with_changes(RAW, registries=REGISTRIES), REG_SECRETS)


def _write_dest(create: str) -> tuple[str, str]:
    lines = dict(line.split("=", 1) for line in create.split("\n")[2:6] if "=" in line)
    return lines.get("DEST", ""), lines.get("MODE", "")


def test_registries_yaml_on_every_node_0600_as_a_secret(with_auth):
    for node in NODES:
        step = with_auth.by_name(f"{node}-registries")
        assert "# rke2-rancher: write-file.sh" in step.input("create")
        assert _write_dest(step.input("create")) == (render.REGISTRIES_PATH, "0600")
        assert "stdin" in step.secret_paths()
        doc = yaml.safe_load(step.input("stdin"))
        assert doc["configs"]["registry.example.internal:5000"]["auth"]["password"] == PASSWORD
        assert with_auth.depends_on(f"{node}-service", f"{node}-registries")
    for reg in with_auth.registrations:
        assert PASSWORD not in plaintext_outside_secrets(reg.raw_inputs), reg.urn


def test_registries_with_credentials_restart_through_a_secret_trigger(with_auth):
    base = evaluate(RAW, SECRETS)
    for node in NODES:
        before = base.by_name(f"{node}-service")
        after = with_auth.by_name(f"{node}-service")
        assert after.input("triggers")[:len(before.input("triggers"))] == before.input("triggers")
        assert len(after.input("triggers")) == len(before.input("triggers")) + 1
        assert any(p.startswith("triggers[") for p in after.secret_paths()), after.secret_paths()
    assert "rke2-server-1-registries" not in base.names()


def test_a_registries_change_changes_every_service_trigger():
    """The preview shows a replace/update of each node's service step (a restart): servers in the
    existing one-at-a-time order (each server's service waits for the previous server's
    readiness), agents after the servers."""
    one = evaluate(with_changes(RAW, registries=PLAIN), SECRETS)
    other = {"mirrors": {"docker.io": {"endpoints": ["https://other.example.internal"]}}}
    two = evaluate(with_changes(RAW, registries=other), SECRETS)
    for node in NODES:
        t1, t2 = one.by_name(f"{node}-service").input("triggers"), two.by_name(f"{node}-service").input("triggers")
        assert t1 != t2 and t1[:2] == t2[:2]
        assert "stdin" not in one.by_name(f"{node}-registries").secret_paths()  # no credentials: plain
    for a, b in zip(SERVERS, SERVERS[1:]):
        assert one.depends_on(f"{b}-service", f"{a}-service")
    for agent in AGENTS:
        assert one.depends_on(f"{agent}-service", f"{SERVERS[-1]}-service")


def test_system_default_registry_and_profile_in_every_config_yaml():
    ev = evaluate(with_changes(RAW, cluster__systemDefaultRegistry="registry.example.internal:5000",
                               cluster__profile="cis"), SECRETS)
    for node in NODES:
        cfg = yaml.safe_load(ev.by_name(f"{node}-config").input("stdin"))
        assert cfg["system-default-registry"] == "registry.example.internal:5000" and cfg["profile"] == "cis"
    for s in SERVERS:
        props = ev.by_name(s).raw_inputs
        assert props["profile"] == "cis" and props["systemDefaultRegistry"] == "registry.example.internal:5000"


def test_image_archives_before_the_first_start_on_every_node():
    archives = [{"url": "https://mirror.example.internal/rke2-images.linux-amd64.tar.zst", "sha256": "ab" * 32}]
    ev = evaluate(with_changes(RAW, cluster__imagesArchives=archives), SECRETS)
    for node in NODES:
        step = ev.by_name(f"{node}-images")
        assert "# rke2-rancher: images.sh" in step.input("create")
        assert "DIR=/var/lib/rancher/rke2/agent/images\n" in step.input("create")
        assert step.input("stdin") == f"{'ab' * 32} rke2-images.linux-amd64.tar.zst {archives[0]['url']}\n"
        assert ev.depends_on(f"{node}-service", f"{node}-images")
        assert ev.depends_on(f"{node}-images", f"{node}-preflight")
    assert "rke2-server-1-images" not in evaluate(RAW, SECRETS).names()


def test_cis_steps_check_before_install_apply_before_start():
    ev = evaluate(with_changes(RAW, cluster__profile="cis"), SECRETS)
    for node, role in [(s, "server") for s in SERVERS] + [(a, "agent") for a in AGENTS]:
        check, apply = ev.by_name(f"{node}-cis-check"), ev.by_name(f"{node}-cis")
        assert "ACTION=check\n" in check.input("create") and f"ROLE={role}\n" in check.input("create")
        assert "ACTION=apply\n" in apply.input("create") and "SYSCTL_DEST=/etc/sysctl.d/60-rke2-cis.conf\n" in apply.input("create")
        assert ev.depends_on(f"{node}-install", f"{node}-cis-check")
        assert ev.depends_on(f"{node}-cis", f"{node}-install")
        assert ev.depends_on(f"{node}-service", f"{node}-cis")
    assert not {n for n in evaluate(RAW, SECRETS).names() if n.endswith(("-cis", "-cis-check"))}


def test_cis_psa_file_on_servers_only_and_its_change_restarts():
    ev = evaluate(with_changes(RAW, cluster__profile="cis"), SECRETS)
    for s in SERVERS:
        step = ev.by_name(f"{s}-psa")
        assert _write_dest(step.input("create")) == (render.PSA_CONFIG_PATH, "0600")
        assert "cattle-system" in step.input("stdin")
        assert ev.depends_on(f"{s}-service", f"{s}-psa")
    assert not any(n.endswith("-psa") for n in ev.names() if n.startswith("rke2-agent"))
    no_rancher = evaluate(with_changes(RAW, cluster__profile="cis", certManager__enabled=False,
                                       rancher__enabled=False), SECRETS - {"rke2-rancher:rancher"})
    assert not any(n.endswith("-psa") for n in no_rancher.names())
    only_cm = evaluate(with_changes(RAW, cluster__profile="cis", rancher__enabled=False), SECRETS)
    for s in SERVERS:
        assert ev.by_name(f"{s}-service").input("triggers") != only_cm.by_name(f"{s}-service").input("triggers")


def test_profile_through_extra_config_prepares_the_hosts_too():
    """cluster.extraConfig's node-wide `profile` (helper A's copying puts it on agents too) gets
    the same host preparation as cluster.profile; agentExtraConfig can set it for agents alone."""
    ev = evaluate(with_changes(RAW, cluster__extraConfig={"profile": "cis"}), SECRETS)
    for node in NODES:
        assert f"{node}-cis-check" in ev.names() and f"{node}-cis" in ev.names(), node
    for s in SERVERS:
        assert f"{s}-psa" in ev.names()
    agents_only = evaluate(with_changes(RAW, cluster__agentExtraConfig={"profile": "cis"}), SECRETS)
    assert {n for n in agents_only.names() if n.endswith("-cis")} == {f"{a}-cis" for a in AGENTS}
