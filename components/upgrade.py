"""Rolling upgrade (a cluster.version change): the guard on servers[0] and the per-node gates.

Each step here has the target version as its trigger, so a new cluster.version replaces it and
its create runs once, in the order the dependencies give (cluster.py, rke2_server.py,
rke2_agent.py):

    <servers[0]>-upgrade-guard      refuse a downgrade / skipped minor / unhealthy cluster, snapshot
    server i: install -> service (restart) -> san-refresh -> <server>-upgrade-ready
    server i+1: install waits for server i's upgrade-ready (one server at a time)
    agents, batch k: <agent>-upgrade-turn -> <agent>-upgrade-drain -> install -> service
                     -> <agent>-upgrade-ready
    batch k+1's upgrade-turn waits, on servers[0], until every node of batch k is done

The batches take turns on the host, not through the engine's dependencies: a dependency would
also make a first install (or a new agent) wait batch after batch, while the host-side turn
passes at once for nodes that were never registered.

On a new stack the same steps are created: the guard sees no RKE2 and passes, a drain finds
no Node and does nothing, a ready gate only waits for the Node.
"""

from __future__ import annotations

import pulumi
from pulumi_command import remote

from .config import ClusterConfig
from .host import HostAccess, step


def guard_step(server_name: str, host: HostAccess, cluster: ClusterConfig,
               opts: pulumi.ResourceOptions) -> remote.Command:
    """`<servers[0]>-upgrade-guard`: runs on servers[0] before anything else of a version change."""
    return step(f"{server_name}-upgrade-guard", host, "upgrade-guard.sh",
                values={"TARGET": cluster.version, "ACTION": "guard"},
                update_values={"ACTION": "check"},
                triggers=[cluster.version], opts=opts)


def _require_ready(cni: str | None) -> int:
    """With cni: none a Node stays NotReady until the user installs a CNI: gate on the kubelet only."""
    return 0 if cni == "none" else 1


def ready_step(node_name: str, checker: HostAccess, cluster: ClusterConfig, cni: str | None,
               opts: pulumi.ResourceOptions) -> remote.Command:
    """`<node>-upgrade-ready`: waits (on `checker`, a server) until the Node is Ready with a kubelet
    of the target version, then uncordons it when the upgrade drain cordoned it."""
    return step(f"{node_name}-upgrade-ready", checker, "upgrade-node.sh",
                values={"NODE": node_name, "TARGET": cluster.version, "ACTION": "ready",
                        "TIMEOUT": cluster.ready_timeout_seconds, "GRACE": -1,
                        "REQUIRE_READY": _require_ready(cni)},
                update_values={"ACTION": "check"},
                triggers=[cluster.version], opts=opts)


def turn_step(node_name: str, checker: HostAccess, cluster: ClusterConfig, cni: str | None,
              batch_index: int, previous_batch: list[str],
              opts: pulumi.ResourceOptions) -> remote.Command | None:
    """`<agent>-upgrade-turn`: on servers[0], waits until the nodes of the batch before have
    finished their upgrade (upgrade-node.sh ACTION=turn); None for the first batch."""
    if not previous_batch:
        return None
    up = cluster.upgrade
    # Every batch before this one goes through its drain and its Ready gate first.
    per_batch = (up.drain_timeout_seconds if up.drain else 0) + cluster.ready_timeout_seconds
    return step(f"{node_name}-upgrade-turn", checker, "upgrade-node.sh",
                values={"NODE": node_name, "TARGET": cluster.version, "ACTION": "turn",
                        "AFTER": " ".join(previous_batch), "TIMEOUT": batch_index * per_batch,
                        "GRACE": -1, "REQUIRE_READY": _require_ready(cni)},
                update_values={"ACTION": "check"},
                triggers=[cluster.version], opts=opts)


def drain_step(node_name: str, checker: HostAccess, cluster: ClusterConfig,
               opts: pulumi.ResourceOptions) -> remote.Command | None:
    """`<agent>-upgrade-drain` (cluster.upgrade.drain): cordons and drains the agent from a server
    before its install; None when draining is off."""
    up = cluster.upgrade
    if not up.drain:
        return None
    return step(f"{node_name}-upgrade-drain", checker, "upgrade-node.sh",
                values={"NODE": node_name, "TARGET": cluster.version, "ACTION": "drain",
                        "TIMEOUT": up.drain_timeout_seconds, "GRACE": up.drain_grace_period_seconds,
                        "REQUIRE_READY": 1},
                update_values={"ACTION": "check"},
                triggers=[cluster.version], opts=opts)
