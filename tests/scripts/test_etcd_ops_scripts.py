"""Issue 14, snapshots and restore: etcd-snapshot.sh and etcd-restore.sh in a scratch root
(sandbox.py) with the stub rke2 (tests/scripts/stubs/get-rke2.sh) that records its argv and
writes `<name>-<host>-<unix time>` files as `rke2 etcd-snapshot save` does. What they must do
comes from docs.rke2.io/backup_restore (see tests/components/test_etcd_ops.py); the real
thing, on real etcd, is tests/lab_scenarios/test_etcd_ops.py."""

from __future__ import annotations

SNAPS = "/var/lib/rancher/rke2/server/db/snapshots"


def test_snapshot_saves_under_the_label_and_lists_what_the_stack_took(sandbox):
    sandbox.install_rke2()
    res = sandbox.run("etcd-snapshot.sh", NAME="first")
    assert res.returncode == 0, res
    [first] = res.stdout.split()
    assert first.startswith("first-scratch-host-") and sandbox.exists(f"{SNAPS}/{first}")
    assert "rke2 etcd-snapshot save --name first" in sandbox.calls()
    sandbox.write(f"{SNAPS}/etcd-snapshot-scratch-host-1", "scheduled, not the stack's\n")
    res = sandbox.run("etcd-snapshot.sh", NAME="second")
    [a, b] = res.stdout.split()
    assert a == first and b.startswith("second-scratch-host-")
    sandbox.path(f"{SNAPS}/{first}").unlink()  # pruned by retention
    sandbox.clear_calls()
    res = sandbox.run("etcd-snapshot.sh", NAME="second", ACTION="list")
    assert res.returncode == 0 and res.stdout.split() == [b]
    assert not any(c.startswith("rke2 etcd-snapshot") for c in sandbox.calls())  # an update takes none


def test_snapshot_failure_fails_the_step(sandbox):
    sandbox.install_rke2()
    sandbox.write("/stubstate/etcd-snapshot-fails", "")
    res = sandbox.run("etcd-snapshot.sh", NAME="x")
    assert res.returncode != 0 and "etcd-snapshot save --name x failed" in res.stderr


def test_restore_check_refuses_a_missing_snapshot_before_anything_stops(sandbox):
    sandbox.install_rke2()
    sandbox.write(f"{SNAPS}/other-scratch-host-5", "x")
    res = sandbox.run("etcd-restore.sh", SNAPSHOT="missing-scratch-host-1")
    assert res.returncode != 0
    assert f"snapshot {SNAPS}/missing-scratch-host-1 not found" in res.stderr and "other-scratch-host-5" in res.stderr
    assert not any(c.startswith("systemctl") for c in sandbox.calls())
    sandbox.write(f"{SNAPS}/missing-scratch-host-1", "x")
    assert sandbox.run("etcd-restore.sh", SNAPSHOT="missing-scratch-host-1").returncode == 0


def test_restore_on_the_first_server_resets_from_the_file_then_starts(sandbox):
    sandbox.install_rke2()
    sandbox.write(f"{SNAPS}/s-scratch-host-1", "x")
    sandbox.set_active("rke2-server")
    sandbox.add_kubectl()
    res = sandbox.run("etcd-restore.sh", ACTION="restore", SNAPSHOT="s-scratch-host-1")
    assert res.returncode == 0, res
    calls = sandbox.calls()
    reset = f"rke2 server --cluster-reset --cluster-reset-restore-path={SNAPS}/s-scratch-host-1"
    assert reset in calls
    stop = calls.index("systemctl stop rke2-server")
    assert stop < calls.index(reset) < max(i for i, c in enumerate(calls) if c.startswith("systemctl start rke2-server"))


def test_restore_with_an_s3_target_keeps_to_the_local_file(sandbox):
    # docs.rke2.io datastore/backup_restore: with an etcd-s3 configuration in config.yaml RKE2
    # fetches the restore path from the bucket unless --etcd-s3=false is passed (cluster.etcdSnapshots.s3).
    sandbox.install_rke2()
    sandbox.write(f"{SNAPS}/s-scratch-host-1", "x")
    sandbox.set_active("rke2-server")
    sandbox.add_kubectl()
    res = sandbox.run("etcd-restore.sh", ACTION="restore", SNAPSHOT="s-scratch-host-1", S3=1)
    assert res.returncode == 0, res
    assert (f"rke2 server --cluster-reset --cluster-reset-restore-path={SNAPS}/s-scratch-host-1 --etcd-s3=false"
            in sandbox.calls())


def test_rejoin_moves_the_old_etcd_data_aside_and_starts(sandbox):
    sandbox.install_rke2()
    sandbox.write("/var/lib/rancher/rke2/server/db/etcd/member/wal/0.wal", "old")
    res = sandbox.run("etcd-restore.sh", ACTION="rejoin", SNAPSHOT="s-1")
    assert res.returncode == 0, res
    assert not sandbox.exists("/var/lib/rancher/rke2/server/db")
    aside = [p.name for p in sandbox.path("/var/lib/rancher/rke2/server").iterdir() if p.name.startswith("db.before-restore-")]
    assert len(aside) == 1
    assert any(c.startswith("systemctl start rke2-server") for c in sandbox.calls())


def test_an_update_of_a_restore_step_does_nothing(sandbox):
    sandbox.install_rke2()
    res = sandbox.run("etcd-restore.sh", ACTION="noop", SNAPSHOT="gone-1")
    assert res.returncode == 0 and sandbox.calls() == []
