"""The founding story end to end: `pulumi up` of one mobile server over real SSH, against
rke2-standin (a behavioural stand-in for RKE2, on the real etcd and
kube-apiserver) on a systemd lab host. The moves are in test_single_server_moves.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab_scenarios.support import (LabStack, base_cluster, host_key_line, provision_artifacts,
                                         token_password)

pytestmark = [requires_lab(), pytest.mark.lab]

HOST = "jjtestserver"
SANS = ["jjtestserver", "localhost", "127.0.0.1"]


def single_config(host, **cluster) -> dict:
    return {
        "ssh": {"privateKeyPath": str(host.private_key_path), "hostKeys": {HOST: host_key_line(host)}},
        "cluster": base_cluster(HOST, **{"tlsSans": list(SANS), **cluster}),
        "servers": [{"name": HOST, "address": HOST}],
        "certManager": {"enabled": False},   # the charts are test_charts.py's and test_ha.py's subject
        "rancher": {"enabled": False},
    }


def single_server(lab, artifacts: Path, tmp_path: Path, address: str, *, up: bool = True,
                  token: str | None = None, **cluster) -> tuple:
    """A lab host named jjtestserver with the air-gap artifacts, and a stack for it
    (deployed unless up=False)."""
    host = lab.add_host(HOST, address)
    provision_artifacts(host, artifacts)
    stack = LabStack(lab, tmp_path)
    stack.configure(single_config(host, **cluster))
    stack.init()
    if token:
        stack.set_secret("token", token)
    if up:
        stack.up()
    return host, stack


def readyz(lab, stack: LabStack, tmp_path: Path) -> dict:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(stack.output("kubeconfig"))
    kubeconfig.chmod(0o600)
    return lab.https_get(f"https://{HOST}:6443/readyz", kubeconfig=str(kubeconfig))


def remote_commands(host) -> int:
    return len(host.commands())


def starts(host) -> int:
    return sum(1 for e in host.service_events("rke2-server") if e["event"] == "spawn")


@pytest.fixture
def deployed(lab, realparts_artifacts, tmp_path):
    return single_server(lab, realparts_artifacts, tmp_path, "10.77.0.11", mobile=True,
                         token="lab-configured-join-secret-3141")


def test_up_converges_and_the_kubeconfig_verifies_tls(lab, deployed, tmp_path):
    host, stack = deployed
    res = readyz(lab, stack, tmp_path)
    assert res["ok"] and res["status"] == 200 and res["body"].strip() == "ok", res
    assert stack.output("apiEndpoint") == "https://jjtestserver:6443"
    # Mobile mode: etcd and the API server are on the stable address, held on loopback
    # here because this kernel has no dummy interfaces.
    config = Path(host.path("/etc/rancher/rke2/config.yaml")).read_text()
    assert "node-ip: 10.255.255.1" in config and "advertise-address: 10.255.255.1" in config
    rc, out, _ = host.ssh("ip -o addr show dev lo")
    assert "10.255.255.1/32" in out


def test_idempotent_no_op_up_runs_no_remote_command(deployed):
    host, stack = deployed
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)
    before, started = remote_commands(host), starts(host)
    stack.up()
    assert remote_commands(host) == before, host.commands()[before:]
    assert starts(host) == started


def test_add_then_remove_a_san(lab, deployed):
    host, stack = deployed
    config = single_config(host, mobile=True, tlsSans=SANS + ["jj.example.net"])
    stack.configure(config)
    changed = stack.changed_resources()
    assert changed == {HOST: "update", f"{HOST}-config": "update", f"{HOST}-san-refresh": "update"}, changed
    started = starts(host)
    stack.up()
    assert "DNS:jj.example.net" in lab.served_sans(HOST, 6443)
    assert starts(host) == started + 1  # one restart

    assert "DNS:jj.example.net" in lab.served_sans(HOST, 9345)

    # Removed: gone from both certificates. The supervisor's (9345) comes from
    # dynamiclistener, which merges secret kube-system/rke2-serving back in at start and
    # re-creates it from its cache while running (rancher/dynamiclistener
    # storage/kubernetes/controller.go): the step deletes it while the unit is stopped.
    stack.configure(single_config(host, mobile=True))
    stack.up()
    for port in (6443, 9345):
        sans = lab.served_sans(HOST, port)
        assert "DNS:jj.example.net" not in sans, (port, sans)
        assert "DNS:jjtestserver" in sans, (port, sans)
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)


def test_dropping_names_rke2_adds_itself_is_a_no_op(lab, deployed):
    """The dev stack lists localhost and 127.0.0.1 as tlsSans; RKE2 puts both (and the node
    name, node IPs, kubernetes.*, the service IP) in its certificates by itself (k3s
    pkg/cli/server/server.go, deps.go), so dropping them changes nothing and settles."""
    host, stack = deployed
    started = starts(host)
    stack.configure(single_config(host, mobile=True, tlsSans=["jjtestserver"]))
    res = stack.up()
    assert "RKE2 adds it to its certificates by itself" in res.stdout + res.stderr
    assert starts(host) == started  # no restart
    for port in (6443, 9345):
        sans = lab.served_sans(HOST, port)
        assert "DNS:localhost" in sans and "IP:127.0.0.1" in sans, (port, sans)
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)


def test_secrets_never_in_plaintext(lab, deployed, tmp_path):
    host, stack = deployed
    stack.up()
    secrets = {
        "join token password": token_password(host),
        "ssh private key": "".join(Path(host.private_key_path).read_text().splitlines()[1:3]),
        "server CA key": "".join(Path(host.path("/var/lib/rancher/rke2/server/tls/server-ca.key"))
                                 .read_text().splitlines()[1:2]),
    }
    assert secrets["join token password"] == "lab-configured-join-secret-3141"
    haystacks = {"state": stack.state_text(), "pulumi output": "\n".join(stack.transcript),
                 "sshd log": host.sshd_log(), "commands": "\n".join(c for _, c in host.commands())}
    for what, secret in secrets.items():
        for where, text in haystacks.items():
            assert secret not in text, f"{what} in plaintext in {where}"


def test_renaming_the_node_keeps_rke2_on_the_host(lab, deployed, tmp_path):
    """Issue 10 item 6: the new name's steps are created first, the old name's uninstall step
    is deleted at the end of the same update; its delete must leave the host installed."""
    host, stack = deployed
    config = single_config(host, mobile=True)
    config["servers"] = [{"name": "jjrenamed", "address": HOST}]
    stack.configure(config)
    res = stack.up()
    out = res.stdout + res.stderr
    assert "now managed as 'jjrenamed server', not 'jjtestserver server': leaving RKE2 installed" in out, out[-3000:]
    assert Path(host.path("/usr/local/bin/rke2")).exists()
    assert Path(host.path("/var/lib/rancher/rke2/server/token")).exists()
    assert Path(host.path("/etc/rancher/rke2/rke2-rancher-node")).read_text() == "jjrenamed server\n"
    assert host.ssh("systemctl is-active rke2-server")[1].strip() == "active"
    assert readyz(lab, stack, tmp_path)["ok"]
    # And the name that manages it now still uninstalls it on destroy.
    stack.destroy()
    assert not Path(host.path("/usr/local/bin/rke2")).exists()


def test_destroy_uninstalls(lab, deployed):
    host, stack = deployed
    stack.destroy()
    assert not Path(host.path("/usr/local/bin/rke2")).exists()
    assert not Path(host.path("/var/lib/rancher/rke2")).exists()


def test_destroy_with_retain_leaves_the_host(lab, deployed):
    host, stack = deployed
    stack.configure(single_config(host, mobile=True, retainOnDestroy=True))
    stack.up()
    stack.destroy()
    assert Path(host.path("/usr/local/bin/rke2")).exists()
    assert Path(host.path("/var/lib/rancher/rke2/server/token")).exists()
