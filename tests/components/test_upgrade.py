"""Issue 14, rolling upgrade, under Pulumi mocks: the order of the steps a cluster.version
change runs (dependencies as the engine sees them), for the ha stack (3 servers) with 5 agents.

The order expected here is the upstream one, written out independently of the program:
docs.rke2.io/upgrades/manual_upgrade ("Upgrade the server nodes first, one at a time. Once all
servers have been upgraded, you may then upgrade agent nodes"), with the guard and the etcd
snapshot before any host changes and agents in batches of cluster.upgrade.agentBatch.
"""

import math

import pytest

from tests.harness import assigned, evaluate
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("ha")
SERVERS = ["rke2-server-1", "rke2-server-2", "rke2-server-3"]
AGENTS = [f"rke2-agent-{i}" for i in range(1, 6)]
FIVE_AGENTS = [{"name": a, "address": f"10.20.0.{20 + i}"} for i, a in enumerate(AGENTS, 1)]
GUARD = "rke2-server-1-upgrade-guard"


def ha(**upgrade):
    return evaluate(with_changes(RAW, agents=FIVE_AGENTS, cluster__upgrade=upgrade or None), SECRETS)


def expected_batches(batch: str, n: int) -> list[list[str]]:
    size = int(batch) if not batch.endswith("%") else math.floor(n * int(batch[:-1]) / 100)
    size = min(max(size, 1), n)
    return [AGENTS[i:i + size] for i in range(0, n, size)]




@pytest.fixture(scope="module")
def two_per_batch():
    return ha(agentBatch=2)


def test_guard_runs_once_on_the_first_server_with_the_version_as_trigger(two_per_batch):
    ev = two_per_batch
    guards = [n for n in ev.names("command:remote:Command") if n.endswith("-upgrade-guard")]
    assert guards == [GUARD]
    guard = ev.by_name(GUARD)
    assert guard.input("connection")["host"] == "10.20.0.11"
    assert guard.input("triggers") == ["v1.33.5+rke2r1"]
    assert "TARGET=v1.33.5+rke2r1" in guard.input("create") and "ACTION=guard" in guard.input("create")
    assert "ACTION=check" in guard.input("update")


def test_guard_comes_before_anything_on_any_host(two_per_batch):
    ev = two_per_batch
    for node in SERVERS + AGENTS:
        for s in ("preflight", "config", "install", "service"):
            assert ev.depends_on(f"{node}-{s}", GUARD), f"{node}-{s} must wait for the guard"
    for s in ("install", "service", "preflight"):
        assert not ev.depends_on(GUARD, f"rke2-server-1-{s}")


def test_servers_get_the_new_release_one_at_a_time(two_per_batch):
    ev = two_per_batch
    for prev, cur in zip(SERVERS, SERVERS[1:]):
        assert ev.depends_on(f"{cur}-install", f"{prev}-upgrade-ready"), f"{cur} installs after {prev} is Ready"
        assert ev.depends_on(f"{prev}-upgrade-ready", f"{prev}-service")
        assert not ev.depends_on(f"{prev}-install", f"{cur}-install")
    for s in SERVERS:
        ready = ev.by_name(f"{s}-upgrade-ready")
        assert ready.input("triggers") == ["v1.33.5+rke2r1"]
        assert f"NODE={s}" in ready.input("create") and "ACTION=ready" in ready.input("create")
        assert ev.depends_on(f"{s}-upgrade-ready", f"{s}-san-refresh")  # /readyz, then the Node
        assert f"{s}-upgrade-drain" not in ev.names()  # servers are not drained


@pytest.mark.parametrize("batch", ["1", "2", "3", "10%", "40%", "60%", "100%"])
def test_agents_after_every_server_in_batches_that_take_turns_on_the_first_server(batch):
    ev = ha(agentBatch=batch)
    batches = expected_batches(batch, len(AGENTS))
    for k, members in enumerate(batches):
        for a in members:
            assert ev.depends_on(f"{a}-install", "rke2-server-3-upgrade-ready")
            assert ev.depends_on(f"{a}-install", f"{a}-upgrade-drain")
            # No engine dependency between agents: a first install joins them all at once.
            for other in AGENTS:
                if other != a:
                    assert not ev.depends_on(f"{a}-install", f"{other}-upgrade-ready"), (a, other)
                    assert not ev.depends_on(f"{a}-upgrade-drain", f"{other}-service"), (a, other)
            turn = f"{a}-upgrade-turn"
            if k == 0:
                assert turn not in ev.names(), f"{a} is in the first batch: nothing to wait for"
                continue
            # On a version change the batch before must be done: waited for on servers[0].
            t = ev.by_name(turn)
            assert t.input("connection")["host"] == "10.20.0.11"
            assert t.input("triggers") == ["v1.33.5+rke2r1"]
            create = t.input("create")
            assert "ACTION=turn" in create and f"NODE={a}" in create
            assert assigned(create, "AFTER") == " ".join(batches[k - 1]), create
            assert "ACTION=check" in t.input("update")
            assert ev.depends_on(f"{a}-upgrade-drain", turn) and ev.depends_on(f"{a}-install", turn)


