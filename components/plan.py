"""The impact plan: what `pulumi up` would do to each host, in order, why, and what it risks.

Pure module (no I/O besides `main`). Input: the output of the real
`pulumi preview --json --diff --policy-pack policy` (its steps, with each resource's
dependencies) and the policy events of the same preview (the streaming JSON form,
PULUMI_ENABLE_STREAMING_JSON_PREVIEW=1, is the only one that carries them). Output: a Plan,
rendered as text, Markdown (CI job summary) or JSON.

- Hosts are the components that own host steps (RKE2Server, RKE2Agent, HALoadBalancer);
  a step belongs to its parent component.
- Effects: each step runs one host script (its command starts `# rke2-rancher: <script>`);
  components/effects.py evaluates that script's own `# host-effect:` declaration for the
  command that will run (create, update or delete) and what differs from the last run.
- Causes: the components register their validated config as props (camelCase); a changed
  prop is mapped to the stack config key it comes from (CAUSES below, checked against the
  components' registered props by tests/unit/test_plan.py); what no prop explains is named
  by the step's own changed inputs (a secret stdin, the SSH connection, triggers).
- Order: from the resources' dependencies in the preview (servers one at a time, agents in
  parallel follow from them); deletions run at the end, in reverse dependency order.

Secrets: the preview masks them ("[secret]", ciphertext objects); the plan prints config
keys, prop paths and non-secret prop values only, and masks anything that looks secret.
Nothing here connects anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from . import effects as fx

HOST_TYPES = {"rke2:index:RKE2Server": "server", "rke2:index:RKE2Agent": "agent",
              "rke2:index:HALoadBalancer": "load balancer"}
COMMAND_TYPE = "command:remote:Command"
CERT_TYPES = ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert")
CHANGE_OPS = ("create", "update", "replace", "delete")
SECRET_SIG = "4dabf18193072939515e22adb298388d"

# Component prop -> the stack config key it comes from. "{node}" is servers[i] / agents[i].
_NODE = {"nodeName": "{node}.name", "address": "{node}.address", "nodeIp": "{node}.nodeIp",
         "labels": "{node}.labels", "taints": "{node}.taints", "schedulable": "{node}.taints",
         "index": "{role} (order)", "hostKeyVerified": "ssh.hostKeys",
         "bastion": "ssh.bastion", "bastionHostKeyVerified": "ssh.bastion (hostKey)",
         "version": "cluster.version", "retainOnDestroy": "cluster.retainOnDestroy",
         "profile": "cluster.profile", "systemDefaultRegistry": "cluster.systemDefaultRegistry",
         "registryMirrors": "registries.mirrors",
         "registrationAddress": "cluster.hostname / loadBalancer (registration address)"}
CAUSES: dict[str, dict[str, str]] = {
    "rke2:index:RKE2Server": {
        **_NODE,
        "serverCount": "servers (count)", "clusterHostname": "cluster.hostname",
        "configuredTlsSans": "cluster.tlsSans", "tlsSans": "cluster.tlsSans (effective list)",
        "kubeconfigServer": "cluster.hostname / loadBalancer (kubeconfig server)",
        "loadBalancerAddress": "loadBalancer.address", "loadBalancerVip": "loadBalancer.vip",
        "mobile": "cluster.mobile", "writeKubeconfigMode": "cluster.writeKubeconfigMode",
        "tokenSource": "token", "ca": "cluster.ca", "rebuild": "{node}.rebuild (host rebuilt: every step again)",
        "etcdSnapshots": "cluster.etcdSnapshots",
        "etcdS3Credentials": "cluster.etcdS3 (static keys, or the host's AWS credentials when unset)",
    },
    "rke2:index:RKE2Agent": {**_NODE, "upgradeAfter": "cluster.upgrade.agentBatch (the batch before)"},
    "rke2:index:HALoadBalancer": {
        "name": "loadBalancer.name", "address": "loadBalancer.address", "vip": "loadBalancer.vip",
        "registrationAddress": "cluster.hostname / loadBalancer (registration address)",
        "backends": "servers (load balancer backends)", "ports": "servers / agents (ingress ports)",
        "ingressBackends": "servers / agents (ingress backends)", "hostKeyVerified": "ssh.hostKeys",
        "bastion": "ssh.bastion", "bastionHostKeyVerified": "ssh.bastion (hostKey)",
    },
    "rke2:index:ClusterIdentity": {"clusterHostname": "cluster.hostname", "cas": "cluster.ca",
                                   "caValidityHours": "cluster.ca"},
    "rke2:index:CertManager": {"version": "certManager.version", "values": "certManager.version",
                               "namespace": "certManager", "chartRepository": "certManager"},
    "rke2:index:RancherRelease": {
        "version": "rancher.version", "hostname": "rancher.hostname", "replicas": "rancher.replicas",
        "tlsSource": "rancher.tlsSource", "chartRepository": "rancher.repository",
        "schedulableNodes": "servers / agents (schedulable nodes)", "namespace": "rancher",
        "values": "rancher",
    },
}
# Inputs of a step that name their own cause when no component prop explains a change.
INPUT_CAUSES = {"connection": "SSH connection (an address or ssh.*; shown as [secret])",
                "stdin": "the data sent on stdin", "triggers": "triggers",
                "create": "the step's script (a new version of this project)",
                "update": "the step's script (a new version of this project)",
                "delete": "the step's script (a new version of this project)"}


# --------------------------------------------------------------------------------------------
# Input normalisation


def _name(urn: str) -> str:
    return urn.split("::")[-1]


def _is_secret(v: Any) -> bool:
    return v == "[secret]" or (isinstance(v, dict) and SECRET_SIG in v)


def _diff_paths(old: Any, new: Any, path: str = "") -> list[tuple[str, str]]:
    """[(path, add|delete|update)] between two JSON values; secrets compare whole."""
    if _is_secret(old) or _is_secret(new):
        return [] if old == new else [(path, "update")]
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            p = f"{path}.{k}" if path else k
            if k not in old:
                out.append((p, "add"))
            elif k not in new:
                out.append((p, "delete"))
            else:
                out += _diff_paths(old[k], new[k], p)
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for i in range(max(len(old), len(new))):
            p = f"{path}[{i}]"
            if i >= len(old):
                out.append((p, "add"))
            elif i >= len(new):
                out.append((p, "delete"))
            else:
                out += _diff_paths(old[i], new[i], p)
        return out
    return [] if old == new else [(path, "update")]


@dataclass
class Step:
    urn: str
    op: str
    type: str
    old: dict
    new: dict
    detailed: dict
    replace_reasons: list
    index: int

    @property
    def name(self) -> str:
        return _name(self.urn)

    @property
    def state(self) -> dict:
        return self.new or self.old

    @property
    def parent(self) -> str:
        return self.state.get("parent", "")

    @property
    def deps(self) -> list[str]:
        return list(self.state.get("dependencies") or [])


def read_steps(preview: dict) -> list[Step]:
    out = []
    for i, s in enumerate(preview.get("steps") or []):
        old, new = s.get("oldState") or {}, s.get("newState") or {}
        detailed = {k: (v.get("kind") or v.get("diffKind") or "update")
                    for k, v in (s.get("detailedDiff") or {}).items()}
        out.append(Step(urn=s["urn"], op=s["op"], type=(new or old).get("type", ""), old=old, new=new,
                        detailed=detailed, replace_reasons=list(s.get("replaceReasons") or []), index=i))
    return out


def read_policy_events(events: Iterable[dict]) -> list[dict]:
    """Violations from the streaming preview's policyEvent entries."""
    out = []
    for e in events:
        p = e.get("policyEvent") if isinstance(e, dict) else None
        if not p:
            continue
        msg = (p.get("message") or "").strip()
        out.append({"policy": p.get("policyName", ""), "pack": p.get("policyPackName", ""),
                    "level": p.get("enforcementLevel", ""),
                    "resource": _name(p.get("resourceUrn") or "") or "(stack)",
                    "message": msg.splitlines()[-1] if msg else ""})
    return out


