"""Issue 14, rolling upgrade: upgrade-guard.sh (servers[0]) and upgrade-node.sh (drain/ready)
run in a scratch root (sandbox.py) with a kubectl stub of this file's own that models the
few API answers they read.

Upstream rules the expectations come from (computed here, not from the scripts):
- docs.rke2.io/upgrades/manual_upgrade: "Upgrade the server nodes first, one at a time" and
  "the Kubernetes version skew policy applies. Ensure that your plan does not skip
  intermediate minor versions when upgrading."
- kubernetes.io/releases/version-skew-policy: HA kube-apiserver instances within one minor
  version of each other (so an upgrade moves one minor version at a time); kubelets never
  newer than the API server (agents after the servers).
- Downgrades: RKE2 documents upgrades only; going back is an etcd snapshot restore.
"""

from __future__ import annotations

import re

import pytest

from tests.scripts.sandbox import KUBECTL, Sandbox

# kubectl stand-in: nodes are /stubstate/nodes/<name> (Ready status), with
# /stubstate/kubelet/<name> (kubeletVersion) and /stubstate/cordoned/<name>; `get nodes
# --no-headers` prints kubectl's table (STATUS Ready, NotReady or Unknown, with
# ",SchedulingDisabled" when cordoned); /readyz?verbose answers
# /stubstate/readyz (exit status 1 when /stubstate/readyz.fails exists); drain fails when
# /stubstate/drain-fails exists.
KUBECTL_STUB = r"""#!/bin/bash
echo "kubectl $*" >> /stubstate/calls.log
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --kubeconfig) shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
set -- "${args[@]}"
s=/stubstate
case "$1 ${2:-}" in
  "get --raw")
    [ "$3" = '/readyz?verbose' ] || exit 1
    if [ -f $s/readyz.fails ]; then
      echo "Error from server (InternalError): an error on the server (\"$(tr '\n' '|' < $s/readyz)\") has prevented the request from succeeding" >&2
      exit 1
    fi
    cat $s/readyz ;;
  "get nodes")
    [ "$3" = --no-headers ] || exit 1
    for f in $s/nodes/*; do
      [ -f "$f" ] || continue
      n=$(basename "$f")
      case $(cat "$f") in True) st=Ready ;; False) st=NotReady ;; *) st=Unknown ;; esac
      [ ! -f "$s/cordoned/$n" ] || st="$st,SchedulingDisabled"
      printf '%s   %s   <none>   5m   %s\n' "$n" "$st" "$(cat "$s/kubelet/$n")"
    done ;;
  "get node")
    n=$3
    [ -f "$s/nodes/$n" ] || { echo "Error from server (NotFound): nodes \"$n\" not found" >&2; exit 1; }
    case $5 in
      *kubeletVersion*) cat "$s/kubelet/$n" ;;
      *Ready*) cat "$s/nodes/$n" ;;
      *unschedulable*) [ -f "$s/cordoned/$n" ] && printf true ;;
      *) exit 1 ;;
    esac
    exit 0 ;;
  "cordon "*) mkdir -p $s/cordoned; touch "$s/cordoned/$2" ;;
  "uncordon "*) rm -f "$s/cordoned/$2" ;;
  "drain "*) [ ! -f $s/drain-fails ] || { echo "error: timed out waiting for the condition" >&2; exit 1; } ;;
  *) echo "kubectl stub: unsupported: $*" >&2; exit 1 ;;
esac
"""

READYZ_OK = "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n[+]informer-sync ok\nreadyz check passed\n"


def cluster(sb: Sandbox, installed: str | None, nodes: dict[str, str] | None = None,
            readyz: str = READYZ_OK) -> None:
    """servers[0] with RKE2 `installed` (None: a fresh host) and the cluster's nodes."""
    if installed:
        sb.install_rke2(installed)
    sb.write(KUBECTL, KUBECTL_STUB, 0o755)
    sb.write("/stubstate/readyz", readyz)
    for name, ready in (nodes if nodes is not None else {"rke2-server-1": "True", "rke2-agent-1": "True"}).items():
        sb.write(f"/stubstate/nodes/{name}", ready)
        sb.write(f"/stubstate/kubelet/{name}", installed or "")
    sb.clear_calls()


def snapshots(sb: Sandbox) -> list[str]:
    d = sb.path("/var/lib/rancher/rke2/server/db/snapshots")
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def kubectl_writes(sb: Sandbox) -> list[str]:
    """The kubectl calls that change something (everything but get)."""
    return [c for c in sb.calls() if c.startswith("kubectl") and " get " not in c]


def upgraded(sb: Sandbox) -> bool:
    return any(c.startswith(("installer", "systemctl")) for c in sb.calls())


