"""Issue 14, rolling upgrade for real: 3 servers behind HAProxy and 2 agents over SSH to
namespace hosts running rke2-standin, installed at an older minor version, then, on that one
cluster (an HA converge is the lab's most expensive step, so the scenarios share it):
- a skipped minor version is refused before any host changes;
- the upgrade to the pinned version snapshots etcd first and restarts the servers one at a
  time; it fails on the second server, whose air-gap directory still holds the old release
  (its install gets the wrong version), and stops there, naming the step and the reason;
- the next `pulumi up`, with the new release in place, resumes where it stopped (the guard
  and its snapshot are not repeated): the other servers one at a time, then the agents (one
  per batch: the default 10 % of 2 agents);
- a downgrade is refused.

Expectations from upstream, not from the program: docs.rke2.io/upgrades/manual_upgrade
("Upgrade the server nodes first, one at a time. Once all servers have been upgraded, you may
then upgrade agent nodes"; the Kubernetes version skew policy applies: never skip a minor
version). The timeline comes from the hosts' own systemctl event logs.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest

from tests.lab.fixtures import requires_lab, rke2_version
from tests.lab.realparts.parts import parts_unavailable_reason
from tests.lab.standin import build_artifacts
from tests.lab_scenarios.support import (AGENTS, SERVERS, LabStack, ha_config, ha_hosts, provision_artifacts,
                                         settled)

_reason = parts_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

NEW = rke2_version()
_maj, _min = (int(x) for x in re.match(r"v(\d+)\.(\d+)\.", NEW).groups())
OLD = f"v{_maj}.{_min - 1}.9+rke2r1"      # the previous minor version
SKIP = f"v{_maj}.{_min + 1}.0+rke2r1"     # from OLD: skips NEW's minor version
DOWN_EVENTS = ("restart", "stop", "stopped", "exit")
SNAPSHOTS = "ls /var/lib/rancher/rke2/server/db/snapshots | grep -c '^pre-upgrade-' || true"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def config(hosts: dict, version: str) -> dict:
    cfg = ha_config(hosts)
    cfg["cluster"]["version"] = version
    return cfg


def installed(host) -> str:
    rc, out, err = host.ssh("rke2 --version | head -n1")
    assert rc == 0, err
    return out.split()[2]


def down_window(host, unit: str, since: datetime) -> tuple[datetime, datetime]:
    """(first stop/restart event after `since`, the next `ready`) of unit on host."""
    events = [e for e in host.service_events(unit) if when(e["time"]) >= since]
    start = next((when(e["time"]) for e in events if e["event"] in DOWN_EVENTS), None)
    assert start is not None, f"{host.name}: {unit} never went down after {since}: {events}"
    ready = next((when(e["time"]) for e in events if e["event"] == "ready" and when(e["time"]) >= start), None)
    assert ready is not None, f"{host.name}: {unit} not ready again after {start}: {events}"
    return start, ready


def last_event_time(hosts: dict) -> datetime:
    times = [when(e["time"]) for h in hosts.values() for e in h.service_events()]
    return max(times)


def deployed_at_old_version(lab, tmp_path_factory, name: str) -> tuple:
    """The HA cluster converged at OLD on the real parts (real etcd and kube-apiserver: the
    guard's health checks and snapshot, each server's restart and its etcd member rejoining,
    the drains, all on them): (hosts, stack, artifacts of NEW). The lab must have been made
    after `realparts_artifacts` (it binds the parts into the hosts)."""
    old_art = build_artifacts(tmp_path_factory.mktemp("rke2-old"), OLD)
    new_art = build_artifacts(tmp_path_factory.mktemp("rke2-new"), NEW)
    hosts = ha_hosts(lab, old_art)
    stack = LabStack(lab, tmp_path_factory.mktemp(name), name=f"{name}-lab")
    stack.configure(config(hosts, OLD))
    stack.init()
    stack.up(timeout=1800)
    return hosts, stack, new_art


@pytest.fixture(scope="module")
def upgraded(realparts_artifacts, module_lab, tmp_path_factory):
    lab = module_lab
    hosts, stack, new_art = deployed_at_old_version(lab, tmp_path_factory, "upgrade")
    result = {"lab": lab, "hosts": hosts, "stack": stack}

    # A skipped minor version: refused by the guard before anything changes.
    before = last_event_time(hosts)
    stack.configure(config(hosts, SKIP))
    result["skip"] = stack.up(check=False, timeout=900)
    result["skip_events_after"] = [e for h in hosts.values() for e in h.service_events()
                                   if when(e["time"]) > before]
    result["skip_versions"] = {n: installed(hosts[n]) for n, _ in [*SERVERS, *AGENTS]}

    # The upgrade, with the new release placed where the air-gap installer reads it except on
    # the second server: the rollout upgrades servers[0], then fails on that server's install.
    for name, _ in [*SERVERS, *AGENTS]:
        if name != SERVERS[1][0]:
            provision_artifacts(hosts[name], new_art)
    stack.configure(config(hosts, NEW))
    result["preview"] = stack.changed_resources()
    result["since"] = since = last_event_time(hosts)
    result["failed"] = stack.up(check=False, timeout=1800)
    result["versions_after_failure"] = {n: installed(hosts[n]) for n, _ in [*SERVERS, *AGENTS]}
    result["events_after_failure"] = {n: [e for e in hosts[n].service_events() if when(e["time"]) > since]
                                      for n, _ in [*SERVERS, *AGENTS]}
    result["snapshots_after_failure"] = hosts[SERVERS[0][0]].ssh(SNAPSHOTS)[1].strip()

    # The second server gets the new release; the next up resumes.
    provision_artifacts(hosts[SERVERS[1][0]], new_art)
    stack.up(timeout=1800)
    result["versions"] = {n: installed(hosts[n]) for n, _ in [*SERVERS, *AGENTS]}
    result["snapshots"] = hosts[SERVERS[0][0]].ssh(SNAPSHOTS)[1].strip()
    state = json.loads(stack.pulumi("stack", "export", "--stack", stack.name).stdout)
    result["stdout"] = {r["urn"].split("::")[-1]: (r.get("outputs") or {}).get("stdout")
                        for r in state["deployment"]["resources"] if "-upgrade-" in r["urn"]}

    # And back: a downgrade is refused.
    stack.configure(config(hosts, OLD))
    result["down"] = stack.up(check=False, timeout=900)
    result["down_versions"] = {n: installed(hosts[n]) for n, _ in [*SERVERS, *AGENTS]}
    return result


def test_a_skipped_minor_version_is_refused_before_any_host_changes(upgraded):
    res = upgraded["skip"]
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "skips minor version" in out and OLD in out and SKIP in out, out[-3000:]
    assert upgraded["skip_events_after"] == [], "no service changed on any host"
    assert set(upgraded["skip_versions"].values()) == {OLD}


def test_the_preview_lists_guard_drains_installs_restarts_and_gates(upgraded):
    ops = upgraded["preview"]
    nodes = [n for n, _ in [*SERVERS, *AGENTS]]
    expected = {"rke2-server-1-upgrade-guard": "replace",
                **{f"{n}-install": "update" for n in nodes},
                **{f"{n}-service": "replace" for n in nodes},
                **{f"{n}-upgrade-ready": "replace" for n in nodes},
                **{f"{n}-upgrade-drain": "replace" for n, _ in AGENTS},
                # cluster.upgrade.agentBatch defaults to 10 %, at least 1: one agent per batch,
                # and every batch after the first waits for the one before on servers[0].
                **{f"{n}-upgrade-turn": "replace" for n, _ in AGENTS[1:]}}
    host_steps = {k: v for k, v in ops.items() if k.startswith(("rke2-server-", "rke2-agent-"))}
    # The components show the new version in their props too (an update, no host effect).
    assert {k: v for k, v in host_steps.items() if k not in nodes} == expected, ops


def test_snapshot_taken_before_the_first_server_went_down(upgraded):
    hosts = upgraded["hosts"]
    first = hosts[SERVERS[0][0]]
    rc, out, err = first.ssh("cd /var/lib/rancher/rke2/server/db/snapshots && "
                             "for f in pre-upgrade-*; do echo \"$f $(stat -c %Y \"$f\")\"; done")
    assert rc == 0, err
    want = f"pre-upgrade-{OLD}-to-{NEW}".replace("+", "-")
    snaps = [line.split() for line in out.splitlines() if line.startswith(want + "-")]
    assert len(snaps) == 1, out
    down, _ = down_window(first, "rke2-server", upgraded["since"])
    assert int(snaps[0][1]) <= down.timestamp(), f"snapshot at {snaps[0][1]}, {SERVERS[0][0]} down at {down}"


def test_servers_one_at_a_time_then_agents_one_batch_at_a_time(upgraded):
    hosts, since = upgraded["hosts"], upgraded["since"]
    servers = [down_window(hosts[n], "rke2-server", since) for n, _ in SERVERS]
    for (name, _), (prev_name, _), cur, prev in zip(SERVERS[1:], SERVERS, servers[1:], servers):
        assert cur[0] >= prev[1], f"{name} went down at {cur[0]} before {prev_name} was ready at {prev[1]}"
    agents = [down_window(hosts[n], "rke2-agent", since) for n, _ in AGENTS]
    assert agents[0][0] >= servers[-1][1], "agents only after every server"
    assert agents[1][0] >= agents[0][1], "10 % of 2 agents: one agent per batch"
    for name, _ in [*SERVERS, *AGENTS]:
        assert installed(hosts[name]) == NEW or upgraded["down_versions"][name] == NEW


def test_what_each_upgrade_step_did(upgraded):
    """From the stack's state: the guard snapshotted, each agent was drained and uncordoned,
    each server's gate saw its Node Ready at the new version."""
    out = {k: (v or "").strip() for k, v in upgraded["stdout"].items()}  # pulumi-command trims it
    want = f"pre-upgrade-{OLD}-to-{NEW}".replace("+", "-")
    assert out["rke2-server-1-upgrade-guard"] == f"snapshot {want}"
    for name, _ in AGENTS:
        assert out[f"{name}-upgrade-drain"] == "drained", out
        assert out[f"{name}-upgrade-ready"] == "uncordoned", out
    for name, _ in SERVERS:
        assert out[f"{name}-upgrade-ready"] == "ready", out


