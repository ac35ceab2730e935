"""HA on the real upstream parts: three servers joined one at a time through real HAProxy, two
agents in parallel, over SSH to systemd lab hosts running rke2-standin on the real parts
(real etcd, kube-apiserver, kube-controller-manager, kube-scheduler; kwok in place of the
kubelet), with cert-manager and Rancher installed by the kubernetes provider's real Helm from
the lab's chart mirror (issue 13). One cluster for the whole module; the tests run in file
order and the later ones change it (SAN removal, registries).

What the stand-in models, from k3s-io/k3s (see tests/lab/standin/rke2_standin.py):
- a joining server's etcd: `pkg/etcd/etcd.go` `(*ETCD).join` (member list from the join
  URL's /db/info, MemberAddAsLearner, start with initial-cluster-state=existing), promotion
  by the leader's `manageLearners` loop, readiness after `Test` passes (voting member);
- then its own kube-apiserver on its local etcd, controller-manager and scheduler (leader
  election), its Node labelled control-plane/etcd/master, READY=1;
- agents: the kubelet client certificate from the supervisor
  (`pkg/server/handlers/handlers.go` `ClientKubeletCert`, CN system:node:<node>,
  O system:nodes), the Node registered with it, kwok keeping it Ready.

Checked through what a user has: the stack's `kubeconfig` output (through the load balancer),
the real kubectl and etcdctl, and the hosts' own systemd journals."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.lab.chartrepo import ChartMirror
from tests.lab.fixtures import requires_lab
from tests.lab.realparts.parts import parts_unavailable_reason
from tests.lab_scenarios.support import (AGENTS, CLUSTER, LB, SERVERS, LabStack, available_deployments,
                                         etcd_members, ha_config, ha_hosts, kubectl_through, node_readiness,
                                         SETTLE_S, settled, unit_events)
from tests.lab_scenarios.test_charts import CERT_MANAGER, RANCHER, configure, helm_releases, ts

_reason = parts_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

MIRROR = {"mirrors": {"docker.io": {"endpoints": ["https://registry.lab.internal:5000"]}}}
CHANGED = {"mirrors": {"docker.io": {"endpoints": ["https://registry.lab.internal:5000",
                                                   "https://registry2.lab.internal"]}}}


def first(host, unit: str, event: str):
    times = unit_events(host, unit, event)
    assert times, f"{host.name}: no {event} event for {unit}: {host.service_events(unit)}"
    return times[0]


class HA:
    def __init__(self, lab, hosts, stack, mirror, kubectl):
        self.lab, self.hosts, self.stack, self.mirror, self.kubectl = lab, hosts, stack, mirror, kubectl

    def config(self, rancher: dict | None = None, registries: dict = MIRROR, **cluster) -> dict:
        config = ha_config(self.hosts)
        config["cluster"].update(cluster)
        config["registries"] = registries
        config["certManager"] = {"enabled": True, "version": CERT_MANAGER, "repository": self.mirror.url,
                                 "repositoryCaFile": self.mirror.ca_file}
        config["rancher"] = {"enabled": True, "version": RANCHER, "repository": self.mirror.url,
                             "repositoryCaFile": self.mirror.ca_file, **(rancher or {})}
        return config

    def deployment(self, namespace: str, name: str, ready: int | None = None) -> dict:
        """The Deployment; with `ready`, once that many replicas are Ready (up to SETTLE_S: on
        this loaded 2-core lab a late node lease marks pods NotReady for a moment, until the
        node's kubelet stand-in reports them Ready again)."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            doc = json.loads(self.kubectl("get", "deployment", name, "-n", namespace, "-o", "json").stdout)
            if ready is None or doc["status"].get("readyReplicas") == ready or time.monotonic() > deadline:
                return doc
            time.sleep(2)


@pytest.fixture(scope="module")
def ha(realparts_artifacts, module_lab, tmp_path_factory):
    lab = module_lab
    hosts = ha_hosts(lab, realparts_artifacts)
    tmp = tmp_path_factory.mktemp("ha")
    mirror = ChartMirror(lab, tmp)
    mirror.add("cert-manager", CERT_MANAGER)
    mirror.add("rancher", RANCHER)
    mirror.start()
    stack = LabStack(lab, tmp, name="ha-lab")
    the_ha = HA(lab, hosts, stack, mirror, None)
    stack.init()
    configure(stack, the_ha.config())
    stack.up(timeout=1800)
    the_ha.kubectl = kubectl_through(lab, stack, tmp / "kubeconfig")
    return the_ha


def test_servers_join_one_at_a_time_and_agents_after_them(ha):
    ready_at = [first(ha.hosts[n], "rke2-server", "ready") for n, _ in SERVERS]
    spawned = [first(ha.hosts[n], "rke2-server", "spawn") for n, _ in SERVERS]
    for i in (1, 2):
        assert spawned[i] >= ready_at[i - 1], (
            f"{SERVERS[i][0]} started at {spawned[i]} before {SERVERS[i - 1][0]} was ready at {ready_at[i - 1]}")
    for name, _ in AGENTS:
        assert first(ha.hosts[name], "rke2-agent", "spawn") >= ready_at[-1]


def test_all_nodes_ready_on_the_real_api(ha):
    kubectl = ha.kubectl
    assert kubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}").stdout == \
        f"https://{CLUSTER}:6443"
    assert "v1.33.5" in kubectl("version", "-o", "json").stdout  # the real kube-apiserver
    want = {n: "True" for n, _ in [*SERVERS, *AGENTS]}
    assert settled(lambda: node_readiness(kubectl), want) == want
    nodes = {n["metadata"]["name"]: n for n in json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]}
    for name, _ in SERVERS:
        labels = nodes[name]["metadata"]["labels"]
        for role in ("control-plane", "etcd", "master"):
            assert labels.get(f"node-role.kubernetes.io/{role}") == "true", (name, labels)
    for name, _ in AGENTS:
        assert not any(k.startswith("node-role.kubernetes.io/") for k in nodes[name]["metadata"]["labels"])
        # registered with its own kubelet credentials: its password secret exists (k3s nodepassword)
        kubectl("-n", "kube-system", "get", "secret", f"{name}.node-password.rke2")


