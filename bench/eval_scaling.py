"""How program evaluation cost grows with the cluster: mocks, 1/10/100 agents.

Reports resources registered, wall time and peak Python memory per size, and the ratios
against the smallest size (one run, one process: ratios, not absolute times, are the result).
"""

from __future__ import annotations

import time
import tracemalloc

from tests.harness import evaluate
from tests.stacks import load_stack, with_changes


def stack_with_agents(n: int):
    raw, secrets = load_stack("ha")
    agents = [{"name": f"agent-{i}", "address": f"10.30.{i // 250}.{i % 250 + 1}"} for i in range(n)]
    return with_changes(raw, agents=agents), secrets


def measure(n: int) -> dict:
    raw, secrets = stack_with_agents(n)
    tracemalloc.start()
    t0 = time.perf_counter()
    ev = evaluate(raw, secrets)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"agents": n, "resources": len(ev.registrations), "seconds": elapsed, "peak_mib": peak / 2**20}


def run(sizes=(1, 10, 100)) -> list[dict]:
    measure(1)  # warm imports and caches so the first size is not penalised
    rows = [measure(n) for n in sizes]
    base = rows[0]
    for r in rows:
        r["time_ratio"] = r["seconds"] / base["seconds"]
        r["memory_ratio"] = r["peak_mib"] / base["peak_mib"]
        r["resource_ratio"] = r["resources"] / base["resources"]
    return rows


def report(rows: list[dict]) -> str:
    lines = ["agents | resources | time x | memory x | resources x | (seconds, peak MiB)",
             "---|---|---|---|---|---"]
    for r in rows:
        lines.append(f"{r['agents']} | {r['resources']} | {r['time_ratio']:.1f} | {r['memory_ratio']:.1f} | "
                     f"{r['resource_ratio']:.1f} | ({r['seconds']:.2f}, {r['peak_mib']:.1f})")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
