"""Self-tests of the real upstream parts (tests/lab/realparts) inside lab network namespaces:
etcd v3.5 with RKE2's TLS layout, kube-apiserver against it, kubectl, kwok.

Each test names the upstream code it models; expectations come from etcd's, Kubernetes'
and k3s's sources (read with the search tool), never from the product's code. The parts are
built by tests/lab/realparts/build.sh on a cache miss (minutes, once per pin set).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab.realparts import (ApiServer, ClusterCAs, EtcdMember, PartsError, Proc,
                                 ensure_parts, parts_unavailable_reason)
from tests.lab.realparts.parts import wait_for
from tests.lab.realparts.pki import CLIENT_AUTH

pytestmark = requires_lab()
REPO = Path(__file__).resolve().parents[2]


def _pin(name: str) -> str:
    for line in (REPO / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise KeyError(name)


@pytest.fixture(scope="session")
def parts_bin() -> Path:
    """The built parts; builds them on a cache miss. Skips only when they cannot be built."""
    reason = parts_unavailable_reason()
    if reason:
        pytest.skip(reason)
    t0 = time.monotonic()
    bin_dir = ensure_parts()
    print(f"lab parts ready in {time.monotonic() - t0:.0f}s: {bin_dir}")
    return bin_dir


def ok(res, what: str) -> str:
    assert res.returncode == 0, f"{what}: rc={res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def member_by_peer(members: list[dict], peer_url: str) -> dict:
    found = [m for m in members if peer_url in m.get("peerURLs", [])]
    assert len(found) == 1, f"no single member with {peer_url}: {members}"
    return found[0]


def promote(leader: EtcdMember, joiner: EtcdMember, timeout: float = 60) -> list[str]:
    """Promote `joiner` as k3s `trackLearnerProgress` does: MemberPromote, retried while
    etcd answers ErrLearnerNotReady. Returns the refusals seen."""
    member_id = format(member_by_peer(leader.members(), joiner.peer_url)["ID"], "x")
    refusals = []
    deadline = time.monotonic() + timeout
    while True:
        res = leader.ctl("member", "promote", member_id)
        if res.returncode == 0:
            return refusals
        refusals.append(res.stderr.strip())
        # etcd v3.5 api/v3rpc/rpctypes/error.go ErrGRPCLearnerNotReady
        assert "can only promote a learner member which is in sync with leader" in res.stderr, res.stderr
        assert time.monotonic() < deadline, f"learner never caught up: {refusals[-1]}"
        time.sleep(1)


def add_learner(leader: EtcdMember, joiner: EtcdMember, timeout: float = 60) -> tuple[str, list[str]]:
    """MemberAddAsLearner as k3s `(*ETCD).join` calls it; on etcd's ErrUnhealthy (v3.5.21
    server/etcdserver/server.go `mayAddMember`: with --strict-reconfig-check, the leader must
    have been connected to every voting member for HealthInterval = 5 s, so an add right
    after a promotion is refused) k3s's join fails and the service restarts and tries
    again; here: retried. Returns etcdctl's output and the refusals seen."""
    refusals = []
    deadline = time.monotonic() + timeout
    while True:
        res = leader.ctl("member", "add", joiner.name, f"--peer-urls={joiner.peer_url}", "--learner")
        if res.returncode == 0:
            return res.stdout, refusals
        refusals.append(res.stderr.strip().splitlines()[-1])
        assert "etcdserver: unhealthy cluster" in res.stderr, res.stderr
        assert time.monotonic() < deadline, f"learner add refused for {timeout}s: {refusals[-1]}"
        time.sleep(1)


def k3s_membership_error(members: list[dict], name: str, peer_url: str) -> str | None:
    """k3s pkg/etcd/etcd.go (*ETCD).Test, written out independently: the local node is a
    member when some member has its name AND its current peer URL; otherwise k3s returns
    "this server is a not a member of the etcd cluster. Found [...], expect: name=url"."""
    found = []
    for m in members:
        if m.get("name") == name and peer_url in m.get("peerURLs", []):
            return None
        if m.get("peerURLs"):
            found.append(f"{m.get('name')}={m['peerURLs'][0]}")
    return (f"this server is a not a member of the etcd cluster. Found [{' '.join(found)}], "
            f"expect: {name}={peer_url}")


# --- (a) joining as learners ------------------------------------------------------------

