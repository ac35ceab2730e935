"""Run the real upstream parts (etcd, kube-apiserver, kubectl, kwok; built by build.sh) inside
lab network namespaces, configured the way k3s/RKE2 configures them.

    bin_dir = ensure_parts()                        # builds on a cache miss (Go needed)
    cas = ClusterCAs()
    m1 = EtcdMember(bin_dir, host, data_root)       # host: a netlab Host (its netns, address)
    m1.write_certs(cas); m1.start(new_cluster=True)

Processes run on this machine's filesystem but in the host's network namespace (`nsenter
--net`), so they listen on the host's own address, and `Lab.close` kills what is left of
them with the rest of the namespace. Sources modelled:
- etcd flags: k3s `pkg/etcd/etcd.go` `(*ETCD).cluster` (listen/advertise URLs, TLS from the
  etcd server/peer CAs with client-cert auth, heartbeat 500 ms, election 5000 ms) and
  `listenPeerURLs`/`listenClientURLs`/`advertiseClientURLs` (loopback only during reset).
- kube-apiserver flags: k3s `pkg/daemons/control/server.go` `apiServer` (subset).
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .pki import ClusterCAs, kubeconfig, node_sans

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE / "build.sh"
PARTS = ("etcd", "etcdctl", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
         "kubectl", "kwok")


class PartsError(RuntimeError):
    pass


def parts_unavailable_reason() -> str | None:
    """Why the parts can neither be found nor built here (None when they can)."""
    import shutil
    if not shutil.which("go"):
        return "lab parts are not built and cannot be: `go` is not installed"
    return None


_ENSURED: Path | None = None
#: Where lab hosts see the parts (bound read-only; rke2-standin runs them).
PARTS_IN_HOST = "/opt/rk2lab-parts"


def ensured_parts_bin() -> Path | None:
    """The bin directory ensure_parts returned in this process, if it ran."""
    return _ENSURED


def ensure_parts(progress=sys.stderr) -> Path:
    """The bin directory of the built parts; runs build.sh (a no-op on a cache hit, minutes
    on a miss). Progress goes to `progress`."""
    global _ENSURED
    res = subprocess.run(["bash", str(BUILD_SH)], stdout=subprocess.PIPE, stderr=progress,
                         text=True)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        raise PartsError(f"tests/lab/realparts/build.sh failed ({res.returncode}); see its log")
    bin_dir = Path(lines[-1])
    missing = [p for p in PARTS if not (bin_dir / p).is_file()]
    if missing:
        raise PartsError(f"{bin_dir} lacks {missing}")
    _ENSURED = bin_dir
    return bin_dir


class Proc:
    """A long-running part in a network namespace, its output in a log file."""

    def __init__(self, argv: list[str], netns: str, log: Path, env: dict | None = None):
        self.argv, self.netns, self.log = argv, netns, log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            f.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(argv)}\n".encode())
            f.flush()
            self.popen = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{netns}", "--", *argv],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **(env or {})})

    def running(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_kib(self) -> int:
        """Resident memory of the part (nsenter execs it, so the pid is the part's)."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return self.popen.returncode


def wait_for(pred, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise PartsError(f"timed out after {timeout}s waiting for {what}")


def run_in(netns: str, argv: list[str], timeout: float = 60,
           input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", *argv], input=input,
                          capture_output=True, text=True, timeout=timeout)


# What kwok (the lab's kubelet stand-in on each node) needs; granted to group rk2lab:kwok.
KWOK_RBAC = {"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "rk2lab:kwok"},
     "rules": [{"apiGroups": [""], "resources": ["nodes", "pods"],
                "verbs": ["get", "list", "watch", "patch", "update"]},
               {"apiGroups": [""], "resources": ["nodes/status", "pods/status"],
                "verbs": ["get", "patch", "update"]},  # get: kubectl patch --subresource=status reads first
               {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
               {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "verbs": ["get", "list", "watch", "create", "update", "patch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "rk2lab:kwok"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rk2lab:kwok"},
     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "rk2lab:kwok"}]}]}


def etcd_args(etcd: Path | str, name: str, ip: str, data_dir: Path, tls: Path,
              initial_cluster: str | None = None, state: str = "new",
              reset: bool = False) -> list[str]:
    """etcd's command line as k3s `(*ETCD).cluster` configures it. `tls` is RKE2's
    server/tls; reset = `--cluster-reset`: ForceNewCluster, listening and advertising on
    loopback only (k3s `listenPeerURLs(reset)`, `listenClientURLs`, `advertiseClientURLs`)."""
    e = Path(tls) / "etcd"
    peer_url, client_url = f"https://{ip}:2380", f"https://{ip}:2379"
    listen_client = "https://127.0.0.1:2379" + ("" if reset else f",{client_url}")
    listen_peer = "https://127.0.0.1:2380" + ("" if reset else f",{peer_url}")
    advertise_client = "https://127.0.0.1:2379" if reset else client_url
    argv = [str(etcd), f"--name={name}", f"--data-dir={data_dir}",
            f"--listen-client-urls={listen_client}", f"--advertise-client-urls={advertise_client}",
            f"--listen-peer-urls={listen_peer}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={initial_cluster or f'{name}={peer_url}'}",
            f"--initial-cluster-state={state}",
            "--listen-metrics-urls=http://127.0.0.1:2381",
            f"--cert-file={e / 'server-client.crt'}", f"--key-file={e / 'server-client.key'}",
            "--client-cert-auth=true", f"--trusted-ca-file={e / 'server-ca.crt'}",
            f"--peer-cert-file={e / 'peer-server-client.crt'}",
            f"--peer-key-file={e / 'peer-server-client.key'}",
            "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={e / 'peer-ca.crt'}",
            "--heartbeat-interval=500", "--election-timeout=5000", "--snapshot-count=10000",
            "--experimental-initial-corrupt-check=true", "--logger=zap", "--log-outputs=stderr"]
    if reset:
        argv.append("--force-new-cluster")
    return argv


def apiserver_args(kube_apiserver: Path | str, ip: str, tls: Path, cert_dir: Path,
                   service_cidr: str = "10.43.0.0/16",
                   cluster_domain: str = "cluster.local") -> list[str]:
    """kube-apiserver's command line as k3s `pkg/daemons/control/server.go` `apiServer` sets
    it (subset: no kubelet, request-header or egress-selector flags)."""
    t = Path(tls)
    e = t / "etcd"
    issuer = f"https://kubernetes.default.svc.{cluster_domain}"
    return [str(kube_apiserver),
            "--etcd-servers=https://127.0.0.1:2379", f"--etcd-cafile={e / 'server-ca.crt'}",
            f"--etcd-certfile={e / 'client.crt'}", f"--etcd-keyfile={e / 'client.key'}",
            "--storage-backend=etcd3",
            "--secure-port=6443", "--bind-address=0.0.0.0", f"--advertise-address={ip}",
            f"--tls-cert-file={t / 'serving-kube-apiserver.crt'}",
            f"--tls-private-key-file={t / 'serving-kube-apiserver.key'}",
            f"--client-ca-file={t / 'client-ca.crt'}", "--anonymous-auth=false",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--profiling=false",
            f"--service-account-key-file={t / 'service.key'}",
            f"--service-account-signing-key-file={t / 'service.key'}",
            f"--service-account-issuer={issuer}", f"--api-audiences={issuer},rke2",
            f"--service-cluster-ip-range={service_cidr}", "--service-node-port-range=30000-32767",
            f"--cert-dir={cert_dir}"]


def controller_manager_args(kcm: Path | str, tls: Path, kubeconfig: Path,
                            cluster_cidr: str = "10.42.0.0/16",
                            service_cidr: str = "10.43.0.0/16") -> list[str]:
    """kube-controller-manager as k3s `pkg/daemons/control/server.go` `controllerManager`
    runs it (subset): its own client cert (system:kube-controller-manager), service-account
    key, node CIDR allocation, loopback-only serving."""
    t = Path(tls)
    return [str(kcm), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--controllers=*,tokencleaner",
            f"--service-account-private-key-file={t / 'service.key'}",
            "--use-service-account-credentials=true", f"--root-ca-file={t / 'server-ca.crt'}",
            "--allocate-node-cidrs=true", f"--cluster-cidr={cluster_cidr}",
            f"--service-cluster-ip-range={service_cidr}", "--profiling=false",
            "--bind-address=127.0.0.1", "--secure-port=10257"]


def scheduler_args(scheduler: Path | str, kubeconfig: Path) -> list[str]:
    """kube-scheduler as k3s `scheduler` runs it (subset)."""
    return [str(scheduler), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--profiling=false", "--bind-address=127.0.0.1", "--secure-port=10259"]


class EtcdMember:
    """One RKE2 server's etcd: data under <root>/server/db/etcd, TLS under <root>/server/tls
    (the /var/lib/rancher/rke2 layout), member name `<node>-<8 hex>` (k3s `setName`)."""

    def __init__(self, bin_dir: Path, host, root: Path, name: str | None = None):
        self.bin, self.host, self.root = bin_dir, host, root
        self.tls = root / "server/tls"
        self.data_dir = root / "server/db/etcd"
        self.name = name or f"{host.name}-{uuid.uuid4().hex[:8]}"
        self.proc: Proc | None = None

    @property
    def ip(self) -> str:
        return self.host.address

    @property
    def peer_url(self) -> str:
        return f"https://{self.ip}:2380"

    @property
    def client_url(self) -> str:
        return f"https://{self.ip}:2379"

    def write_certs(self, cas: ClusterCAs) -> None:
        cas.write_etcd(self.tls, node_sans(self.host.name, [self.ip]))

    def args(self, initial_cluster: str | None = None, state: str = "new",
             reset: bool = False) -> list[str]:
        return etcd_args(self.bin / "etcd", self.name, self.ip, self.data_dir, self.tls,
                         initial_cluster, state, reset)

    def start(self, initial_cluster: str | None = None, state: str = "new",
              reset: bool = False) -> Proc:
        if self.proc is not None and self.proc.running():
            raise PartsError(f"etcd {self.name} is running")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.proc = Proc(self.args(initial_cluster, state, reset), self.host.netns,
                         self.root / "logs/etcd.log")
        return self.proc

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def ctl(self, *args: str, endpoint: str | None = None, timeout: float = 30,
            client_cert: bool = True) -> subprocess.CompletedProcess:
        """etcdctl from this host with the etcd client cert (as `rke2 etcd-snapshot`/k3s
        clients do: etcd server CA + tls/etcd/client.crt)."""
        e = self.tls / "etcd"
        argv = [str(self.bin / "etcdctl"), f"--endpoints={endpoint or 'https://127.0.0.1:2379'}",
                f"--cacert={e / 'server-ca.crt'}", "--dial-timeout=3s",
                f"--command-timeout={max(5, int(timeout) - 5)}s"]
        if client_cert:
            argv += [f"--cert={e / 'client.crt'}", f"--key={e / 'client.key'}"]
        return run_in(self.host.netns, argv + list(args), timeout=timeout)

    def members(self, endpoint: str | None = None) -> list[dict]:
        res = self.ctl("member", "list", "-w", "json", endpoint=endpoint)
        if res.returncode != 0:
            raise PartsError(f"member list: {res.stderr.strip()}")
        return json.loads(res.stdout).get("members", [])

    def healthy(self, endpoint: str | None = None, timeout: float = 15) -> bool:
        return self.ctl("endpoint", "health", endpoint=endpoint, timeout=timeout).returncode == 0

    def wait_healthy(self, timeout: float = 60, endpoint: str | None = None) -> None:
        try:
            wait_for(lambda: self.healthy(endpoint), timeout, f"etcd {self.name} healthy")
        except PartsError:
            log = self.proc.text()[-3000:] if self.proc else ""
            raise PartsError(f"etcd {self.name} not healthy after {timeout}s:\n{log}") from None


class ApiServer:
    """kube-apiserver for one server, against etcd at https://127.0.0.1:2379 with the etcd
    client cert, serving tls/serving-kube-apiserver.crt on :6443, client-cert auth from
    client-ca, anonymous auth off (k3s `pkg/daemons/control/server.go` `apiServer`)."""

    def __init__(self, bin_dir: Path, host, root: Path):
        self.bin, self.host, self.root = bin_dir, host, root
        self.tls = root / "server/tls"
        self.proc: Proc | None = None

    def write_certs(self, cas: ClusterCAs, tls_sans: list[str] = ()) -> None:
        cas.write_server(self.tls, node_sans(self.host.name, [self.host.address]) + list(tls_sans))

    def args(self) -> list[str]:
        return apiserver_args(self.bin / "kube-apiserver", self.host.address, self.tls,
                              self.root / "server/tls/temporary-certs")

    def start(self) -> Proc:
        self.proc = Proc(self.args(), self.host.netns, self.root / "logs/kube-apiserver.log")
        return self.proc

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def admin_kubeconfig(self, server: str | None = None, name: str = "rke2.yaml",
                         client: str = "client-admin") -> Path:
        """rke2.yaml's equivalent: server CA + client-admin (system:masters); `client` picks
        another client cert (k3s server/cred/controller.kubeconfig uses client-controller)."""
        path = self.root / name
        path.write_text(kubeconfig(server or "https://127.0.0.1:6443", self.tls / "server-ca.crt",
                                   self.tls / f"{client}.crt", self.tls / f"{client}.key"))
        path.chmod(0o600)
        return path

    def start_controllers(self) -> tuple[Proc, Proc]:
        """kube-controller-manager and kube-scheduler on this server, each with its own
        client certificate (RBAC's bootstrap roles for those users apply)."""
        cred = self.root / "server/cred"
        cred.mkdir(parents=True, exist_ok=True)
        kcm_kc = self.admin_kubeconfig(name="server/cred/controller.kubeconfig",
                                       client="client-controller")
        sched_kc = self.admin_kubeconfig(name="server/cred/scheduler.kubeconfig",
                                         client="client-scheduler")
        kcm = Proc(controller_manager_args(self.bin / "kube-controller-manager", self.tls, kcm_kc),
                   self.host.netns, self.root / "logs/kube-controller-manager.log")
        sched = Proc(scheduler_args(self.bin / "kube-scheduler", sched_kc), self.host.netns,
                     self.root / "logs/kube-scheduler.log")
        return kcm, sched
