"""The single server's moves (issue 2): with mobile mode the address changes without a
`pulumi up`; without it RKE2 stops with "not a member of the etcd cluster" and the product's
recovery (cluster-reset) brings it back; sshd going away during an `up`. Split from
test_single_server.py so the parallel test workers share the load; the helpers are there."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine.engine import PULUMI
from tests.lab.fixtures import requires_lab
from tests.lab_scenarios.support import host_key_line
from tests.lab_scenarios.test_single_server import (HOST, deployed, readyz, remote_commands,  # noqa: F401
                                                    single_config, single_server)

pytestmark = [requires_lab(), pytest.mark.lab]


def test_the_move_mobile_mode_keeps_serving_without_up(lab, deployed, tmp_path):
    host, stack = deployed
    commands = remote_commands(host)
    host.readdress("10.77.0.42")
    lab.set_host_entry(HOST, "10.77.0.42")
    res = readyz(lab, stack, tmp_path)
    assert res["ok"], res
    # Even a restart on the new network works: etcd's member address did not change.
    host.reboot()
    deadline = time.monotonic() + 180  # a boot starts the real etcd and kube-apiserver again
    while not (res := readyz(lab, stack, tmp_path))["ok"] and time.monotonic() < deadline:
        time.sleep(1)
    assert res["ok"], res
    assert remote_commands(host) == commands  # no `pulumi up` was needed
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)


NOT_A_MEMBER = "not a member of the etcd cluster"


def start_as_after_a_reboot_until_not_a_member(host, times: int, timeout: float = 180) -> str:
    """Start rke2-server on the new network as after a reboot (nothing of RKE2 left running,
    not even the API pod) and wait until it has logged NOT_A_MEMBER `times` times (it starts
    etcd first, which on a loaded machine takes a while). Returns the journal."""
    rc, _, err = host.ssh("/usr/local/bin/rke2-killall.sh >/dev/null 2>&1; systemctl start --no-block rke2-server",
                          timeout=60)
    assert rc == 0, err
    deadline = time.monotonic() + timeout
    while (journal := host.journal("rke2-server")).count(NOT_A_MEMBER) < times:
        assert time.monotonic() < deadline, journal[-3000:]
        time.sleep(1)
    return journal


def test_the_move_without_mobile_mode_breaks_then_recovers(lab, realparts_artifacts, tmp_path):
    host, stack = single_server(lab, realparts_artifacts, tmp_path, "10.77.0.12", mobile=False, readyTimeoutSeconds=600)
    host.readdress("10.77.0.43")
    lab.set_host_entry(HOST, "10.77.0.43")
    # Like k3s (pkg/cluster/managed.go testClusterDB) it does not exit: it retries every 5 s
    # and never becomes ready (the unit stays activating).
    start_as_after_a_reboot_until_not_a_member(host, times=2)
    assert host.ssh("systemctl is-active rke2-server")[1].strip() == "activating"
    assert not readyz(lab, stack, tmp_path)["ok"]
    # The documented recovery (README): replace the service step; it sees the message while
    # waiting (not after readyTimeoutSeconds, 600 s here), resets the single-member etcd to
    # the new address and starts the server.
    t0 = time.monotonic()
    res = stack.pulumi("up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack.name,
                       "--replace", f"urn:pulumi:{stack.name}::rke2-rancher::rke2:index:RKE2Server"
                                    f"$command:remote:Command::{HOST}-service")
    elapsed = time.monotonic() - t0
    out = res.stdout + res.stderr
    assert "cluster-reset" in out
    detected = re.search(r"logs 'not a member of the etcd cluster' \(state \w+, after (\d+)s\)", out)
    assert detected and int(detected.group(1)) <= 15, out[-3000:]
    print(f"not-a-member detected after {detected.group(1)} s; recovery up took {elapsed:.0f} s")
    assert elapsed < 300, elapsed
    assert readyz(lab, stack, tmp_path)["ok"]


def test_the_move_with_a_new_address_recovers_on_a_plain_up(lab, realparts_artifacts, tmp_path):
    """The stack addresses the server by IP and the IP changed: every step runs again,
    preflight first, while rke2-server retries with 9345 open. Preflight must see that port
    as rke2's own, and the service step must detect "not a member" while waiting."""
    host, stack = single_server(lab, realparts_artifacts, tmp_path, "10.77.0.14", up=False, mobile=False,
                                readyTimeoutSeconds=600)
    config = single_config(host, mobile=False, readyTimeoutSeconds=600)

    def address(ip: str) -> None:
        config["servers"] = [{"name": HOST, "address": ip}]
        config["ssh"]["hostKeys"] = {ip: host_key_line(host)}
        stack.configure(config)

    address("10.77.0.14")
    stack.up()
    host.readdress("10.77.0.44")
    lab.set_host_entry(HOST, "10.77.0.44")
    start_as_after_a_reboot_until_not_a_member(host, times=1)
    address("10.77.0.44")
    t0 = time.monotonic()
    res = stack.up()
    elapsed = time.monotonic() - t0
    out = res.stdout + res.stderr
    assert "port 9345 in use by rke2-server (ours)" in out
    assert "in use by another program" not in out
    assert "cluster-reset" in out
    print(f"recovery by a plain up after the address change took {elapsed:.0f} s")
    assert elapsed < 300, elapsed
    assert readyz(lab, stack, tmp_path)["ok"]
    # The host was neither uninstalled nor re-installed.
    assert Path(host.path("/usr/local/bin/rke2")).exists()


def test_sshd_down_during_up_fails_naming_the_host_then_converges(lab, realparts_artifacts, tmp_path):
    host, stack = single_server(lab, realparts_artifacts, tmp_path, "10.77.0.13", up=False, mobile=True)
    proc = lab.popen([*PULUMI, "up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack.name],
                     env=stack.project.env, cwd=str(stack.project.dir), text=True,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not any("config.yaml" in c for _, c in host.commands()) and time.monotonic() < deadline:
        time.sleep(0.2)
    host.stop_sshd()
    out, _ = proc.communicate(timeout=600)
    stack.transcript.append(out)
    assert proc.returncode != 0
    assert HOST in out or "10.77.0.13" in out, out[-3000:]
    host.start_sshd()
    stack.up()
    # Nothing duplicated or half-written: one config, no temp files, one cluster.
    conf_dir = Path(host.path("/etc/rancher/rke2"))
    assert sorted(p.name for p in conf_dir.iterdir() if p.name.startswith(".rke2-rancher")) == []
    assert "tls-san:" in (conf_dir / "config.yaml").read_text()
    assert Path(host.path("/var/lib/rancher/rke2/server/token")).read_text().startswith("K10")
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)


