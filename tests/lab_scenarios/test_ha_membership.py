"""Issue 14, servers in and out, on real etcd: three servers behind HAProxy on
rke2-standin on the real parts (the real etcd v3.5 and kube-apiserver; see test_ha.py for what the
stand-in models). One cluster for the module; the tests run in file order and change it.

Upstream behaviour the expectations come from (computed here, not taken from the program):
- etcd admits one learner at a time ("too many learner members in cluster", etcd
  server/etcdserver/server.go mayAddMember / ErrTooManyLearners); k3s `(*ETCD).join` then
  fails the start (`logrus.Fatalf("ETCD join failed: ...")`) and systemd restarts it;
- quorum: etcd changes membership only with a majority of its members (etcd FAQ, "Why an odd
  number of cluster members?"): of 3, a change that keeps 1 is refused;
- removal: k3s pkg/etcd/member_controller.go: a Node annotated etcd.rke2.cattle.io/remove=true
  loses its etcd member; the program then deletes the Node and uninstalls RKE2."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.lab.fixtures import install_rke2_standin, requires_lab
from tests.lab.realparts.parts import parts_unavailable_reason
from tests.lab_scenarios.support import (CLUSTER, ETCDCTL, LB, SERVERS, LabStack, etcd_members, ha_config,
                                         ha_hosts, kubectl_through, node_readiness, settled)

_reason = parts_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def voting_peers(server) -> list[str]:
    members = etcd_members(server)
    assert not [m for m in members if m.get("isLearner")], members
    return sorted(m["peerURLs"][0] for m in members)


def peers(*addresses: str) -> list[str]:
    return sorted(f"https://{a}:2380" for a in addresses)


class Cluster:
    def __init__(self, lab, hosts, stack, kubectl):
        self.lab, self.hosts, self.stack, self.kubectl = lab, hosts, stack, kubectl

    def configure(self, servers) -> None:
        self.stack.configure(ha_config(self.hosts, servers=servers, agents=[]))

    def commands(self) -> dict[str, int]:
        return {name: len(h.commands()) for name, h in self.hosts.items()}

    def nodes(self) -> dict[str, str]:
        return node_readiness(self.kubectl)


@pytest.fixture(scope="module")
def cluster(realparts_artifacts, module_lab, tmp_path_factory):
    lab = module_lab
    hosts = ha_hosts(lab, realparts_artifacts, agents=[])
    tmp = tmp_path_factory.mktemp("ha-membership")
    stack = LabStack(lab, tmp, name="ha-membership")
    stack.configure(ha_config(hosts, agents=[]))
    stack.init()
    stack.up(timeout=1800)
    return Cluster(lab, hosts, stack, kubectl_through(lab, stack, tmp / "kubeconfig"))


def test_a_join_is_refused_while_a_learner_exists_and_succeeds_after(cluster, realparts_artifacts):
    """A 4th server (not in the stack) joins while an unreachable learner sits in the cluster,
    then after it is removed; then it is taken out again by hand (etcdctl), as an operator
    would, so the stack's cluster is three again."""
    s1 = cluster.hosts[SERVERS[0][0]]
    # JSON, not the simple form: etcdctl prints "Member %16x added" (ctlv3/command/printer_simple.go
    # MemberAdd), space-padded when the random ID has a leading zero nibble (CI, stop 20).
    rc, out, err = s1.exec(f"{ETCDCTL} -w json member add rk2lab-ghost --learner --peer-urls=https://10.77.0.99:2380")
    assert rc == 0, err
    ghost = format(json.loads(out)["member"]["ID"], "x")
    name, addr = "rke2-server-4", "10.77.0.24"
    host = cluster.lab.add_host(name, addr)
    rc, out, err = install_rke2_standin(host, realparts_artifacts, "server")
    assert rc == 0, out + err
    token = s1.path("/var/lib/rancher/rke2/server/token").read_text().strip()
    config = yaml.safe_dump({"server": f"https://{LB[1]}:9345", "token": token, "tls-san": [CLUSTER]})
    assert host.exec("mkdir -p /etc/rancher/rke2 && cat > /etc/rancher/rke2/config.yaml", input=config)[0] == 0
    assert host.exec("systemctl start --no-block rke2-server")[0] == 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        restarts = [e for e in host.service_events("rke2-server") if e["event"] == "auto-restart"]
        if restarts and "too many learner members in cluster" in host.journal("rke2-server"):
            break
        time.sleep(2)
    journal = host.journal("rke2-server")
    assert "ETCD join failed: etcdserver: too many learner members in cluster" in journal, journal[-3000:]
    assert restarts, host.service_events("rke2-server")
    assert host.exec("systemctl is-active rke2-server")[1].strip() != "active"

    rc, out, err = s1.exec(f"{ETCDCTL} member remove {ghost}")
    assert rc == 0, err
    deadline = time.monotonic() + 240
    while host.exec("systemctl is-active rke2-server")[1].strip() != "active" and time.monotonic() < deadline:
        time.sleep(2)
    assert host.exec("systemctl is-active rke2-server")[1].strip() == "active", host.journal("rke2-server")[-3000:]
    assert voting_peers(s1) == peers(*(a for _, a in SERVERS), addr)
    assert settled(lambda: cluster.nodes().get(name), "True") == "True"

    # Out again: stop it, remove its member, delete its Node.
    assert host.exec("systemctl stop rke2-server")[0] == 0
    [member] = [m for m in etcd_members(s1) if f"//{addr}:" in m["peerURLs"][0]]
    assert s1.exec(f"{ETCDCTL} member remove {format(member['ID'], 'x')}")[0] == 0
    cluster.kubectl("delete", "node", name)
    assert voting_peers(s1) == peers(*(a for _, a in SERVERS))