# --------------------------------------------------------------------------------------------
# The plan


@dataclass
class StepPlan:
    name: str
    op: str
    script: str | None
    effect: str
    effect_label: str
    causes: list[str]
    changed_inputs: list[str]


@dataclass
class HostPlan:
    name: str
    role: str
    op: str
    stage: int | None
    """1-based order of execution; hosts of one stage run in parallel; None: removed (at the end)."""
    causes: list[str]
    steps: list[StepPlan]
    restarts: int = 0


@dataclass
class OtherChange:
    name: str
    """The resource, or the component whose resources these are."""
    type: str
    op: str
    causes: list[str]
    resources: list[str] = field(default_factory=list)
    """The resources of that component with this op and these causes."""


@dataclass
class Totals:
    restarts: dict[str, int] = field(default_factory=dict)
    max_servers_down: int = 0
    servers: int = 0
    quorum_kept: bool = True
    agents_drained: int = 0
    servers_drained: int = 0
    """Servers cordoned and drained for a while (a rolling upgrade); agents removed or upgraded count above."""
    certificates_reissued: int = 0
    certificates: list[str] = field(default_factory=list)
    destroyed: int = 0
    destroyed_resources: list[str] = field(default_factory=list)
    hosts_added: list[str] = field(default_factory=list)
    hosts_removed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Steps whose script will refuse the change (the update fails there)."""


@dataclass
class Plan:
    stack: str
    hosts: list[HostPlan]
    other: list[OtherChange]
    totals: Totals
    policies: list[dict]
    blocked: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _index(props: dict) -> str:
    """A node's position (a protobuf Struct carries numbers as floats)."""
    i = props.get("index")
    return str(int(i)) if isinstance(i, (int, float)) and float(i).is_integer() else "?"