def test_agents_are_schedulable_again(upgraded):
    first = upgraded["hosts"][SERVERS[0][0]]

    def agents() -> dict:
        rc, out, err = first.ssh("/var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml "
                                 "get nodes --no-headers")
        assert rc == 0, err
        rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
        return {n: rows.get(n) for n, _ in AGENTS}
    want = {n: "Ready" for n, _ in AGENTS}  # Ready and not SchedulingDisabled
    assert settled(agents, want) == want


def test_a_downgrade_is_refused_naming_both_versions(upgraded):
    res = upgraded["down"]
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "refusing to downgrade" in out and NEW in out and OLD in out, out[-3000:]
    assert set(upgraded["down_versions"].values()) == {NEW}


def test_the_failure_names_the_server_and_the_reason(upgraded):
    res = upgraded["failed"]
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "rke2-server-2-install" in out and f"installed {OLD}, wanted {NEW}" in out, out[-3000:]


def test_the_rollout_stopped_at_that_server(upgraded):
    versions = upgraded["versions_after_failure"]
    assert versions == {SERVERS[0][0]: NEW, **{n: OLD for n, _ in [*SERVERS[1:], *AGENTS]}}, versions
    events = upgraded["events_after_failure"]
    assert any(e["event"] == "ready" for e in events[SERVERS[0][0]]), "servers[0] was upgraded and is back"
    # The failed install on the second server ran the installer (its daemon-reload), nothing else.
    assert [e for e in events[SERVERS[1][0]] if e["event"] != "daemon-reload"] == [], events[SERVERS[1][0]]
    for name, _ in [*SERVERS[2:], *AGENTS]:
        assert events[name] == [], f"{name} must not have been touched: {events[name]}"
    assert upgraded["snapshots_after_failure"] == "1"


def test_the_next_up_resumes_without_a_second_guard_or_snapshot(upgraded):
    assert set(upgraded["versions"].values()) == {NEW}, upgraded["versions"]
    assert upgraded["snapshots"] == "1"
