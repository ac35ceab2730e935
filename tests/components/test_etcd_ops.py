"""Issue 14, snapshots and restore, under Pulumi mocks: the steps cluster.snapshot and
cluster.restore add and their order, for the ha stack (3 servers, agents).

The order expected is the upstream procedure, written out here independently of the program:
docs.rke2.io/backup_restore "Restoring a Snapshot to Existing Nodes": stop rke2-server on all
servers; on the first, `rke2 server --cluster-reset --cluster-reset-restore-path=<PATH>`, then
start it; on the others, remove server/db and start them (we do it one at a time: etcd admits
one learner at a time, shared/reference/rke2-facts.md). Snapshots: `rke2 etcd-snapshot save
--name <name>` while RKE2 runs (same page, "Creating Snapshots")."""

import copy
import shlex

import pytest

from components.config import ConfigError, parse_config
from tests.harness import assigned, evaluate
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("ha")
DEV, DEV_SECRETS = load_stack("dev")
SERVERS = ["rke2-server-1", "rke2-server-2", "rke2-server-3"]
SNAPSHOT = "before-rancher-2-12-rke2-server-1-1764670000"




@pytest.fixture(scope="module")
def restore():
    return evaluate(with_changes(RAW, cluster__snapshot="before-restore", cluster__restore=SNAPSHOT), SECRETS)


def test_no_day2_steps_without_the_keys():
    ev = evaluate(RAW, SECRETS)
    assert not [n for n in ev.names("command:remote:Command") if "-snapshot" in n or "-restore" in n]
    assert ev.resolved.get("etcdSnapshots") is None


def test_snapshot_runs_on_the_first_server_after_every_server_is_ready(restore):
    ev = restore
    snap = ev.by_name("rke2-server-1-snapshot")
    assert snap.input("connection")["host"] == "10.20.0.11"
    assert snap.input("triggers") == ["before-restore"]  # a new label, a new snapshot
    assert assigned(snap.input("create"), "ACTION") == "save" and assigned(snap.input("create"), "NAME") == "before-restore"
    assert assigned(snap.input("update"), "ACTION") == "list"
    assert assigned(snap.input("create"), "SNAPSHOT_DIR") == "/var/lib/rancher/rke2/server/db/snapshots"
    for s in SERVERS:
        assert ev.depends_on("rke2-server-1-snapshot", f"{s}-upgrade-ready")


def test_restore_follows_the_documented_order(restore):
    ev = restore
    check, first = "rke2-server-1-restore-check", "rke2-server-1-restore"
    stops = ["rke2-server-2-restore-stop", "rke2-server-3-restore-stop"]
    rejoins = ["rke2-server-2-restore-rejoin", "rke2-server-3-restore-rejoin"]
    restore_steps = sorted(n for n in ev.names("command:remote:Command") if "-restore" in n)
    assert restore_steps == sorted([check, first, *stops, *rejoins])
    for name in restore_steps:
        step = ev.by_name(name)
        assert step.input("triggers") == [SNAPSHOT]
        assert assigned(step.input("create"), "SNAPSHOT") == SNAPSHOT
        assert assigned(step.input("update"), "ACTION") == "noop"  # never again on another update
    # The check comes first, after a snapshot being taken in the same up, before anything stops.
    assert ev.depends_on(check, "rke2-server-1-snapshot")
    for stop in stops:
        assert ev.depends_on(stop, check)
        assert not ev.depends_on(check, stop)
    # Every other server is stopped before the first restores.
    for stop in stops:
        assert ev.depends_on(first, stop)
    # Then the others rejoin, one at a time, in the stack's order.
    assert ev.depends_on(rejoins[0], first)
    assert ev.depends_on(rejoins[1], rejoins[0])
    assert not ev.depends_on(rejoins[0], rejoins[1])
    hosts = {n: ev.by_name(n).input("connection")["host"] for n in restore_steps}
    assert hosts[check] == hosts[first] == "10.20.0.11"
    assert {hosts[s] for s in stops} == {hosts[r] for r in rejoins} == {"10.20.0.12", "10.20.0.13"}
    actions = {n: assigned(ev.by_name(n).input("create"), "ACTION") for n in restore_steps}
    assert actions == {check: "check", first: "restore", **{s: "stop" for s in stops}, **{r: "rejoin" for r in rejoins}}