def _config_key(ctype: str, props: dict, path: str) -> str:
    top, rest = path, ""
    for i, ch in enumerate(path):
        if ch in ".[":
            top, rest = path[:i], path[i:]
            break
    table = CAUSES.get(ctype, {})
    role = "servers" if ctype == "rke2:index:RKE2Server" else "agents"
    node = f"{role}[{_index(props)}]"
    if top in table:
        key = table[top].format(node=node, role=role)
        if top == "values" and rest.startswith(".") and ctype == "rke2:index:RancherRelease":
            return f"rancher.{rest[1:]}"
        if top == "backends" and rest.startswith("["):  # one entry per server, in order
            return f"servers{rest.split(']')[0]}] (load balancer backend)"
        if "(" in key or top in ("schedulable", "values", "cas", "caValidityHours"):
            return key
        return key + rest
    return f"{ctype.split(':')[-1]}.{path}"


_KIND_WORD = {"add": "added", "delete": "removed", "update": "changed",
              "add-replace": "added", "delete-replace": "removed", "update-replace": "changed"}


def component_causes(step: Step) -> list[str]:
    """Config keys behind a component's change (its props are its validated config)."""
    role = HOST_TYPES.get(step.type, "")
    if step.op == "create":
        props = step.new.get("inputs") or {}
        idx = _index(props)
        return [f"{'servers' if role == 'server' else 'agents'}[{idx}] added ({step.name})"
                if role in ("server", "agent") else f"{step.name} added"]
    if step.op == "delete":
        where = {"server": "servers", "agent": "agents"}.get(role, "the stack")
        return [f"{step.name} removed from {where}"]
    old, new = step.old.get("inputs") or {}, step.new.get("inputs") or {}
    out: list[str] = []
    seen = set()
    diffs = _diff_paths(old, new)
    tops = {p.split(".")[0].split("[")[0] for p, _ in diffs}
    # A list of plain entries set in the config (SANs, labels): what was added or removed,
    # not which positions shifted.
    as_sets = set()
    for top in sorted(tops):
        o, n = old.get(top), new.get(top)
        key = _config_key(step.type, new or old, top)
        if not (isinstance(o, list) and isinstance(n, list) and "(" not in key and
                all(isinstance(x, (str, int, float, bool)) and not _is_secret(x) for x in o + n)):
            continue
        if top == "tlsSans" and "configuredTlsSans" in tops:
            continue
        as_sets.add(top)
        added, removed = Counter(map(json.dumps, n)) - Counter(map(json.dumps, o)), \
            Counter(map(json.dumps, o)) - Counter(map(json.dumps, n))
        parts = [f"{sum(added.values())} added"] if added else []
        parts += [f"{sum(removed.values())} removed"] if removed else []
        out.append(f"{key}: {', '.join(parts) or 'reordered'}")
        seen.add(key)
    for path, kind in diffs:
        top = path.split(".")[0].split("[")[0]
        if top in as_sets:
            continue
        # The effective SAN list follows the configured one: name the configured key only.
        if top == "tlsSans" and "configuredTlsSans" in tops:
            continue
        if top == "values" and ctype_has(step.type, path, tops):
            continue
        key = _config_key(step.type, new or old, path)
        text = f"{key} {_KIND_WORD.get(kind, kind)}"
        if key not in seen:
            seen.add(key)
            out.append(text)
    return out


def ctype_has(ctype: str, path: str, tops: set) -> bool:
    """A `values.x` diff of a chart component that a top-level prop `x` already names."""
    sub = path.split(".")[1].split("[")[0] if "." in path else ""
    return ctype in ("rke2:index:RancherRelease", "rke2:index:CertManager") and sub in tops


def _command_for(state: dict, op: str) -> fx.Command | None:
    inputs = state.get("inputs") or {}
    if op == "update":
        return fx.parse_command(inputs.get("update") or inputs.get("create"))
    if op == "delete":
        return fx.parse_command(inputs.get("delete"))
    return fx.parse_command(inputs.get("create"))


