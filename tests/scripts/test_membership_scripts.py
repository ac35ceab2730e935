"""Issue 14, servers in and out: membership-guard.sh (servers[0]) and the etcd leave in
uninstall.sh (a server removed from an HA stack), in the sandbox with a kubectl stub of this
file's own that models what they read and write.

Upstream rules the expectations come from (computed here, not taken from the scripts):
- quorum: etcd changes membership only with a majority of its members (etcd FAQ, "Why an odd
  number of cluster members?"): of N members, more than N/2 must stay;
- removal: k3s pkg/etcd/member_controller.go `sync`: a Node annotated
  etcd.rke2.cattle.io/remove=true gets its member removed and then carries
  etcd.rke2.cattle.io/removed-node-name; when etcd refuses (the only voting member) the
  remove annotation is cleared instead."""

from __future__ import annotations

import pytest

from tests.scripts.sandbox import KUBECTL

# Nodes: /stubstate/etcd/<name> holds its etcd member name (empty: not a member);
# annotations are files /stubstate/ann/<name>/<key>. Annotating remove=true models RKE2's
# controller at once: removed-node-name set, or (with /stubstate/etcd-refuses) the
# annotation cleared. Every call goes through --server, which is checked against /stubstate/api.
KUBECTL_STUB = r"""#!/bin/bash
echo "kubectl $*" >> /stubstate/calls.log
args=()
server=local
while [ $# -gt 0 ]; do
  case $1 in
    --kubeconfig|-n) shift ;;
    --server) server=$2; shift ;;
    --ignore-not-found) ignore=1 ;;
    --request-timeout=*|--overwrite|--ignore-daemonsets|--delete-emptydir-data|--force|--timeout=*) ;;
    *) args+=("$1") ;;
  esac
  shift
done
set -- "${args[@]}"
echo "server $server" >> /stubstate/servers.log
s=/stubstate
case "$1 ${2:-}" in
  "get nodes")
    for f in "$s"/etcd/*; do [ -e "$f" ] || continue; printf '%s\t%s\n' "$(basename "$f")" "$(cat "$f")"; done ;;
  "get node")
    if [ ! -f "$s/etcd/$3" ]; then
      [ -n "${ignore:-}" ] && exit 0
      echo "Error from server (NotFound): nodes \"$3\" not found" >&2; exit 1
    fi
    case "$*" in
      *removed-node-name*) cat "$s/ann/$3/removed-node-name" 2>/dev/null || true ;;
      *Ready*) printf '%s\t%s' "$(cat "$s/etcd/$3")" "$(cat "$s/ready/$3" 2>/dev/null || echo Unknown)" ;;
      *cattle\\.io/remove\}*) cat "$s/ann/$3/remove" 2>/dev/null || true ;;
    esac ;;
  "cordon "*|"drain "*) [ -f "$s/etcd/$2" ] ;;
  "annotate node")
    mkdir -p "$s/ann/$3"
    if [ -f "$s/etcd-refuses" ]; then rm -f "$s/ann/$3/remove"
    else printf '%s' "$(cat "$s/etcd/$3")" > "$s/ann/$3/removed-node-name"; : > "$s/etcd/$3"; fi ;;
  "delete node") rm -f "$s/etcd/$3" ;;
  "delete secret") ;;
  *) echo "kubectl stub: unsupported: $*" >&2; exit 1 ;;
esac
"""

THREE = ["rke2-server-1", "rke2-server-2", "rke2-server-3"]


def cluster(sandbox, members: list[str]) -> None:
    sandbox.install_rke2()
    sandbox.write(KUBECTL, KUBECTL_STUB, 0o755)
    sandbox.write("/etc/rancher/rke2/rke2.yaml", "apiVersion: v1\n", 0o600)
    for m in members:
        sandbox.write(f"/stubstate/etcd/{m}", f"{m}-1a2b3c4d")


def majority_stays(members: int, kept: int) -> bool:
    return kept * 2 > members


@pytest.mark.parametrize("configured", [
    THREE, THREE[:2], THREE[1:], [THREE[0]], [THREE[2]], ["rke2-server-9"], THREE + ["rke2-server-4"],
])
def test_membership_guard_refuses_a_change_that_takes_away_quorum(sandbox, configured):
    cluster(sandbox, THREE)
    res = sandbox.run("membership-guard.sh", SERVERS=" ".join(configured))
    kept = len([m for m in THREE if m in configured])
    leaving = [m for m in THREE if m not in configured]
    if not leaving or majority_stays(len(THREE), kept):
        assert res.returncode == 0, res
    else:
        assert res.returncode != 0, res
        assert f"refusing to remove {', '.join(leaving)} at once" in res.stderr
        assert f"etcd has 3 members and {kept} would stay" in res.stderr