def parts(version: str) -> tuple[int, int, int, int]:
    m = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\+rke2r(\d+)", version)
    assert m, version
    return tuple(int(x) for x in m.groups())  # type: ignore[return-value]


def allowed(installed: str, target: str) -> bool:
    """The upstream rule, computed here: no downgrade, same major, at most the next minor."""
    i, t = parts(installed), parts(target)
    return t >= i and t[0] == i[0] and t[1] <= i[1] + 1


# -- upgrade-guard.sh -------------------------------------------------------------------

@pytest.mark.parametrize("installed,target", [
    ("v1.31.4+rke2r1", "v1.33.5+rke2r1"),   # skips 1.32
    ("v1.31.4+rke2r1", "v1.34.1+rke2r1"),   # skips two
    ("v1.32.9+rke2r1", "v1.31.12+rke2r1"),  # an older minor
    ("v1.32.9+rke2r1", "v1.32.8+rke2r1"),   # an older patch
    ("v1.32.9+rke2r2", "v1.32.9+rke2r1"),   # an older RKE2 revision of the same Kubernetes
    ("v1.33.5+rke2r1", "v2.0.0+rke2r1"),    # a major version
])
def test_guard_refuses_a_downgrade_or_skipped_minor_naming_both_versions(sandbox: Sandbox, installed, target):
    assert not allowed(installed, target)
    cluster(sandbox, installed)
    res = sandbox.run("upgrade-guard.sh", TARGET=target)
    assert res.returncode != 0, res
    assert installed in res.stderr and target in res.stderr, res
    if parts(target) < parts(installed):
        assert "downgrade" in res.stderr, res
    elif parts(target)[0] == parts(installed)[0]:
        assert "skips minor version" in res.stderr, res
    assert snapshots(sandbox) == [], "a refused upgrade takes no snapshot"
    assert not any(c.startswith("rke2 etcd-snapshot") for c in sandbox.calls())
    assert not upgraded(sandbox)


@pytest.mark.parametrize("installed,target", [
    ("v1.32.9+rke2r1", "v1.32.10+rke2r1"),  # patch
    ("v1.32.9+rke2r1", "v1.32.9+rke2r2"),   # RKE2 revision
    ("v1.32.9+rke2r1", "v1.33.5+rke2r1"),   # the next minor (the example)
    ("v1.32.9+rke2r1", "v1.33.0+rke2r1"),
])
def test_guard_passes_a_patch_or_next_minor_upgrade_and_takes_the_snapshot(sandbox: Sandbox, installed, target):
    assert allowed(installed, target)
    cluster(sandbox, installed)
    res = sandbox.run("upgrade-guard.sh", TARGET=target, step="rke2-server-1-upgrade-guard")
    assert res.returncode == 0, res
    name = f"pre-upgrade-{installed}-to-{target}".replace("+", "-")
    assert res.stdout == f"snapshot {name}\n", res
    assert f"rke2 etcd-snapshot save --name {name}" in sandbox.calls()
    (snap,) = snapshots(sandbox)
    assert snap.startswith(f"{name}-scratch-host-"), snap
    assert not upgraded(sandbox), "the guard changes nothing but the snapshot"


def test_guard_on_a_fresh_host_passes_without_snapshot_or_api_calls(sandbox: Sandbox):
    cluster(sandbox, None, nodes={})
    res = sandbox.run("upgrade-guard.sh", TARGET="v1.33.5+rke2r1")
    assert res.returncode == 0, res
    assert res.stdout == "fresh v1.33.5+rke2r1\n"
    assert sandbox.calls() == [] and snapshots(sandbox) == []


def test_guard_with_the_target_already_installed_takes_no_snapshot(sandbox: Sandbox):
    cluster(sandbox, "v1.33.5+rke2r1")
    res = sandbox.run("upgrade-guard.sh", TARGET="v1.33.5+rke2r1")
    assert res.returncode == 0 and res.stdout == "current v1.33.5+rke2r1\n", res
    assert snapshots(sandbox) == []