def step_effect(step: Step, handed_over: bool = False) -> tuple[str | None, str]:
    """(script, effect) of a host step's change, from the script's own declaration.
    `handed_over`: the step's host is removed while another host of the stack takes its address."""
    if step.op == "create":
        cmd = _command_for(step.new, "create")
        return (cmd.script, fx.effect_of(cmd.script, fx.Run(cmd.values, created=True))) if cmd else (None, "nothing")
    if step.op == "delete":
        cmd = _command_for(step.old, "delete")
        script = (_command_for(step.old, "create") or cmd or fx.Command(None, {})).script
        return script, (fx.effect_of(cmd.script, fx.Run(cmd.values, handed_over=handed_over)) if cmd else "nothing")
    if step.op == "replace":
        new = _command_for(step.new, "create")
        old_delete = _command_for(step.old, "delete")
        found = []
        if new:
            found.append(fx.effect_of(new.script, fx.Run(new.values, created=True)))
        if old_delete:
            found.append(fx.effect_of(old_delete.script, fx.Run(old_delete.values)))
        return (new.script if new else None), fx.worst(found)
    # update
    new, old = _command_for(step.new, "update"), _command_for(step.old, "update")
    if not new:
        return None, "nothing"
    changed = frozenset(k for k in set(new.values) | set(old.values if old else {})
                        if not old or old.values.get(k) != new.values.get(k))
    stdin_changed = any(k == "stdin" or k.startswith("stdin") for k in step.detailed) or \
        (step.new.get("inputs") or {}).get("stdin") != (step.old.get("inputs") or {}).get("stdin")
    return new.script, fx.effect_of(new.script, fx.Run(new.values, changed_vars=changed, stdin_changed=stdin_changed))


def _changed_inputs(step: Step) -> list[str]:
    if step.op in ("create", "delete"):
        return []
    keys = sorted({k.split(".")[0].split("[")[0] for k in step.detailed}) or \
        sorted({p.split(".")[0].split("[")[0] for p, _ in
                _diff_paths(step.old.get("inputs") or {}, step.new.get("inputs") or {})})
    return keys


def _input_causes(step: Step, inputs: list[str]) -> list[str]:
    out = []
    for k in inputs:
        text = INPUT_CAUSES.get(k, k)
        if k == "stdin" and _is_secret((step.new.get("inputs") or {}).get("stdin")):
            text = "a secret sent on stdin (token, CA or credentials)"
        out.append(text)
    return out


# --------------------------------------------------------------------------------------------
# Order


def _with_parent_deps(edges: dict[str, list[str]], parents: dict[str, str]) -> dict[str, list[str]]:
    """A child registers only once its parent did, and a component registers only once its
    own dependencies are done: a resource waits for its ancestors' dependencies too."""
    out = {}
    for u, deps in edges.items():
        all_deps, p, seen = list(deps), parents.get(u, ""), set()
        while p and p not in seen:
            seen.add(p)
            all_deps += edges.get(p, [])
            p = parents.get(p, "")
        out[u] = all_deps
    return out


def _closure(edges: dict[str, list[str]]) -> dict[str, set[str]]:
    """Transitive dependencies of every node."""
    memo: dict[str, set[str]] = {}

    def visit(n: str, stack: set[str]) -> set[str]:
        if n in memo:
            return memo[n]
        out: set[str] = set()
        for d in edges.get(n, []):
            if d in stack:
                continue
            out.add(d)
            out |= visit(d, stack | {d})
        memo[n] = out
        return out

    for n in list(edges):
        visit(n, {n})
    return memo


def state_resources(state: dict | None) -> list[dict]:
    """Resources of a `pulumi stack export` (deployment.resources), or []."""
    if not state:
        return []
    return list((state.get("deployment") or state).get("resources") or [])