def test_taking_two_of_three_servers_away_at_once_is_refused_before_any_host_changes(cluster):
    cluster.configure(SERVERS[:1])
    before = cluster.commands()
    lb_cfg = cluster.hosts[LB[0]].path("/etc/haproxy/haproxy.cfg").read_text()
    res = cluster.stack.up(check=False, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "refusing to remove rke2-server-2, rke2-server-3 at once: etcd has 3 members and 1 would stay" in out, \
        out[-3000:]
    after = cluster.commands()
    # Only the guard ran (on servers[0]); the load balancer and the other servers were not touched.
    assert {n: after[n] - before[n] for n in after if after[n] != before[n]} == {SERVERS[0][0]: 1}, \
        {n: cluster.hosts[n].commands()[before[n]:] for n in after if after[n] != before[n]}
    assert cluster.hosts[LB[0]].path("/etc/haproxy/haproxy.cfg").read_text() == lb_cfg
    assert voting_peers(cluster.hosts[SERVERS[0][0]]) == peers(*(a for _, a in SERVERS))


def test_removing_the_first_server_leaves_two_members_and_a_healthy_cluster(cluster):
    """servers[0] removed: the next server becomes the first (others join through the load
    balancer), the removed one leaves etcd before RKE2 is uninstalled from it."""
    (gone, gone_addr), rest = SERVERS[0], SERVERS[1:]
    cluster.configure(rest)
    changed = cluster.stack.changed_resources()
    assert changed.get(f"{gone}-uninstall") == "delete" and changed.get(gone) == "delete", changed
    res = cluster.stack.up(timeout=1800)
    out = res.stdout + res.stderr
    assert f"asking RKE2 to remove the etcd member of {gone}" in out, out[-3000:]
    survivor = cluster.hosts[rest[0][0]]
    assert voting_peers(survivor) == peers(*(a for _, a in rest))
    assert settled(cluster.nodes, {n: "True" for n, _ in rest}) == {n: "True" for n, _ in rest}
    assert not Path(cluster.hosts[gone].path("/usr/local/bin/rke2")).exists()
    assert not Path(cluster.hosts[gone].path("/var/lib/rancher/rke2")).exists()
    cfg = cluster.hosts[LB[0]].path("/etc/haproxy/haproxy.cfg").read_text()
    assert gone_addr not in cfg and all(f"{a}:6443" in cfg for _, a in rest)
    for name, addr in rest:
        res = cluster.kubectl(f"--server=https://{addr}:6443", "get", "--raw", "/readyz", check=False)
        assert (res.returncode, res.stdout) == (0, "ok"), (name, res.stderr)
    cluster.kubectl("create", "configmap", "after-removal", "--from-literal=servers=2")
    cluster.stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", cluster.stack.name)


def test_the_removed_server_rejoins_as_a_new_member(cluster):
    """The host uninstalled above is added back (last in `servers`): it joins through the load
    balancer as a new learner, is promoted, and the cluster has three voting members again."""
    order = [*SERVERS[1:], SERVERS[0]]
    cluster.configure(order)
    cluster.stack.up(timeout=1800)
    first = cluster.hosts[order[0][0]]
    assert voting_peers(first) == peers(*(a for _, a in SERVERS))
    assert settled(cluster.nodes, {n: "True" for n, _ in SERVERS}) == {n: "True" for n, _ in SERVERS}
    rejoined = cluster.hosts[SERVERS[0][0]]
    rc, out, err = rejoined.exec(f"{ETCDCTL} get /registry/configmaps/default/after-removal --keys-only")
    assert rc == 0 and "after-removal" in out, (out, err)  # its own etcd has what was written while it was away
    cluster.stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", cluster.stack.name)


def test_a_rebuilt_server_rejoins_under_its_old_name(cluster):
    """A server's host rebuilt out of band (RKE2 and its data gone, same name and address): the
    stack says so with `servers[].rebuild`, every step of that server runs again, and servers[0]
    removes the etcd member it left behind before it joins; without that, k3s `(*ETCD).join`
    refuses the new member ("duplicate node name found"). The uninstall step is not replaced
    (its delete would uninstall the rebuilt host)."""
    order = [*SERVERS[1:], SERVERS[0]]
    name, addr = order[1]
    host = cluster.hosts[name]
    assert host.exec("/usr/local/bin/rke2-uninstall.sh")[0] == 0  # the disk replaced, as it were
    deadline = time.monotonic() + 180
    while cluster.nodes().get(name) == "True" and time.monotonic() < deadline:
        time.sleep(5)  # until kube-controller-manager sees the node gone (node-monitor-grace-period)
    assert cluster.nodes().get(name) != "True"
    config = ha_config(cluster.hosts, servers=order, agents=[])
    config["servers"][1]["rebuild"] = "disk-2026-12"
    cluster.stack.configure(config)
    changed = cluster.stack.changed_resources()
    assert changed.get(f"{name}-install") == "replace" and changed.get(f"{name}-service") == "replace", changed
    assert f"{name}-uninstall" not in changed, changed
    assert not [n for n in changed if n.startswith(("rke2-server-2-", "rke2-server-1-"))
                and not n.endswith("-stale-member")], changed
    res = cluster.stack.up(timeout=1800)
    out = res.stdout + res.stderr
    assert f"{name} was rebuilt: its old etcd member" in out, out[-3000:]
    assert voting_peers(cluster.hosts[order[0][0]]) == peers(*(a for _, a in SERVERS))
    assert settled(cluster.nodes, {n: "True" for n, _ in SERVERS}) == {n: "True" for n, _ in SERVERS}
    assert "duplicate node name" not in host.journal("rke2-server")
    assert Path(host.path("/usr/local/bin/rke2")).exists()
    cluster.stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", cluster.stack.name)


def test_restore_in_ha_brings_back_the_snapshot_and_every_server_rejoins(cluster):
    """docs.rke2.io datastore/backup_restore, "Restoring a Snapshot to Existing Nodes": every
    other server stopped, servers[0] restored with --cluster-reset-restore-path (k3s
    `(*ETCD).Restore`, then `Reset`), the others' etcd data moved aside and each rejoins as a new
    member. An object written before the snapshot is back, one written after it is gone, and
    every server is a voting member again."""
    order = [*SERVERS[1:], SERVERS[0]]
    first = cluster.hosts[order[0][0]]
    config = ha_config(cluster.hosts, servers=order, agents=[])
    config["servers"][1]["rebuild"] = "disk-2026-12"  # as the test before left it
    cluster.kubectl("create", "configmap", "before-snapshot", "--from-literal=at=before")
    config["cluster"]["snapshot"] = "ha-before"
    cluster.stack.configure(config)
    cluster.stack.up(timeout=900)
    [snapshot] = cluster.stack.output("etcdSnapshots")
    cluster.kubectl("create", "configmap", "after-snapshot", "--from-literal=at=after")

    config["cluster"]["restore"] = snapshot
    cluster.stack.configure(config)
    changed = cluster.stack.changed_resources()
    assert changed.get(f"{order[0][0]}-restore") == "create", changed
    for name, _ in order[1:]:
        assert changed.get(f"{name}-restore-stop") == "create" and changed.get(f"{name}-restore-rejoin") == "create"
    cluster.stack.up(timeout=1800)
    assert cluster.kubectl("get", "configmap", "before-snapshot", "-o", "jsonpath={.data.at}").stdout == "before"
    assert "NotFound" in cluster.kubectl("get", "configmap", "after-snapshot", check=False).stderr
    assert voting_peers(first) == peers(*(a for _, a in SERVERS))
    deadline = time.monotonic() + 120
    while (nodes := cluster.nodes()) != {n: "True" for n, _ in SERVERS} and time.monotonic() < deadline:
        time.sleep(5)
    assert nodes == {n: "True" for n, _ in SERVERS}
    cluster.stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", cluster.stack.name)
