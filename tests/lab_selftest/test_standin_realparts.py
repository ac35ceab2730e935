"""Self-test of stand-in v2's etcd management (tests/lab/standin/realparts.py) on the real
etcd in lab hosts. Expectations are written from k3s pkg/etcd/etcd.go and etcd v3.5's
behaviour (see each step), not from the glue."""
from __future__ import annotations

import base64
import json
import time

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab.realparts import ClusterCAs, ensure_parts, parts_unavailable_reason
from tests.lab.realparts.pki import node_sans
from tests.lab.standin.realparts import ManagedEtcd

pytestmark = requires_lab()


@pytest.fixture(scope="session")
def parts_bin():
    reason = parts_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return ensure_parts()


def _server(lab, parts_bin, tmp_path, cas, name, ip):
    host = lab.add_host(name, ip)
    data = tmp_path / name / "var/lib/rancher/rke2"
    cas.write_etcd(data / "server/tls", node_sans(name, [ip]))
    glue = ManagedEtcd(data, name, ip, parts_bin, wrap=["nsenter", f"--net=/run/netns/{host.netns}", "--"])
    return host, glue


def _value(glue: ManagedEtcd, key: str, endpoint: str | None = None) -> str | None:
    res = glue.ctl("get", key, endpoints=[endpoint] if endpoint else None)
    assert res.returncode == 0, res.stderr
    kvs = json.loads(res.stdout).get("kvs") or []
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def _promote_until_voter(leader: ManagedEtcd, joiner: ManagedEtcd, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader.promote_learners()
        if joiner.test() is None:
            return
        time.sleep(1)
    raise AssertionError(f"{joiner.node_name} never became a voter: {joiner.test()}")


def test_ha_join_move_and_recover_by_member_update(module_lab, parts_bin, tmp_path):
    """3 servers join one at a time (k3s `join` + `manageLearners`); server 1 moves: its
    etcd runs on the old data dir but k3s's `Test` fails with the old peer URL in the
    message (etcd keeps membership from its WAL); updating its peer URL from a healthy peer
    (etcdctl member update, the fix users apply for k3s) makes `Test` pass and the 3-member
    cluster whole again, data kept."""
    t0 = time.monotonic()
    cas = ClusterCAs()
    h1, s1 = _server(module_lab, parts_bin, tmp_path, cas, "glue1", "10.77.0.61")
    _, s2 = _server(module_lab, parts_bin, tmp_path, cas, "glue2", "10.77.0.62")
    _, s3 = _server(module_lab, parts_bin, tmp_path, cas, "glue3", "10.77.0.63")
    try:
        assert s1.start() == "new cluster"
        s1.wait_ready()
        assert s1.ctl("put", "/lab/ha", "kept").returncode == 0
        for joiner in (s2, s3):
            for _ in range(30):  # k3s: the join fails and the service restarts until it works
                try:
                    assert joiner.start(s1.info()) == "joined"
                    break
                except Exception as e:  # noqa: BLE001 - the refusal text is checked below
                    assert "unhealthy cluster" in str(e) or "too many learner" in str(e), e
                    time.sleep(1)
            assert joiner.test() in (None, "this server has not yet been promoted from "
                                           "learner to voting member")
            _promote_until_voter(s1, joiner)
        assert len(s1.info()["members"]) == 3
        t_join = time.monotonic() - t0

        old_peer = s1.peer_url
        s1.stop()
        h1.readdress("10.77.0.71")
        s1.node_ip = "10.77.0.71"
        cas.write_etcd(s1.data_dir / "server/tls", node_sans("glue1", ["10.77.0.71"]))
        assert s1.start() == "existing data"
        time.sleep(3)
        err = None
        for _ in range(20):
            try:
                err = s1.test()
                break
            except Exception:  # noqa: BLE001 - not answering yet
                time.sleep(1)
        assert err is not None and "not a member of the etcd cluster" in err and old_peer in err, err
        print(f"k3s Test after the move: {err}")

        # From a healthy peer: the moved member's peer URL is updated.
        s1_id = next(m["ID"] for m in s2.info()["members"] if m.get("name") == s1.name())
        res = s2.ctl("member", "update", format(s1_id, "x"), f"--peer-urls={s1.peer_url}")
        assert res.returncode == 0, res.stderr
        s1.wait_ready(60)
        members = s2.info()["members"]
        assert sorted(m["peerURLs"][0] for m in members) == sorted(
            [s1.peer_url, s2.peer_url, s3.peer_url])
        assert _value(s1, "/lab/ha", s1.client_url) == "kept"
        assert s3.ctl("put", "/lab/after-move", "ok", endpoints=[s1.client_url]).returncode == 0
        assert _value(s2, "/lab/after-move", s2.client_url) == "ok"
        print(f"join 3: {t_join:.1f}s, move + recover: {time.monotonic() - t0 - t_join:.1f}s")
    finally:
        for s in (s3, s2, s1):
            s.stop()


def test_cluster_reset_of_moved_single_server(module_lab, parts_bin, tmp_path):
    """k3s `(*ETCD).Reset`: force-new-cluster on loopback, MemberUpdate to the node's peer
    URL, then the "restart without --cluster-reset" message; the next normal start passes
    `Test` at the new address."""
    cas = ClusterCAs()
    h, s = _server(module_lab, parts_bin, tmp_path, cas, "glue4", "10.77.0.64")
    try:
        s.start()
        s.wait_ready()
        assert s.ctl("put", "/lab/single", "kept").returncode == 0
        s.stop()
        h.readdress("10.77.0.74")
        s.node_ip = "10.77.0.74"
        cas.write_etcd(s.data_dir / "server/tls", node_sans("glue4", ["10.77.0.74"]))
        s.start()
        time.sleep(2)
        assert "not a member" in (s.test() or "")
        msg = s.cluster_reset()
        assert msg.startswith("Etcd is running, restart without --cluster-reset flag now")
        assert s.start() == "existing data"
        s.wait_ready()
        assert _value(s, "/lab/single") == "kept"
        assert len(s.info()["members"]) == 1
    finally:
        s.stop()


def test_server_prototype_as_rke2_server_unit_on_a_systemd_host(module_lab, parts_bin, tmp_path):
    """Stand-in v2's shape (tests/lab/standin/realparts_server.py) on real systemd hosts:
    `timeout 180 systemctl start rke2-server` returns once the unit sends READY=1 (RKE2's
    unit is Type=notify), then the RKE2 contract holds: rke2.yaml mode 0600, the server's
    own kubectl lists its Node Ready, the API answers on 6443 through a tls-san name; an
    agent host's unit registers its Node with node credentials and it is Ready too; when
    the agent host powers off, its Node turns Ready=Unknown."""
    from tests.lab.systemd_hosts import add_systemd_host, nspawn_unavailable_reason
    from tests.lab.realparts.pki import kubeconfig
    from tests.lab.realparts.pki import write_agent
    from tests.lab.standin.realparts_server import AGENT_UNIT, UNIT, agent_script, server_script
    reason = nspawn_unavailable_reason()
    if reason:
        pytest.skip(reason)
    host = add_systemd_host(module_lab, "proto1", "10.77.0.91",
                            binds_ro=((parts_bin, "/opt/rk2lab-parts"),))
    module_lab.set_host_entry("proto1.lab.example", host.address)
    cas = ClusterCAs()
    tls = host.path("/var/lib/rancher/rke2/server/tls")
    sans = node_sans(host.name, [host.address])
    cas.write_etcd(tls, sans)
    cas.write_server(tls, sans + ["proto1.lab.example"])
    host.write_file("/usr/local/bin/rke2-server-proto",
                    server_script("/opt/rk2lab-parts", host.name, host.address, "proto1-0a1b2c3d"),
                    0o755)
    host.write_file("/etc/systemd/system/rke2-server.service", UNIT)
    t0 = time.monotonic()
    rc, out, err = host.ssh("systemctl daemon-reload && timeout 180 systemctl start rke2-server",
                            timeout=200)
    started = time.monotonic() - t0
    assert rc == 0, f"{out}{err}\n{host.journal('rke2-server.service')[-3000:]}"
    rc, out, _ = host.ssh("stat -c %a /etc/rancher/rke2/rke2.yaml")
    assert out.strip() == "600"
    rc, out, err = host.ssh("/var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml "
                            "get node proto1 -o json")
    assert rc == 0, err
    conditions = {c["type"]: c["status"] for c in json.loads(out)["status"]["conditions"]}
    assert conditions.get("Ready") == "True"

    ws = tmp_path / "ws.kubeconfig"
    ws.write_text(kubeconfig("https://proto1.lab.example:6443", tls / "server-ca.crt",
                             tls / "client-admin.crt", tls / "client-admin.key"))
    res = module_lab.run([str(parts_bin / "kubectl"), f"--kubeconfig={ws}", "get", "--raw",
                          "/readyz"], timeout=30)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    mem = host.memory_kib()

    # An agent registers its own Node with kubelet credentials (system:node:<name>) and
    # keeps it Ready; the Node authorizer + NodeRestriction (k8s plugin/pkg/admission/
    # noderestriction) forbid it to modify another node.
    agent = add_systemd_host(module_lab, "proto-agent1", "10.77.0.92",
                             binds_ro=((parts_bin, "/opt/rk2lab-parts"),))
    write_agent(cas, agent.path("/var/lib/rancher/rke2/agent"), agent.name)
    agent.write_file("/usr/local/bin/rke2-agent-proto",
                     agent_script("/opt/rk2lab-parts", agent.name, agent.address,
                                  "https://proto1.lab.example:6443"), 0o755)
    agent.write_file("/etc/systemd/system/rke2-agent.service", AGENT_UNIT)
    t1 = time.monotonic()
    rc, out, err = agent.ssh("systemctl daemon-reload && timeout 120 systemctl start rke2-agent",
                             timeout=140)
    agent_started = time.monotonic() - t1
    assert rc == 0, f"{out}{err}\n{agent.journal('rke2-agent.service')[-3000:]}"
    rc, out, err = host.ssh("/var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml "
                            "get nodes -o json")
    ready = {n["metadata"]["name"]: {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"]
             for n in json.loads(out)["items"]}
    assert ready == {"proto1": "True", "proto-agent1": "True"}, ready
    rc, out, err = agent.ssh("/opt/rk2lab-parts/kubectl --kubeconfig "
                             "/var/lib/rancher/rke2/agent/kubelet.kubeconfig label node proto1 lab=x")
    assert rc != 0 and "forbidden" in (out + err).lower(), out + err
    agent_mem = agent.memory_kib()

    # The agent host powers off: nothing renews its Node's status or Lease any more, and
    # kube-controller-manager's node lifecycle controller sets Ready=Unknown after
    # --node-monitor-grace-period (k8s pkg/controller/nodelifecycle, "NodeStatusUnknown").
    agent.stop()
    t2 = time.monotonic()

    def agent_ready_status():
        rc, out, _ = host.ssh("/var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml"
                              " get node proto-agent1 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}'")
        return out.strip()
    while agent_ready_status() == "True":
        assert time.monotonic() - t2 < 150, "the stopped agent's node stayed Ready"
        time.sleep(2)
    unknown_after = time.monotonic() - t2
    assert agent_ready_status() == "Unknown"

    rc, out, _ = host.ssh("systemctl stop rke2-server; systemctl is-active rke2-server")
    assert out.strip() == "inactive"
    print(f"rke2-server (prototype) READY after {started:.1f}s; host RSS {mem['rss'] // 1024} MiB, "
          f"PSS {mem['pss'] // 1024} MiB; agent READY after {agent_started:.1f}s, "
          f"RSS {agent_mem['rss'] // 1024} MiB; agent powered off -> Ready=Unknown after "
          f"{unknown_after:.0f}s")