def build(preview: dict, policy_events: Iterable[dict] = (), stack: str = "",
          state: dict | None = None) -> Plan:
    """`state`: the stack's `pulumi stack export` before the change: the preview lists only
    what changes, the dependencies of what does not come from the state."""
    steps = read_steps(preview)
    by_urn = {s.urn: s for s in steps}
    old_res = {r["urn"]: r for r in state_resources(state)}
    deleted = {s.urn for s in steps if s.op == "delete"}
    # The graph after the change: the state's resources, overlaid by the preview's new states.
    nodes: dict[str, dict] = {u: {"type": r.get("type", ""), "parent": r.get("parent", ""),
                                  "deps": list(r.get("dependencies") or [])}
                              for u, r in old_res.items() if u not in deleted}
    for s in steps:
        if s.op != "delete" and s.new:
            nodes[s.urn] = {"type": s.type, "parent": s.parent, "deps": s.deps}
    old_nodes = {u: list(r.get("dependencies") or []) for u, r in old_res.items()}
    for s in steps:
        if s.op == "delete":
            old_nodes[s.urn] = list(s.old.get("dependencies") or [])
    old_parents = {u: r.get("parent", "") for u, r in old_res.items()}
    old_parents.update({s.urn: s.old.get("parent", "") for s in steps if s.op == "delete"})
    ancestors = _closure(_with_parent_deps({u: n["deps"] for u, n in nodes.items()},
                                           {u: n["parent"] for u, n in nodes.items()}))
    old_ancestors = _closure(_with_parent_deps(old_nodes, old_parents))

    comp_steps = {s.urn: s for s in steps if s.type in HOST_TYPES}
    host_urns = [u for u, n in nodes.items() if n["type"] in HOST_TYPES] + \
        [u for u in deleted if by_urn[u].type in HOST_TYPES]
    kids_of: dict[str, set[str]] = {h: set() for h in host_urns}
    for u, n in nodes.items():
        if n["type"] == COMMAND_TYPE and n["parent"] in kids_of:
            kids_of[n["parent"]].add(u)
    children: dict[str, list[Step]] = {h: [] for h in host_urns}
    for s in steps:
        if s.type == COMMAND_TYPE and s.parent in children:
            children[s.parent].append(s)

    # Host stages: host B follows host A when a step of B depends (transitively) on one of A.
    live_hosts = [h for h in host_urns if h not in deleted]
    host_deps: dict[str, set[str]] = {}
    for h in live_hosts:
        reach = set().union(*(ancestors.get(k, set()) for k in kids_of[h]))
        host_deps[h] = {o for o in live_hosts if o != h and reach & kids_of[o]}
    # Agent batches take turns on the host (upgrade-node.sh ACTION=turn), not through
    # dependencies: a replaced `<agent>-upgrade-turn` (a version change) waits for the nodes
    # named in the agent's upgradeAfter; a created one (a new agent) passes at once.
    node_host = {}
    for h in live_hosts:
        name = _host_inputs(by_urn, old_res, h).get("nodeName")
        if isinstance(name, str):
            node_host[name] = h
    for h in live_hosts:
        if any(s.name.endswith("-upgrade-turn") and s.op == "replace" for s in children[h]):
            after = _host_inputs(by_urn, old_res, h).get("upgradeAfter") or []
            host_deps[h] |= {node_host[n] for n in after if isinstance(n, str) and n in node_host}
    stage: dict[str, int] = {}

    def stage_of(h: str, seen: frozenset = frozenset()) -> int:
        if h not in stage:
            stage[h] = 1 + max((stage_of(d, seen | {h}) for d in host_deps[h] if d not in seen), default=0)
        return stage[h]

    for h in live_hosts:
        stage_of(h)

    def topo(kids: list[Step]) -> list[Step]:
        live = [k for k in kids if k.op != "delete"]
        dead = [k for k in kids if k.op == "delete"]
        live_urns, dead_urns = {k.urn for k in live}, {k.urn for k in dead}  # (a list is empty while sorted)
        live.sort(key=lambda k: (len(ancestors.get(k.urn, set()) & live_urns), k.index))
        # deletions: dependents first (reverse dependency order)
        dead.sort(key=lambda k: (-len(old_ancestors.get(k.urn, set()) & dead_urns), k.index))
        return live + dead

    hosts: list[HostPlan] = []
    down_steps: list[tuple[str, Step]] = []
    totals = Totals()
    live_addresses = set()
    for u in live_hosts:
        inputs = _host_inputs(by_urn, old_res, u)
        if isinstance(inputs.get("address"), str):
            live_addresses.add(inputs["address"])
    for h in host_urns:
        kids = children[h]
        comp = comp_steps.get(h) or Step(urn=h, op="same", type=nodes[h]["type"], old={}, new={},
                                          detailed={}, replace_reasons=[], index=-1)
        role = HOST_TYPES[comp.type]
        changed = [k for k in kids if k.op in CHANGE_OPS]
        if comp.op not in CHANGE_OPS and not changed:
            continue
        host_causes = component_causes(comp) if comp.op in CHANGE_OPS else []
        plans = []
        restarts = 0
        handed_over = comp.op == "delete" and \
            (comp.old.get("inputs") or {}).get("address") in live_addresses
        for k in topo(changed):
            script, effect = step_effect(k, handed_over=handed_over)
            inputs = _changed_inputs(k)
            causes = list(host_causes)
            if not causes or (comp.op not in ("create", "delete") and "stdin" in inputs and
                              _is_secret((k.new.get("inputs") or {}).get("stdin"))):
                causes += [c for c in _input_causes(k, inputs) if c not in causes]
            if k.op == "replace" and any(r.startswith("triggers") for r in k.replace_reasons):
                causes.append("replacement forced by triggers")
            label = fx.EFFECTS[effect].label
            if k.op == "create" and effect in fx.CREATE_LABELS:
                label = fx.CREATE_LABELS[effect]
            if comp.op == "create" and effect in ("restart", "certs"):
                label = "RKE2 first start (new host)" if effect == "restart" else \
                    "serving certificates checked (new host: issued at the first start)"
            plans.append(StepPlan(k.name, k.op, script, effect, label, causes, inputs))
            if fx.EFFECTS[effect].down and comp.op != "create":
                if effect != "uninstall":
                    restarts += 1
                if role == "server":
                    down_steps.append((comp.name, k))
            if effect == "drain":
                if role == "server":
                    totals.servers_drained += 1
                else:
                    totals.agents_drained += 1
        hp = HostPlan(comp.name, role, comp.op if comp.op in CHANGE_OPS else "same",
                      None if comp.op == "delete" else stage.get(h), host_causes, plans, restarts)
        hosts.append(hp)
        if comp.op == "create":
            totals.hosts_added.append(comp.name)
        if comp.op == "delete":
            totals.hosts_removed.append(comp.name)
    # Stages numbered over the hosts shown: an unchanged host in between (the load balancer,
    # which waits for servers[0]'s guards) orders the others but leaves no gap.
    dense = {st: i for i, st in enumerate(sorted({hp.stage for hp in hosts if hp.stage is not None}), 1)}
    for hp in hosts:
        if hp.stage is not None:
            hp.stage = dense[hp.stage]
    hosts.sort(key=lambda hp: (hp.stage is None, hp.stage or 0, hp.name))  # a stage runs in parallel
    for hp in hosts:  # in execution order
        if hp.restarts:
            totals.restarts[hp.name] = hp.restarts
        totals.refused += [sp.name for sp in hp.steps if sp.effect == "refused"]
        if hp.op != "create":
            for sp in hp.steps:
                if sp.effect == "certs":
                    totals.certificates_reissued += 1
                    totals.certificates.append(f"{hp.name} serving certificates")

    # Servers down at once: the largest set of servers with pairwise unordered down steps.
    def before(a: Step, b: Step) -> bool:
        if a.op != "delete" and b.op != "delete":
            return a.urn in ancestors.get(b.urn, set())
        if a.op != "delete":
            return True
        if b.op != "delete":
            return False
        return b.urn in old_ancestors.get(a.urn, set())

    by_server: dict[str, list[Step]] = {}
    for name, st in down_steps:
        by_server.setdefault(name, []).append(st)
    names = list(by_server)
    best = 1 if names else 0
    if len(names) <= 12:
        for size in range(len(names), 1, -1):
            if size <= best:
                break
            for combo in itertools.combinations(names, size):
                for pick in itertools.product(*(by_server[n] for n in combo)):
                    if all(not before(a, b) and not before(b, a) for a, b in itertools.combinations(pick, 2)):
                        best = size
                        break
                if best == size:
                    break
    else:  # a bound, not a search: every server at once
        best = len(names)
    members = sum(1 for r in old_res.values() if r.get("type") == "rke2:index:RKE2Server") or \
        sum(1 for s in comp_steps.values() if s.type == "rke2:index:RKE2Server" and s.op not in ("create",))
    totals.max_servers_down = best
    totals.servers = members
    totals.quorum_kept = members <= 1 or (members - best) >= members // 2 + 1

    other: list[OtherChange] = []
    for s in steps:
        if s.op not in CHANGE_OPS or s.urn in kids_of or s.parent in kids_of:
            continue
        if s.type == "pulumi:pulumi:Stack":
            continue
        causes = component_causes(s) if s.type.startswith("rke2:index:") else []
        if not causes and s.parent in by_urn and by_urn[s.parent].type.startswith("rke2:index:"):
            parent = by_urn[s.parent]
            causes = component_causes(parent) if parent.op in CHANGE_OPS else []
        if not causes:
            causes = _input_causes(s, _changed_inputs(s)) or (["added"] if s.op == "create" else [])
        if s.op == "replace" and s.replace_reasons:
            causes.append(f"replacement forced by {', '.join(s.replace_reasons)}")
        root = s
        while root.parent in by_urn and not root.type.startswith("rke2:index:") and \
                by_urn[root.parent].type != "pulumi:pulumi:Stack":
            root = by_urn[root.parent]
        group = next((o for o in other if o.name == root.name and o.op == s.op and o.causes == causes), None)
        if group is None:
            other.append(OtherChange(root.name, root.type, s.op, causes, [s.name]))
        else:
            group.resources.append(s.name)
        if s.type in CERT_TYPES and s.op in ("replace", "delete", "update"):
            totals.certificates_reissued += 1
            totals.certificates.append(f"stack certificate {s.name} ({s.op})")

    for s in steps:
        if s.op in ("delete", "replace") and s.type not in ("pulumi:pulumi:Stack",) and \
                not s.type.startswith("pulumi:providers:"):
            totals.destroyed += 1
            totals.destroyed_resources.append(f"{s.name} ({'replaced' if s.op == 'replace' else 'deleted'})")

    policies = read_policy_events(policy_events)
    blocked = any(p["level"] == "mandatory" for p in policies)
    return Plan(stack=stack, hosts=hosts, other=other, totals=totals, policies=policies, blocked=blocked)