def test_turn_timeout_covers_every_batch_before(two_per_batch):
    ev = ha(agentBatch=2, drainTimeoutSeconds=120)
    ready_timeout = RAW["cluster"].get("readyTimeoutSeconds", 600)
    for k, members in enumerate(expected_batches("2", len(AGENTS))[1:], 1):
        for a in members:
            assert f"TIMEOUT={k * (120 + ready_timeout)}" in ev.by_name(f"{a}-upgrade-turn").input("create")


def test_each_agent_is_drained_from_the_first_server_then_waited_for(two_per_batch):
    ev = ha(agentBatch=2, drainTimeoutSeconds=120, drainGracePeriodSeconds=30)
    for a in AGENTS:
        drain = ev.by_name(f"{a}-upgrade-drain")
        assert drain.input("connection")["host"] == "10.20.0.11"
        assert drain.input("triggers") == ["v1.33.5+rke2r1"]
        create = drain.input("create")
        assert all(v in create for v in (f"NODE={a}", "ACTION=drain", "TIMEOUT=120", "GRACE=30"))
        assert "ACTION=check" in drain.input("update")
        ready = ev.by_name(f"{a}-upgrade-ready")
        assert ready.input("connection")["host"] == "10.20.0.11"
        assert ev.depends_on(f"{a}-upgrade-ready", f"{a}-service")
        assert ev.depends_on("rancher-release", f"{a}-upgrade-ready")


def test_no_drain_steps_when_draining_is_off():
    ev = ha(drain=False)
    assert not [n for n in ev.names("command:remote:Command") if n.endswith("-upgrade-drain")]
    assert ev.depends_on("rke2-agent-2-install", "rke2-agent-2-upgrade-turn")  # batches stay
    assert assigned(ev.by_name("rke2-agent-2-upgrade-turn").input("create"), "AFTER") == "rke2-agent-1"


def test_cni_none_gates_on_the_kubelet_only(two_per_batch):
    ev = evaluate(with_changes(RAW, cluster__cni="none"), SECRETS)
    for name in ("rke2-server-1-upgrade-ready", "rke2-agent-1-upgrade-ready"):
        assert "REQUIRE_READY=0" in ev.by_name(name).input("create")
        assert "REQUIRE_READY=1" in two_per_batch.by_name(name).input("create")


def test_a_version_change_replaces_exactly_the_upgrade_steps_and_reinstalls(two_per_batch):
    after = evaluate(with_changes(RAW, agents=FIVE_AGENTS, cluster__upgrade={"agentBatch": 2},
                                  cluster__version="v1.33.6+rke2r1"), SECRETS)
    triggered = {r.name for r in after.registrations
                 if r.custom and r.input("triggers") != two_per_batch.by_name(r.name).input("triggers")}
    nodes = SERVERS + AGENTS
    assert triggered == ({GUARD} | {f"{n}-service" for n in nodes} | {f"{n}-upgrade-ready" for n in nodes}
                         | {f"{a}-upgrade-drain" for a in AGENTS}
                         | {f"{a}-upgrade-turn" for a in AGENTS[2:]})
    for n in nodes:
        assert after.by_name(f"{n}-install").input("create") != two_per_batch.by_name(f"{n}-install").input("create")
        assert after.by_name(f"{n}-preflight").input("create") == two_per_batch.by_name(f"{n}-preflight").input("create")


def test_an_address_change_triggers_no_guard_drain_or_gate(two_per_batch):
    moved = with_changes(RAW, agents=FIVE_AGENTS, cluster__upgrade={"agentBatch": 2})
    moved["agents"][0]["address"] = "10.20.0.99"
    after = evaluate(moved, SECRETS)
    for r in after.registrations:
        if r.custom and r.name.split("-upgrade-")[0] != r.name:
            assert r.input("triggers") == two_per_batch.by_name(r.name).input("triggers"), r.name
