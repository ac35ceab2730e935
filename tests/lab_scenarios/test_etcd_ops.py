"""Issue 14, snapshots and restore, on real etcd: `jjtestserver` on rke2-standin on the
real parts (real etcd v3.5.21 and kube-apiserver; `rke2 etcd-snapshot save` is etcd's own
snapshot, `--cluster-reset-restore-path` restores it as k3s does, see rke2_standin.py
real_etcd_restore). What is checked is what a user sees through the stack's kubeconfig output:
an object written before the snapshot is back after the restore, one written after it is
gone. The procedure is docs.rke2.io/backup_restore's (tests/components/test_etcd_ops.py)."""

from __future__ import annotations

import json

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab.realparts.parts import parts_unavailable_reason
from tests.lab_scenarios.support import LabStack, kubectl_through, provision_artifacts
from tests.lab_scenarios.test_single_server import HOST, single_config

_reason = parts_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def ready(node: dict) -> str:
    return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")


def test_snapshot_then_restore_brings_back_the_data_of_that_moment(realparts_artifacts, lab, tmp_path):
    host = lab.add_host(HOST, "10.77.0.81")
    provision_artifacts(host, realparts_artifacts)
    stack = LabStack(lab, tmp_path)
    config = single_config(host)
    stack.configure(config)
    stack.init()
    stack.up()
    kubectl = kubectl_through(lab, stack, tmp_path / "kubeconfig")

    kubectl("create", "configmap", "before-snapshot", "--from-literal=at=before")

    # A snapshot on demand: a new label, one snapshot, listed in the output.
    config["cluster"]["snapshot"] = "before-change"
    stack.configure(config)
    assert stack.changed_resources() == {f"{HOST}-snapshot": "create"}
    stack.up()
    [snapshot] = stack.output("etcdSnapshots")
    assert snapshot.startswith(f"before-change-{HOST}-")
    on_host = host.path(f"/var/lib/rancher/rke2/server/db/snapshots/{snapshot}")
    assert on_host.stat().st_size > 0 and on_host.read_bytes()[:4] != b"dirs"  # etcd's bolt file
    commands = len(host.commands())
    stack.up()  # the same label takes no second snapshot
    assert len(host.commands()) == commands and len(stack.output("etcdSnapshots")) == 1

    kubectl("create", "configmap", "after-snapshot", "--from-literal=at=after")

    # A restore of a snapshot that is not there is refused before anything stops.
    config["cluster"]["restore"] = f"no-such-{HOST}-1"
    stack.configure(config)
    res = stack.up(check=False)
    assert res.returncode != 0 and f"snapshot /var/lib/rancher/rke2/server/db/snapshots/no-such-{HOST}-1 not found" in res.stdout
    assert host.ssh("systemctl is-active rke2-server")[1].strip() == "active"

    # The restore: previewed, then run; the cluster is the one of the snapshot.
    config["cluster"]["restore"] = snapshot
    stack.configure(config)
    changed = stack.changed_resources()
    assert set(changed) == {f"{HOST}-restore-check", f"{HOST}-restore"}, changed
    assert changed[f"{HOST}-restore"] == "create"
    stack.up()
    assert kubectl("get", "configmap", "before-snapshot", "-o", "jsonpath={.data.at}").stdout == "before"
    assert "NotFound" in kubectl("get", "configmap", "after-snapshot", check=False).stderr
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert [(n["metadata"]["name"], ready(n)) for n in nodes] == [(HOST, "True")]
    old = [p.name for p in host.path("/var/lib/rancher/rke2/server/db").iterdir() if p.name.startswith("etcd-old-")]
    assert len(old) == 1  # the data before the restore, kept as RKE2 keeps it

    # Once done, nothing runs again.
    commands = len(host.commands())
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)
    stack.up()
    assert len(host.commands()) == commands, host.commands()[commands:]
