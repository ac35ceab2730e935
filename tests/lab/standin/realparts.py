"""Stand-in v2, first piece: RKE2's management of a REAL etcd, written from k3s
`pkg/etcd/etcd.go` (v1.33 era). Not wired into rke2_standin.py yet (see tests/lab/README.md,
"Stand-in v2"); self-test: tests/lab_selftest/test_standin_realparts.py.

Runs where the server runs (stdlib + realparts.parts.etcd_args; etcd/etcdctl from
`bin_dir`; shipping it into hosts is part of the v2 work), with RKE2's paths
under `data_dir` (/var/lib/rancher/rke2 on a host):

    server/db/etcd           etcd's data dir (k3s `dbDir`), member/wal = initialized
    server/db/etcd/name      member name `<node>-<8 hex>` (k3s `setName`)
    server/tls/etcd/*        CAs and leaves (tests/lab/realparts/pki.py writes them)

What each method models is named in its docstring; the etcd command line is
tests/lab/realparts/parts.py `etcd_args` (k3s `(*ETCD).cluster`).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

from tests.lab.realparts.parts import etcd_args

LEARNER_NOT_PROMOTED = "this server has not yet been promoted from learner to voting member"


class EtcdGlueError(RuntimeError):
    pass


class ManagedEtcd:
    def __init__(self, data_dir: Path, node_name: str, node_ip: str, bin_dir: Path,
                 wrap: list[str] | None = None, log: Path | None = None):
        """`wrap` prefixes every command (e.g. nsenter into a lab host's netns)."""
        self.data_dir, self.node_name, self.node_ip = Path(data_dir), node_name, node_ip
        self.bin, self.wrap = Path(bin_dir), list(wrap or [])
        self.db = self.data_dir / "server/db/etcd"
        self.tls = self.data_dir / "server/tls"
        self.log = log or self.data_dir / "agent/logs/etcd.log"
        self.proc: subprocess.Popen | None = None

    # --- identity (k3s setName, IsInitialized, peerURL) -----------------------------------
    @property
    def peer_url(self) -> str:
        return f"https://{self.node_ip}:2380"

    @property
    def client_url(self) -> str:
        return f"https://{self.node_ip}:2379"

    def name(self, force: bool = False) -> str:
        """k3s `setName`: read server/db/etcd/name, or write `<node>-<uuid[:8]>` on first use
        (or when `force`, as `Reset` does)."""
        f = self.db / "name"
        if f.exists() and not force:
            return f.read_text()
        self.db.mkdir(parents=True, exist_ok=True)
        os.chmod(self.db, 0o700)
        name = f"{self.node_name}-{uuid.uuid4().hex[:8]}"
        f.write_text(name)
        os.chmod(f, 0o600)
        return name

    def is_initialized(self) -> bool:
        """k3s `IsInitialized`: the WAL directory exists."""
        return (self.db / "member/wal").is_dir()

    # --- processes ------------------------------------------------------------------------
    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        if self.proc is not None and self.proc.poll() is None:
            raise EtcdGlueError("etcd is already running")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.wrap + argv, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc

    def stop(self, timeout: float = 20) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def ctl(self, *args: str, endpoints: list[str] | None = None,
            timeout: float = 20) -> subprocess.CompletedProcess:
        e = self.tls / "etcd"
        argv = [str(self.bin / "etcdctl"),
                f"--endpoints={','.join(endpoints or ['https://127.0.0.1:2379'])}",
                f"--cacert={e / 'server-ca.crt'}", f"--cert={e / 'client.crt'}",
                f"--key={e / 'client.key'}", "--dial-timeout=3s",
                f"--command-timeout={max(3, int(timeout) - 3)}s", "-w", "json", *args]
        return subprocess.run(self.wrap + argv, capture_output=True, text=True, timeout=timeout)

    def _json(self, *args: str, endpoints: list[str] | None = None) -> dict:
        res = self.ctl(*args, endpoints=endpoints)
        if res.returncode != 0:
            raise EtcdGlueError(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else
                                f"etcdctl {args[0]} failed")
        return json.loads(res.stdout)

    def args(self, initial_cluster: str | None = None, state: str = "new",
             reset: bool = False) -> list[str]:
        return etcd_args(self.bin / "etcd", self.name(), self.node_ip, self.db, self.tls,
                         initial_cluster, state, reset)

    # --- start / join (k3s Start, join, newCluster) ---------------------------------------
    def start(self, join_info: dict | None = None) -> str:
        """k3s `(*ETCD).Start`: initialized -> start on the data dir; no join info -> new
        cluster; else `join`. Returns which path was taken."""
        if self.is_initialized():
            self._spawn(self.args())
            return "existing data"
        if join_info is None:
            self._spawn(self.args())
            return "new cluster"
        self.join(join_info)
        return "joined"

    def join(self, join_info: dict) -> None:
        """k3s `(*ETCD).join`: `join_info` is the /db/info answer of a server ({"members":
        [...]}); the non-learner members' client URLs (but our own) are asked to add us as a
        LEARNER with our peer URL (unless already there), then etcd starts with
        initial-cluster-state=existing and every member's first peer URL. An add refused by
        etcd raises (k3s: `logrus.Fatalf("ETCD join failed")`, the service restarts)."""
        name = self.name()
        endpoints = [u for m in join_info.get("members", []) if not m.get("isLearner")
                     for u in m.get("clientURLs", []) if f"//{self.node_ip}:" not in u]
        members = self._json("member", "list", endpoints=endpoints)["members"]
        cluster, add = [], True
        for m in members:
            mname = m.get("name", "")
            for peer in m.get("peerURLs", []):
                host = peer.split("//", 1)[1].rsplit(":", 1)[0]
                if not mname and host == self.node_ip:
                    mname = name
                if mname == name and host == self.node_ip:
                    add = False
            if m.get("peerURLs"):
                cluster.append(f"{mname}={m['peerURLs'][0]}")
        if add:
            res = self.ctl("member", "add", name, f"--peer-urls={self.peer_url}", "--learner",
                           endpoints=endpoints)
            if res.returncode != 0:
                raise EtcdGlueError(f"ETCD join failed: {res.stderr.strip().splitlines()[-1]}")
            cluster.append(f"{name}={self.peer_url}")
        self._spawn(self.args(",".join(cluster), "existing"))

    def info(self) -> dict:
        """What k3s's supervisor serves at /db/info (`infoHandler`): the member list."""
        return {"members": self._json("member", "list")["members"]}

    # --- health (k3s Test) ----------------------------------------------------------------
    def test(self) -> str | None:
        """k3s `(*ETCD).Test`: None when this node is a voting member under its name AND
        current peer URL; else the error text k3s logs (and retries every 5 s on)."""
        status = self._json("endpoint", "status")
        if status and status[0]["Status"].get("isLearner"):
            return LEARNER_NOT_PROMOTED
        name = self.name()
        found = []
        for m in self._json("member", "list")["members"]:
            if m.get("name") == name and self.peer_url in m.get("peerURLs", []):
                return None
            if m.get("peerURLs"):
                found.append(f"{m.get('name', '')}={m['peerURLs'][0]}")
        return (f"this server is a not a member of the etcd cluster. Found [{' '.join(found)}], "
                f"expect: {name}={self.peer_url}")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until `test()` passes (k3s: the server's readiness waits on it)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise EtcdGlueError(f"etcd exited ({self.proc.returncode})")
            try:
                last = self.test() or ""
                if not last:
                    return
            except EtcdGlueError as e:
                last = str(e)
            time.sleep(1)
        raise EtcdGlueError(f"etcd not ready after {timeout}s: {last}")

    # --- learners (k3s manageLearners / trackLearnerProgress) -----------------------------
    def promote_learners(self) -> list[str]:
        """On the leader only: MemberPromote every learner; etcd refuses learners not in sync
        yet (tried again next round). Returns the names promoted now."""
        status = self._json("endpoint", "status")[0]["Status"]
        if status["header"]["member_id"] != status["leader"]:
            return []
        promoted = []
        for m in self._json("member", "list")["members"]:
            if m.get("isLearner"):
                res = self.ctl("member", "promote", format(m["ID"], "x"))
                if res.returncode == 0:
                    promoted.append(m.get("name", ""))
        return promoted

    # --- cluster reset (k3s Reset) --------------------------------------------------------
    def cluster_reset(self, timeout: float = 60) -> str:
        """k3s `(*ETCD).Reset` without a restore path: etcd with --force-new-cluster on
        loopback; once it answers, when `Test` fails and one member is left, MemberUpdate to
        the node's peer URL; when it passes, stop and return k3s's closing message."""
        self.stop()
        self._spawn(self.args(reset=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.test() is None:
                    self.stop()
                    return ("Etcd is running, restart without --cluster-reset flag now. Backup "
                            "and delete ${datadir}/server/db on each peer etcd server and "
                            "rejoin the nodes")
                members = self._json("member", "list")["members"]
                if len(members) == 1:
                    self._json("member", "update", format(members[0]["ID"], "x"),
                               f"--peer-urls={self.peer_url}")
            except EtcdGlueError:
                pass
            time.sleep(1)
        self.stop()
        raise EtcdGlueError(f"cluster reset did not finish in {timeout}s")
