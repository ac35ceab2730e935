"""Host steps that servers and agents share: uninstall-on-destroy, config files, install."""

from __future__ import annotations

import pulumi
from pulumi_command import remote

from .config import ClusterConfig
from .host import HostAccess, step


def uninstall_step(name: str, host: HostAccess, cluster: ClusterConfig, role: str,
                   opts: pulumi.ResourceOptions, leave_api: str | None = None) -> remote.Command:
    """Created first, deleted last: its delete runs rke2-uninstall.sh (or leaves the host alone
    with retainOnDestroy). Kept apart from the install step so that a version change, an
    update of the install step, never uninstalls anything. Its create marks the host with
    `<name> <role>`; the delete leaves a host marked for another node name or role alone,
    so renaming a node or moving a host between servers and agents never uninstalls RKE2
    from the host the stack still manages. `leave_api` (servers of an HA cluster: the API
    through the load balancer): the delete first takes the server's etcd member out."""
    retain = int(cluster.retain_on_destroy)
    values = {"RETAIN": retain, "NODE": name, "ROLE": role}
    leave = {"LEAVE": 1, "API": leave_api, "TIMEOUT": cluster.ready_timeout_seconds} if leave_api else {}
    return step(f"{name}-uninstall", host, "uninstall.sh",
                values={"ACTION": "register", **values},
                delete_script="uninstall.sh", delete_values={"ACTION": "uninstall", **values, **leave},
                rebuild_trigger=False, opts=opts)


def file_step(name: str, host: HostAccess, dest: str, content: pulumi.Input[str],
              opts: pulumi.ResourceOptions, *, secret: bool = False) -> remote.Command:
    """Writes `content` (sent on stdin) to `dest` atomically with mode 0600."""
    return step(name, host, "write-file.sh", values={"DEST": dest, "MODE": "0600"}, stdin=content,
                secret_output=secret, opts=opts)


def install_step(name: str, host: HostAccess, cluster: ClusterConfig, rke2_type: str,
                 opts: pulumi.ResourceOptions) -> remote.Command:
    """Installs the pinned release; an update (new version, or only a new SSH address)
    re-runs the same idempotent script, which skips an installed version. For a rolling
    upgrade the caller's `opts` carry the node's turn: after servers[0]'s upgrade guard (via
    preflight), the previous server's readiness (servers), or every server and this agent's
    turn (upgrade.turn_step: the batch before has finished) and drain (agents); so a new
    version lands on one node when its turn comes, never on every node at once."""
    return step(f"{name}-install", host, "install.sh",
                values={"RKE2_VERSION": cluster.version, "RKE2_TYPE": rke2_type,
                        "INSTALL_SCRIPT_URL": cluster.install_script_url,
                        "ARTIFACT_DIR": cluster.artifact_dir or ""},
                opts=opts)