def test_membership_guard_passes_on_a_new_cluster(sandbox):
    res = sandbox.run("membership-guard.sh", SERVERS="a")
    assert res.returncode == 0 and res.stdout.strip() == "fresh"


def test_membership_guard_counts_only_members(sandbox):
    cluster(sandbox, THREE)
    sandbox.write("/stubstate/etcd/rke2-server-4", "")  # an etcd Node whose member is already gone
    res = sandbox.run("membership-guard.sh", SERVERS="rke2-server-1 rke2-server-2")
    assert res.returncode == 0 and "members 3 leaving rke2-server-3" in res.stdout


def test_membership_guard_sees_a_renamed_first_server_as_the_same_member(sandbox):
    """A rename of servers[0] (the single server of the seed story, renamed in the stack) keeps
    its etcd member: k3s keeps the member name in <data-dir>/db/etcd/name (pkg/etcd/etcd.go
    nameFile), and the old Node still carries it. The guard must not count that as removing the
    only member; another server's old name still counts as leaving."""
    cluster(sandbox, ["jjtestserver"])
    sandbox.write("/var/lib/rancher/rke2/server/db/etcd/name", "jjtestserver-1a2b3c4d")
    res = sandbox.run("membership-guard.sh", SERVERS="jjrenamed")
    assert res.returncode == 0, res
    assert "jjtestserver is this host" in res.stderr and "none leaving" in res.stderr
    # the renamed Node registered next to the old one: one member, still nothing leaving
    sandbox.write("/stubstate/etcd/jjrenamed", "jjtestserver-1a2b3c4d")
    res = sandbox.run("membership-guard.sh", SERVERS="jjrenamed")
    assert res.returncode == 0 and res.stdout.strip() == "members 1", res


def test_membership_guard_renaming_the_host_does_not_hide_a_real_removal(sandbox):
    cluster(sandbox, THREE)
    sandbox.write("/var/lib/rancher/rke2/server/db/etcd/name", "rke2-server-1-1a2b3c4d")
    res = sandbox.run("membership-guard.sh", SERVERS="renamed-1")  # 1 renamed, 2 and 3 removed
    assert res.returncode != 0
    assert "refusing to remove rke2-server-2, rke2-server-3 at once" in res.stderr
    assert "etcd has 3 members and 1 would stay" in res.stderr


def test_membership_guard_update_checks_nothing_so_an_address_change_can_recover(sandbox):
    """An update (a new SSH address after a move, names unchanged: they are its trigger) runs
    while rke2-server may still be failing "not a member of the etcd cluster", before the
    service step resets etcd; it must not need the API (CI, stop 20: the plain-up recovery of
    a moved server was refused by the guard). The create, with the API down, refuses."""
    cluster(sandbox, THREE)
    sandbox.write(KUBECTL, "#!/bin/sh\necho 'The connection to the server 127.0.0.1:6443 was refused' >&2\nexit 1\n", 0o755)
    res = sandbox.run("membership-guard.sh", SERVERS=" ".join(THREE), ACTION="check")
    assert res.returncode == 0 and res.stdout.strip() == "unchanged", res
    res = sandbox.run("membership-guard.sh", SERVERS=" ".join(THREE), ACTION="guard")
    assert res.returncode != 0 and "cannot list the etcd nodes" in res.stderr


def stale(sandbox, joiner_state: str, **values):
    return sandbox.run("stale-member.sh", stdin=joiner_state,
                       **{"NODE": "rke2-server-2", "TIMEOUT": 30, "ACTION": "remove", **values})


def test_a_rebuilt_servers_stale_member_is_removed_before_it_joins(sandbox):
    """k3s pkg/etcd/etcd.go `(*ETCD).join` refuses a joiner while a member of its node name
    exists ("duplicate node name found"); a rebuilt host (no etcd data) under the name of a
    NotReady member has that member removed (k3s member_controller), its Node and node-password
    secret deleted."""
    cluster(sandbox, THREE)
    res = stale(sandbox, "fresh\n")
    assert res.returncode == 0 and res.stdout.strip() == "removed rke2-server-2-1a2b3c4d", res
    assert sandbox.read("/stubstate/ann/rke2-server-2/removed-node-name") == "rke2-server-2-1a2b3c4d"
    calls = sandbox.read("/stubstate/calls.log")
    assert "delete node rke2-server-2" in calls and "delete secret rke2-server-2.node-password.rke2" in calls


