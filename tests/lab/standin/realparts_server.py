"""Stand-in v2 prototype: the shape of `rke2 server` on the real parts, as a shell script for
a Type=notify unit on a systemd lab host. Rendered per host (node IP and member name filled
in here; the real v2 computes them from config.yaml at start). First server only; joining,
Test/reset and the supervisor are `standin/realparts.py` / future work (tests/lab/README.md).

What it keeps of RKE2's contract: data under /var/lib/rancher/rke2 (server/tls prepared
beforehand, server/db/etcd, server/cred), `/etc/rancher/rke2/rke2.yaml` (mode 0600, server
https://127.0.0.1:6443), `/var/lib/rancher/rke2/bin/kubectl`, the API on 6443, READY=1 only
once the API answers /readyz and this node's Node is Ready (k3s sends READY=1 when the
server is up). The node is a kwok-managed Node (`--manage-single-node=<node>`).
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from tests.lab.realparts.parts import KWOK_RBAC as _KWOK_RBAC
from tests.lab.realparts.parts import apiserver_args, controller_manager_args, etcd_args, scheduler_args
from tests.lab.realparts.pki import kubeconfig

DATA = Path("/var/lib/rancher/rke2")
TLS = DATA / "server/tls"


# What kwok needs, as one JSON line for the script.
KWOK_RBAC = json.dumps(_KWOK_RBAC, separators=(",", ":"))


def server_script(parts: str, node_name: str, ip: str, member_name: str) -> str:
    p = Path(parts)
    cred = DATA / "server/cred"
    etcd = etcd_args(p / "etcd", member_name, ip, DATA / "server/db/etcd", TLS)
    api = apiserver_args(p / "kube-apiserver", ip, TLS, TLS / "temporary-certs")
    kcm = controller_manager_args(p / "kube-controller-manager", TLS, cred / "controller.kubeconfig")
    sched = scheduler_args(p / "kube-scheduler", cred / "scheduler.kubeconfig")
    admin = "/etc/rancher/rke2/rke2.yaml"
    kwok = [str(p / "kwok"), f"--kubeconfig={admin}", f"--manage-single-node={node_name}",
            f"--node-ip={ip}"]
    etcdctl = [str(p / "etcdctl"), "--endpoints=https://127.0.0.1:2379",
               f"--cacert={TLS / 'etcd/server-ca.crt'}", f"--cert={TLS / 'etcd/client.crt'}",
               f"--key={TLS / 'etcd/client.key'}", "endpoint", "health"]
    kubectl = f"{DATA}/bin/kubectl --kubeconfig={admin}"
    node = ('{"apiVersion":"v1","kind":"Node","metadata":{"name":"%s","labels":'
            '{"kubernetes.io/hostname":"%s","node-role.kubernetes.io/control-plane":"true",'
            '"node-role.kubernetes.io/etcd":"true"}}}' % (node_name, node_name))

    def kc(client: str) -> str:
        return kubeconfig("https://127.0.0.1:6443", TLS / "server-ca.crt",
                          TLS / f"{client}.crt", TLS / f"{client}.key")

    def bg(argv: list[str], log: str) -> str:
        return (f"{shlex.join(argv)} >>{DATA}/agent/logs/{log}.log 2>&1 &\n"
                'PIDS="$! $PIDS"')

    return f"""#!/bin/sh
