"""Issue 15 in HA: a registries change restarts every node in the safe order, servers one at a
time (each waits until the previous one is ready again), agents after the last server; the
preview names each node's service step."""

from __future__ import annotations

from datetime import datetime

import pytest
import yaml

from tests.lab.fixtures import requires_lab
from tests.lab_scenarios.support import LabStack, provision_artifacts
from tests.lab_scenarios.test_ha import AGENTS, CLUSTER, LB, SERVERS, ha_config

pytestmark = [requires_lab(), pytest.mark.lab]

MIRROR = {"mirrors": {"docker.io": {"endpoints": ["https://registry.lab.internal:5000"]}}}
CHANGED = {"mirrors": {"docker.io": {"endpoints": ["https://registry.lab.internal:5000",
                                                   "https://registry2.lab.internal"]}}}


def events(host, unit: str, event: str) -> list[datetime]:
    return [datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
            for e in host.service_events(unit) if e["event"] == event]


def test_registries_change_restarts_servers_one_at_a_time_then_agents(lab, rke2_artifacts, tmp_path):
    hosts = {name: lab.add_host(name, addr) for name, addr in [LB, *SERVERS, *AGENTS]}
    for name, _ in [*SERVERS, *AGENTS]:
        provision_artifacts(hosts[name], rke2_artifacts)
    lab.set_host_entry(CLUSTER, LB[1])
    stack = LabStack(lab, tmp_path, name="ha-registries")
    config = ha_config(hosts)
    stack.configure({**config, "registries": MIRROR})
    stack.init()
    stack.up(timeout=1800)
    for name, _ in [*SERVERS, *AGENTS]:
        doc = yaml.safe_load(hosts[name].path("/etc/rancher/rke2/registries.yaml").read_text())
        assert doc["mirrors"]["docker.io"]["endpoint"] == ["https://registry.lab.internal:5000"], name

    stack.configure({**config, "registries": CHANGED})
    changed = stack.changed_resources()
    for name, _ in [*SERVERS, *AGENTS]:
        assert changed.get(f"{name}-service") == "replace", changed
        assert changed.get(f"{name}-registries") == "update", changed
    assert not [n for n in changed if n.endswith(("-install", "-config", "-uninstall"))], changed

    units = {name: "rke2-server" for name, _ in SERVERS} | {name: "rke2-agent" for name, _ in AGENTS}
    spawned_before = {n: len(events(hosts[n], u, "spawn")) for n, u in units.items()}
    stack.up(timeout=1800)
    restart, ready = {}, {}
    for n, u in units.items():
        spawns = events(hosts[n], u, "spawn")
        assert len(spawns) == spawned_before[n] + 1, (n, hosts[n].service_events(u))
        restart[n] = spawns[-1]
        readies = [t for t in events(hosts[n], u, "ready") if t >= restart[n]]
        assert readies, (n, hosts[n].service_events(u))
        ready[n] = readies[0]
    names = [n for n, _ in SERVERS]
    for prev, nxt in zip(names, names[1:]):
        assert restart[nxt] >= ready[prev], f"{nxt} restarted at {restart[nxt]} before {prev} was ready at {ready[prev]}"
    for agent, _ in AGENTS:
        assert restart[agent] >= ready[names[-1]], f"{agent} restarted before the last server was ready"
    for name, _ in [*SERVERS, *AGENTS]:
        assert "registry2.lab.internal" in hosts[name].path("/etc/rancher/rke2/registries.yaml").read_text()
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)