def test_etcd_members_join_as_learners_promoted_one_at_a_time(module_lab, parts_bin, tmp_path):
    """Models k3s pkg/etcd/etcd.go `(*ETCD).join` (MemberAddAsLearner with the node's peer
    URL, then etcd started with initial-cluster-state=existing) and `trackLearnerProgress`
    (MemberPromote, retried); etcd v3.5.21 server/etcdserver/api/membership/cluster.go
    `ValidateConfigurationChange` (maxLearners = 1: a second learner is refused)."""
    t0 = time.monotonic()
    cas = ClusterCAs()
    hosts = [module_lab.add_host(f"etcd{i}", f"10.77.0.{10 + i}") for i in (1, 2, 3)]
    m1, m2, m3 = (EtcdMember(parts_bin, h, tmp_path / h.name) for h in hosts)
    for m in (m1, m2, m3):
        m.write_certs(cas)
    m1.start()
    m1.wait_healthy()
    ok(m1.ctl("put", "/lab/written-before-join", "v1"), "put")

    cluster = f"{m1.name}={m1.peer_url}"
    for joiner, other in ((m2, m3), (m3, None)):
        out, add_refusals = add_learner(m1, joiner)
        assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in out
        learner = member_by_peer(m1.members(), joiner.peer_url)
        assert learner.get("isLearner") is True
        if other is not None:
            # One learner at a time: etcd refuses a second one until the first is promoted.
            res = m1.ctl("member", "add", other.name, f"--peer-urls={other.peer_url}", "--learner")
            assert res.returncode != 0
            assert "etcdserver: too many learner members in cluster" in res.stderr, res.stderr
        cluster += f",{joiner.name}={joiner.peer_url}"
        joiner.start(initial_cluster=cluster, state="existing")
        refusals = promote(m1, joiner)
        print(f"{joiner.name}: added after {len(add_refusals)} 'unhealthy cluster' refusal(s), "
              f"promoted after {len(refusals)} 'not in sync' refusal(s)")
        assert member_by_peer(m1.members(), joiner.peer_url).get("isLearner") is not True

    # Every member answers on its own address with the same voting membership and the data.
    for m in (m1, m2, m3):
        members = m.members(endpoint=m.client_url)
        assert sorted(x["name"] for x in members) == sorted((m1.name, m2.name, m3.name))
        assert not any(x.get("isLearner") for x in members)
        assert {x["peerURLs"][0] for x in members} == {m1.peer_url, m2.peer_url, m3.peer_url}
        got = ok(m.ctl("get", "/lab/written-before-join", "--print-value-only",
                       endpoint=m.client_url), "get")
        assert got.strip() == "v1"
    # client-cert-auth: without the etcd client certificate the server refuses the client.
    res = m1.ctl("get", "/lab/written-before-join", client_cert=False, timeout=15)
    assert res.returncode != 0
    for m in (m3, m2, m1):
        m.stop()
    print(f"3-member join: {time.monotonic() - t0:.1f}s")


# --- (b) a moved member, (c) --force-new-cluster -----------------------------------------

def _move(host, new_address: str, member: EtcdMember, cas: ClusterCAs) -> None:
    """The server moved: new address, same data dir. Its etcd leaves are re-issued with the
    new IP as k3s deps.go `createClientCertKey` does when `fieldsChanged` (a wanted IP SAN is
    missing); the CAs stay."""
    host.readdress(new_address)
    member.write_certs(cas)


