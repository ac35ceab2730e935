"""Hosts behind a bastion (issue 15): the server sits on a private segment that only the
bastion reaches, and a full `pulumi up` of the single-server stack goes through it
(ssh.bastion -> pulumi-command's `proxy` connection). The bastion is a lab host running
sshd only; the workstation has no route into the segment (tests/lab/netlab.py add_segment)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab_scenarios.support import LabStack, base_cluster, host_key_line, provision_artifacts

pytestmark = [requires_lab(), pytest.mark.lab]

HOST = "jjtestserver"
BASTION = "bastion"
BASTION_LAN, BASTION_PRIVATE, SERVER_PRIVATE = "10.77.0.5", "10.78.0.5", "10.78.0.11"


def accepted_from(host) -> list[str]:
    """Source addresses of the accepted SSH logins in the host's sshd log (LogLevel VERBOSE)."""
    return re.findall(r"Accepted publickey for \S+ from (\S+) port", host.sshd_log())


def stack_config(server, bastion, bastion_key: str) -> dict:
    return {
        "ssh": {"privateKeyPath": str(server.private_key_path), "hostKeys": {HOST: host_key_line(server)},
                # The server's address (a name) is resolved and dialed on the bastion's side.
                "bastion": {"address": BASTION, "hostKey": bastion_key}},
        "cluster": base_cluster(HOST, mobile=True, tlsSans=[HOST]),
        "servers": [{"name": HOST, "address": HOST}],
        "certManager": {"enabled": False},   # the charts are test_charts.py's and test_ha.py's subject
        "rancher": {"enabled": False},
    }


def test_up_through_a_bastion(lab, realparts_artifacts, tmp_path: Path):
    lab.add_segment("priv", "10.78.0.0/24")
    bastion = lab.add_host(BASTION, BASTION_LAN)
    lab.attach(bastion, "priv", BASTION_PRIVATE)
    server = lab.add_host(HOST, SERVER_PRIVATE, segment="priv")
    provision_artifacts(server, realparts_artifacts)

    # The workstation cannot reach the server; the bastion can (OpenSSH's own -J as witness).
    direct = lab.run(server.ssh_argv("true"), timeout=60)
    assert direct.returncode == 255 and "Network is unreachable" in direct.stderr, direct.stderr
    via_bastion = shlex.join([*bastion.ssh_argv()[:-1], "-W", "%h:%p", f"root@{BASTION}"])
    jump = lab.run([*server.ssh_argv()[:-1], "-o", f"ProxyCommand={via_bastion}", f"root@{HOST}", "--", "hostname"],
                   timeout=60)
    assert jump.returncode == 0 and jump.stdout.strip() == HOST, jump.stderr

    stack = LabStack(lab, tmp_path)
    # A wrong bastion host key: every step fails before reaching the server.
    logins = len(accepted_from(server))
    stack.configure(stack_config(server, bastion, server.host_public_key))
    stack.init()
    res = stack.up(check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "proxy: after 5 failed attempts: ssh: handshake failed: ssh: host key mismatch" in out, out[-3000:]
    assert len(accepted_from(server)) == logins

    # The right one: the whole stack converges through the bastion.
    stack.configure(stack_config(server, bastion, host_key_line(bastion)))
    stack.up()
    assert server.exec("systemctl is-active rke2-server")[1].strip() == "active"
    assert any(e["event"] == "ready" for e in server.service_events("rke2-server"))
    assert stack.output("apiEndpoint") == f"https://{HOST}:6443"
    assert f"server: https://{HOST}:6443" in stack.output("kubeconfig")
    # Every step logged in on the server from the bastion's private address, and ran there.
    sources = accepted_from(server)[logins:]
    steps = server.commands()
    assert len(steps) >= 8 and len(sources) == len(steps), (len(sources), len(steps))
    assert set(sources) == {BASTION_PRIVATE}, set(sources)
    # The bastion only forwarded: logins from the workstation, no command ran there.
    assert bastion.commands() == []
    assert set(accepted_from(bastion)) == {lab.gateway}

    # Settled: nothing left to change, and a second up runs no remote command.
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)
    before = len(server.commands())
    stack.up()
    assert len(server.commands()) == before
