"""Drives the real engine against lab hosts: a project copy, a lab stack file, pulumi runs
on the lab network (names resolve through the lab's hosts file)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.engine.engine import PULUMI, make_project
from tests.lab.fixtures import rke2_version

ARTIFACT_DIR = "/opt/rke2-artifacts"


def host_key_line(host) -> str:
    """`type base64` of the host's public key (no comment), as ssh.hostKeys wants it."""
    return " ".join(host.host_public_key.split()[:2])


def provision_artifacts(host, artifacts: Path) -> None:
    """Puts the air-gap artifacts on the host, as an operator of an air-gapped site would."""
    host.copy_in(artifacts, ARTIFACT_DIR)


def base_cluster(hostname: str, **overrides: Any) -> dict:
    cluster = {
        "hostname": hostname,
        "version": rke2_version(),
        "installScriptUrl": f"file://{ARTIFACT_DIR}/install.sh",
        "artifactDir": ARTIFACT_DIR,
        "readyTimeoutSeconds": 120,
    }
    cluster.update(overrides)
    return cluster


class LabStack:
    """One Pulumi stack of a project copy, run from the lab's workstation."""

    def __init__(self, lab, tmp_path: Path, name: str = "lab"):
        self.lab = lab
        self.name = name
        self.project = make_project(tmp_path)
        self.backend = tmp_path / "backend"
        self.transcript: list[str] = []  # every captured pulumi output, for the secrets check

    @property
    def stack_file(self) -> Path:
        return self.project.dir / f"Pulumi.{self.name}.yaml"

    def configure(self, config: dict[str, Any]) -> None:
        """Writes the stack's rke2-rancher config, keeping the passphrase salt."""
        old = (yaml.safe_load(self.stack_file.read_text()) if self.stack_file.exists() else None) or {}
        doc = {k: v for k, v in old.items() if k == "encryptionsalt"}
        # Secrets set with `pulumi config set --secret` stay as they are.
        kept = {k: v for k, v in (old.get("config") or {}).items() if isinstance(v, dict) and "secure" in v}
        doc["config"] = {**{f"rke2-rancher:{k}": v for k, v in config.items()}, **kept}
        self.stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    def pulumi(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        res = self.lab.run([*PULUMI, *args], env=self.project.env, cwd=str(self.project.dir),
                           timeout=timeout)
        self.transcript += [res.stdout, res.stderr]
        if check and res.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} exited {res.returncode}\n"
                                 f"{res.stdout[-6000:]}\n{res.stderr[-3000:]}")
        return res

    def init(self) -> None:
        if self.pulumi("stack", "select", self.name, check=False).returncode != 0:
            self.pulumi("stack", "init", self.name)

    def set_secret(self, key: str, value: str) -> None:
        self.pulumi("config", "set", "--secret", "--stack", self.name, f"rke2-rancher:{key}", value)

    def up(self, *extra: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        return self.pulumi("up", "--yes", "--skip-preview", "--non-interactive", "--stack", self.name,
                           *extra, check=check, timeout=timeout)

    def preview_json(self, *extra: str, check: bool = True) -> dict:
        res = self.pulumi("preview", "--json", "--non-interactive", "--stack", self.name, *extra, check=check)
        return json.loads(res.stdout)

    def changed_resources(self) -> dict[str, str]:
        """{resource name: op} of a preview, for resources whose op is not `same`."""
        steps = self.preview_json().get("steps", [])
        return {s["urn"].split("::")[-1]: s["op"] for s in steps if s["op"] != "same"}

    def output(self, name: str) -> Any:
        res = self.pulumi("stack", "output", name, "--json", "--show-secrets", "--stack", self.name)
        return json.loads(res.stdout)

    def resource_count(self) -> int:
        """Resources in the stack's state, without the stack itself and provider instances."""
        res = self.pulumi("stack", "export", "--stack", self.name)
        resources = json.loads(res.stdout)["deployment"].get("resources", [])
        return sum(1 for r in resources
                   if r["type"] != "pulumi:pulumi:Stack" and not r["type"].startswith("pulumi:providers:"))

    def state_text(self) -> str:
        return "\n".join(p.read_text() for p in self.backend.rglob("*.json"))

    def destroy(self, check: bool = True) -> subprocess.CompletedProcess:
        return self.pulumi("destroy", "--yes", "--skip-preview", "--non-interactive", "--stack", self.name,
                           check=check)


def token_password(host) -> str:
    text = Path(host.path("/var/lib/rancher/rke2/server/token")).read_text().strip()
    return re.sub(r"^K10[0-9a-f]+::server:", "", text)


# --- the HA shape: three servers behind HAProxy, two agents --------------------------------
CLUSTER = "rke2.lab"
LB = ("rke2-lb", "10.77.0.10")
SERVERS = [("rke2-server-1", "10.77.0.21"), ("rke2-server-2", "10.77.0.22"), ("rke2-server-3", "10.77.0.23")]
AGENTS = [("rke2-agent-1", "10.77.0.31"), ("rke2-agent-2", "10.77.0.32")]


def ha_config(hosts: dict, servers: list[tuple[str, str]] | None = None,
              agents: list[tuple[str, str]] | None = None) -> dict:
    """The HA stack's config for `hosts` (name -> lab host); `servers` (default SERVERS) in
    order, `agents` (default AGENTS)."""
    key_path = str(next(iter(hosts.values())).private_key_path)
    servers = SERVERS if servers is None else servers
    agents = AGENTS if agents is None else agents
    return {
        "ssh": {"privateKeyPath": key_path,  # keys of the stack's hosts only (the program refuses others)
                "hostKeys": {addr: host_key_line(hosts[name]) for name, addr in [LB, *servers, *agents]}},
        "cluster": base_cluster(CLUSTER, tlsSans=[CLUSTER]),
        "loadBalancer": {"name": LB[0], "address": LB[1]},
        "servers": [{"name": n, "address": a} for n, a in servers],
        "agents": [{"name": n, "address": a} for n, a in agents],
        "certManager": {"enabled": False},
        "rancher": {"enabled": False},
    }


def ha_hosts(lab, artifacts: Path, agents: list[tuple[str, str]] | None = None) -> dict:
    """The HA shape's lab hosts (the cluster name points at the load balancer)."""
    agents = AGENTS if agents is None else agents
    hosts = {name: lab.add_host(name, addr) for name, addr in [LB, *SERVERS, *agents]}
    for name, _ in [*SERVERS, *agents]:
        provision_artifacts(hosts[name], artifacts)
    lab.set_host_entry(CLUSTER, LB[1])
    return hosts


# How long a check of the cluster's live state may wait for it to settle. kwok renews a node's
# lease every 10 s (kwok v0.7.0 pkg/kwok/controllers/controller.go: leaseDuration / 4, 40 s
# default) and kube-controller-manager marks a node Unknown after 50 s without one (k8s
# v1.33.5 pkg/controller/nodelifecycle/config/v1alpha1/defaults.go, NodeMonitorGracePeriod),
# and its pods NotReady with it. On 2 cores shared by 3 test workers, each running real etcd
# and kube-apiservers, a renewal was seen late by more than that; kwok's node-initialize
# stage sets the node Ready again once it sees it. A real kubelet recovers the same way.
SETTLE_S = 120


def settled(probe, want, timeout: float = SETTLE_S, interval: float = 3):
    """probe() until it returns `want` or `timeout` passes; the last value either way, so the
    caller's assertion shows what was there. Prints how long settling took when it did not
    hold at once, so a slow lab is visible in the test output."""
    start = time.monotonic()
    while (got := probe()) != want and time.monotonic() - start < timeout:
        time.sleep(interval)
    if time.monotonic() - start >= interval:
        print(f"settled after {time.monotonic() - start:.0f} s: {got == want}")
    return got


def node_readiness(kubectl) -> dict[str, str]:
    """{node name: its Ready condition's status} through `kubectl`."""
    items = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: next((c["status"] for c in n["status"].get("conditions", [])
                                         if c["type"] == "Ready"), "") for n in items}