@pytest.mark.parametrize("state,ready,members,expect", [
    ("member\n", "Unknown", THREE, "none"),        # the joiner has etcd data: it is a member
    ("fresh\n", "Unknown", THREE[:1], "none"),     # a new server: no Node of that name
    ("fresh\n", "True", THREE, "refused"),         # a live member under that name: two hosts, one name
])
def test_stale_member_removes_nothing_else(sandbox, state, ready, members, expect):
    cluster(sandbox, members)
    sandbox.write("/stubstate/ready/rke2-server-2", ready)
    res = stale(sandbox, state)
    if expect == "refused":
        assert res.returncode != 0 and "Refusing to remove a live member" in res.stderr
    else:
        assert res.returncode == 0 and res.stdout.strip() == expect, res
    assert "annotate" not in (sandbox.read("/stubstate/calls.log") if sandbox.exists("/stubstate/calls.log") else "")


def test_stale_member_update_checks_nothing(sandbox):
    """Its update runs on a new servers[0] address, or with the joiner's state as recorded at the
    first install ("fresh", before RKE2 was there): it must not act on it (the lab: with
    servers[0] removed, the next server's step ran on the new servers[0] with that old state,
    and only the Ready check kept it from removing a live member)."""
    cluster(sandbox, THREE)
    res = stale(sandbox, "fresh\n", ACTION="check")
    assert res.returncode == 0 and res.stdout.strip() == "unchanged", res
    calls = sandbox.read("/stubstate/calls.log") if sandbox.exists("/stubstate/calls.log") else ""
    assert "get node" not in calls and "annotate" not in calls, calls


def test_rejoin_check_says_whether_the_host_holds_etcd_data(sandbox):
    assert sandbox.run("rejoin-check.sh").stdout.strip() == "fresh"
    sandbox.write("/var/lib/rancher/rke2/server/db/etcd/member/wal/0000.wal", "")
    assert sandbox.run("rejoin-check.sh").stdout.strip() == "member"


def leave(sandbox, **values):
    return sandbox.run("uninstall.sh", **{"ACTION": "uninstall", "RETAIN": 0, "NODE": "rke2-server-2", "ROLE": "server",
                                          "LEAVE": 1, "API": "https://10.20.0.100:6443", "TIMEOUT": 30, **values})


def test_a_removed_server_leaves_etcd_through_the_load_balancer_before_uninstalling(sandbox):
    cluster(sandbox, THREE)
    res = leave(sandbox)
    assert res.returncode == 0, res
    calls = sandbox.calls()
    annotate = next(i for i, c in enumerate(calls) if c.startswith("kubectl") and " annotate node rke2-server-2 " in c)
    delete = next(i for i, c in enumerate(calls) if " delete node rke2-server-2" in c)
    uninstall = calls.index("rke2-uninstall.sh ")
    drain = next(i for i, c in enumerate(calls) if " drain rke2-server-2" in c)
    assert drain < annotate < delete < uninstall
    assert "etcd.rke2.cattle.io/remove=true" in calls[annotate]
    assert set(sandbox.read("/stubstate/servers.log").split("\n")) - {""} == {"server https://10.20.0.100:6443"}
    assert "etcd member rke2-server-2-1a2b3c4d removed" in res.stderr


def test_the_last_member_refused_by_etcd_is_uninstalled_anyway(sandbox):
    """On a destroy the last server's removal is refused by etcd (only voting member): RKE2
    clears the annotation, and there is no cluster left to protect."""
    cluster(sandbox, ["rke2-server-2"])
    sandbox.write("/stubstate/etcd-refuses", "")
    res = leave(sandbox)
    assert res.returncode == 0, res
    assert "refused to remove the etcd member of rke2-server-2" in res.stderr
    assert "rke2-uninstall.sh " in sandbox.calls()


def test_a_cluster_that_never_answers_does_not_block_the_uninstall(sandbox):
    cluster(sandbox, [])  # the API has no such node: the cluster is gone
    res = leave(sandbox, TIMEOUT=3)
    assert res.returncode == 0 and "rke2-uninstall.sh " in sandbox.calls()


def test_single_servers_and_agents_do_not_leave_etcd(sandbox):
    cluster(sandbox, THREE)
    res = sandbox.run("uninstall.sh", ACTION="uninstall", RETAIN=0, NODE="rke2-server-2", ROLE="server")
    assert res.returncode == 0
    assert not any(c.startswith("kubectl") for c in sandbox.calls())