def test_etcd_has_three_voting_members(ha):
    members = etcd_members(ha.hosts[SERVERS[0][0]])
    assert sorted(m["peerURLs"][0] for m in members) == sorted(f"https://{a}:2380" for _, a in SERVERS)
    assert [m.get("name", "") for m in members if m.get("isLearner")] == []
    for name, _ in SERVERS:  # member names as k3s setName makes them: <node>-<8 hex>
        assert any(m.get("name", "").startswith(f"{name}-") for m in members), (name, members)


def test_every_server_runs_its_own_api_server_behind_the_load_balancer(ha):
    for name, addr in SERVERS:
        res = ha.kubectl(f"--server=https://{addr}:6443", "get", "--raw", "/readyz", check=False)
        assert (res.returncode, res.stdout) == (0, "ok"), (name, res.stderr)
    leases = ha.kubectl("-n", "kube-system", "get", "lease", "kube-controller-manager", "kube-scheduler",
                        "-o", "jsonpath={.items[*].spec.holderIdentity}").stdout.split()
    assert len(leases) == 2 and all(any(h.startswith(n) for n, _ in SERVERS) for h in leases), leases
    cfg = ha.hosts[LB[0]].path("/etc/haproxy/haproxy.cfg").read_text()
    for name, addr in SERVERS:
        assert f"server {name} {addr}:6443 check" in cfg and f"server {name} {addr}:9345 check" in cfg
    assert ha.stack.output("registrationAddress") == f"https://{LB[1]}:9345"
    for name, _ in [*SERVERS, *AGENTS]:
        doc = yaml.safe_load(ha.hosts[name].path("/etc/rancher/rke2/registries.yaml").read_text())
        assert doc["mirrors"]["docker.io"]["endpoint"] == ["https://registry.lab.internal:5000"], name