def available_deployments(kubectl, namespace: str) -> dict[str, str]:
    """{Deployment name: its Available condition's status} in `namespace`."""
    items = json.loads(kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)["items"]
    return {d["metadata"]["name"]: next((c["status"] for c in d["status"].get("conditions", [])
                                         if c["type"] == "Available"), "") for d in items}


def unit_events(host, unit: str, event: str) -> list:
    """Times (datetime) of one kind of systemd event of `unit` on `host` (spawn, ready, ...)."""
    from datetime import datetime
    return [datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
            for e in host.service_events(unit) if e["event"] == event]


def kubectl_through(lab, stack: "LabStack", path: Path):
    """A real kubectl on the workstation through the stack's `kubeconfig` output."""
    from tests.lab.realparts.parts import ensured_parts_bin
    path.write_text(stack.output("kubeconfig"))
    path.chmod(0o600)
    kubectl_bin = ensured_parts_bin() / "kubectl"

    def kubectl(*args: str, check: bool = True):
        res = lab.run([str(kubectl_bin), f"--kubeconfig={path}", "--request-timeout=10s", *args], timeout=60)
        assert res.returncode == 0 or not check, res.stderr
        return res
    return kubectl


ETCDCTL = ("/opt/rk2lab-parts/etcdctl --endpoints=https://127.0.0.1:2379 "
           "--cacert=/var/lib/rancher/rke2/server/tls/etcd/server-ca.crt "
           "--cert=/var/lib/rancher/rke2/server/tls/etcd/client.crt "
           "--key=/var/lib/rancher/rke2/server/tls/etcd/client.key")


def etcd_members(server) -> list[dict]:
    """etcd's member list as the real etcdctl on `server` reports it (JSON form)."""
    rc, out, err = server.exec(f"{ETCDCTL} -w json member list")
    assert rc == 0, err
    return json.loads(out)["members"]
