"""Host-lab benchmarks: real `pulumi up` over SSH against rke2-standin on systemd lab hosts,
its servers on the real etcd, kube-apiserver, controller manager and scheduler, every node a
kwok-kept Node (tests/lab/realparts).

Figures are counts and ratios measured in one run (times are printed for context), for
1 server and 3 servers + LB + 2, 10 and 25 agents: converge, a no-op `up` (remote commands
run, time vs the converge), a no-op preview, how much the agents' joins overlap, memory per
host, the lab's own start-up cost per host; for the two small shapes also a SAN change
(resources touched vs total, restarts per server, agent steps touched).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from tests.lab.fixtures import lab_unavailable_reason, new_lab, rke2_version
from tests.lab.realparts.parts import ensure_parts, parts_unavailable_reason
from tests.lab.standin import build_artifacts
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


def scenario(artifacts: Path, work: Path, servers: list, agents: list, lb: tuple | None,
             san_change: bool = True) -> dict:
    work.mkdir(parents=True)
    with new_lab() as lab:
        t0 = time.perf_counter()
        hosts = {n: lab.add_host(n, a) for n, a in [*servers, *agents, *([lb] if lb else [])]}
        lab_start = time.perf_counter() - t0
        for n, _ in [*servers, *agents]:
            provision_artifacts(hosts[n], artifacts)
        lab.set_host_entry(CLUSTER, lb[1] if lb else servers[0][1])
        stack = LabStack(lab, work, name="bench")
        sans = [CLUSTER]
        stack.configure(config(hosts, servers, agents, lb, sans))
        stack.init()
        converge = timed(lambda: stack.up(timeout=3600))

        spans = [join_interval(hosts[n]) for n, _ in agents]
        memory = {n: h.memory_kib()["pss"] for n, h in hosts.items()}
        commands = {n: len(h.commands()) for n, h in hosts.items()}
        noop = timed(stack.up)
        noop_commands = sum(len(h.commands()) - commands[n] for n, h in hosts.items())
        preview = timed(lambda: stack.pulumi("preview", "--expect-no-changes", "--non-interactive",
                                             "--stack", stack.name))

        result = {
            "hosts": len(hosts), "converge_s": converge, "noop_s": noop, "preview_s": preview,
            "noop_remote_commands": noop_commands, "total_resources": stack.resource_count(),
            "lab_start_s_per_host": lab_start / len(hosts),
            "server_pss_mib": max(memory[n] for n, _ in servers) / 1024,
            "agent_pss_mib": max((memory[n] for n, _ in agents), default=0) / 1024,
        }
        if len(spans) >= 2:
            # Shared time of all agents' step chains over their union (1 = fully parallel).
            inter = max(0.0, min(b for _, b in spans) - max(a for a, _ in spans))
            union = max(b for _, b in spans) - min(a for a, _ in spans)
            result["agent_join_overlap"] = inter / union if union else 1.0
            # How many agents' worth of time the joins took: 1 = all at once, N = one by one.
            mean = sum(b - a for a, b in spans) / len(spans)
            result["agent_serial_factor"] = union / mean if mean else 1.0
        if san_change:
            before = {n: spawns(hosts[n], "rke2-server") for n, _ in servers}
            agent_cmds = {n: len(hosts[n].commands()) for n, _ in agents}
            stack.configure(config(hosts, servers, agents, lb, sans + ["bench.example.net"]))
            steps = [st for st in stack.preview_json().get("steps", []) if "pulumi:pulumi:Stack" not in st["urn"]]
            result["san_touched"] = len([st for st in steps if st["op"] != "same"])
            result["san_change_s"] = timed(stack.up)
            result["restarts_per_server"] = [spawns(hosts[n], "rke2-server") - before[n] for n, _ in servers]
            result["agent_remote_commands_on_san_change"] = sum(
                len(hosts[n].commands()) - agent_cmds[n] for n, _ in agents)
        stack.destroy()
        return result


HA_SERVERS = [("rke2-server-1", "10.77.0.21"), ("rke2-server-2", "10.77.0.22"), ("rke2-server-3", "10.77.0.23")]
LB = ("rke2-lb", "10.77.0.10")


def agents(n: int) -> list[tuple[str, str]]:
    return [(f"rke2-agent-{i}", f"10.77.0.{30 + i}") for i in range(1, n + 1)]


def main() -> int:
    reason = lab_unavailable_reason() or parts_unavailable_reason()
    if reason:
        print(f"\n(host-lab benchmarks skipped: {reason})")
        return 0
    sizes = [int(x) for x in os.environ.get("BENCH_AGENTS", "2,10,25").split(",")]
    ensure_parts()  # built once and cached (make lab-parts); labs made after this bind them
    with tempfile.TemporaryDirectory(prefix="rke2-bench-") as tmp:
        tmp = Path(tmp)
        artifacts = build_artifacts(tmp / "artifacts", rke2_version())
        runs = {"1 server": scenario(artifacts, tmp / "single", [("jjtestserver", "10.77.0.11")], [], None)}
        for n in sizes:
            runs[f"3 servers + LB + {n} agents"] = scenario(
                artifacts, tmp / f"ha{n}", HA_SERVERS, agents(n), LB, san_change=n == sizes[0])
    print(report(runs))
    return 0


def report(runs: dict) -> str:
    names = list(runs)
    small = runs[names[1]] if len(names) > 1 else None

    def row(label: str, fn) -> str:
        cells = []
        for n in names:
            try:
                cells.append(fn(runs[n]))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("-")
        return f"| {label} | " + " | ".join(cells) + " |"

    out = ["\n## Host lab (rke2-standin on the real parts, systemd hosts, real SSH; one run)", "",
           "| measure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|",
           row("hosts", lambda r: str(r["hosts"])),
           row("converge (s)", lambda r: f"{r['converge_s']:.1f}"),
           row("converge / first HA shape's converge",
               lambda r: f"{r['converge_s'] / small['converge_s']:.2f}" if "agent_join_overlap" in r else "-"),
           row("agents' join overlap (shared / union of all agents' step chains)",
               lambda r: f"{r['agent_join_overlap']:.2f}"),
           row("agents' joins: their union / one agent's chain (1 = all at once)",
               lambda r: f"{r['agent_serial_factor']:.2f}"),
           row("no-op up: remote commands", lambda r: str(r["noop_remote_commands"])),
           row("no-op up: time / converge time", lambda r: f"{r['noop_s'] / r['converge_s']:.2f}"),
           row("no-op preview: time / converge time", lambda r: f"{r['preview_s'] / r['converge_s']:.2f}"),
           row("resources in the stack", lambda r: str(r["total_resources"])),
           row("memory per server host (PSS, MiB)", lambda r: f"{r['server_pss_mib']:.0f}"),
           row("memory per agent host (PSS, MiB)", lambda r: f"{r['agent_pss_mib']:.0f}" if r["agent_pss_mib"] else "-"),
           row("lab start-up per host (s; boot + sshd)", lambda r: f"{r['lab_start_s_per_host']:.2f}"),
           row("SAN change: resources touched / total", lambda r: f"{r['san_touched']}/{r['total_resources']}"),
           row("SAN change: restarts per server", lambda r: str(r["restarts_per_server"])),
           row("SAN change: remote commands on agents",
               lambda r: str(r["agent_remote_commands_on_san_change"]) if "agent_join_overlap" in r else "-")]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