def test_guard_update_checks_nothing(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1", readyz="")
    sandbox.write("/stubstate/readyz.fails", "")
    res = sandbox.run("upgrade-guard.sh", TARGET="v1.34.1+rke2r1", ACTION="check")
    assert res.returncode == 0 and res.stdout == "checked v1.34.1+rke2r1\n", res
    assert snapshots(sandbox) == [] and not any(c.startswith("kubectl") for c in sandbox.calls())


@pytest.mark.parametrize("setup,words", [
    ({"nodes": {"rke2-server-1": "True", "rke2-server-2": "False", "rke2-agent-1": "Unknown"}},
     "node(s) not Ready: rke2-agent-1, rke2-server-2"),
    ({"readyz": "[+]ping ok\n[-]etcd failed: reason withheld\n[+]informer-sync ok\n", "fails": True},
     "[-]etcd failed"),
    ({"readyz": "[+]ping ok\n[+]informer-sync ok\nreadyz check passed\n"}, "no passing etcd check"),
    ({"nodes": {}}, "no nodes registered"),
])
def test_guard_refuses_an_unhealthy_cluster(sandbox: Sandbox, setup, words):
    cluster(sandbox, "v1.32.9+rke2r1", nodes=setup.get("nodes"), readyz=setup.get("readyz", READYZ_OK))
    if setup.get("fails"):
        sandbox.write("/stubstate/readyz.fails", "")
    res = sandbox.run("upgrade-guard.sh", TARGET="v1.33.5+rke2r1")
    assert res.returncode != 0, res
    assert "cluster not healthy" in res.stderr and words in res.stderr, res
    assert "v1.32.9+rke2r1" in res.stderr and "v1.33.5+rke2r1" in res.stderr
    assert snapshots(sandbox) == []


def test_guard_accepts_a_cordoned_node_that_is_ready(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1")
    sandbox.write("/stubstate/cordoned/rke2-agent-1", "")
    res = sandbox.run("upgrade-guard.sh", TARGET="v1.33.5+rke2r1")
    assert res.returncode == 0 and "2 node(s) Ready" in res.stderr, res


def test_guard_fails_when_the_snapshot_fails(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1")
    sandbox.write("/stubstate/etcd-snapshot-fails", "")
    res = sandbox.run("upgrade-guard.sh", TARGET="v1.33.5+rke2r1")
    assert res.returncode != 0 and "etcd snapshot pre-upgrade-v1.32.9-rke2r1-to-v1.33.5-rke2r1 failed" in res.stderr, res


# -- upgrade-node.sh --------------------------------------------------------------------

NODE = "rke2-agent-1"
MARKS = "/var/lib/rke2-rancher/upgrade-cordoned"  # where the drain notes that it cordoned a node


def test_drain_cordons_marks_and_drains_with_the_configured_flags(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1")
    res = sandbox.run("upgrade-node.sh", NODE=NODE, TARGET="v1.33.5+rke2r1", ACTION="drain", TIMEOUT=120, GRACE=30)
    assert res.returncode == 0 and res.stdout == "drained\n", res
    calls = kubectl_writes(sandbox)
    assert calls == [
        f"kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml cordon {NODE}",
        f"kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml drain {NODE} --ignore-daemonsets "
        "--delete-emptydir-data --force --grace-period=30 --timeout=120s",
    ]
    assert sandbox.exists(f"/stubstate/cordoned/{NODE}")
    assert sandbox.read(f"{MARKS}/{NODE}") == "v1.33.5+rke2r1\n"


def test_drain_of_an_unregistered_or_current_node_does_nothing(sandbox: Sandbox):
    cluster(sandbox, "v1.33.5+rke2r1")
    res = sandbox.run("upgrade-node.sh", NODE="rke2-agent-9", ACTION="drain")
    assert res.returncode == 0 and res.stdout == "not-registered\n", res
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="drain", TARGET="v1.33.5+rke2r1")
    assert res.returncode == 0 and res.stdout == "current\n", res
    assert not kubectl_writes(sandbox)


def test_a_node_cordoned_by_someone_else_is_drained_but_not_uncordoned(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1")
    sandbox.write(f"/stubstate/cordoned/{NODE}", "")
    assert sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="drain").returncode == 0
    assert not sandbox.exists(f"{MARKS}/{NODE}")
    sandbox.write(f"/stubstate/kubelet/{NODE}", "v1.33.5+rke2r1")
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="ready", TIMEOUT=5)
    assert res.returncode == 0 and res.stdout == "ready\n", res
    assert sandbox.exists(f"/stubstate/cordoned/{NODE}")


def test_failed_drain_stops_with_the_node_cordoned(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1")
    sandbox.write("/stubstate/drain-fails", "")
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="drain", TIMEOUT=60)
    assert res.returncode != 0 and f"drain of {NODE} did not finish within 60s" in res.stderr, res
    assert sandbox.exists(f"/stubstate/cordoned/{NODE}")


def test_ready_waits_for_the_new_kubelet_then_uncordons(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1")
    assert sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="drain").returncode == 0
    # Still the old kubelet: not ready for the next batch.
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="ready", TIMEOUT=1)
    assert res.returncode != 0 and "not Ready at v1.33.5 after 1s" in res.stderr and "v1.32.9+rke2r1" in res.stderr, res
    assert sandbox.exists(f"/stubstate/cordoned/{NODE}")
    sandbox.write(f"/stubstate/kubelet/{NODE}", "v1.33.5+rke2r1")
    sandbox.write(f"/stubstate/nodes/{NODE}", "False")
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="ready", TIMEOUT=1)
    assert res.returncode != 0 and "Ready=False" in res.stderr, res
    sandbox.write(f"/stubstate/nodes/{NODE}", "True")
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="ready", TIMEOUT=5)
    assert res.returncode == 0 and res.stdout == "uncordoned\n", res
    assert not sandbox.exists(f"/stubstate/cordoned/{NODE}")
    assert not sandbox.exists(f"{MARKS}/{NODE}")


