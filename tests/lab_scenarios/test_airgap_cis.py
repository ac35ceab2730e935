"""Issue 15 on lab hosts: an air-gapped converge (no route out) with registries.yaml, a system
default registry and image archives in place, a registries change restarting the server;
and the CIS profile refused clearly, before anything is installed, on a host that cannot
set kernel parameters (lab hosts share this machine's kernel: /proc/sys is read-only there,
as in a container, so a CIS converge proper cannot run in this lab)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
import yaml

from tests.lab.fixtures import requires_lab
from tests.lab_scenarios.support import LabStack, base_cluster, host_key_line, provision_artifacts

pytestmark = [requires_lab(), pytest.mark.lab]

HOST = "jjtestserver"
REGISTRY = "registry.lab.internal:5000"
PASSWORD = "Zq9-lab-registry-password-0417"
ARCHIVE = b"\x28\xb5\x2f\xfd" + b"lab image archive " * 200


def config(server, **cluster) -> dict:
    return {
        "ssh": {"privateKeyPath": str(server.private_key_path), "hostKeys": {HOST: host_key_line(server)}},
        "cluster": base_cluster(HOST, tlsSans=[HOST], **cluster),
        "servers": [{"name": HOST, "address": HOST}],
        "certManager": {"enabled": False},   # the charts are test_charts.py's and test_ha.py's subject
        "rancher": {"enabled": False},
    }


def spawns(host) -> int:
    return sum(1 for e in host.service_events("rke2-server") if e["event"] == "spawn")


def test_air_gapped_converge_with_registries_and_images(lab, realparts_artifacts, tmp_path: Path):
    server = lab.add_host(HOST, "10.77.0.11")
    provision_artifacts(server, realparts_artifacts)
    server.write_file("/opt/images/rke2-images.linux-amd64.tar.zst", ARCHIVE)
    # No route out: only the lab LAN is reachable, so any step that reached for the internet
    # (get.rke2.io, a public registry) would fail.
    rc, _, err = server.exec("ip route del default")
    assert rc == 0, err
    rc, routes, _ = server.exec("ip route show")
    assert "default" not in routes and routes.strip(), routes
    rc, _, err = server.exec("getent ahosts get.rke2.io")
    assert rc != 0  # no DNS for the outside world either

    stack = LabStack(lab, tmp_path)
    cfg = config(server, systemDefaultRegistry=REGISTRY, imagesArchives=[
        {"url": "file:///opt/images/rke2-images.linux-amd64.tar.zst", "sha256": hashlib.sha256(ARCHIVE).hexdigest()}])
    cfg["registries"] = {"mirrors": {"docker.io": {"endpoints": [f"https://{REGISTRY}"]}},
                         "configs": {REGISTRY: {"auth": {"username": "puller"}}}}
    stack.configure(cfg)
    stack.init()
    stack.pulumi("config", "set", "--secret", "--path", "--stack", stack.name,
                 f'rke2-rancher:registries.configs["{REGISTRY}"].auth.password', PASSWORD)
    stack.up()

    assert server.exec("systemctl is-active rke2-server")[1].strip() == "active"
    reg_path = server.path("/etc/rancher/rke2/registries.yaml")
    assert stat.S_IMODE(reg_path.stat().st_mode) == 0o600
    # rancher/wharfie pkg/registries/types.go: mirrors.<host>.endpoint, configs.<host>.auth.
    assert yaml.safe_load(reg_path.read_text()) == {
        "mirrors": {"docker.io": {"endpoint": [f"https://{REGISTRY}"]}},
        "configs": {REGISTRY: {"auth": {"username": "puller", "password": PASSWORD}}}}
    placed = server.path("/var/lib/rancher/rke2/agent/images/rke2-images.linux-amd64.tar.zst")
    assert placed.read_bytes() == ARCHIVE
    conf = yaml.safe_load(server.path("/etc/rancher/rke2/config.yaml").read_text())
    assert conf["system-default-registry"] == REGISTRY
    assert PASSWORD not in stack.state_text() and not any(PASSWORD in t for t in stack.transcript)

    # A registries change: the preview names the service step (a restart), the up restarts it.
    stack.configure({**cfg, "registries": {"mirrors": {"docker.io": {"endpoints": [f"https://{REGISTRY}",
                                                                                "https://registry2.lab.internal"]}},
                                           "configs": {REGISTRY: {"auth": {"username": "puller"}}}}})
    stack.pulumi("config", "set", "--secret", "--path", "--stack", stack.name,
                 f'rke2-rancher:registries.configs["{REGISTRY}"].auth.password', PASSWORD)
    changed = stack.changed_resources()
    assert changed.get(f"{HOST}-registries") == "update" and changed.get(f"{HOST}-service") == "replace", changed
    assert f"{HOST}-images" not in changed and f"{HOST}-install" not in changed, changed
    before = spawns(server)
    stack.up()
    assert spawns(server) == before + 1
    assert "registry2.lab.internal" in reg_path.read_text()
    assert PASSWORD not in stack.state_text()
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)


def test_cis_profile_is_refused_before_anything_is_installed_where_kernel_parameters_are_read_only(
        lab, realparts_artifacts, tmp_path: Path):
    server = lab.add_host(HOST, "10.77.0.12")
    provision_artifacts(server, realparts_artifacts)
    # Never let cis.sh apply RKE2's kernel parameters to this machine's shared kernel.
    if server.exec("test -w /proc/sys/vm/panic_on_oom")[0] == 0:
        pytest.skip("/proc/sys is writable on lab hosts here: the CIS apply would change this machine's kernel")
    stack = LabStack(lab, tmp_path)
    stack.configure(config(server, profile="cis"))
    stack.init()
    res = stack.up(check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"{HOST}-cis-check" in out and "the CIS profile (cluster.profile: cis) cannot run on" in out, out[-3000:]
    assert "cannot be set here (read-only /proc/sys" in out, out[-3000:]
    # Nothing was installed or configured.
    assert not server.path("/usr/local/bin/rke2").exists()
    assert not server.path("/etc/rancher/rke2/config.yaml").exists()
    assert "etcd" not in server.path("/etc/passwd").read_text()
