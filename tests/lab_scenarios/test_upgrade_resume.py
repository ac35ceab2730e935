"""Issue 14: a rolling upgrade that fails on one server stops there, naming the step and the
reason, and the next `pulumi up` resumes where it stopped (the guard and its snapshot are not
repeated). The failure: the second server's air-gap directory still holds the old release,
so its install gets the wrong version."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab.realparts.parts import parts_unavailable_reason
from tests.lab_scenarios.support import provision_artifacts
from tests.lab_scenarios.test_upgrade import (AGENTS, NEW, OLD, SERVERS, config, deployed_at_old_version,
                                              installed, last_event_time, when)

_reason = parts_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

SNAPSHOTS = "ls /var/lib/rancher/rke2/server/db/snapshots | grep -c '^pre-upgrade-' || true"


@pytest.fixture(scope="module")
def resumed(realparts_artifacts, module_lab, tmp_path_factory):
    lab = module_lab
    hosts, stack, new_art = deployed_at_old_version(lab, tmp_path_factory, "resume")

    for name, _ in [*SERVERS, *AGENTS]:
        if name != SERVERS[1][0]:  # the second server keeps the old release: its install fails
            provision_artifacts(hosts[name], new_art)
    stack.configure(config(hosts, NEW))
    since = last_event_time(hosts)
    r = {"failed": stack.up(check=False, timeout=1800)}
    r["versions_after_failure"] = {n: installed(hosts[n]) for n, _ in [*SERVERS, *AGENTS]}
    r["events_after_failure"] = {n: [e for e in hosts[n].service_events() if when(e["time"]) > since]
                                 for n, _ in [*SERVERS, *AGENTS]}
    r["snapshots_after_failure"] = hosts[SERVERS[0][0]].ssh(SNAPSHOTS)[1].strip()

    provision_artifacts(hosts[SERVERS[1][0]], new_art)
    r["rerun"] = stack.up(timeout=1800)
    r["versions"] = {n: installed(hosts[n]) for n, _ in [*SERVERS, *AGENTS]}
    r["snapshots"] = hosts[SERVERS[0][0]].ssh(SNAPSHOTS)[1].strip()
    return r


def test_the_failure_names_the_server_and_the_reason(resumed):
    res = resumed["failed"]
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "rke2-server-2-install" in out and f"installed {OLD}, wanted {NEW}" in out, out[-3000:]


def test_the_rollout_stopped_at_that_server(resumed):
    versions = resumed["versions_after_failure"]
    assert versions == {SERVERS[0][0]: NEW, **{n: OLD for n, _ in [*SERVERS[1:], *AGENTS]}}, versions
    events = resumed["events_after_failure"]
    assert any(e["event"] == "ready" for e in events[SERVERS[0][0]]), "servers[0] was upgraded and is back"
    # The failed install on the second server ran the installer (its daemon-reload), nothing else.
    assert [e for e in events[SERVERS[1][0]] if e["event"] != "daemon-reload"] == [], events[SERVERS[1][0]]
    for name, _ in [*SERVERS[2:], *AGENTS]:
        assert events[name] == [], f"{name} must not have been touched: {events[name]}"
    assert resumed["snapshots_after_failure"] == "1"


def test_the_next_up_resumes_without_a_second_guard_or_snapshot(resumed):
    assert set(resumed["versions"].values()) == {NEW}, resumed["versions"]
    assert resumed["snapshots"] == "1"