def test_cert_manager_then_rancher_in_ha(ha):
    """Issue 13 in HA: both releases deployed from the mirror, cert-manager's release
    finished (Helm waited for its Deployments) before Rancher's release record was written,
    cert-manager's Deployments Available, Rancher at one replica per schedulable node up to 3
    (the program's default with 5 nodes), every replica Ready.

    The order is read from Helm's release records: the last write of cert-manager's (Helm
    marks it deployed once its wait for the resources is over, helm pkg/action/install.go)
    against the creation of Rancher's. Not from the Deployments' Available transition time:
    on a loaded CI a late kwok heartbeat can flip it False and True again later (seen once)."""
    assert helm_releases(ha.kubectl) == {"cert-manager": [(1, "deployed")], "rancher": [(1, "deployed")]}
    want = {d: "True" for d in ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook")}
    assert settled(lambda: available_deployments(ha.kubectl, "cert-manager"), want) == want
    cm_record = json.loads(ha.kubectl("get", "secret", "-n", "cert-manager", "sh.helm.release.v1.cert-manager.v1",
                                      "-o", "json", "--show-managed-fields").stdout)
    cm_deployed = max(ts(f["time"]) for f in cm_record["metadata"]["managedFields"])
    record = json.loads(ha.kubectl("get", "secret", "-n", "cattle-system", "sh.helm.release.v1.rancher.v1",
                                   "-o", "json").stdout)
    assert cm_deployed <= ts(record["metadata"]["creationTimestamp"]), (cm_deployed, record["metadata"])
    rancher = ha.deployment("cattle-system", "rancher", ready=3)
    assert rancher["spec"]["replicas"] == 3 and rancher["status"].get("readyReplicas") == 3, rancher["status"]
    pods = json.loads(ha.kubectl("get", "pods", "-n", "cattle-system", "-l", "app=rancher", "-o", "json").stdout)["items"]
    assert len({p["spec"].get("nodeName") for p in pods}) >= 2, "Rancher's replicas all on one node"
    assert ha.stack.output("rancherUrl") == f"https://{CLUSTER}"


def test_a_second_up_runs_no_remote_command_and_changes_no_release(ha):
    before = {name: len(h.commands()) for name, h in ha.hosts.items()}
    ha.stack.up(timeout=900)
    after = {name: len(h.commands()) for name, h in ha.hosts.items()}
    assert after == before, {n: ha.hosts[n].commands()[before[n]:] for n in ha.hosts if after[n] != before[n]}
    assert helm_releases(ha.kubectl) == {"cert-manager": [(1, "deployed")], "rancher": [(1, "deployed")]}
    ha.stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", ha.stack.name)


def test_a_changed_rancher_value_upgrades_only_rancher(ha):
    configure(ha.stack, ha.config(rancher={"replicas": 2}))
    changed = ha.stack.changed_resources()
    assert changed == {"rancher": "update", "rancher-release": "update"}, changed
    before = {name: len(h.commands()) for name, h in ha.hosts.items()}
    ha.stack.up(timeout=900)
    assert {name: len(h.commands()) for name, h in ha.hosts.items()} == before  # no host touched
    assert helm_releases(ha.kubectl) == {"cert-manager": [(1, "deployed")],
                                         "rancher": [(1, "superseded"), (2, "deployed")]}
    rancher = ha.deployment("cattle-system", "rancher", ready=2)
    assert rancher["spec"]["replicas"] == 2 and rancher["status"].get("readyReplicas") == 2
    ha.stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", ha.stack.name)


def test_san_removal_in_ha_drops_6443_and_settles(ha):
    """Removing a tls-san in HA: every server's API certificate (6443) loses it and the next
    preview is empty (no loop). The supervisor certificate (9345) is built by dynamiclistener
    from secret kube-system/rke2-serving, which all servers share and every running server
    re-creates from its cache (rancher/dynamiclistener storage/kubernetes/controller.go), so
    there the name may stay: the step says so instead of failing (see san-refresh.sh)."""
    lab, stack = ha.lab, ha.stack
    configure(stack, ha.config(rancher={"replicas": 2}, tlsSans=[CLUSTER, "extra.rke2.lab"]))
    stack.up(timeout=1800)
    for name, _ in SERVERS:
        assert "DNS:extra.rke2.lab" in lab.served_sans(name, 6443), name
        assert "DNS:extra.rke2.lab" in lab.served_sans(name, 9345), name
    configure(stack, ha.config(rancher={"replicas": 2}))
    res = stack.up(timeout=1800)
    out = res.stdout + res.stderr
    kept = []
    for name, _ in SERVERS:
        assert "DNS:extra.rke2.lab" not in lab.served_sans(name, 6443), name
        if "DNS:extra.rke2.lab" in lab.served_sans(name, 9345):
            kept.append(name)
    print(f"after the removal, 9345 still names extra.rke2.lab on {kept or 'no server'}")
    if kept:
        assert "re-created the shared secret kube-system/rke2-serving" in out, out[-4000:]
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)


def test_registries_change_restarts_servers_one_at_a_time_then_agents(ha):
    """Issue 15 in HA: a registries change restarts every node in the safe order, servers one at
    a time (each waits until the previous one is ready again), agents after the last server;
    the preview names each node's service step."""
    configure(ha.stack, ha.config(rancher={"replicas": 2}, registries=CHANGED))
    changed = ha.stack.changed_resources()
    for name, _ in [*SERVERS, *AGENTS]:
        assert changed.get(f"{name}-service") == "replace", changed
        assert changed.get(f"{name}-registries") == "update", changed
    assert not [n for n in changed if n.endswith(("-install", "-config", "-uninstall"))], changed
    units = {name: "rke2-server" for name, _ in SERVERS} | {name: "rke2-agent" for name, _ in AGENTS}
    spawned_before = {n: len(unit_events(ha.hosts[n], u, "spawn")) for n, u in units.items()}
    ha.stack.up(timeout=1800)
    restart, ready_at = {}, {}
    for n, u in units.items():
        spawns = unit_events(ha.hosts[n], u, "spawn")
        assert len(spawns) == spawned_before[n] + 1, (n, ha.hosts[n].service_events(u))
        restart[n] = spawns[-1]
        readies = [t for t in unit_events(ha.hosts[n], u, "ready") if t >= restart[n]]
        assert readies, (n, ha.hosts[n].service_events(u))
        ready_at[n] = readies[0]
    names = [n for n, _ in SERVERS]
    for prev, nxt in zip(names, names[1:]):
        assert restart[nxt] >= ready_at[prev], f"{nxt} restarted at {restart[nxt]} before {prev} was ready at {ready_at[prev]}"
    for agent, _ in AGENTS:
        assert restart[agent] >= ready_at[names[-1]], f"{agent} restarted before the last server was ready"
    for name, _ in [*SERVERS, *AGENTS]:
        assert "registry2.lab.internal" in ha.hosts[name].path("/etc/rancher/rke2/registries.yaml").read_text()
    # The cluster came back whole: every Node Ready, Rancher's replicas Ready.
    want = {n: "True" for n, _ in [*SERVERS, *AGENTS]}
    assert settled(lambda: node_readiness(ha.kubectl), want) == want
