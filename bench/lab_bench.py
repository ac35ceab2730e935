"""Host-lab benchmarks: real `pulumi up` over SSH against rke2-standin hosts.

Figures are counts and ratios measured in one run (times are printed for context):
converge of 1 server vs 3 servers + 2 agents and how much the agents' joins overlap;
a no-op `up` (remote commands run, wall time vs the converge); a SAN change (resources
touched vs total, restarts per server, agent steps touched).
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path

from tests.lab.fixtures import lab_unavailable_reason
from tests.lab.netlab import Lab
from tests.lab.standin import build_artifacts
from tests.lab.fixtures import rke2_version
from tests.lab_scenarios.support import LabStack, base_cluster, host_key_line, provision_artifacts

CLUSTER = "rke2.lab"


def _t(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def spawns(host, unit: str) -> int:
    return sum(1 for e in host.service_events(unit) if e["event"] == "spawn")


def join_interval(host) -> tuple[float, float]:
    """From the first to the last remote command pulumi ran on the host during the converge:
    the span of its whole step chain (preflight to service), not just the service start."""
    times = [_t(ts) for ts, _ in host.commands()]
    return min(times), max(times)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Shared time of two intervals over their union (1 = fully parallel, 0 = one after the other)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union else 1.0


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def config(hosts: dict, servers: list, agents: list, lb: tuple | None, sans: list[str]) -> dict:
    any_host = next(iter(hosts.values()))
    cfg = {
        "ssh": {"privateKeyPath": str(any_host.private_key_path),
                "hostKeys": {addr: host_key_line(hosts[n]) for n, addr in [*servers, *agents, *([lb] if lb else [])]}},
        "cluster": base_cluster(CLUSTER, tlsSans=sans),
        "servers": [{"name": n, "address": a} for n, a in servers],
        "agents": [{"name": n, "address": a} for n, a in agents],
        "certManager": {"enabled": False},
        "rancher": {"enabled": False},
    }
    if lb:
        cfg["loadBalancer"] = {"name": lb[0], "address": lb[1]}
    return cfg


def scenario(artifacts: Path, work: Path, servers: list, agents: list, lb: tuple | None) -> dict:
    work.mkdir(parents=True)
    with Lab() as lab:
        hosts = {n: lab.add_host(n, a) for n, a in [*servers, *agents, *([lb] if lb else [])]}
        for n, _ in [*servers, *agents]:
            provision_artifacts(hosts[n], artifacts)
        lab.set_host_entry(CLUSTER, lb[1] if lb else servers[0][1])
        stack = LabStack(lab, work, name="bench")
        sans = [CLUSTER]
        stack.configure(config(hosts, servers, agents, lb, sans))
        stack.init()
        converge = timed(lambda: stack.up(timeout=1800))

        agent_spans = [join_interval(hosts[n]) for n, _ in agents[:2]]
        commands = {n: len(h.commands()) for n, h in hosts.items()}
        noop = timed(stack.up)
        noop_commands = sum(len(h.commands()) - commands[n] for n, h in hosts.items())

        before = {n: spawns(hosts[n], "rke2-server") for n, _ in servers}
        agent_cmds = {n: len(hosts[n].commands()) for n, _ in agents}
        stack.configure(config(hosts, servers, agents, lb, sans + ["bench.example.net"]))
        preview = stack.preview_json()
        steps = [s for s in preview.get("steps", []) if "pulumi:pulumi:Stack" not in s["urn"]]
        touched = [s for s in steps if s["op"] != "same"]
        san_change = timed(stack.up)
        restarts = [spawns(hosts[n], "rke2-server") - before[n] for n, _ in servers]
        agent_touched = sum(len(hosts[n].commands()) - agent_cmds[n] for n, _ in agents)

        result = {
            "converge_s": converge, "noop_s": noop, "noop_remote_commands": noop_commands,
            "san_touched": len(touched), "total_resources": stack.resource_count(),
            
            "restarts_per_server": restarts, "agent_remote_commands_on_san_change": agent_touched,
            "san_change_s": san_change,
        }
        if len(agents) >= 2:
            a, b = agent_spans
            result["agent_join_overlap"] = overlap(a, b)
        stack.destroy()
        return result


def main() -> int:
    reason = lab_unavailable_reason()
    if reason:
        print(f"\n(host-lab benchmarks skipped: {reason})")
        return 0
    with tempfile.TemporaryDirectory(prefix="rke2-bench-") as tmp:
        tmp = Path(tmp)
        artifacts = build_artifacts(tmp / "artifacts", rke2_version())
        single = scenario(artifacts, tmp / "single", [("jjtestserver", "10.77.0.11")], [], None)
        ha = scenario(artifacts, tmp / "ha",
                      [("rke2-server-1", "10.77.0.21"), ("rke2-server-2", "10.77.0.22"), ("rke2-server-3", "10.77.0.23")],
                      [("rke2-agent-1", "10.77.0.31"), ("rke2-agent-2", "10.77.0.32")], ("rke2-lb", "10.77.0.10"))
    print("\n## Host lab (rke2-standin over real SSH; one run)")
    print("measure | 1 server | 3 servers + LB + 2 agents")
    print("---|---|---")
    print(f"converge (s) | {single['converge_s']:.1f} | {ha['converge_s']:.1f} "
          f"(x{ha['converge_s'] / single['converge_s']:.1f} of single)")
    print(f"agents' join overlap (shared / union of their step chains' spans) | - | {ha['agent_join_overlap']:.2f}")
    print(f"no-op up: remote commands | {single['noop_remote_commands']} | {ha['noop_remote_commands']}")
    print(f"no-op up: time / converge time | {single['noop_s'] / single['converge_s']:.2f} | "
          f"{ha['noop_s'] / ha['converge_s']:.2f}")
    print(f"SAN change: resources touched / total | {single['san_touched']}/{single['total_resources']} | "
          f"{ha['san_touched']}/{ha['total_resources']}")
    print(f"SAN change: restarts per server | {single['restarts_per_server']} | {ha['restarts_per_server']}")
    print(f"SAN change: remote commands on agents | - | {ha['agent_remote_commands_on_san_change']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