def test_moved_member_keeps_its_stale_peer_url(module_lab, parts_bin, tmp_path):
    """etcd v3.5.21 server/etcdserver/server.go `NewServer`: with a WAL on disk (`haveWAL`)
    the membership comes from the data dir and --initial-* flags are ignored, so a member
    restarted at a new address keeps its old peer URL (it only re-publishes its client
    URLs). The "not a member of the etcd cluster" error is k3s's own check
    (pkg/etcd/etcd.go `(*ETCD).Test`), not etcd's."""
    cas = ClusterCAs()
    host = module_lab.add_host("moved1", "10.77.0.21")
    m = EtcdMember(parts_bin, host, tmp_path / host.name)
    m.write_certs(cas)
    m.start()
    m.wait_healthy()
    ok(m.ctl("put", "/lab/before-move", "kept"), "put")
    old_peer = m.peer_url
    m.stop()

    _move(host, "10.77.0.31", m, cas)
    proc = m.start()
    m.wait_healthy(endpoint=m.client_url)
    members = m.members()
    assert len(members) == 1
    assert members[0]["peerURLs"] == [old_peer], members   # not updated from the flags
    assert members[0]["clientURLs"] == [m.client_url], members  # re-published at start
    assert ok(m.ctl("get", "/lab/before-move", "--print-value-only"), "get").strip() == "kept"
    assert proc.running()

    k3s_error = k3s_membership_error(members, m.name, m.peer_url)
    assert k3s_error is not None and old_peer in k3s_error and m.peer_url in k3s_error
    etcd_log = proc.text().split("=== ")[-1]
    assert "not a member" not in etcd_log
    complaints = [json.loads(line).get("msg") for line in etcd_log.splitlines()
                  if line.startswith("{") and ('"level":"warn"' in line or '"level":"error"' in line)]
    print(f"k3s would say: {k3s_error}")
    print(f"etcd's own warnings/errors after the move: {sorted(set(filter(None, complaints)))}")
    m.stop()


def test_force_new_cluster_recovers_moved_member_with_data(module_lab, parts_bin, tmp_path):
    """A 2-server cluster whose first server moved while the second is gone. etcd v3.5.21
    server/etcdserver/raft.go `restartAsStandaloneNode` (--force-new-cluster): removes every
    other member, keeps the data and this member's stored entry (old peer URL). k3s
    pkg/etcd/etcd.go `(*ETCD).Reset` + `listenPeerURLs(reset)` runs it on loopback only,
    then, while `Test` fails and one member is left, calls MemberUpdate with the node's peer
    URL; a normal start follows ("restart without --cluster-reset")."""
    cas = ClusterCAs()
    h1 = module_lab.add_host("reset1", "10.77.0.24")
    h2 = module_lab.add_host("reset2", "10.77.0.25")
    m1 = EtcdMember(parts_bin, h1, tmp_path / h1.name)
    m2 = EtcdMember(parts_bin, h2, tmp_path / h2.name)
    for m in (m1, m2):
        m.write_certs(cas)
    m1.start()
    m1.wait_healthy()
    add_learner(m1, m2)
    m2.start(initial_cluster=f"{m1.name}={m1.peer_url},{m2.name}={m2.peer_url}", state="existing")
    promote(m1, m2)
    ok(m1.ctl("put", "/lab/before-reset", "kept"), "put")
    old_peer = m1.peer_url
    m2.stop()
    m1.stop()

    _move(h1, "10.77.0.34", m1, cas)
    # Without a reset: 1 of 2 voters, no quorum, never healthy.
    t_phase = time.monotonic()
    proc = m1.start()
    time.sleep(6)  # more than one election timeout (5 s)
    assert not m1.healthy(timeout=10), "a lone member of two must not have quorum"
    m1.stop()
    print(f"no-quorum phase {time.monotonic() - t_phase:.1f}s")
    t_phase = time.monotonic()
    assert "not a member" not in proc.text().split("=== ")[-1]

    m1.start(reset=True)
    m1.wait_healthy()  # on https://127.0.0.1:2379 only (reset listens on loopback)
    assert not m1.healthy(endpoint=m1.client_url, timeout=6)
    members = m1.members()
    assert [x["name"] for x in members] == [m1.name], members   # m2 removed
    assert members[0]["peerURLs"] == [old_peer], members
    assert ok(m1.ctl("get", "/lab/before-reset", "--print-value-only"), "get").strip() == "kept"
    assert k3s_membership_error(members, m1.name, m1.peer_url) is not None
    ok(m1.ctl("member", "update", format(members[0]["ID"], "x"), f"--peer-urls={m1.peer_url}"),
       "member update")
    members = m1.members()
    assert members[0]["peerURLs"] == [m1.peer_url]
    assert k3s_membership_error(members, m1.name, m1.peer_url) is None
    m1.stop()

    print(f"reset phase {time.monotonic() - t_phase:.1f}s")
    t_phase = time.monotonic()
    m1.start()  # normal start at the new address
    m1.wait_healthy(endpoint=m1.client_url)
    print(f"restart phase {time.monotonic() - t_phase:.1f}s")
    assert ok(m1.ctl("get", "/lab/before-reset", "--print-value-only",
                     endpoint=m1.client_url), "get").strip() == "kept"
    m1.stop()


# --- (d) kube-apiserver, (e) kwok ----------------------------------------------------------

