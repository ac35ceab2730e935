"""Day-2 on etcd: snapshots on demand (cluster.snapshot) and a restore (cluster.restore).

Each step has its config value as trigger, so a new value replaces it and its create runs
once; any other update runs a listing or nothing. On the hosts (cluster.py wires them after
every server is ready, and the kubernetes provider after them):

    cluster.snapshot: <label>
        <servers[0]>-snapshot          rke2 etcd-snapshot save --name <label>; lists the stack's snapshots
    cluster.restore: <snapshot>        (after the snapshot step, when both change at once)
        <servers[0]>-restore-check     the snapshot exists; nothing has stopped yet
        <server i>-restore-stop        every other server stopped (etcd must not run beside a restore)
        <servers[0]>-restore           --cluster-reset --cluster-reset-restore-path, start, /readyz
        <server i>-restore-rejoin      one at a time: old etcd data moved aside, start, joined
Agents reconnect by themselves (rke2-agent retries its servers).
"""

from __future__ import annotations

from typing import Sequence

import pulumi
from pulumi_command import remote

from .config import StackConfig
from .host import HostAccess, step


def snapshot_step(server_name: str, host: HostAccess, stack: StackConfig, snapshot_dir: str,
                  opts: pulumi.ResourceOptions) -> remote.Command | None:
    label = stack.cluster.snapshot
    if label is None:
        return None
    return step(f"{server_name}-snapshot", host, "etcd-snapshot.sh",
                values={"NAME": label, "SNAPSHOT_DIR": snapshot_dir, "ACTION": "save"},
                update_values={"ACTION": "list"}, triggers=[label], opts=opts)


def snapshots_taken(snapshot: remote.Command | None) -> pulumi.Output | None:
    """The etcdSnapshots output: the snapshot files the stack took that are still there."""
    if snapshot is None:
        return None
    return snapshot.stdout.apply(lambda out: [line for line in (out or "").splitlines() if line.strip()])


def restore_steps(servers: Sequence[tuple[str, HostAccess, pulumi.Resource]], stack: StackConfig,
                  snapshot_dir: str, after: Sequence[pulumi.Resource]) -> pulumi.Resource | None:
    """The restore's steps, in order; returns the last one (None without cluster.restore).
    `servers`: (node name, access, parent component) in stack order; `after`: what must be
    done first (every server ready, a snapshot being taken)."""
    target = stack.cluster.restore
    if target is None:
        return None
    timeout = stack.cluster.ready_timeout_seconds
    # With an S3 target in config.yaml RKE2 would fetch the restore path from the bucket; the
    # restore is of a file on servers[0] (docs.rke2.io datastore/backup_restore: "add the argument
    # --etcd-s3=false and pass the full path to the local snapshot file").
    snaps = stack.cluster.etcd_snapshots
    s3 = {"S3": 1} if snaps is not None and snaps.s3 is not None else {}

    def restore_step(name: str, host: HostAccess, parent: pulumi.Resource, action: str,
                     depends: Sequence[pulumi.Resource]) -> remote.Command:
        return step(name, host, "etcd-restore.sh",
                    values={"ACTION": action, "SNAPSHOT": target, "SNAPSHOT_DIR": snapshot_dir,
                            "TIMEOUT": timeout, **s3},
                    update_values={"ACTION": "noop"}, triggers=[target],
                    opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends)))

    (first, first_host, first_parent), others = servers[0], servers[1:]
    check = restore_step(f"{first}-restore-check", first_host, first_parent, "check", after)
    stops = [restore_step(f"{name}-restore-stop", host, parent, "stop", [check])
             for name, host, parent in others]
    last: pulumi.Resource = restore_step(f"{first}-restore", first_host, first_parent, "restore", [check, *stops])
    for name, host, parent in others:  # one at a time: etcd admits one learner at a time
        last = restore_step(f"{name}-restore-rejoin", host, parent, "rejoin", [last])
    return last