def test_charts_wait_for_the_restore(restore):
    # The kubernetes provider ("cluster") waits, and every release through it.
    assert restore.depends_on("cluster", "rke2-server-3-restore-rejoin")


def test_single_server_restore_is_check_then_restore():
    ev = evaluate(with_changes(DEV, cluster__restore=SNAPSHOT), DEV_SECRETS)
    steps = sorted(n for n in ev.names("command:remote:Command") if "-restore" in n)
    assert steps == ["jjtestserver-restore", "jjtestserver-restore-check"]
    assert ev.depends_on("jjtestserver-restore", "jjtestserver-restore-check")


def test_snapshot_dir_follows_extra_config():
    ev = evaluate(with_changes(DEV, cluster__snapshot="x1", cluster__extraConfig={"etcd-snapshot-dir": "/srv/snaps"}),
                  DEV_SECRETS)
    assert assigned(ev.by_name("jjtestserver-snapshot").input("create"), "SNAPSHOT_DIR") == "/srv/snaps"


@pytest.mark.parametrize("key, value", [
    ("snapshot", "Before_Upgrade"), ("snapshot", "a" * 64), ("snapshot", "x;reboot"), ("snapshot", "-x"),
    ("restore", "../etc/shadow"), ("restore", "/var/lib/rancher/../../etc/shadow"), ("restore", "a b"),
    ("restore", "relative/path"),
])
def test_bad_labels_and_snapshot_names_are_config_errors(key, value):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(DEV, **{f"cluster__{key}": value}), DEV_SECRETS)
    assert err.value.key == f"cluster.{key}"


def test_absolute_snapshot_path_is_accepted():
    cfg = parse_config(with_changes(DEV, cluster__restore="/var/lib/rancher/rke2/server/db/snapshots/x-1"), DEV_SECRETS)
    assert cfg.cluster.restore == "/var/lib/rancher/rke2/server/db/snapshots/x-1"


def test_ha_servers_leave_etcd_through_the_load_balancer_when_removed():
    ev = evaluate(RAW, SECRETS)
    for s in SERVERS:
        delete = ev.by_name(f"{s}-uninstall").input("delete")
        assert assigned(delete, "LEAVE") == "1" and assigned(delete, "API") == "https://10.20.0.100:6443"
        assert assigned(delete, "ACTION") == "uninstall"
    single = evaluate(DEV, DEV_SECRETS)
    single_delete = single.by_name("jjtestserver-uninstall").input("delete")
    assert not [ln for ln in shlex.split(single_delete)[2].splitlines() if ln.startswith("LEAVE=")]


def test_membership_guard_runs_on_the_first_server_whenever_the_servers_change():
    ev = evaluate(RAW, SECRETS)
    [guard] = [n for n in ev.names("command:remote:Command") if n.endswith("-membership-guard")]
    assert guard == "rke2-server-1-membership-guard"
    g = ev.by_name(guard)
    assert g.input("triggers") == [" ".join(SERVERS)]
    two = evaluate(with_changes(RAW, servers=RAW["servers"][:2]), SECRETS)
    assert two.by_name(guard).input("triggers") == [" ".join(SERVERS[:2])]
    # servers[0] removed: the next server guards (and is the one others join through).
    rest = evaluate(with_changes(RAW, servers=RAW["servers"][1:]), SECRETS)
    assert "rke2-server-2-membership-guard" in rest.names()
    assert assigned(rest.by_name("rke2-server-2-membership-guard").input("create"), "SERVERS") == "rke2-server-2 rke2-server-3"