@pytest.fixture(scope="module")
def control_plane(module_lab, parts_bin, tmp_path_factory):
    """One server: etcd + kube-apiserver in host cp1's namespace, server name in tls-san."""
    root = tmp_path_factory.mktemp("cp1")
    host = module_lab.add_host("cp1", "10.77.0.41")
    cas = ClusterCAs()
    etcd = EtcdMember(parts_bin, host, root)
    etcd.write_certs(cas)
    api = ApiServer(parts_bin, host, root)
    api.write_certs(cas, tls_sans=["cp1.lab.example"])
    module_lab.set_host_entry("cp1.lab.example", host.address)
    etcd.start()
    etcd.wait_healthy()
    t0 = time.monotonic()
    api.start()
    kubeconfig = api.admin_kubeconfig(server="https://cp1.lab.example:6443")

    def kubectl(*args, kc=kubeconfig, timeout=60):
        return module_lab.run([str(parts_bin / "kubectl"), f"--kubeconfig={kc}", *args],
                              timeout=timeout)

    def ready():
        if not api.proc.running():
            raise PartsError(f"kube-apiserver exited:\n{api.proc.text()[-3000:]}")
        res = kubectl("get", "--raw", "/readyz", timeout=20)
        return res.returncode == 0 and res.stdout.strip() == "ok"

    wait_for(ready, 120, "kube-apiserver /readyz", interval=1)
    print(f"kube-apiserver ready in {time.monotonic() - t0:.1f}s")
    yield {"lab": module_lab, "host": host, "etcd": etcd, "api": api, "kubectl": kubectl, "kubeconfig": kubeconfig,
           "cas": cas, "root": root}
    api.stop()
    etcd.stop()


def test_kube_apiserver_on_real_etcd_with_client_cert_auth(control_plane, parts_bin):
    """k3s pkg/daemons/control/server.go `apiServer`: etcd over TLS with the etcd client cert,
    serving cert from the server CA, client-cert auth from the client CA, anonymous off.
    Kubernetes stores a ConfigMap at /registry/configmaps/<ns>/<name> (k8s.io/apiserver
    pkg/storage/etcd3, default prefix /registry)."""
    kubectl = control_plane["kubectl"]
    assert ok(kubectl("get", "--raw", "/readyz"), "readyz").strip() == "ok"
    version = json.loads(ok(kubectl("version", "-o", "json"), "version"))
    assert version["serverVersion"]["gitVersion"] == _pin("KUBERNETES_VERSION")
    assert version["clientVersion"]["gitVersion"] == _pin("KUBERNETES_VERSION")

    ok(kubectl("create", "configmap", "lab-probe", "-n", "default",
               "--from-literal=written-by=test_realparts"), "create configmap")
    got = ok(kubectl("get", "configmap", "lab-probe", "-n", "default",
                     "-o", "jsonpath={.data.written-by}"), "get configmap")
    assert got == "test_realparts"
    keys = ok(control_plane["etcd"].ctl("get", "/registry/configmaps/default/lab-probe",
                                        "--keys-only"), "etcdctl get")
    assert keys.strip() == "/registry/configmaps/default/lab-probe"

    # No client certificate, or one from another CA: anonymous auth is off, so 401.
    tls = control_plane["api"].tls
    lab = control_plane["lab"]
    ca_pem = (tls / "server-ca.crt").read_text()
    res = lab.https_get("https://cp1.lab.example:6443/readyz", ca_pem=ca_pem)
    assert res.get("status") == 401, res
    stranger_crt, stranger_key = ClusterCAs().client.issue(
        "system:admin", [CLIENT_AUTH], orgs=("system:masters",))
    res = lab.https_get("https://cp1.lab.example:6443/readyz", ca_pem=ca_pem,
                        cert_pem=stranger_crt.decode(), key_pem=stranger_key.decode())
    assert res.get("status") == 401, res
    res = lab.https_get("https://cp1.lab.example:6443/readyz", ca_pem=ca_pem,
                        cert_pem=(tls / "client-admin.crt").read_text(),
                        key_pem=(tls / "client-admin.key").read_text())
    assert res.get("status") == 200 and res.get("body", "").strip() == "ok", res
    # A name that resolves to the server but is not in the serving cert's SANs fails
    # verification (the tls-san name above is what makes cp1.lab.example work).
    from tests.lab.realparts.pki import kubeconfig as make_kubeconfig
    lab.set_host_entry("not-in-san", control_plane["host"].address)
    other = control_plane["root"] / "by-other-name.yaml"
    other.write_text(make_kubeconfig("https://not-in-san:6443", tls / "server-ca.crt",
                                     tls / "client-admin.crt", tls / "client-admin.key"))
    res = kubectl("get", "--raw", "/readyz", kc=other, timeout=30)
    assert res.returncode != 0 and "x509" in res.stderr, res.stderr