def test_ready_without_a_cni_gates_on_the_kubelet_only(sandbox: Sandbox):
    cluster(sandbox, "v1.33.5+rke2r1", nodes={NODE: "False"})
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="ready", TIMEOUT=1)
    assert res.returncode != 0 and "Ready=False" in res.stderr, res
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="ready", TIMEOUT=1, REQUIRE_READY=0)
    assert res.returncode == 0 and res.stdout == "ready\n", res
    sandbox.write(f"/stubstate/kubelet/{NODE}", "v1.32.9+rke2r1")
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="ready", TIMEOUT=1, REQUIRE_READY=0)
    assert res.returncode != 0 and "kubelet v1.32.9+rke2r1" in res.stderr, res


def test_ready_on_a_first_install_only_waits(sandbox: Sandbox):
    cluster(sandbox, "v1.33.5+rke2r1")
    res = sandbox.run("upgrade-node.sh", NODE=NODE, ACTION="ready", TIMEOUT=5)
    assert res.returncode == 0 and res.stdout == "ready\n", res
    assert not kubectl_writes(sandbox)


# -- upgrade-node.sh ACTION=turn: agent batches take turns on servers[0] -----------------

def turn(sb: Sandbox, after: str, timeout: int = 1, **extra):
    return sb.run("upgrade-node.sh", NODE="rke2-agent-3", TARGET="v1.33.5+rke2r1", ACTION="turn",
                  AFTER=after, TIMEOUT=timeout, **extra)


def test_turn_on_a_first_install_passes_at_once(sandbox: Sandbox):
    # The batch before has not registered yet (every agent of a new stack starts together).
    cluster(sandbox, "v1.33.5+rke2r1", nodes={"rke2-server-1": "True"})
    res = turn(sandbox, "rke2-agent-1 rke2-agent-2", timeout=0)
    assert res.returncode == 0 and res.stdout == "turn\n", res
    assert not kubectl_writes(sandbox)


def test_turn_waits_until_the_batch_before_is_upgraded_ready_and_uncordoned(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1", nodes={"rke2-agent-1": "True", "rke2-agent-2": "True"})
    res = turn(sandbox, "rke2-agent-1 rke2-agent-2")
    assert res.returncode != 0, res
    assert "rke2-agent-1 (kubelet v1.32.9+rke2r1)" in res.stderr and "rke2-agent-2 (kubelet v1.32.9+rke2r1)" in res.stderr, res
    # rke2-agent-1 done; rke2-agent-2 drained (marked) and restarted on the new kubelet, not Ready.
    sandbox.write("/stubstate/kubelet/rke2-agent-1", "v1.33.5+rke2r1")
    sandbox.write(f"{MARKS}/rke2-agent-2", "v1.33.5+rke2r1")
    sandbox.write("/stubstate/kubelet/rke2-agent-2", "v1.33.5+rke2r1")
    res = turn(sandbox, "rke2-agent-1 rke2-agent-2")
    assert res.returncode != 0 and "rke2-agent-2 (drained, not yet uncordoned)" in res.stderr, res
    assert "rke2-agent-1 (" not in res.stderr, res
    sandbox.path(f"{MARKS}/rke2-agent-2").unlink()
    sandbox.write("/stubstate/nodes/rke2-agent-2", "False")
    res = turn(sandbox, "rke2-agent-1 rke2-agent-2")
    assert res.returncode != 0 and "rke2-agent-2 (not Ready)" in res.stderr, res
    res = turn(sandbox, "rke2-agent-1 rke2-agent-2", REQUIRE_READY=0)  # cni: none
    assert res.returncode == 0 and res.stdout == "turn\n", res
    sandbox.write("/stubstate/nodes/rke2-agent-2", "True")
    res = turn(sandbox, "rke2-agent-1 rke2-agent-2")
    assert res.returncode == 0 and res.stdout == "turn\n", res
    assert not kubectl_writes(sandbox)  # waiting changes nothing


def test_turn_names_the_timeout_and_the_nodes_it_waited_for(sandbox: Sandbox):
    cluster(sandbox, "v1.32.9+rke2r1", nodes={"rke2-agent-1": "True"})
    res = turn(sandbox, "rke2-agent-1", timeout=2)
    assert res.returncode != 0, res
    assert "the batch before rke2-agent-3 did not finish its upgrade to v1.33.5+rke2r1 within 2s" in res.stderr, res
