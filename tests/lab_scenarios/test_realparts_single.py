"""Issue 12 on the real upstream parts: the single server (`jjtestserver`, mobile mode) with
rke2-standin on the real parts: real etcd, kube-apiserver, kube-controller-manager,
kube-scheduler (Kubernetes v1.33.5, the pinned RKE2's) and kwok in place of the kubelet,
built from Go modules by tests/lab/realparts/build.sh and bound read-only into the host.

What is checked is what a user sees, through the stack's own `kubeconfig` output and a real
kubectl on the workstation: the node is Ready; after the host moves to another address and
reboots, kubectl still works through the hostname and an object written before the move is
still there (etcd's data survived: its member address is the stable one, not the host's)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab.realparts.parts import ensured_parts_bin, parts_unavailable_reason
from tests.lab_scenarios.support import LabStack, provision_artifacts
from tests.lab_scenarios.test_single_server import HOST, single_config

_reason = parts_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def ready(node: dict) -> str:
    return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")


def test_single_server_on_real_parts_nodes_ready_and_data_survive_a_move(realparts_artifacts, lab, tmp_path):
    parts_bin = ensured_parts_bin()
    host = lab.add_host(HOST, "10.77.0.61")
    provision_artifacts(host, realparts_artifacts)
    stack = LabStack(lab, tmp_path)
    stack.configure(single_config(host, mobile=True))
    stack.init()
    stack.up()
    commands = len(host.commands())
    stack.up()  # a no-op up runs no remote command
    assert len(host.commands()) == commands, host.commands()[commands:]

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(stack.output("kubeconfig"))
    kubeconfig.chmod(0o600)

    def kubectl(*args: str, check: bool = True):
        res = lab.run([str(parts_bin / "kubectl"), f"--kubeconfig={kubeconfig}", "--request-timeout=5s", *args],
                      timeout=30)
        assert res.returncode == 0 or not check, res.stderr
        return res

    server_url = kubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    assert server_url == f"https://{HOST}:6443"
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert [(n["metadata"]["name"], ready(n)) for n in nodes] == [(HOST, "True")]
    assert "v1.33.5" in kubectl("version", "-o", "json").stdout  # the real kube-apiserver
    kubectl("create", "configmap", "before-move", "--from-literal=written=before-the-move")

    host.readdress("10.77.0.62")
    lab.set_host_entry(HOST, "10.77.0.62")
    host.reboot()
    deadline = time.monotonic() + 120
    while kubectl("get", "--raw", "/readyz", check=False).stdout != "ok" and time.monotonic() < deadline:
        time.sleep(1)
    assert kubectl("get", "configmap", "before-move", "-o", "jsonpath={.data.written}").stdout == "before-the-move"
    while time.monotonic() < deadline:
        nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
        if [(n["metadata"]["name"], ready(n)) for n in nodes] == [(HOST, "True")]:
            break
        time.sleep(1)
    assert [(n["metadata"]["name"], ready(n)) for n in nodes] == [(HOST, "True")]
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)