def test_membership_guard_runs_before_anything_restarts_a_server():
    """It reads the live cluster (kubectl on servers[0]): on a rename the new name's config and
    service steps restart RKE2, and a guard running beside them met a stopped API (CI, stop
    20). Every host step waits for it, through servers[0]'s upgrade guard."""
    for raw, secrets, first, nodes in [(RAW, SECRETS, SERVERS[0], SERVERS + ["rke2-agent-1"]),
                                       (DEV, DEV_SECRETS, "jjtestserver", ["jjtestserver"])]:
        ev = evaluate(raw, secrets)
        guard = f"{first}-membership-guard"
        assert ev.depends_on(f"{first}-upgrade-guard", guard)
        for node in nodes:
            for s in ("preflight", "config", "install", "service"):
                assert ev.depends_on(f"{node}-{s}", guard), f"{node}-{s} must wait for {guard}"
        assert not ev.depends_on(guard, f"{first}-preflight")
    # A refused change of `servers` must not have rewritten the load balancer's backends first.
    ha_ev = evaluate(with_changes(RAW, servers=RAW["servers"][:1]), SECRETS)
    for s in ("packages", "haproxy"):
        assert ha_ev.depends_on(f"rke2-lb-{s}", f"{SERVERS[0]}-membership-guard"), s


def _with_rebuild(index: int, label: str, role: str = "servers") -> dict:
    raw = copy.deepcopy(RAW)
    raw[role][index]["rebuild"] = label
    return raw


def test_a_rebuilt_server_runs_every_step_again_but_its_uninstall():
    """servers[].rebuild: a new label replaces every step of that server (its host lost RKE2),
    never its uninstall (a replaced uninstall step's delete would run rke2-uninstall.sh on the
    rebuilt host at the end of the update), and no step of another server."""
    before, after = evaluate(RAW, SECRETS), evaluate(_with_rebuild(1, "disk-1"), SECRETS)
    mine = [n for n in after.names("command:remote:Command") if n.startswith("rke2-server-2-")]
    for n in mine:
        old, new = before.by_name(n).input("triggers") or [], after.by_name(n).input("triggers") or []
        if n.endswith("-uninstall"):
            assert new == old, n
        elif n.endswith("-stale-member"):  # on servers[0], whose steps keep their triggers: its own
            assert (old, new) == ([], ["rebuild:disk-1"]), n
        else:
            assert new == [*old, "rebuild:disk-1"], n
    for n in after.names("command:remote:Command"):
        if not n.startswith("rke2-server-2-"):
            assert after.by_name(n).input("triggers") == before.by_name(n).input("triggers"), n


def test_the_stale_member_check_runs_on_the_first_server_before_a_joiner_installs():
    ev = evaluate(RAW, SECRETS)
    assert "rke2-server-1-rejoin-check" not in ev.names() and "rke2-server-1-stale-member" not in ev.names()
    for s in SERVERS[1:]:
        stale = ev.by_name(f"{s}-stale-member")
        assert stale.input("connection")["host"] == "10.20.0.11"  # servers[0]
        assert assigned(stale.input("create"), "NODE") == s
        assert ev.depends_on(f"{s}-stale-member", f"{s}-rejoin-check")
        assert ev.depends_on(f"{s}-install", f"{s}-stale-member")
        assert ev.by_name(f"{s}-rejoin-check").input("connection")["host"] != "10.20.0.11"


@pytest.mark.parametrize("role, index, needle", [
    ("servers", 0, "servers[0] itself cannot"), ("agents", 0, "only servers have it"),
])
def test_rebuild_where_it_cannot_work_is_a_config_error(role, index, needle):
    with pytest.raises(ConfigError) as err:
        parse_config(_with_rebuild(index, "x1", role), SECRETS)
    assert err.value.key == f"{role}[{index}].rebuild" and needle in str(err.value)


def test_a_bad_rebuild_label_names_the_key():
    with pytest.raises(ConfigError) as err:
        parse_config(_with_rebuild(2, "Disk 2"), SECRETS)
    assert err.value.key == "servers[2].rebuild"