def test_kwok_makes_a_node_for_a_host_ready(module_lab, control_plane, parts_bin):
    """sigs.k8s.io/kwok v0.7.0 pkg/kwok/cmd/root.go: with no Stage config kwok uses its
    default node stages (kustomize/stage/node/fast: node-initialize sets the Ready
    condition) for the nodes it manages (--manage-nodes-with-annotation-selector); other
    nodes are left alone."""
    host = module_lab.add_host("agent1", "10.77.0.51")
    kubectl = control_plane["kubectl"]
    root = control_plane["root"]
    kc_local = control_plane["api"].admin_kubeconfig(server="https://127.0.0.1:6443",
                                                       name="kwok.kubeconfig")
    kwok = Proc([str(parts_bin / "kwok"), f"--kubeconfig={kc_local}",
                 "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                 f"--node-ip={host.address}"],
                control_plane["host"].netns, root / "logs/kwok.log")
    try:
        nodes = {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Node",
             "metadata": {"name": host.name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                          "labels": {"kubernetes.io/hostname": host.name}}},
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "unmanaged1"}}]}
        manifest = root / "nodes.json"
        manifest.write_text(json.dumps(nodes))
        ok(kubectl("apply", "-f", str(manifest)), "apply nodes")
        res = kubectl("wait", "--for=condition=Ready", f"node/{host.name}", "--timeout=90s",
                      timeout=120)
        assert res.returncode == 0, f"{res.stderr}\nkwok log:\n{kwok.text()[-3000:]}"
        node = json.loads(ok(kubectl("get", "node", host.name, "-o", "json"), "get node"))
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
        other = json.loads(ok(kubectl("get", "node", "unmanaged1", "-o", "json"), "get node"))
        assert not [c for c in other.get("status", {}).get("conditions", [])
                    if c["type"] == "Ready" and c["status"] == "True"]
        assert kwok.running()
        print("RSS MiB: etcd %d, kube-apiserver %d, kwok %d" % (
            control_plane["etcd"].proc.rss_kib() // 1024,
            control_plane["api"].proc.rss_kib() // 1024, kwok.rss_kib() // 1024))
    finally:
        kwok.stop()


def test_deployment_pod_runs_on_a_kwok_node(module_lab, control_plane, parts_bin):
    """What Helm-installed workloads need: kube-controller-manager (k3s `controllerManager`:
    its own client cert, the service-account key) creates the ReplicaSet and Pod of a
    Deployment and the namespace's default ServiceAccount; kube-scheduler (k3s `scheduler`)
    binds the Pod to a Ready node; kwok's default pod stages (kustomize/stage/pod/fast
    pod-ready) report it Running. A Deployment pinned to a node that is not managed by kwok
    stays Pending."""
    kubectl = control_plane["kubectl"]
    api = control_plane["api"]
    root = control_plane["root"]
    host = module_lab.add_host("agent2", "10.77.0.52")
    kcm, sched = api.start_controllers()
    kc_local = api.admin_kubeconfig(server="https://127.0.0.1:6443", name="kwok2.kubeconfig")
    kwok = Proc([str(parts_bin / "kwok"), f"--kubeconfig={kc_local}",
                 "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                 f"--node-ip={host.address}"],
                control_plane["host"].netns, root / "logs/kwok2.log")
    t0 = time.monotonic()
    try:
        def deployment(name: str, node: str) -> dict:
            labels = {"app": name}
            return {"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels},
                                          "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                                                   "containers": [{"name": "c", "image": "lab/none:1"}]}}}}
        objects = {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Node",
             "metadata": {"name": host.name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                          "labels": {"kubernetes.io/hostname": host.name}}},
            deployment("on-kwok", host.name), deployment("on-nowhere", "no-such-node")]}
        manifest = root / "deployments.json"
        manifest.write_text(json.dumps(objects))
        ok(kubectl("apply", "-f", str(manifest)), "apply")
        res = kubectl("rollout", "status", "deployment/on-kwok", "-n", "default", "--timeout=120s",
                      timeout=150)
        logs = "\n".join(f"{p.log.name}:\n{p.text()[-1500:]}" for p in (kcm, sched, kwok))
        assert res.returncode == 0, f"{res.stdout}{res.stderr}\n{logs}"
        pods = json.loads(ok(kubectl("get", "pods", "-n", "default", "-o", "json"), "get pods"))
        by_app = {p["metadata"]["labels"]["app"]: p for p in pods["items"]}
        assert by_app["on-kwok"]["spec"]["nodeName"] == host.name
        assert by_app["on-kwok"]["status"]["phase"] == "Running"
        assert by_app["on-nowhere"]["status"]["phase"] == "Pending"
        assert not by_app["on-nowhere"]["spec"].get("nodeName")
        sa = kubectl("get", "serviceaccount", "default", "-n", "default")
        assert sa.returncode == 0, sa.stderr
        print(f"Deployment Running in {time.monotonic() - t0:.1f}s; RSS MiB: "
              f"kube-controller-manager {kcm.rss_kib() // 1024}, kube-scheduler {sched.rss_kib() // 1024}")
        assert kcm.running() and sched.running()
    finally:
        for p in (kwok, sched, kcm):
            p.stop()


def test_etcd_as_a_notify_unit_in_a_systemd_host(module_lab, parts_bin, tmp_path):
    """The real etcd as a Type=notify systemd unit on a real systemd host (stand-in v2's
    shape): etcd v3.5.21 server/etcdmain/main.go `notifySystemd` sends READY=1 once it
    serves, so `systemctl start` returns only then (systemd.service(5), Type=notify); RKE2
    paths in the host, parts bound read-only; a client on the workstation reaches it over
    TLS at the host's address with the etcd client cert."""
    from tests.lab.systemd_hosts import add_systemd_host, nspawn_unavailable_reason
    from tests.lab.realparts.parts import etcd_args
    from tests.lab.realparts.pki import node_sans
    reason = nspawn_unavailable_reason()
    if reason:
        pytest.skip(reason)
    host = add_systemd_host(module_lab, "sysetcd1", "10.77.0.81",
                            binds_ro=((parts_bin, "/opt/rk2lab-parts"),))
    cas = ClusterCAs()
    tls = "/var/lib/rancher/rke2/server/tls"
    cas.write_etcd(host.path(tls), node_sans(host.name, [host.address]))
    argv = etcd_args("/opt/rk2lab-parts/etcd", f"{host.name}-0a1b2c3d", host.address,
                     Path("/var/lib/rancher/rke2/server/db/etcd"), Path(tls))
    host.write_file("/etc/systemd/system/lab-etcd.service",
                    "[Unit]\nDescription=real etcd (lab)\n[Service]\nType=notify\n"
                    f"ExecStart={' '.join(argv)}\nTimeoutStartSec=90\nRestart=no\n"
                    "[Install]\nWantedBy=multi-user.target\n")
    t0 = time.monotonic()
    rc, out, err = host.ssh("systemctl daemon-reload && timeout 100 systemctl start lab-etcd.service")
    started = time.monotonic() - t0
    assert rc == 0, f"{out}{err}\n{host.journal('lab-etcd.service')[-3000:]}"
    rc, out, _ = host.ssh("systemctl is-active lab-etcd.service")
    assert out.strip() == "active"
    journal = host.journal("lab-etcd.service")
    assert "successfully notified init daemon" in journal, journal[-3000:]

    ws = tmp_path / "workstation-tls"
    cas.write_etcd(ws, node_sans("workstation", [module_lab.gateway]))
    e = ws / "etcd"
    res = module_lab.run([str(parts_bin / "etcdctl"), f"--endpoints=https://{host.address}:2379",
                          f"--cacert={e / 'server-ca.crt'}", f"--cert={e / 'client.crt'}",
                          f"--key={e / 'client.key'}", "put", "/lab/from-workstation", "ok"],
                         timeout=30)
    assert res.returncode == 0, res.stderr
    rc, out, _ = host.ssh("systemctl stop lab-etcd.service; systemctl is-active lab-etcd.service")
    assert out.strip() == "inactive"
    print(f"systemctl start lab-etcd.service returned after {started:.1f}s (READY=1)")