# rke2 server (stand-in v2 prototype; NOT RKE2) for node {node_name}
set -u
# Children must not inherit NOTIFY_SOCKET: etcd sends READY=1 itself (etcdmain
# notifySystemd), which with NotifyAccess=all would mark this unit started too early.
NOTIFY="${{NOTIFY_SOCKET:-}}"
unset NOTIFY_SOCKET
PIDS=""
# Stop in reverse start order (etcd last), each waited for.
stop() {{ for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; exit 0; }}
trap stop TERM INT
mkdir -p {DATA}/server/db/etcd {DATA}/agent/logs {DATA}/bin {cred} /etc/rancher/rke2
chmod 700 {DATA}/server/db/etcd
{bg(etcd, "etcd")}
until {shlex.join(etcdctl)} >/dev/null 2>&1; do sleep 0.5; done
echo "etcd is healthy"
{bg(api, "kube-apiserver")}
cat > {admin} <<'EOF'
{kc("client-admin")}EOF
chmod 600 {admin}
cat > {cred}/controller.kubeconfig <<'EOF'
{kc("client-controller")}EOF
cat > {cred}/scheduler.kubeconfig <<'EOF'
{kc("client-scheduler")}EOF
ln -sf {p / 'kubectl'} {DATA}/bin/kubectl
until [ "$({kubectl} get --raw /readyz 2>/dev/null)" = ok ]; do sleep 0.5; done
echo "kube-apiserver is ready"
{bg(kcm, "kube-controller-manager")}
{bg(sched, "kube-scheduler")}
echo '{node}' | {kubectl} apply -f - >/dev/null
echo '{KWOK_RBAC}' | {kubectl} apply -f - >/dev/null
{bg(kwok, "kwok")}
until {kubectl} wait --for=condition=Ready node/{node_name} --timeout=5s >/dev/null 2>&1; do sleep 0.5; done
echo "node {node_name} is Ready"
NOTIFY_SOCKET="$NOTIFY" systemd-notify --ready
wait
"""


UNIT = """[Unit]
Description=Rancher Kubernetes Engine v2 (server) - lab stand-in v2 prototype
Wants=network-online.target
After=network-online.target
[Service]
Type=notify
NotifyAccess=all
ExecStart=/usr/local/bin/rke2-server-proto
KillMode=mixed
TimeoutStartSec=0
Restart=no
[Install]
WantedBy=multi-user.target
"""


def agent_script(parts: str, node_name: str, ip: str, server: str) -> str:
    """`rke2 agent`'s part that matters to the API: the node registers its own Node with its
    kubelet credentials (system:node:<name>; the Node authorizer and NodeRestriction admit
    exactly that) and keeps it Ready with kwok in place of the kubelet (kwok lists all
    nodes, which node credentials may not: it uses its own rk2lab:kwok identity); READY=1
    when Ready."""
    p = Path(parts)
    agent = DATA / "agent"
    kc = agent / "kubelet.kubeconfig"
    kwok_kc = agent / "kwok.kubeconfig"
    kubectl = f"{p / 'kubectl'} --kubeconfig={kc}"
    kwok = [str(p / "kwok"), f"--kubeconfig={kwok_kc}", f"--manage-single-node={node_name}",
            f"--node-ip={ip}"]
    node = ('{"apiVersion":"v1","kind":"Node","metadata":{"name":"%s","labels":'
            '{"kubernetes.io/hostname":"%s"}}}' % (node_name, node_name))
    return f"""#!/bin/sh
# rke2 agent (stand-in v2 prototype; NOT RKE2) for node {node_name}
set -u
NOTIFY="${{NOTIFY_SOCKET:-}}"
unset NOTIFY_SOCKET
mkdir -p {agent}/logs
cat > {kc} <<'EOF'
{kubeconfig(server, agent / "server-ca.crt", agent / "client-kubelet.crt", agent / "client-kubelet.key")}EOF
cat > {kwok_kc} <<'EOF'
{kubeconfig(server, agent / "server-ca.crt", agent / "client-kwok.crt", agent / "client-kwok.key")}EOF
chmod 600 {kc} {kwok_kc}
until echo '{node}' | {kubectl} apply -f - >>{agent}/logs/register.log 2>&1; do sleep 1; done
{shlex.join(kwok)} >>{agent}/logs/kwok.log 2>&1 &
KWOK=$!
trap 'kill $KWOK; wait $KWOK; exit 0' TERM INT
until {kubectl} wait --for=condition=Ready node/{node_name} --timeout=5s >/dev/null 2>&1; do sleep 0.5; done
echo "node {node_name} is Ready"
NOTIFY_SOCKET="$NOTIFY" systemd-notify --ready
wait
"""


AGENT_UNIT = UNIT.replace("(server)", "(agent)").replace("rke2-server-proto", "rke2-agent-proto")