# --------------------------------------------------------------------------------------------
# Rendering

_OP_MARK = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "same": " "}


def _host_inputs(by_urn: dict, old_res: dict, urn: str) -> dict:
    """A host component's registered props: as this preview registers them, else as deployed."""
    if urn in by_urn and by_urn[urn].new:
        return by_urn[urn].new.get("inputs") or {}
    return (old_res.get(urn) or {}).get("inputs") or {}


def _stage_text(hp: HostPlan) -> str:
    return "at the end (removal)" if hp.stage is None else f"stage {hp.stage}"


def _quorum_text(t: Totals) -> str:
    if t.max_servers_down == 0:
        return "no server goes down"
    if t.servers <= 1:
        return "the only server restarts: the API is unavailable while it does"
    return ("etcd quorum kept" if t.quorum_kept else "ETCD QUORUM AT RISK") + \
        f", {t.servers - t.max_servers_down} of {t.servers} servers stay up"


def grouped_policies(plan: Plan) -> list[dict]:
    """One entry per (level, policy): the resources, and the first resource's message."""
    groups: dict[tuple, dict] = {}
    for p in plan.policies:
        g = groups.setdefault((p["level"], p["policy"]), {**p, "resources": []})
        g["resources"].append(p["resource"])
    for g in groups.values():
        g["resources"].sort()
    order = {"mandatory": 0, "advisory": 1}
    return sorted(groups.values(), key=lambda g: (order.get(g["level"], 2), g["policy"]))


