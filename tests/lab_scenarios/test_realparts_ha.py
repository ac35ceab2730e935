"""Issue 12 on the real upstream parts, HA: three servers joined one at a time through the
HAProxy load balancer and two agents, with rke2-standin's engine "realparts" (real etcd,
kube-apiserver, kube-controller-manager, kube-scheduler; kwok in place of the kubelet).

What the stand-in models, from k3s-io/k3s (see tests/lab/standin/rke2_standin.py):
- a joining server's etcd: `pkg/etcd/etcd.go` `(*ETCD).join` (member list from the join
  URL's /db/info, MemberAddAsLearner, start with initial-cluster-state=existing), promotion
  by the leader's `manageLearners` loop, readiness after `Test` passes (voting member);
- then its own kube-apiserver on its local etcd, controller-manager and scheduler (leader
  election), its Node labelled control-plane/etcd/master, READY=1;
- agents: the kubelet client certificate from the supervisor
  (`pkg/server/handlers/handlers.go` `ClientKubeletCert`, CN system:node:<node>,
  O system:nodes), the Node registered with it, kwok keeping it Ready.

Checked through what a user has: the stack's `kubeconfig` output (through the load balancer)
and the real kubectl/etcdctl."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.lab.fixtures import install_rke2_standin, requires_lab
from tests.lab.realparts.parts import ensured_parts_bin, parts_unavailable_reason
from tests.lab_scenarios.support import LabStack, provision_artifacts
from tests.lab_scenarios.test_ha import AGENTS, CLUSTER, LB, SERVERS, ha_config

_reason = parts_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

ETCDCTL = ("/opt/rk2lab-parts/etcdctl --endpoints=https://127.0.0.1:2379 "
           "--cacert=/var/lib/rancher/rke2/server/tls/etcd/server-ca.crt "
           "--cert=/var/lib/rancher/rke2/server/tls/etcd/client.crt "
           "--key=/var/lib/rancher/rke2/server/tls/etcd/client.key")


def ready(node: dict) -> str:
    return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")


@pytest.fixture(scope="module")
def realparts_ha(realparts_artifacts, module_lab, tmp_path_factory):
    lab = module_lab
    hosts = {name: lab.add_host(name, addr) for name, addr in [LB, *SERVERS, *AGENTS]}
    for name, _ in [*SERVERS, *AGENTS]:
        provision_artifacts(hosts[name], realparts_artifacts)
    lab.set_host_entry(CLUSTER, LB[1])
    tmp = tmp_path_factory.mktemp("realparts-ha")
    stack = LabStack(lab, tmp, name="realparts-ha")
    stack.configure(ha_config(hosts))
    stack.init()
    stack.up(timeout=1800)
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(stack.output("kubeconfig"))
    kubeconfig.chmod(0o600)

    def kubectl(*args: str, check: bool = True):
        res = lab.run([str(ensured_parts_bin() / "kubectl"), f"--kubeconfig={kubeconfig}",
                       "--request-timeout=10s", *args], timeout=60)
        assert res.returncode == 0 or not check, res.stderr
        return res

    return lab, hosts, stack, kubectl


def test_all_nodes_ready_on_the_real_api(realparts_ha):
    _, _, _, kubectl = realparts_ha
    assert kubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}").stdout == \
        f"https://{CLUSTER}:6443"
    assert "v1.33.5" in kubectl("version", "-o", "json").stdout  # the real kube-apiserver
    nodes = {n["metadata"]["name"]: n for n in json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]}
    assert sorted((name, ready(n)) for name, n in nodes.items()) == \
        sorted((name, "True") for name, _ in [*SERVERS, *AGENTS])
    for name, _ in SERVERS:
        labels = nodes[name]["metadata"]["labels"]
        for role in ("control-plane", "etcd", "master"):
            assert labels.get(f"node-role.kubernetes.io/{role}") == "true", (name, labels)
    for name, _ in AGENTS:
        assert not any(k.startswith("node-role.kubernetes.io/") for k in nodes[name]["metadata"]["labels"])
        # registered with its own kubelet credentials: its password secret exists (k3s nodepassword)
        kubectl("-n", "kube-system", "get", "secret", f"{name}.node-password.rke2")


def test_etcd_has_three_voting_members(realparts_ha):
    _, hosts, _, _ = realparts_ha
    rc, out, err = hosts[SERVERS[0][0]].ssh(f"{ETCDCTL} -w json member list")
    assert rc == 0, err
    members = json.loads(out)["members"]
    assert sorted(m["peerURLs"][0] for m in members) == sorted(f"https://{a}:2380" for _, a in SERVERS)
    assert [m.get("name", "") for m in members if m.get("isLearner")] == []
    for name, _ in SERVERS:  # member names as k3s setName makes them: <node>-<8 hex>
        assert any(m.get("name", "").startswith(f"{name}-") for m in members), (name, members)


def test_every_server_runs_its_own_api_server(realparts_ha):
    _, _, _, kubectl = realparts_ha
    for name, addr in SERVERS:
        res = kubectl(f"--server=https://{addr}:6443", "get", "--raw", "/readyz", check=False)
        assert (res.returncode, res.stdout) == (0, "ok"), (name, res.stderr)
    leases = kubectl("-n", "kube-system", "get", "lease", "kube-controller-manager", "kube-scheduler",
                     "-o", "jsonpath={.items[*].spec.holderIdentity}").stdout.split()
    assert len(leases) == 2 and all(any(h.startswith(n) for n, _ in SERVERS) for h in leases), leases


def test_a_second_up_runs_no_remote_command(realparts_ha):
    _, hosts, stack, _ = realparts_ha
    before = {name: len(h.commands()) for name, h in hosts.items()}
    stack.up(timeout=900)
    after = {name: len(h.commands()) for name, h in hosts.items()}
    assert after == before, {n: hosts[n].commands()[before[n]:] for n in hosts if after[n] != before[n]}


def test_a_join_is_refused_while_a_learner_exists_and_succeeds_after(realparts_ha, realparts_artifacts):
    """One learner at a time: etcd refuses MemberAddAsLearner while a learner exists ("too many
    learner members in cluster"); k3s `(*ETCD).join` then fails the start
    (`logrus.Fatalf("ETCD join failed: ...")`) and systemd (Restart=always) runs it again, so
    the join goes through once the learner is gone. A 4th server (not in the stack) joins
    while an unreachable learner sits in the cluster, then after it is removed."""
    lab, hosts, _, kubectl = realparts_ha
    s1 = hosts[SERVERS[0][0]]
    # JSON, not the simple form: etcdctl prints "Member %16x added" (ctlv3/command/printer_simple.go
    # MemberAdd), space-padded when the random ID has a leading zero nibble (CI, stop 20).
    rc, out, err = s1.exec(f"{ETCDCTL} -w json member add rk2lab-ghost --learner --peer-urls=https://10.77.0.99:2380")
    assert rc == 0, err
    ghost = format(json.loads(out)["member"]["ID"], "x")
    name, addr = "rke2-server-4", "10.77.0.24"
    host = lab.add_host(name, addr)
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
    rc, out, err = s1.exec(f"{ETCDCTL} -w json member list")
    members = json.loads(out)["members"]
    assert sorted(m["peerURLs"][0] for m in members) == \
        sorted(f"https://{a}:2380" for a in [*(a for _, a in SERVERS), addr])
    assert not any(m.get("isLearner") for m in members), members
    node = json.loads(kubectl("get", "node", name, "-o", "json").stdout)
    assert ready(node) == "True"
