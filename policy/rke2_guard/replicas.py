"""rancher-single-node-replicas: Rancher replicas against the nodes Rancher can run on.

A StackValidationPolicy, so it counts the nodes itself instead of trusting the program's
`schedulableNodes`. It sees each resource's OUTPUTS: for components those are what
`register_outputs` was given, so the node and Rancher props are read from there (with the
RancherRelease's own `schedulableNodes` as a fallback when no node says whether it is
schedulable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs

from .common import NODE_TYPES, UNKNOWN, RancherInstall, as_int, items, rancher_installs, read

# The Rancher chart's default `replicas` (rancher/rancher chart values.yaml).
CHART_DEFAULT_REPLICAS = 3
# Effects that keep ordinary pods (Rancher's) off a node.
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Node:
    name: str
    schedulable: bool | None
    """None when the node's props do not say (not registered, or unknown during preview)."""


def node_schedulable(props: Any) -> bool | None:
    """The `schedulable` prop, else derived from `taints` (`key[=value]:Effect`)."""
    flag = read(props, "schedulable")
    if isinstance(flag, bool):
        return flag
    taints = items(read(props, "taints", default=UNKNOWN))
    if taints is UNKNOWN or any(not isinstance(t, str) for t in taints):
        return None
    return not any(t.rsplit(":", 1)[-1] in BLOCKING_EFFECTS for t in taints)


def nodes_of(args: StackValidationArgs) -> list[Node]:
    return [Node(r.name, node_schedulable(r.props)) for r in args.resources if r.resource_type in NODE_TYPES]


def schedulable_count(nodes: list[Node], install: RancherInstall) -> tuple[int, list[str]] | None:
    """(count, names) of the schedulable nodes, or None when the stack does not tell."""
    if nodes and all(n.schedulable is not None for n in nodes):
        names = [n.name for n in nodes if n.schedulable]
        return len(names), names
    if install.component is not None:
        count = as_int(read(install.component.props, "schedulableNodes"))
        if count is not None:
            return count, []
    if any(n.schedulable is not None for n in nodes):
        # Nodes that do not say are counted as schedulable: never a false block.
        names = [n.name for n in nodes if n.schedulable is not False]
        return len(names), names
    return None


def validate_rancher_replicas(args: StackValidationArgs, report: ReportViolation) -> None:
    nodes = nodes_of(args)
    for install in rancher_installs(args.resources):
        replicas, source = install.value("replicas", component_prop="replicas",
                                         chart_default=CHART_DEFAULT_REPLICAS)
        replicas = as_int(replicas)
        # Zero or negative replicas have chart-specific meanings; nothing to compare.
        if replicas is None or replicas < 1:
            continue
        counted = schedulable_count(nodes, install)
        if counted is None:
            continue
        count, names = counted
        if replicas <= count:
            continue
        who, urn = install.label, install.resource.urn
        shown = f" ({', '.join(names)})" if names else ""
        if count == 0:
            tainted = ", ".join(n.name for n in nodes if n.schedulable is False)
            report(f"{who}: Rancher asks for {replicas} replica(s) ({source}) but no node is schedulable "
                   f"(NoSchedule/NoExecute taints on {tainted or 'every node'}), so its pods would stay "
                   f"Pending and the Helm install would time out. Fix: remove the taint from one server, "
                   f"or add an agent without taints.", urn)
        elif count == 1:
            report(f"{who}: Rancher replicas is {replicas} ({source}) but the cluster has a single "
                   f"schedulable node{shown}; the extra replicas add no availability and take the node's "
                   f"memory. Fix: set rancher.replicas to 1 (or add schedulable nodes).", urn)
        else:
            report(f"{who}: Rancher replicas is {replicas} ({source}) but only {count} nodes are "
                   f"schedulable{shown}; replicas beyond the node count share nodes and add no "
                   f"availability. Fix: set rancher.replicas to at most {count}, or add schedulable "
                   f"nodes.", urn)