def _summary_lines(plan: Plan) -> list[str]:
    t = plan.totals
    restarts = ", ".join(f"{k} {v}" for k, v in t.restarts.items()) or "none"
    return [
        f"restarts per host: {restarts}",
        f"servers down at the same time: at most {t.max_servers_down} ({_quorum_text(t)})",
        f"agents drained: {t.agents_drained}" +
        (f", servers drained: {t.servers_drained}" if t.servers_drained else ""),
        f"certificates re-issued: {t.certificates_reissued}" +
        (f" ({', '.join(t.certificates)})" if t.certificates else ""),
        f"resources destroyed: {t.destroyed}" +
        (f" ({', '.join(t.destroyed_resources)})" if t.destroyed_resources else ""),
        *([f"hosts added: {', '.join(t.hosts_added)}"] if t.hosts_added else []),
        *([f"hosts removed: {', '.join(t.hosts_removed)}"] if t.hosts_removed else []),
        *([f"WILL FAIL: {', '.join(t.refused)} refuse the change on an initialised host "
           "(a new token: `rke2 token rotate`; a new CA: see README)"] if t.refused else []),
    ]


def to_text(plan: Plan) -> str:
    out = [f"Impact plan for stack {plan.stack or '(current)'} (from pulumi preview; no host was contacted)", ""]
    if not plan.hosts and not plan.other:
        out.append("Nothing changes.")
    elif plan.hosts:
        out += ["Hosts in execution order (hosts of one stage run in parallel):", ""]
    for hp in plan.hosts:
        out.append(f"{_stage_text(hp)}: {hp.name} ({hp.role}, {hp.op})")
        if hp.causes:
            out.append(f"  why: {'; '.join(hp.causes)}")
        for sp in hp.steps:
            out.append(f"  {_OP_MARK.get(sp.op, '?'):2} {sp.name:<28} {sp.op:<8} {sp.effect_label}")
            extra = [c for c in sp.causes if c not in hp.causes]
            if extra:
                out.append(f"  {'':2} {'':<28} because: {'; '.join(extra)}")
        out.append("")
    if plan.other:
        out.append("Cluster and stack resources:")
        for oc in plan.other:
            what = oc.name if oc.resources == [oc.name] else f"{oc.name} ({len(oc.resources)} resources)"
            out.append(f"  {_OP_MARK.get(oc.op, '?'):2} {what:<28} {oc.op:<8} {'; '.join(oc.causes)}")
        out.append("")
    out.append("Totals:")
    out += [f"  {line}" for line in _summary_lines(plan)]
    out.append("")
    if plan.policies:
        out.append("Policy violations:")
        for g in grouped_policies(plan):
            out.append(f"  [{g['level']}] {g['policy']} on {', '.join(g['resources'])}")
            out.append(f"      {g['message']}" + (" (and the same for the others)" if len(g["resources"]) > 1 else ""))
    else:
        out.append("Policy violations: none")
    if plan.blocked:
        out.append("BLOCKED: a mandatory policy is violated; `pulumi up` would refuse this change.")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(plan: Plan) -> str:
    out = [f"## Impact plan: stack `{plan.stack or '(current)'}`", ""]
    if plan.blocked:
        out += ["> **Blocked**: a mandatory policy is violated.", ""]
    if not plan.hosts and not plan.other:
        out += ["Nothing changes.", ""]
    if plan.hosts:
        out += ["| order | host | step | op | effect on the host | why |", "| --- | --- | --- | --- | --- | --- |"]
        for hp in plan.hosts:
            for sp in hp.steps:
                out.append(f"| {_stage_text(hp)} | {hp.name} ({hp.role}) | `{sp.name}` | {sp.op} | "
                           f"{_md(sp.effect_label)} | {_md('; '.join(sp.causes))} |")
        out.append("")
    if plan.other:
        out += ["| cluster / stack resource | op | why |", "| --- | --- | --- |"]
        out += [f"| `{oc.name}`" + ("" if oc.resources == [oc.name] else f" ({len(oc.resources)} resources)") +
                f" | {oc.op} | {_md('; '.join(oc.causes))} |" for oc in plan.other]
        out.append("")
    out += ["**Totals**", ""] + [f"- {_md(line)}" for line in _summary_lines(plan)] + [""]
    if plan.policies:
        out += ["**Policy violations**", "", "| level | policy | resources | message (first resource) |",
                "| --- | --- | --- | --- |"]
        out += [f"| {g['level']} | {g['policy']} | {', '.join(g['resources'])} | {_md(g['message'])} |"
                for g in grouped_policies(plan)]
    else:
        out.append("Policy violations: none")
    return "\n".join(out) + "\n"


def to_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=False) + "\n"


# --------------------------------------------------------------------------------------------
# CLI: runs the real preview (twice: the document form has the dependencies, the streaming
# form the policy events), never `up`, never SSH.


def run_preview(pulumi: str, stack: str, extra: list[str]) -> tuple[dict, list[dict], int]:
    base = [pulumi, "preview", "--json", "--diff", "--non-interactive", "--stack", stack, *extra]
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_ENABLE_STREAMING_JSON_PREVIEW"}
    doc = subprocess.run(base, capture_output=True, text=True, env=env)
    try:
        preview = json.loads(doc.stdout or "{}")
    except json.JSONDecodeError:
        preview = {}
    if not preview.get("steps"):
        sys.stderr.write(doc.stderr[-4000:])
        raise SystemExit(f"plan: pulumi preview produced no plan (exit {doc.returncode})")
    stream = subprocess.run(base, capture_output=True, text=True,
                            env={**env, "PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "1"})
    events = []
    for line in stream.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return preview, events, doc.returncode


def export_state(pulumi: str, stack: str) -> dict | None:
    """The stack's state (read from the backend; secrets stay encrypted; only resource
    types, parents and dependencies are read). None for a stack never deployed."""
    proc = subprocess.run([pulumi, "stack", "export", "--stack", stack], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--stack", required=True)
    ap.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    ap.add_argument("--output", "-o", action="append", default=[],
                    help="FORMAT=PATH: also write that format to PATH (e.g. markdown=$GITHUB_STEP_SUMMARY)")
    ap.add_argument("--pulumi", default="pulumi")
    ap.add_argument("--preview-json", help="read a saved `pulumi preview --json` instead of running it")
    ap.add_argument("--events-json", help="with --preview-json: the saved streaming events (JSON lines)")
    ap.add_argument("--state-json", help="with --preview-json: the saved `pulumi stack export`")
    ap.add_argument("extra", nargs="*", help="more pulumi preview arguments (e.g. --policy-pack policy)")
    args = ap.parse_args(argv)
    if args.preview_json:
        with open(args.preview_json) as f:
            preview = json.load(f)
        events, state = [], None
        if args.state_json:
            with open(args.state_json) as f:
                state = json.load(f)
        if args.events_json:
            with open(args.events_json) as f:
                events = [json.loads(line) for line in f if line.strip().startswith("{")]
    else:
        state = export_state(args.pulumi, args.stack)
        preview, events, _ = run_preview(args.pulumi, args.stack, args.extra)
    plan = build(preview, events, stack=args.stack, state=state)
    render = {"text": to_text, "markdown": to_markdown, "json": to_json}
    sys.stdout.write(render[args.format](plan))
    for spec in args.output:
        fmt, _, path = spec.partition("=")
        if fmt not in render or not path:
            raise SystemExit(f"plan: --output wants FORMAT=PATH with FORMAT one of {', '.join(render)}")
        with open(path, "a") as f:
            f.write(render[fmt](plan))
    return 1 if plan.blocked else 0


if __name__ == "__main__":
    raise SystemExit(main())
