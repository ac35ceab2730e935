"""Reads and validates the whole stack config (namespace `rke2-rancher:`) once.

`parse_config(raw, secret_keys)` is pure: it takes the config as plain data and
returns typed, frozen objects, or raises ConfigError naming the key, the bad value
(unless it is or may be a secret) and what is allowed. `load_stack_config()` is the
thin adapter that reads pulumi.Config; the program calls it before registering any
resource. Organisational rules (replica counts, SAN hygiene, pins) are NOT checked
here: they belong to the policy pack (see CONTRACT.md).

Hostile input is refused by construction: every pattern is matched with fullmatch
(a `$` would let a trailing newline through), IP literals are parsed without zone
ids from a strict character set, every address is kept in ONE normalised form
(the connection, host-key lookup, config.yaml, haproxy, keepalived and URLs all use
it), and no string value may hold a control character. Values reach hosts only as
shlex-quoted assignments or on stdin (components/scripts.py).

Written by hand rather than with pydantic v2: the validators here are small, and
pydantic's errors echo the input value by default and its IP types accept zone ids,
so it would need as much custom code to meet the secrecy and parsing rules.

Secret values (token, SSH private key, Rancher bootstrap password, etcd S3
credentials) are kept as plain strings with repr disabled; components wrap them in
Output.secret before they reach any resource.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from . import versions

NAMESPACE = "rke2-rancher"

# Defaults for every optional key, one comment each.
DEFAULTS: dict[str, Any] = {
    # SSH user on every host; sudo -n is used when it is not root.
    "ssh.user": "root",
    # SSH port on every host.
    "ssh.port": 22,
    # CNI plugin; RKE2's own default.
    "cluster.cni": "canal",
    # RKE2's own default; anything wider must be asked for (and is flagged by policy).
    "cluster.writeKubeconfigMode": "0600",
    # A server that may change networks is opt-in.
    "cluster.mobile": False,
    # Stable node address for mobile mode; link-scoped to the host, never routed.
    "cluster.mobileNodeIp": "10.255.255.1",
    # How the stable address is held: a dummy interface, a loopback alias, or
    # auto (dummy, falling back to loopback where the kernel lacks dummy).
    "cluster.mobileInterface": "auto",
    # Where the RKE2 installer is fetched from (an https mirror, or file:// when air-gapped).
    "cluster.installScriptUrl": "https://get.rke2.io",
    # Keep RKE2 on the hosts on `pulumi destroy`.
    "cluster.retainOnDestroy": False,
    # Seconds to wait for the API server to answer /readyz after a start.
    "cluster.readyTimeoutSeconds": 600,
    # Who owns the cluster CA: the stack (pulumi-tls, survives rebuilds) or RKE2 itself.
    "cluster.ca": "generated",
    # Rolling upgrade (a cluster.version change): agents upgraded this many at a time, a
    # count or a percent of the agents (rounded down, at least 1).
    "cluster.upgrade.agentBatch": "10%",
    # Cordon and drain each agent before its upgrade (uncordoned once Ready again).
    "cluster.upgrade.drain": True,
    # kubectl drain --timeout for one agent.
    "cluster.upgrade.drainTimeoutSeconds": 300,
    # kubectl drain --grace-period; -1: each pod's own terminationGracePeriodSeconds.
    "cluster.upgrade.drainGracePeriodSeconds": -1,
    # cert-manager is needed by Rancher's default TLS source.
    "certManager.enabled": True,
    "rancher.enabled": True,
    # Rancher's default: a self-signed CA managed by cert-manager.
    "rancher.tlsSource": "rancher",
    # The stable Rancher chart repository.
    "rancher.repository": "https://releases.rancher.com/server-charts/stable",
    # jetstack's chart repository (an air-gapped site points both at its chart mirror).
    "certManager.repository": "https://charts.jetstack.io",
}

CNI_CHOICES = ("canal", "calico", "cilium", "flannel", "none")
TLS_SOURCES = ("rancher", "letsEncrypt", "secret")
MOBILE_INTERFACE_CHOICES = ("auto", "dummy", "loopback")
CA_CHOICES = ("generated", "rke2")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# RKE2's own defaults (docs.rke2.io server config reference), used for the range checks
# when the stack leaves the key unset.
RKE2_DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
RKE2_DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
# RKE2's own etcd snapshot defaults, in effect while cluster.etcdSnapshots leaves a field unset
# (no key is written then). They are the flag defaults of k3s pkg/cli/cmds/server.go
# (etcd-snapshot-schedule-cron "0 */12 * * *", etcd-snapshot-retention defaultSnapshotRentention
# = 5, etcd-s3-endpoint "s3.amazonaws.com", etcd-s3-region "us-east-1") and pkg/etcd/s3/s3.go
# defaultEtcdS3, as docs.rke2.io reference/server_config ("Database", "S3 etcd Snapshot
# Storage") and datastore/backup_restore list them.
RKE2_DEFAULT_SNAPSHOT_SCHEDULE = "0 */12 * * *"
RKE2_DEFAULT_SNAPSHOT_RETENTION = 5
RKE2_DEFAULT_S3_ENDPOINT = "s3.amazonaws.com"
RKE2_DEFAULT_S3_REGION = "us-east-1"

# config.yaml keys the program writes or depends on; extraConfig must not fight them.
# The value is the config key to use instead (None: the program decides it).
MANAGED_RKE2_KEYS: dict[str, str | None] = {
    "token": "token", "token-file": "token", "agent-token": "token", "agent-token-file": "token",
    "server": "loadBalancer", "tls-san": "cluster.tlsSans", "node-name": "servers[].name",
    "node-ip": "servers[].nodeIp", "advertise-address": "servers[].nodeIp",
    "node-label": "servers[].labels", "node-taint": "servers[].taints", "cni": "cluster.cni",
    "disable": "cluster.disable", "write-kubeconfig-mode": "cluster.writeKubeconfigMode",
    "cluster-cidr": "cluster.clusterCidr", "service-cidr": "cluster.serviceCidr",
    "cluster-dns": "cluster.clusterDns",
    # Paths and ports the host scripts, the load balancer and the kubeconfig read rely on.
    "data-dir": None, "write-kubeconfig": None, "supervisor-port": None, "https-listen-port": None,
    "bind-address": None, "advertise-port": None, "config": None,
    # One-shot recovery flags: the program runs them itself, never on every start.
    "cluster-reset": None, "cluster-reset-restore-path": None, "cluster-init": None,
    # The program assumes the embedded etcd; an external datastore URL carries a password.
    "datastore-endpoint": None,
}
# cluster.etcdSnapshots field -> the config.yaml key it writes (docs.rke2.io reference/server_config
# "Database" and "S3 etcd Snapshot Storage"; k3s pkg/cli/cmds/server.go). extraConfig may not set
# them (MANAGED_RKE2_KEYS names the field to use instead).
ETCD_SNAPSHOT_RKE2_KEYS: dict[str, str] = {
    "schedule": "etcd-snapshot-schedule-cron", "retention": "etcd-snapshot-retention",
    "disabled": "etcd-disable-snapshots", "s3": "etcd-s3", "s3.endpoint": "etcd-s3-endpoint",
    "s3.endpointCa": "etcd-s3-endpoint-ca", "s3.skipSslVerify": "etcd-s3-skip-ssl-verify",
    "s3.insecure": "etcd-s3-insecure", "s3.bucket": "etcd-s3-bucket", "s3.region": "etcd-s3-region",
    "s3.folder": "etcd-s3-folder", "s3.retention": "etcd-s3-retention",
}
MANAGED_RKE2_KEYS.update({rke2: f"cluster.etcdSnapshots.{f}" for f, rke2 in ETCD_SNAPSHOT_RKE2_KEYS.items()})
# RKE2 reads its S3 settings from that Secret only when etcd-s3 is the sole S3 setting (docs.k3s.io
# cli/etcd-snapshot "S3 Configuration Secret Support"); cluster.etcdSnapshots.s3 always sets a bucket.
MANAGED_RKE2_KEYS["etcd-s3-config-secret"] = "cluster.etcdSnapshots.s3 and cluster.etcdS3"
# Credentials: never in the plain config.yaml input. Each has its dedicated secret key.
CREDENTIAL_RKE2_KEYS: dict[str, str] = {
    "etcd-s3-access-key": "cluster.etcdS3.accessKey",
    "etcd-s3-secret-key": "cluster.etcdS3.secretKey",
    "etcd-s3-session-token": "cluster.etcdS3.sessionToken",
}
# Any other key that looks like it carries a credential is refused too (a misspelt
# `etcd-s3-secret-keys` would otherwise land in plain config.yaml).
_CREDENTIAL_NAME_RE = re.compile(r"(?!secrets-encryption).*(secret|passw|token|access-?key|api-?key).*")
# Keys RKE2 reads on agents as well as servers (docs.rke2.io/reference/linux_agent_config):
# cluster.extraConfig values for these are applied to agents too, unless
# cluster.agentExtraConfig sets the key itself.
NODE_WIDE_RKE2_KEYS = (
    "system-default-registry", "profile", "selinux", "kubelet-arg", "kube-proxy-arg",
    "protect-kernel-defaults", "private-registry", "image-credential-provider-bin-dir",
    "image-credential-provider-config", "snapshotter", "cloud-provider-name", "cloud-provider-config",
)
RKE2_KEY_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\+?", re.ASCII)

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS1123_SUBDOMAIN_RE = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*", re.ASCII)
DNS1123_LABEL_RE = re.compile(_DNS_LABEL, re.ASCII)
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_RE = re.compile(rf"({_DNS_LABEL}(\.{_DNS_LABEL})*/)?{_LABEL_NAME}", re.ASCII)
LABEL_VALUE_RE = re.compile(rf"({_LABEL_NAME})?", re.ASCII)
# Anything a shell would interpret. Names, SANs, labels and taints never need them.
SHELL_METACHARACTERS = set("$`\\\"';&|<>(){}[]*?!~#%^ \t\n\r")
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
HOST_KEY_RE = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) ([A-Za-z0-9+/]+={0,2})"
                         r"( [\x21-\x7e]{1,200})?", re.ASCII)
MODE_RE = re.compile(r"0?[0-7]{3}", re.ASCII)
EMAIL_RE = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", re.ASCII)
UNIX_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}", re.ASCII)
# Linux dev_valid_name (net/core/dev.c) also refuses "." and "..".
INTERFACE_RE = re.compile(r"(?!\.{1,2}$)[a-zA-Z0-9_.-]{1,15}", re.ASCII)
# IP literals: only these characters, so no zone id (`%eth0`), no space, no newline.
_IP_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]{2,45}", re.ASCII)
# URL path/query characters allowed in installer and chart URLs: no shell or glob syntax.
_URL_REST_RE = re.compile(r"[A-Za-z0-9._~/%=+,:@-]*(\?[A-Za-z0-9._~/%=+,:@&-]*)?", re.ASCII)
# Control characters (NUL, newline, ...) never belong in a config value, except in the
# SSH private key (a multi-line PEM), which only ever travels as a secret.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_STRING = 4096
MAX_LIST = 256

# Every key the program reads, per section; unknown keys are errors (typos surface at once).
# tests/unit/test_readme.py checks the README's config reference against this table.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "": ("ssh", "cluster", "servers", "agents", "loadBalancer", "token", "certManager", "rancher", "registries"),
    "ssh": ("user", "privateKeyPath", "privateKey", "port", "hostKeys", "bastion"),
    "ssh.bastion": ("address", "user", "port", "privateKeyPath", "privateKey", "hostKey"),
    "cluster": ("hostname", "version", "tlsSans", "clusterCidr", "serviceCidr", "clusterDns", "cni",
                "disable", "writeKubeconfigMode", "mobile", "mobileNodeIp", "mobileInterface",
                "extraConfig", "agentExtraConfig", "etcdS3", "installScriptUrl", "artifactDir",
                "retainOnDestroy", "readyTimeoutSeconds", "ca", "certificateRotation",
                "systemDefaultRegistry", "imagesArchives", "profile", "upgrade", "snapshot", "restore",
                "etcdSnapshots"),
    "cluster.upgrade": ("agentBatch", "drain", "drainTimeoutSeconds", "drainGracePeriodSeconds"),
    "cluster.etcdSnapshots": ("schedule", "retention", "disabled", "s3"),
    "cluster.etcdSnapshots.s3": ("endpoint", "bucket", "folder", "region", "skipSslVerify", "endpointCa",
                                 "insecure", "retention"),
    "servers[]": ("name", "address", "nodeIp", "labels", "taints", "rebuild"),
    "loadBalancer": ("name", "address", "vip", "vipInterface"),
    "certManager": ("enabled", "version", "repository", "repositoryCaFile"),
    "rancher": ("enabled", "version", "hostname", "replicas", "bootstrapPassword", "tlsSource",
                "repository", "repositoryCaFile", "letsEncryptEmail"),
    # registries.yaml (RKE2/k3s format, rancher/wharfie pkg/registries/types.go), in camelCase;
    # the keys of each entry are in REGISTRY_KEYS.
    "registries": ("mirrors", "configs"),
}
# Keys of the entries under registries.mirrors.<host>, registries.configs.<host> (and its
# auth and tls objects) and cluster.imagesArchives[].
REGISTRY_KEYS: dict[str, tuple[str, ...]] = {
    "mirror": ("endpoints", "rewrites"),
    "config": ("auth", "tls"),
    "auth": ("username", "password", "token"),
    "tls": ("caFile", "certFile", "keyFile", "insecureSkipVerify"),
    "imagesArchive": ("url", "sha256"),
}
ETCD_S3_KEYS = ("accessKey", "secretKey", "sessionToken")
# Keys whose value is a secret whatever the stack file says; everything under them too.
SECRET_KEYS = ("token", "ssh.privateKey", "ssh.bastion.privateKey", "rancher.bootstrapPassword", "cluster.etcdS3")


class _NotShown:
    def __repr__(self) -> str:
        return "NOT_SHOWN"


NOT_SHOWN = _NotShown()
"""Pass as a ConfigError value to say what kind of value it was without showing it."""


def _describe(value: Any) -> str:
    """A value as an error shows it: scalars as repr (shortened), containers by type only
    (they may hold a secret further down)."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 120 else text[:100] + f"...' ({len(value)} characters)"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "a " + type(value).__name__


_PLAIN_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.:+@/\[\]-]{1,100}", re.ASCII)


def key_segment(name: Any) -> str:
    """A config key (which the user typed) made safe to print on one line."""
    text = str(name)
    return text if _PLAIN_SEGMENT_RE.fullmatch(text) else json.dumps(text)[:80]


class ConfigError(ValueError):
    """A stack config value is missing or invalid. The message names key, value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str, *, secret: bool = False):
        if secret:
            shown = "[secret]"
        elif value is NOT_SHOWN:
            shown = "[value not shown]"
        else:
            shown = _describe(value)
        self.key = key
        self.allowed = allowed
        self.shown_value = not secret and value is not NOT_SHOWN
        self._value = value if self.shown_value else None
        super().__init__(f"{NAMESPACE}:{key}: {shown} is not valid: {allowed}")

    def redacted(self, value: Any = None) -> "ConfigError":
        """The same error with the value hidden (and scrubbed from the explanation)."""
        allowed = self.allowed
        for v in (self._value, value):
            if isinstance(v, str) and v:
                allowed = allowed.replace(v, "[secret]")
        return ConfigError(self.key, None, allowed, secret=True)


# ---------------------------------------------------------------------------
# Typed config
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BastionConfig:
    """The jump host every host step connects through (pulumi-command's `proxy` connection)."""

    address: str
    """Where SSH reaches the bastion (normalised); the hosts' addresses are dialed from there."""
    user: str
    """SSH login on the bastion (default: ssh.user)."""
    port: int
    """SSH port of the bastion."""
    private_key_path: str | None
    """Key file for the bastion; with neither this nor private_key, the hosts' key is used."""
    private_key: str | None = field(repr=False)
    """The bastion's own private key (secret), when it has one."""
    host_key: str | None
    """The bastion's public host key; when given, it is verified."""


@dataclass(frozen=True)
class SshConfig:
    user: str
    """SSH login on every host; sudo -n is used when not root."""
    port: int
    """SSH port on every host."""
    private_key_path: str | None
    """Path of the private key on the machine running Pulumi."""
    private_key: str | None = field(repr=False)
    """The private key itself (secret)."""
    host_keys: Mapping[str, str]
    """normalised address -> public host key; when given, host keys are verified."""
    bastion: BastionConfig | None = None
    """When set, every host step connects through this jump host."""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    """Node name (DNS-1123); also RKE2's node-name."""
    address: str
    """How SSH reaches the host (normalised; may change when the host moves)."""
    node_ip: str | None
    """RKE2 node-ip, when pinned (normalised)."""
    labels: tuple[str, ...]
    """`key=value` node labels."""
    taints: tuple[str, ...]
    """`key[=value]:Effect` node taints."""
    rebuild: str | None = None
    """servers[].rebuild: a label; a new one runs every step of this server again (its host was
    rebuilt) and removes the etcd member it left behind before it joins."""

    @property
    def schedulable(self) -> bool:
        """Whether ordinary workloads (Rancher, the bundled ingress) can land here."""
        return not any(t.endswith((":NoSchedule", ":NoExecute")) for t in self.taints)


@dataclass(frozen=True)
class LoadBalancerConfig:
    name: str
    """Host name of the load balancer (DNS-1123)."""
    address: str
    """How SSH reaches it, and the registration address when no VIP is set."""
    vip: str | None
    """Optional keepalived virtual IP, the registration address when set."""
    vip_interface: str
    """Interface keepalived holds the VIP on."""

    @property
    def registration_host(self) -> str:
        return self.vip or self.address


@dataclass(frozen=True)
class EtcdS3Credentials:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    session_token: str | None = field(repr=False, default=None)


@dataclass(frozen=True)
class EtcdS3Target:
    """cluster.etcdSnapshots.s3: where RKE2 copies every etcd snapshot. The credentials are
    cluster.etcdS3, a secret of its own; without them RKE2 falls back to the host's AWS
    credentials file or instance role (k3s pkg/etcd/s3/s3.go GetClient's credentials chain).
    A field left None is RKE2's default, and no key is written for it."""
    bucket: str
    """etcd-s3-bucket (required)."""
    endpoint: str | None = None
    """etcd-s3-endpoint: host[:port] without a scheme (minio-go's endpoint)."""
    folder: str | None = None
    """etcd-s3-folder: the key prefix inside the bucket."""
    region: str | None = None
    """etcd-s3-region."""
    skip_ssl_verify: bool = False
    """etcd-s3-skip-ssl-verify."""
    endpoint_ca: str | None = None
    """etcd-s3-endpoint-ca: absolute path of a PEM CA bundle on the servers."""
    insecure: bool = False
    """etcd-s3-insecure: plain http."""
    retention: int | None = None
    """etcd-s3-retention: snapshots kept in the bucket (None: etcdSnapshots.retention, see render)."""


@dataclass(frozen=True)
class EtcdSnapshotsConfig:
    """cluster.etcdSnapshots: RKE2's scheduled etcd snapshots and their S3 copy, written to every
    server's config.yaml (a key for each field set; agents get none)."""
    schedule: str | None = None
    """etcd-snapshot-schedule-cron: a 5-field cron expression or a descriptor (@daily, @every 6h)."""
    retention: int | None = None
    """etcd-snapshot-retention: scheduled snapshots kept on each server (0: RKE2 prunes none)."""
    disabled: bool = False
    """etcd-disable-snapshots: no scheduled snapshots (on-demand ones still work)."""
    s3: EtcdS3Target | None = None
    """The S3 target (etcd-s3 and the etcd-s3-* keys), None: snapshots stay on the servers."""

    @property
    def s3_retention(self) -> int | None:
        """The etcd-s3-retention written: s3.retention, else retention (None: neither is set)."""
        if self.s3 is None:
            return None
        return self.s3.retention if self.s3.retention is not None else self.retention


@dataclass(frozen=True)
class UpgradeConfig:
    """cluster.upgrade: how a cluster.version change rolls out (servers always one at a time)."""
    agent_batch: str = "10%"
    """Agents upgraded at once: a count ("2") or a percent of the agents ("10%")."""
    drain: bool = True
    drain_timeout_seconds: int = 300
    drain_grace_period_seconds: int = -1

    def batch_size(self, agents: int) -> int:
        """Agents per batch: a percent rounds down, never below 1 (nor above the agent count)."""
        if agents <= 0:
            return 1
        if self.agent_batch.endswith("%"):
            n = agents * int(self.agent_batch[:-1]) // 100
        else:
            n = int(self.agent_batch)
        return max(1, min(n, agents))

    def batches(self, agents: int) -> list[range]:
        """Agent indices grouped into the batches that upgrade together, in order."""
        size = self.batch_size(agents)
        return [range(i, min(i + size, agents)) for i in range(0, agents, size)]


@dataclass(frozen=True)
class ClusterConfig:
    hostname: str
    """Stable identity: registration address, kubeconfig server, always in tls-san."""
    version: str
    """Pinned RKE2 release, e.g. v1.33.5+rke2r1."""
    tls_sans: tuple[str, ...]
    """Extra names/IPs for the API and supervisor certs (as configured, IPs normalised)."""
    cluster_cidr: str | None
    service_cidr: str | None
    cluster_dns: str | None
    cni: str
    disable: tuple[str, ...]
    write_kubeconfig_mode: str
    mobile: bool
    """Single server whose address may change: pin node-ip to a stable local address."""
    mobile_node_ip: str
    mobile_interface: str
    extra_config: Mapping[str, Any]
    """Merged into every server's config.yaml."""
    agent_extra_config: Mapping[str, Any]
    """Merged into every agent's config.yaml (after the node-wide keys of extra_config)."""
    etcd_s3: EtcdS3Credentials | None = field(repr=False)
    """Secret etcd S3 credentials, written to a 0600 drop-in on the servers."""
    install_script_url: str
    artifact_dir: str | None
    """Air-gap: a directory on each host holding the RKE2 release artifacts."""
    retain_on_destroy: bool
    ready_timeout_seconds: int
    ca: str
    """generated: the stack owns the CA set (pulumi-tls); rke2: RKE2 creates it on first start."""
    certificate_rotation: str | None
    """Any label; changing it rotates the leaf certificates, one server at a time."""
    system_default_registry: str | None = None
    """Registry host[:port] prefixed to RKE2's system images (system-default-registry, every node)."""
    images_archives: tuple["ImageArchive", ...] = ()
    """Image archives fetched into agent/images/ on every node before the first start."""
    profile: str | None = None
    """RKE2 profile (cis): etcd user, kernel parameters and the profile key on every node."""
    upgrade: UpgradeConfig = field(default_factory=UpgradeConfig)
    """cluster.upgrade: agent batches and draining during a version change."""
    snapshot: str | None = None
    """cluster.snapshot: a label; a new one takes an etcd snapshot named after it on servers[0]."""
    restore: str | None = None
    """cluster.restore: a snapshot on servers[0]; a new value restores etcd to it, every server."""
    etcd_snapshots: EtcdSnapshotsConfig | None = None
    """cluster.etcdSnapshots: scheduled snapshots and their S3 target (None: RKE2's defaults, no S3)."""

    @property
    def ingress_enabled(self) -> bool:
        """Whether RKE2's bundled ingress controller runs (a DaemonSet on every schedulable node)."""
        if "rke2-ingress-nginx" in self.disable or "rke2-traefik" in self.disable:
            return False
        return self.extra_config.get("ingress-controller", "ingress-nginx") not in ("none", "")


@dataclass(frozen=True)
class ImageArchive:
    url: str
    """https:// or file:// URL the host fetches the archive from."""
    sha256: str
    """Expected sha256 (lowercase hex) of the archive."""
    name: str
    """File name under /var/lib/rancher/rke2/agent/images/ (the URL's last path segment)."""


@dataclass(frozen=True)
class RegistryMirror:
    endpoints: tuple[str, ...]
    """Endpoint URLs containerd tries in order (registries.yaml `endpoint`)."""
    rewrites: Mapping[str, str]
    """Repository rewrites, regex -> replacement (registries.yaml `rewrite`)."""


@dataclass(frozen=True)
class RegistryAuth:
    username: str | None
    password: str | None = field(repr=False)
    token: str | None = field(repr=False)
    """containerd identity token (registries.yaml `identity_token`)."""


@dataclass(frozen=True)
class RegistryTls:
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    insecure_skip_verify: bool


@dataclass(frozen=True)
class RegistryHostConfig:
    auth: RegistryAuth | None = field(repr=False)
    tls: RegistryTls | None


@dataclass(frozen=True)
class RegistriesConfig:
    mirrors: Mapping[str, RegistryMirror]
    configs: Mapping[str, RegistryHostConfig] = field(repr=False)
    secret: bool
    """The rendered registries.yaml travels as a secret (credentials, or a secret config key)."""

    @property
    def has_auth(self) -> bool:
        return any(c.auth is not None for c in self.configs.values())


@dataclass(frozen=True)
class CertManagerConfig:
    enabled: bool
    version: str
    repository: str
    repository_ca_file: str | None = None
    """CA bundle (PEM) the chart repository's certificate chains to, on the machine running
    Pulumi (Helm's --ca-file); ~ expanded. None: the system's trust store."""


@dataclass(frozen=True)
class RancherConfig:
    enabled: bool
    version: str
    hostname: str
    replicas: int
    bootstrap_password: str | None = field(repr=False)
    tls_source: str
    repository: str
    letsencrypt_email: str | None
    repository_ca_file: str | None = None
    """As CertManagerConfig.repository_ca_file, for rancher.repository."""


@dataclass(frozen=True)
class StackConfig:
    ssh: SshConfig
    cluster: ClusterConfig
    servers: tuple[NodeConfig, ...]
    agents: tuple[NodeConfig, ...]
    load_balancer: LoadBalancerConfig | None
    token: str | None = field(repr=False)
    token_is_secret: bool
    cert_manager: CertManagerConfig
    rancher: RancherConfig
    registries: RegistriesConfig | None = None
    """registries.yaml for every node; None leaves the file alone."""

    @property
    def is_ha(self) -> bool:
        return len(self.servers) > 1

    @property
    def schedulable_nodes(self) -> int:
        return sum(n.schedulable for n in (*self.servers, *self.agents))

    @property
    def registration_host(self) -> str:
        """Where joiners register: the LB (or its VIP) in HA, else the cluster hostname."""
        if self.load_balancer is not None:
            return self.load_balancer.registration_host
        return self.cluster.hostname


# ---------------------------------------------------------------------------
# Addresses: one parser, one normalised form
# ---------------------------------------------------------------------------


def parse_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A strict IP literal: digits, hex, ':' and '.' only (no zone id), else None."""
    if not isinstance(value, str) or not _IP_CHARS_RE.fullmatch(value):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_ip(value: str) -> bool:
    return parse_ip(value) is not None


def url_host(host: str) -> str:
    """A normalised address as it goes into a URL or host:port: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


def _unsafe_chars(value: str) -> str:
    return "".join(sorted(set(value) & SHELL_METACHARACTERS))


def _reject_shell_metacharacters(key: str, value: str, *, allow_leading_wildcard: bool = False) -> None:
    check = value[2:] if allow_leading_wildcard and value.startswith("*.") else value
    bad = _unsafe_chars(check)
    if bad:
        raise ConfigError(key, value, f"shell metacharacters {bad!r} are not allowed here")


def _string(key: str, value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, what)
    return value


def _not_ip_like(key: str, value: str) -> None:
    """An IP with a zone id, or a dotted number that is no valid IP (10.0.0.011), is never
    taken for a DNS name: a DNS name's last label is not all digits (RFC 1123 2.1)."""
    head = value.split("%", 1)[0]
    if "%" in value and parse_ip(head) is not None:
        raise ConfigError(key, value, "an IP address without a zone id (%...)")
    if re.fullmatch(r"[0-9.]+", value, re.ASCII) or re.fullmatch(r".*\.[0-9]+", value, re.ASCII):
        raise ConfigError(key, value, "a valid IP address (four decimal octets without leading zeros) "
                                      "or a DNS name whose last label is not all digits")


def dns_name(key: str, value: Any) -> str:
    value = _string(key, value, "a DNS-1123 name (string)")
    _not_ip_like(key, value)
    _reject_shell_metacharacters(key, value)
    if len(value) > 253 or not DNS1123_SUBDOMAIN_RE.fullmatch(value):
        raise ConfigError(key, value, "a DNS-1123 name: lowercase letters, digits, '-' and '.', "
                                      "labels of 1-63 characters, at most 253 in all")
    return value


def node_name(key: str, value: Any) -> str:
    return dns_name(key, value)


def ip_literal(key: str, value: Any, *, role: str = "") -> str:
    """An IPv4 or IPv6 literal in its normalised form (compressed, lowercase)."""
    value = _string(key, value, "an IPv4 or IPv6 address (string)")
    ip = parse_ip(value)
    if ip is None:
        extra = " without a zone id (%...)" if "%" in value else ""
        raise ConfigError(key, value, f"an IPv4 or IPv6 address such as 10.0.0.5 or fd00::5{extra}")
    if ip.version == 6 and ip.ipv4_mapped is not None:
        raise ConfigError(key, value, f"the plain IPv4 form {ip.ipv4_mapped} instead of an IPv4-mapped address")
    if role and (ip.is_unspecified or ip.is_multicast):
        raise ConfigError(key, value, f"a unicast address for {role} (not unspecified or multicast)")
    return str(ip)


def host_address(key: str, value: Any) -> str:
    """An SSH or backend address: IP literal (normalised) or DNS name."""
    value = _string(key, value, "an IP address or DNS name (string)")
    if parse_ip(value) is not None:
        return ip_literal(key, value, role="a host")
    _not_ip_like(key, value)
    _reject_shell_metacharacters(key, value)
    if len(value) > 253 or not DNS1123_SUBDOMAIN_RE.fullmatch(value):
        raise ConfigError(key, value, "an IP address or a DNS-1123 name")
    return value


def san(key: str, value: Any) -> str:
    """A tls-san entry: IP literal or DNS name; a leading `*.` is passed through for the policy to judge."""
    value = _string(key, value, "a DNS name or IP address (string)")
    if parse_ip(value) is not None:
        return ip_literal(key, value)
    _not_ip_like(key, value)
    _reject_shell_metacharacters(key, value, allow_leading_wildcard=True)
    name = value[2:] if value.startswith("*.") else value
    if len(name) > 253 or not DNS1123_SUBDOMAIN_RE.fullmatch(name):
        raise ConfigError(key, value, "a DNS-1123 name or an IP address")
    return value


def cidr(key: str, value: Any) -> str:
    value = _string(key, value, "a CIDR such as 10.42.0.0/16")
    addr, sep, plen = value.partition("/")
    if not sep or parse_ip(addr) is None or not re.fullmatch(r"[0-9]{1,3}", plen, re.ASCII):
        raise ConfigError(key, value, "a CIDR such as 10.42.0.0/16 or fd00:42::/56 (address/prefix, no zone id)")
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        raise ConfigError(key, value, "a CIDR with no host bits set after the prefix, "
                                      "such as 10.42.0.0/16") from None


def choice(options: Iterable[str]) -> Callable[[str, Any], str]:
    options = tuple(options)

    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise ConfigError(key, value, "one of " + ", ".join(options))
        return value

    return check


def boolean(key: str, value: Any) -> bool:
    # Stack YAML may carry "true"/"false" as strings when set with `pulumi config set`.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(key, value, "true or false")


def integer(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(key, value, f"an integer from {lo} to {hi}")
        if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,10}", value, re.ASCII):
            raise ConfigError(key, value, f"an integer from {lo} to {hi}")
        n = int(value)
        if not lo <= n <= hi:
            raise ConfigError(key, value, f"an integer from {lo} to {hi}")
        return n

    return check


def pattern(regex: re.Pattern, allowed: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.isascii() or not regex.fullmatch(value):
            raise ConfigError(key, value, allowed)
        return value

    return check


def label(key: str, value: Any) -> str:
    value = _string(key, value, "a label `key=value`")
    _reject_shell_metacharacters(key, value)
    k, sep, v = value.partition("=")
    if not sep or not LABEL_KEY_RE.fullmatch(k) or not LABEL_VALUE_RE.fullmatch(v):
        raise ConfigError(key, value, "a Kubernetes label `key=value` (key: [prefix/]name, "
                                      "value: up to 63 of A-Z a-z 0-9 - _ .)")
    return value


def taint(key: str, value: Any) -> str:
    value = _string(key, value, "a taint `key[=value]:Effect`")
    _reject_shell_metacharacters(key, value)
    kv, sep, effect = value.rpartition(":")
    k, _, v = kv.partition("=")
    if not sep or effect not in TAINT_EFFECTS or not LABEL_KEY_RE.fullmatch(k) or not LABEL_VALUE_RE.fullmatch(v):
        raise ConfigError(key, value, "a taint `key[=value]:Effect` with Effect one of "
                                      + ", ".join(TAINT_EFFECTS))
    return value


# A credential inside a URL: user:password@, or a token-like query parameter.
_URL_USERINFO_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]*@", re.I | re.ASCII)
_URL_QUERY_CREDENTIAL_RE = re.compile(
    r"[?&][^=&#]*(token|passw|secret|signature|sig|api-?key|access-?key|auth)[^=&#]*=", re.I | re.ASCII)


def _redact_url(value: Any) -> Any:
    """A URL as an error may show it: userinfo and query string replaced by ***."""
    if not isinstance(value, str):
        return value
    value = re.sub(r"(//)[^/?#]*@", r"\1***@", value)
    return re.sub(r"\?.*", "?***", value, flags=re.S)


def url(schemes: tuple[str, ...]) -> Callable[[str, Any], str]:
    """A URL with one of `schemes`, a valid host (IPv6 in brackets) and no shell or curl glob syntax."""
    allowed = (" or ".join(f"{s}://" for s in schemes) + " URL such as https://get.rke2.io, without user:password@, "
               "spaces, quotes, shell metacharacters or glob brackets")

    def check(key: str, value: Any) -> str:
        shown = _redact_url(value)  # a URL may carry user:password@ or a token in its query
        if not isinstance(value, str) or not value.isascii() or _CONTROL_RE.search(value):
            raise ConfigError(key, shown, allowed)
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            raise ConfigError(key, shown, allowed) from None
        if parts.scheme not in schemes or parts.username or parts.password or parts.fragment:
            raise ConfigError(key, shown, allowed)
        if parts.scheme == "file":
            if parts.netloc or not parts.path.startswith("/"):
                raise ConfigError(key, shown, "a file:///absolute/path URL")
        else:
            host = parts.hostname or ""
            bracketed = parts.netloc.split("@")[-1].startswith("[")
            ip = parse_ip(host)
            if bracketed != (ip is not None and ip.version == 6):
                raise ConfigError(key, shown, allowed)
            if ip is None and (len(host) > 253 or not DNS1123_SUBDOMAIN_RE.fullmatch(host)):
                raise ConfigError(key, shown, allowed)
            if port == 0:
                raise ConfigError(key, shown, allowed)
        rest = parts.path + (f"?{parts.query}" if parts.query or value.endswith("?") else "")
        if not _URL_REST_RE.fullmatch(rest):
            raise ConfigError(key, shown, allowed)
        if _URL_QUERY_CREDENTIAL_RE.search(value):
            raise ConfigError(key, shown, "a URL without credentials in its query string (it would be "
                                          "stored and sent in plain text)")
        return value

    return check


def abs_path(key: str, value: Any) -> str:
    value = _string(key, value, "an absolute path")
    if not value.startswith("/") or len(value) > 1024:
        raise ConfigError(key, value, "an absolute path")
    _reject_shell_metacharacters(key, value)
    return value


def abs_path_or_home(key: str, value: Any) -> str:
    if isinstance(value, str) and value.startswith("~/"):
        _reject_shell_metacharacters(key, value[1:])
        return value
    return abs_path(key, value)


SNAPSHOT_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?")
_SNAPSHOT_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def _snapshot_ref(key: str, value: Any) -> str:
    """A snapshot file name in servers[0]'s snapshot directory, or an absolute path there."""
    allowed = ("a snapshot file name as the etcdSnapshots output or `rke2 etcd-snapshot ls` shows it "
               "(e.g. before-upgrade-jjtestserver-1764670000), or its absolute path on servers[0]")
    if isinstance(value, str) and value.startswith("/"):
        path = abs_path(key, value)
        if "/../" in path + "/" or "/./" in path + "/":
            raise ConfigError(key, value, allowed)
        return path
    if not isinstance(value, str) or not _SNAPSHOT_FILE_RE.fullmatch(value):
        raise ConfigError(key, value, allowed)
    return value


def _expand_home(path: str | None) -> str | None:
    """`~/x` as the absolute path the provider needs (it does not expand ~)."""
    return os.path.expanduser(path) if path is not None else None


def non_empty_secret(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, value, "a non-empty string (set it with `pulumi config set --secret`)",
                          secret=True)
    return value


# ---------------------------------------------------------------------------
# Structured reading
# ---------------------------------------------------------------------------


def _check_strings(path: str, value: Any, depth: int = 0) -> None:
    """Every string (and key) in the config: no control characters, bounded size; lists
    bounded; nesting bounded. Secrets are checked for NUL only (a PEM key has newlines)."""
    if depth > 8:
        raise ConfigError(path, NOT_SHOWN, "at most 8 levels of nesting")
    secret = any(path == s or path.startswith(s + ".") or path.startswith(s + "[") for s in SECRET_KEYS)
    if isinstance(value, str):
        if "\x00" in value:
            raise ConfigError(path, NOT_SHOWN, "a string without NUL bytes")
        if secret:
            if len(value) > 65536:
                raise ConfigError(path, NOT_SHOWN, "at most 65536 characters", secret=True)
            return
        if _CONTROL_RE.search(value):
            raise ConfigError(path, value if _plain_leaf(path) else NOT_SHOWN,
                              "a single-line string without control characters (newline, tab, NUL, ...)")
        if len(value) > MAX_STRING:
            raise ConfigError(path, NOT_SHOWN, f"at most {MAX_STRING} characters ({len(value)} given)")
    elif isinstance(value, Mapping):
        if len(value) > MAX_LIST:
            raise ConfigError(path, NOT_SHOWN, f"at most {MAX_LIST} keys")
        for k, v in value.items():
            if not isinstance(k, str) or _CONTROL_RE.search(k) or len(k) > 253:
                raise ConfigError(path, NOT_SHOWN, "keys without control characters, at most 253 characters")
            _check_strings(f"{path}.{key_segment(k)}" if path else key_segment(k), v, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_LIST:
            raise ConfigError(path, NOT_SHOWN, f"a list of at most {MAX_LIST} entries ({len(value)} given)")
        for i, v in enumerate(value):
            _check_strings(f"{path}[{i}]", v, depth + 1)
    elif not (value is None or isinstance(value, (bool, int, float))):
        raise ConfigError(path, NOT_SHOWN, "plain JSON data (strings, numbers, booleans, lists, objects)")


# Keys whose value is an object: a string given there may be anything (pasted YAML, a key).
_OBJECT_KEYS = ("cluster.extraConfig", "cluster.agentExtraConfig", "cluster.etcdS3", "ssh.hostKeys", "ssh.bastion",
                "registries.mirrors", "registries.configs", "cluster.imagesArchives", "cluster.etcdSnapshots",
                "cluster.etcdSnapshots.s3")


def _plain_leaf(path: str) -> bool:
    """Whether `path` is a known, non-secret, non-object key (so its value may be shown)."""
    p = re.sub(r"^(servers|agents)\[\d+\]", "servers[]", path)
    p = re.sub(r"\[\d+\]$", "", p)
    section, _, name = p.rpartition(".")
    if not section or p in _OBJECT_KEYS or any(p == s or p.startswith(s + ".") for s in SECRET_KEYS):
        return False
    return name in KNOWN_KEYS.get(section, ())


class _Section:
    """Reads one config object, tracking which keys were used so typos are reported."""

    def __init__(self, prefix: str, raw: Any, known: Iterable[str] | None = None):
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            # Never the value itself: a section of secrets given as a plain string is the secret.
            raise ConfigError(prefix, NOT_SHOWN, f"an object (YAML mapping), not {_kind(raw)}")
        self.prefix = prefix
        self.raw = raw
        if known is not None:
            self.reject_unknown(known)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def get(self, name: str, check: Callable[[str, Any], Any], default: Any = None, *, required: bool = False):
        key = self.key(name)
        if name not in self.raw or self.raw[name] is None:
            if required:
                raise ConfigError(key, None, "a value is required")
            return DEFAULTS.get(key, default)
        return check(key, self.raw[name])

    def list(self, name: str, check: Callable[[str, Any], Any]) -> tuple:
        key = self.key(name)
        value = self.raw.get(name)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ConfigError(key, value, "a list")
        return tuple(check(f"{key}[{i}]", item) for i, item in enumerate(value))

    def reject_unknown(self, known: Iterable[str]) -> None:
        known = set(known)
        for name in self.raw:
            if name not in known:
                # An unknown key may be a misspelt secret (ssh.privatekey): its value is never shown.
                raise ConfigError(self.key(key_segment(name)), NOT_SHOWN,
                                  "not a known key; known keys: " + ", ".join(sorted(known)))


def _node(key: str, raw: Any) -> NodeConfig:
    s = _Section(key, raw, KNOWN_KEYS["servers[]"])
    return NodeConfig(
        name=s.get("name", node_name, required=True),
        address=s.get("address", host_address, required=True),
        node_ip=s.get("nodeIp", lambda k, v: ip_literal(k, v, role="node-ip")),
        labels=s.list("labels", label),
        taints=s.list("taints", taint),
        rebuild=s.get("rebuild", pattern(SNAPSHOT_LABEL_RE, "a label such as 2026-12-06 (lower-case letters, "
                                                            "digits, '.', '-'; at most 63)")),
    )


def _nodes(key: str, raw: Any, *, required: bool) -> tuple[NodeConfig, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ConfigError(key, NOT_SHOWN, f"a list of {{name, address, nodeIp?, labels?, taints?}}, not {_kind(raw)}")
    if required and not raw:
        raise ConfigError(key, raw, "at least one server")
    return tuple(_node(f"{key}[{i}]", item) for i, item in enumerate(raw))


def _rke2_value(key: str, value: Any) -> Any:
    """A config.yaml value: a scalar or a list of scalars (what RKE2's flags take)."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _rke2_value(f"{key}[{i}]", item)
        return list(value)
    if isinstance(value, str) and (_URL_USERINFO_RE.search(value) or _URL_QUERY_CREDENTIAL_RE.search(value)):
        raise ConfigError(key, NOT_SHOWN, "a value without credentials (a URL with user:password@ or a "
                                          "token-like query parameter would land in the plain config.yaml)")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ConfigError(key, NOT_SHOWN, "a string, number, boolean or list of them (RKE2 flags take no objects)")


def _extra_config(section: str) -> Callable[[str, Any], Mapping[str, Any]]:
    def check(key: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise ConfigError(key, NOT_SHOWN, f"an object of RKE2 config.yaml keys, not {_kind(value)}")
        result = {}
        for k, v in value.items():
            entry = f"{key}.{key_segment(k)}"
            if not isinstance(k, str) or not RKE2_KEY_RE.fullmatch(k):
                raise ConfigError(entry, NOT_SHOWN, "an RKE2 config.yaml key: lowercase letters, digits "
                                                    "and '-', optionally ending in '+'")
            base = k.rstrip("+")
            if base in CREDENTIAL_RKE2_KEYS:
                raise ConfigError(entry, NOT_SHOWN, "a credential, never in the plain config.yaml: set "
                                  f"{CREDENTIAL_RKE2_KEYS[base]} with `pulumi config set --secret --path`")
            if base in MANAGED_RKE2_KEYS:
                instead = MANAGED_RKE2_KEYS[base]
                raise ConfigError(entry, NOT_SHOWN, "not settable through " + section + ": the program manages it"
                                  + (f" (use {instead})" if instead else ""))
            if _CREDENTIAL_NAME_RE.fullmatch(base):
                raise ConfigError(entry, NOT_SHOWN, "looks like a credential, which never goes into the plain "
                                  "config.yaml (etcd S3 credentials: cluster.etcdS3)")
            result[k] = _rke2_value(entry, v)
        return result

    return check


def _etcd_s3(key: str, value: Any) -> EtcdS3Credentials:
    s = _Section(key, value, ETCD_S3_KEYS)
    return EtcdS3Credentials(
        access_key=s.get("accessKey", non_empty_secret, required=True),
        secret_key=s.get("secretKey", non_empty_secret, required=True),
        session_token=s.get("sessionToken", non_empty_secret),
    )


# ---------------------------------------------------------------------------
# cluster.etcdSnapshots: scheduled etcd snapshots and their S3 target
# ---------------------------------------------------------------------------

# RKE2 schedules its snapshots with robfig/cron v3's standard parser: k3s pkg/etcd/etcd.go NewETCD
# (`cron.New(cron.WithLogger(cronLogger))`) and pkg/etcd/snapshot.go setSnapshotFunction
# (`e.cron.AddJob(e.config.EtcdSnapshotCron, ...)`, its error dropped). That parser takes five fields
# or a descriptor; a spec it refuses is not an error at start: the cluster just takes no snapshots.
CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                                 "oct", "nov", "dec"))}
_CRON_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (field, min, max, names): robfig/cron v3 spec.go's bounds (day of week 0-6, Sunday 0).
_CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}),
                ("month", 1, 12, _CRON_MONTHS), ("day-of-week", 0, 6, _CRON_DAYS))
_GO_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|ms|s|m|h)", re.ASCII)
_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
CRON_ALLOWED = ('a cron expression of 5 fields, minute hour day-of-month month day-of-week (such as "0 */6 * * *"), '
                "or a descriptor: " + ", ".join(CRON_DESCRIPTORS) + ' or "@every <Go duration>" such as "@every 6h"')


def _cron_number(text: str, lo: int, hi: int, names: Mapping[str, int]) -> int | None:
    if text.isascii() and text.isdigit():
        n = int(text)
    elif text.lower() in names:
        n = names[text.lower()]
    else:
        return None
    return n if lo <= n <= hi else None


def _cron_field_problem(text: str, name: str, lo: int, hi: int, names: Mapping[str, int]) -> str | None:
    """Why robfig/cron v3 (parser.go getRange) refuses one field, or None. Stricter in two corners
    it lets through: empty list items (`1,,2`) and a range after `*` (`*-5`)."""
    hint = f", {'/'.join(list(names)[:3])}..." if names else ""
    problem = (f"the {name} field {text!r} is not valid "
               f"(allowed: {lo}-{hi}{hint}, *, ?, a-b, a/n, a-b/n, lists with ',')")
    for item in text.split(","):
        rng, slash, step = item.partition("/")
        if slash and not (step.isascii() and step.isdigit() and int(step) > 0):
            return problem
        if rng in ("*", "?"):
            continue
        low, dash, high = rng.partition("-")
        start = _cron_number(low, lo, hi, names)
        end = _cron_number(high, lo, hi, names) if dash else (hi if slash else start)
        if start is None or end is None or start > end:
            return problem
    return None


def _go_duration_seconds(text: str) -> float | None:
    """Seconds of an unsigned Go duration (time.ParseDuration: 90m, 1h30m, 1.5h), None if it is not one."""
    pos, total = 0, 0.0
    for m in _GO_DURATION_PART_RE.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _GO_DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total if text and pos == len(text) else None


def _cron_schedule(key: str, value: Any) -> str:
    """cluster.etcdSnapshots.schedule (etcd-snapshot-schedule-cron), as RKE2's cron parser takes it."""
    if not isinstance(value, str) or not value.isascii() or len(value) > 200:
        raise ConfigError(key, value, CRON_ALLOWED)
    if value.startswith(("TZ=", "CRON_TZ=")):
        # robfig/cron takes a zone prefix, resolved on each server: a zone unknown there would
        # leave the cluster without scheduled snapshots, and it cannot be checked from here.
        raise ConfigError(key, value, "a schedule without a TZ= or CRON_TZ= prefix (not supported here; RKE2 runs "
                                      "the schedule in each server's local time): " + CRON_ALLOWED)
    if value.startswith("@"):
        if value in CRON_DESCRIPTORS:
            return value
        seconds = _go_duration_seconds(value[len("@every "):]) if value.startswith("@every ") else None
        if seconds is None or seconds < 1:
            raise ConfigError(key, value, CRON_ALLOWED + " (a Go duration of at least 1s, such as 90m or 1h30m)")
        return value
    fields = value.split()
    if len(fields) != 5:
        seconds = "; RKE2's parser takes no seconds field" if len(fields) == 6 else ""
        raise ConfigError(key, value, f"{CRON_ALLOWED} ({len(fields)} fields given{seconds})")
    for text, (name, lo, hi, names) in zip(fields, _CRON_FIELDS):
        problem = _cron_field_problem(text, name, lo, hi, names)
        if problem:
            raise ConfigError(key, value, f"{CRON_ALLOWED}: {problem}")
    return value


def _snapshot_retention(key: str, value: Any) -> int:
    """etcd-snapshot-retention / etcd-s3-retention: k3s pkg/etcd/snapshot.go snapshotRetention (and
    pkg/etcd/s3/s3.go SnapshotRetention) prune nothing when it is below 1."""
    try:
        return integer(0, 10000)(key, value)
    except ConfigError:
        raise ConfigError(key, value, "an integer from 0 to 10000: the snapshots kept (0: RKE2 prunes none)") from None


# minio-go pkg/s3utils CheckValidBucketName, which RKE2's S3 client (minio-go) applies.
_S3_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{1,61}[A-Za-z0-9]", re.ASCII)
_S3_FOLDER_RE = re.compile(r"[A-Za-z0-9._-]{1,255}(/[A-Za-z0-9._-]{1,255})*", re.ASCII)
_S3_REGION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", re.ASCII)


def _s3_bucket(key: str, value: Any) -> str:
    if (not isinstance(value, str) or not _S3_BUCKET_RE.fullmatch(value) or ".." in value or ".-" in value
            or "-." in value or re.fullmatch(r"([0-9]+\.){3}[0-9]+", value)):
        raise ConfigError(key, value, "an S3 bucket name: 3 to 63 letters, digits, '.', '-', '_' or ':', starting "
                                      "and ending with a letter or digit, no '..', not an IP address")
    return value


def _s3_folder(key: str, value: Any) -> str:
    if (not isinstance(value, str) or len(value) > 512 or not _S3_FOLDER_RE.fullmatch(value)
            or any(seg in (".", "..") for seg in value.split("/"))):
        raise ConfigError(key, value, "a key prefix in the bucket such as rke2/prod: segments of letters, digits, "
                                      "'.', '_' and '-' between single '/' (none first or last, no . or .. "
                                      "segment), at most 512 characters")
    return value


def _s3_region(key: str, value: Any) -> str:
    allowed = "an S3 region such as us-east-1 (letters, digits, '-' and '_', at most 63)"
    return pattern(_S3_REGION_RE, allowed)(key, value)


def _s3_endpoint(key: str, value: Any) -> str:
    """etcd-s3-endpoint: minio-go's endpoint (k3s pkg/etcd/s3/s3.go `minio.New(etcdS3.Endpoint, ...)`),
    host[:port] with no scheme: https, or http with etcd-s3-insecure."""
    allowed = ("host[:port] of the S3 endpoint without a scheme or path, such as s3.eu-west-1.amazonaws.com or "
               "minio.internal:9000 (RKE2 uses https, or http with cluster.etcdSnapshots.s3.insecure: true)")
    # Never shown when it may hold user:password@ (a URL's credentials).
    shown = NOT_SHOWN if isinstance(value, str) and "@" in value else _redact_url(value)
    if isinstance(value, str) and "://" in value:
        raise ConfigError(key, shown, "the endpoint without its scheme: " + allowed)
    try:
        return registry_host(key, value)
    except ConfigError:
        raise ConfigError(key, shown, allowed) from None


def _etcd_s3_target(key: str, value: Any) -> EtcdS3Target:
    s = _Section(key, value, KNOWN_KEYS["cluster.etcdSnapshots.s3"])
    target = EtcdS3Target(
        bucket=s.get("bucket", _s3_bucket, required=True),
        endpoint=s.get("endpoint", _s3_endpoint),
        folder=s.get("folder", _s3_folder),
        region=s.get("region", _s3_region),
        skip_ssl_verify=s.get("skipSslVerify", boolean, False),
        endpoint_ca=s.get("endpointCa", abs_path),
        insecure=s.get("insecure", boolean, False),
        retention=s.get("retention", _snapshot_retention),
    )
    if target.skip_ssl_verify and target.endpoint_ca is not None:
        # k3s pkg/etcd/s3/s3.go GetClient: "You can either disable SSL verification or use a custom CA bundle".
        raise ConfigError(s.key("endpointCa"), target.endpoint_ca,
                          f"unset while {key}.skipSslVerify is true: RKE2 then verifies no certificate and "
                          "never reads the CA (keep the CA and set skipSslVerify: false)")
    if target.insecure and (target.skip_ssl_verify or target.endpoint_ca is not None):
        other = "skipSslVerify" if target.skip_ssl_verify else "endpointCa"
        raise ConfigError(s.key("insecure"), True, f"false while {key}.{other} is set: insecure means plain "
                                                    "http, which has no certificate to verify")
    return target


def _etcd_snapshots(key: str, value: Any) -> EtcdSnapshotsConfig:
    s = _Section(key, value, KNOWN_KEYS["cluster.etcdSnapshots"])
    snapshots = EtcdSnapshotsConfig(
        schedule=s.get("schedule", _cron_schedule),
        retention=s.get("retention", _snapshot_retention),
        disabled=s.get("disabled", boolean, False),
        s3=s.get("s3", _etcd_s3_target),
    )
    if snapshots.disabled and snapshots.schedule is not None:
        raise ConfigError(s.key("schedule"), snapshots.schedule,
                          f"unset while {key}.disabled is true: RKE2 then takes no scheduled snapshot "
                          "(etcd-disable-snapshots)")
    return snapshots


def _check_etcd_s3_pairing(cluster: "ClusterConfig") -> None:
    """cluster.etcdS3 (credentials) goes with cluster.etcdSnapshots.s3 (the target); the target
    alone is fine (the host's AWS credentials file or instance role). The other etcd-s3-* keys
    cluster.extraConfig may still set (etcd-s3-timeout, etcd-s3-proxy, ...) need the target too."""
    target = cluster.etcd_snapshots.s3 if cluster.etcd_snapshots is not None else None
    if target is not None:
        return
    if cluster.etcd_s3 is not None:
        raise ConfigError("cluster.etcdS3", None, "credentials for an S3 target, which is not set: set "
                          "cluster.etcdSnapshots.s3 (bucket, endpoint, ...) too, or remove cluster.etcdS3",
                          secret=True)
    for k in cluster.extra_config:
        if k.startswith("etcd-s3-"):
            raise ConfigError(f"cluster.extraConfig.{key_segment(k)}", NOT_SHOWN,
                              "only with cluster.etcdSnapshots.s3: without an S3 target RKE2 uploads no "
                              "snapshot, so this key would do nothing")


# ---------------------------------------------------------------------------
# registries, system images, image archives, profile
# ---------------------------------------------------------------------------

PROFILE_CHOICES = ("cis",)
"""RKE2 accepts `cis` from v1.29 to v1.33 (rancher/rke2 pkg/rke2/rke2.go ProfileCIS and
pkg/cli/cmds/profile_linux.go validateProfile, read at v1.33.5+rke2r1); `cis-1.23` and `etcd`
exist only in some releases and are not offered."""
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}", re.ASCII)
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
# What RKE2 imports from agent/images/ (k3s pkg/agent/containerd/containerd.go preloadImages).
IMAGE_ARCHIVE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(tar|tar\.gz|tgz|tar\.bz2|tbz|tar\.lz4|tar\.zst|"
                              r"tzst|tar\.zstd|txt)", re.ASCII)
# Go's regexp (RE2) has no lookaround and no backreferences: containerd would skip such a rewrite.
_NOT_RE2_RE = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[1-9]|\(\?P=", re.ASCII)
MAX_RULE = 1024


def registry_host(key: str, value: Any, *, wildcard: bool = False) -> str:
    """A registry name as registries.yaml and system-default-registry take it: host[:port]
    (DNS-1123 name, IPv4, or [IPv6]); `*` (every registry) where `wildcard`."""
    allowed = ("a registry host[:port] such as registry.example.com:5000 or [fd00::5]:5000"
               + (", or * for every registry" if wildcard else ""))
    value = _string(key, value, allowed)
    if wildcard and value == "*":
        return value
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]{2,45})\](?::([0-9]{1,5}))?", value, re.ASCII)
    if m:
        ip = parse_ip(m.group(1))
        host_ok = ip is not None and ip.version == 6
        port = m.group(2)
    else:
        host, sep, port = value.partition(":")
        ip = parse_ip(host)
        host_ok = (ip is not None and ip.version == 4) or (
            ip is None and len(host) <= 253 and DNS1123_SUBDOMAIN_RE.fullmatch(host) is not None
            and not re.fullmatch(r".*\.[0-9]+|[0-9]+", host, re.ASCII))
        port = port if sep else None
        if sep and not port:
            host_ok = False
    if not host_ok or (port is not None and (not _PORT_RE.fullmatch(port) or int(port) > 65535)):
        raise ConfigError(key, value, allowed)
    return value


def _rewrite_rule(key: str, pattern_text: Any, replacement: Any) -> tuple[str, str]:
    if not isinstance(pattern_text, str) or not pattern_text or len(pattern_text) > MAX_RULE:
        raise ConfigError(key, pattern_text, f"a regular expression of 1 to {MAX_RULE} characters")
    try:
        re.compile(pattern_text)
    except re.error as e:
        raise ConfigError(key, pattern_text, f"a valid regular expression ({e.msg})") from None
    if _NOT_RE2_RE.search(pattern_text):
        raise ConfigError(key, pattern_text, "a Go (RE2) regular expression: no lookaround or backreferences")
    if not isinstance(replacement, str) or len(replacement) > MAX_RULE:
        raise ConfigError(key, replacement, f"a replacement string of at most {MAX_RULE} characters "
                                            "($1 or ${name} for groups)")
    return pattern_text, replacement


AGENT_BATCH_RE = re.compile(r"(?:[1-9][0-9]{0,3})|(?:[1-9][0-9]?|100)%")


def _agent_batch(key: str, value: Any) -> str:
    """A count (1-9999) or a percent (1%-100%), as a string; a YAML integer is accepted too."""
    allowed = "a number of agents from 1 to 9999 (such as 2) or a percent from 1% to 100% (such as \"10%\")"
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value) if value > 0 else value
    if not isinstance(value, str) or not value.isascii() or not AGENT_BATCH_RE.fullmatch(value):
        raise ConfigError(key, value, allowed)
    return value


def _upgrade(key: str, value: Any) -> UpgradeConfig:
    s = _Section(key, value, KNOWN_KEYS["cluster.upgrade"])
    return UpgradeConfig(
        agent_batch=s.get("agentBatch", _agent_batch),
        drain=s.get("drain", boolean),
        drain_timeout_seconds=s.get("drainTimeoutSeconds", integer(1, 86400)),
        drain_grace_period_seconds=s.get("drainGracePeriodSeconds", _grace_period),
    )


def _grace_period(key: str, value: Any) -> int:
    """kubectl drain --grace-period: -1 (each pod's own) or 0-86400 seconds."""
    allowed = "-1 (each pod's own grace period) or an integer from 0 to 86400"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(key, value, allowed)
    if isinstance(value, str) and not re.fullmatch(r"-1|[0-9]{1,5}", value, re.ASCII):
        raise ConfigError(key, value, allowed)
    n = int(value)
    if not (n == -1 or 0 <= n <= 86400):
        raise ConfigError(key, value, allowed)
    return n


def _registry_mirror(key: str, value: Any) -> RegistryMirror:
    s = _Section(key, value, REGISTRY_KEYS["mirror"])
    endpoints = s.list("endpoints", url(("https", "http")))
    if not endpoints:
        raise ConfigError(s.key("endpoints"), None, "at least one endpoint URL such as https://registry.example.com:5000")
    raw_rw = s.raw.get("rewrites")
    rewrites: dict[str, str] = {}
    if raw_rw is not None:
        if not isinstance(raw_rw, Mapping):
            raise ConfigError(s.key("rewrites"), NOT_SHOWN, f"an object regex -> replacement, not {_kind(raw_rw)}")
        for k, v in raw_rw.items():
            p, r = _rewrite_rule(f"{s.key('rewrites')}.{key_segment(k)}", k, v)
            rewrites[p] = r
    return RegistryMirror(endpoints=endpoints, rewrites=rewrites)


def _registry_auth(key: str, value: Any) -> RegistryAuth:
    s = _Section(key, value, REGISTRY_KEYS["auth"])
    auth = RegistryAuth(
        username=s.get("username", pattern(re.compile(r"[\x21-\x7e]{1,256}", re.ASCII),
                                           "a user name (printable ASCII, no spaces)")),
        password=s.get("password", non_empty_secret),
        token=s.get("token", non_empty_secret),
    )
    if auth.token is not None and (auth.username is not None or auth.password is not None):
        raise ConfigError(key, None, "username and password, or token, not both", secret=True)
    if auth.token is None and (auth.username is None or auth.password is None):
        raise ConfigError(key, None, "username and password together, or token", secret=True)
    return auth


def _registry_tls(key: str, value: Any) -> RegistryTls:
    s = _Section(key, value, REGISTRY_KEYS["tls"])
    tls = RegistryTls(
        ca_file=s.get("caFile", abs_path),
        cert_file=s.get("certFile", abs_path),
        key_file=s.get("keyFile", abs_path),
        insecure_skip_verify=s.get("insecureSkipVerify", boolean, False),
    )
    if (tls.cert_file is None) != (tls.key_file is None):
        # rancher/wharfie pkg/registries/registries.go getTLSConfigForHost refuses one without the other.
        missing = "keyFile" if tls.key_file is None else "certFile"
        raise ConfigError(s.key(missing), None, "certFile and keyFile together (a client certificate and its key)")
    return tls


def _registry_configs(key: str, value: Any) -> Mapping[str, RegistryHostConfig]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, NOT_SHOWN, f"an object registry host -> {{auth?, tls?}}, not {_kind(value)}")
    result = {}
    for host, entry in value.items():
        ekey = f"{key}.{key_segment(host)}"
        name = registry_host(ekey, host, wildcard=True)
        s = _Section(ekey, entry, REGISTRY_KEYS["config"])
        result[name] = RegistryHostConfig(auth=s.get("auth", _registry_auth), tls=s.get("tls", _registry_tls))
    return result


def _registries(raw: Any, secret_keys: set[str]) -> RegistriesConfig | None:
    if raw is None:
        return None
    s = _Section("registries", raw, KNOWN_KEYS["registries"])
    mirrors_raw = s.raw.get("mirrors")
    mirrors: dict[str, RegistryMirror] = {}
    if mirrors_raw is not None:
        if not isinstance(mirrors_raw, Mapping):
            raise ConfigError("registries.mirrors", NOT_SHOWN,
                              f"an object registry host -> {{endpoints, rewrites?}}, not {_kind(mirrors_raw)}")
        for host, entry in mirrors_raw.items():
            ekey = f"registries.mirrors.{key_segment(host)}"
            mirrors[registry_host(ekey, host, wildcard=True)] = _registry_mirror(ekey, entry)
    configs = s.get("configs", _registry_configs, {})
    is_secret = f"{NAMESPACE}:registries" in secret_keys
    result = RegistriesConfig(mirrors=mirrors, configs=configs, secret=is_secret)
    if result.has_auth and not is_secret:
        host = next(h for h, c in configs.items() if c.auth is not None)
        raise ConfigError(f"registries.configs.{key_segment(host)}.auth", None,
                          "a secret: set it with `pulumi config set --secret --path "
                          f"'{NAMESPACE}:registries.configs[\"{host}\"].auth.password' ...`", secret=True)
    if result.has_auth:
        result = replace(result, secret=True)
    return result


def _image_archives(key: str, value: Any) -> tuple[ImageArchive, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, NOT_SHOWN, f"a list of {{url, sha256}}, not {_kind(value)}")
    archives: list[ImageArchive] = []
    names: dict[str, str] = {}
    for i, entry in enumerate(value):
        ekey = f"{key}[{i}]"
        s = _Section(ekey, entry, REGISTRY_KEYS["imagesArchive"])
        link = s.get("url", url(("https", "file")), required=True)
        digest = s.get("sha256", pattern(SHA256_RE, "a sha256 digest: 64 hexadecimal characters"), required=True)
        name = urlsplit(link).path.rsplit("/", 1)[-1]
        if not IMAGE_ARCHIVE_RE.fullmatch(name):
            raise ConfigError(s.key("url"), link, "a URL whose last path segment is an archive file RKE2 imports "
                              "(*.tar, *.tar.gz, *.tar.zst, *.tar.bz2, *.tar.lz4 or a *.txt image list)")
        if name in names:
            raise ConfigError(s.key("url"), link, f"a file name no other archive uses ({names[name]} has {name})")
        names[name] = ekey
        archives.append(ImageArchive(url=link, sha256=digest.lower(), name=name))
    return tuple(archives)


def _check_node_wide_duplicates(cluster: "ClusterConfig") -> None:
    """A dedicated key and the same config.yaml key through cluster.extraConfig would disagree."""
    for key, value, rke2_key in (("cluster.systemDefaultRegistry", cluster.system_default_registry,
                                  "system-default-registry"), ("cluster.profile", cluster.profile, "profile")):
        if value is None:
            continue
        for section, extra in (("cluster.extraConfig", cluster.extra_config),
                               ("cluster.agentExtraConfig", cluster.agent_extra_config)):
            if rke2_key in extra or f"{rke2_key}+" in extra:
                raise ConfigError(key, value, f"set either {key} or {section}.{rke2_key}, not both "
                                              f"({key} writes {rke2_key} on every node)")


def _host_key(key: str, addr: str, value: Any) -> str:
    m = HOST_KEY_RE.fullmatch(value.strip()) if isinstance(value, str) and value.isascii() else None
    if m is None:
        raise ConfigError(key, value, "an OpenSSH public key line such as 'ssh-ed25519 AAAA...' "
                                      "(ssh-keyscan -t ed25519 <host>)")
    kind, blob = m.group(1), m.group(3)
    try:
        head = blob.rstrip("=")[:44]  # enough for the length-prefixed type name
        raw = base64.b64decode(head[:len(head) // 4 * 4], validate=True)
        n = int.from_bytes(raw[:4], "big")
        embedded = raw[4:4 + n].decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        embedded = ""
    if embedded != kind:
        raise ConfigError(key, value, f"an OpenSSH public key whose data is a {kind} key "
                                      "(copy the line from ssh-keyscan or /etc/ssh/ssh_host_*_key.pub)")
    if kind == "ssh-rsa":
        # pulumi-command v1.2.1 (provider/pkg/provider/remote/connection.go, SSHConfig) sets
        # HostKeyAlgorithms to the pinned key's type, i.e. only `ssh-rsa` (SHA-1 signatures),
        # which OpenSSH 8.8 and later refuse: the connection to this host would always fail.
        raise ConfigError(key, value, f"an ed25519 or ECDSA host key for {addr}: with an ssh-rsa key "
                                      "pulumi-command offers only the ssh-rsa (SHA-1) algorithm, which "
                                      f"OpenSSH >= 8.8 refuses (ssh-keyscan -t ed25519 {addr})")
    return f"{kind} {blob}"


def _bastion(default_user: str) -> Callable[[str, Any], BastionConfig]:
    def check(key: str, value: Any) -> BastionConfig:
        b = _Section(key, value, KNOWN_KEYS["ssh.bastion"])
        address = b.get("address", host_address, required=True)
        bastion = BastionConfig(
            address=address,
            user=b.get("user", pattern(UNIX_USER_RE, "a Unix user name (lowercase letters, digits, _ and -)"),
                       default_user),
            port=b.get("port", integer(1, 65535), 22),
            private_key_path=b.get("privateKeyPath", abs_path_or_home),
            private_key=b.get("privateKey", non_empty_secret),
            host_key=b.get("hostKey", lambda k, v: _host_key(k, address, v)),
        )
        if bastion.private_key and bastion.private_key_path:
            raise ConfigError(f"{key}.privateKey", None, f"set {key}.privateKey or {key}.privateKeyPath, not both "
                              "(or neither: the hosts' key is used)", secret=True)
        return bastion

    return check


def _host_keys(key: str, value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, NOT_SHOWN, f"a map of address -> public host key, not {_kind(value)}")
    result: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for addr, hk in value.items():
        entry = f"{key}.{key_segment(addr)}"
        norm = host_address(entry, addr)
        if norm in result:
            raise ConfigError(entry, addr, f"one entry per host ({spelled[norm]!r} is the same address)")
        result[norm] = _host_key(entry, norm, hk)
        spelled[norm] = addr
    return result


def _check_cidrs(cluster: "ClusterConfig") -> None:
    cluster_net = ipaddress.ip_network(cluster.cluster_cidr or RKE2_DEFAULT_CLUSTER_CIDR)
    service_net = ipaddress.ip_network(cluster.service_cidr or RKE2_DEFAULT_SERVICE_CIDR)
    if cluster_net.version == service_net.version and cluster_net.overlaps(service_net):
        key = "cluster.serviceCidr" if cluster.service_cidr else "cluster.clusterCidr"
        raise ConfigError(key, str(service_net if cluster.service_cidr else cluster_net),
                          f"a range that does not overlap cluster.clusterCidr {cluster_net} / "
                          f"cluster.serviceCidr {service_net} (RKE2 defaults 10.42.0.0/16 and 10.43.0.0/16)")
    if cluster.cluster_dns:
        dns = ipaddress.ip_address(cluster.cluster_dns)
        hosts_ok = dns in service_net and dns != service_net.network_address and \
            (service_net.version == 6 or dns != service_net.broadcast_address)
        if not hosts_ok:
            where = "cluster.serviceCidr" if cluster.service_cidr else "RKE2's default service range"
            raise ConfigError("cluster.clusterDns", cluster.cluster_dns,
                              f"a host address inside {where} {service_net}")


def _check_unique_addresses(servers, agents, lb: LoadBalancerConfig | None) -> None:
    """No address (normalised, so fd00::11 == fd00:0::11) may belong to two hosts or roles."""
    owners: dict[str, tuple[str, str]] = {}  # address -> (host identity, key)

    def claim(addr: str | None, host: str, key: str) -> None:
        if addr is None:
            return
        prev = owners.get(addr)
        if prev is not None and prev[0] != host:
            raise ConfigError(key, addr, f"an address no other host or role uses ({prev[1]} has it)")
        owners.setdefault(addr, (host, key))

    for kind, nodes in (("servers", servers), ("agents", agents)):
        for i, n in enumerate(nodes):
            claim(n.address, f"{kind}[{i}]", f"{kind}[{i}].address")
            claim(n.node_ip, f"{kind}[{i}]", f"{kind}[{i}].nodeIp")
    if lb is not None:
        claim(lb.address, "loadBalancer", "loadBalancer.address")
        claim(lb.vip, "loadBalancer.vip", "loadBalancer.vip")


def _check_bastion_address(address: str, servers, agents, lb: "LoadBalancerConfig | None") -> None:
    """The bastion is a separate jump host: no node or load balancer address (SSH address,
    node-ip or VIP, normalised) may be it, or that host would be dialed through itself."""
    for kind, nodes in (("servers", servers), ("agents", agents)):
        for i, n in enumerate(nodes):
            for name, addr in (("address", n.address), ("nodeIp", n.node_ip)):
                if addr == address:
                    raise ConfigError("ssh.bastion.address", address,
                                      f"a jump host's address that is not a cluster host's ({kind}[{i}].{name} has it)")
    if lb is not None:
        for name, addr in (("address", lb.address), ("vip", lb.vip)):
            if addr == address:
                raise ConfigError("ssh.bastion.address", address,
                                  f"a jump host's address that is not a cluster host's (loadBalancer.{name} has it)")


def _secret_tops(secret_keys: Iterable[str]) -> set[str]:
    tops = {k.split(":", 1)[1] if k.startswith(f"{NAMESPACE}:") else k for k in secret_keys}
    return {t.split(".")[0] for t in tops}


def _may_be_secret(key: str, secret_tops: set[str]) -> bool:
    top = re.split(r"[.\[]", key, maxsplit=1)[0]
    if top in secret_tops:
        return True
    return any(key == s or key.startswith(s + ".") or key.startswith(s + "[") for s in SECRET_KEYS)


def parse_config(raw: Mapping[str, Any], secret_keys: Iterable[str] = (), pins: Mapping[str, str] | None = None
                 ) -> StackConfig:
    """Validates the plain stack config (keys without the namespace) into a StackConfig.

    Errors under a key that is a Pulumi secret (or one of SECRET_KEYS) never show the value."""
    secret_keys = set(secret_keys)
    secret_tops = _secret_tops(secret_keys)
    try:
        return _parse(raw, secret_keys, pins)
    except ConfigError as e:
        if e.shown_value and _may_be_secret(e.key, secret_tops):
            raise e.redacted() from None
        raise


def _parse(raw: Mapping[str, Any], secret_keys: set[str], pins: Mapping[str, str] | None) -> StackConfig:
    pins = versions.load_pins() if pins is None else pins
    top = _Section("", raw, KNOWN_KEYS[""])
    _check_strings("", dict(raw))

    ssh_s = _Section("ssh", raw.get("ssh"), KNOWN_KEYS["ssh"])
    ssh = SshConfig(
        user=ssh_s.get("user", pattern(UNIX_USER_RE, "a Unix user name (lowercase letters, digits, _ and -)")),
        port=ssh_s.get("port", integer(1, 65535)),
        private_key_path=ssh_s.get("privateKeyPath", abs_path_or_home),
        private_key=ssh_s.get("privateKey", non_empty_secret),
        host_keys=ssh_s.get("hostKeys", _host_keys, {}),
    )
    if ssh.private_key and ssh.private_key_path:
        raise ConfigError("ssh.privateKey", None, "set ssh.privateKey or ssh.privateKeyPath, not both", secret=True)
    ssh = replace(ssh, bastion=ssh_s.get("bastion", _bastion(ssh.user)))

    c = _Section("cluster", raw.get("cluster"), KNOWN_KEYS["cluster"])
    hostname = c.get("hostname", dns_name, required=True)
    cluster = ClusterConfig(
        hostname=hostname,
        version=c.get("version", pattern(versions.RKE2_VERSION_RE,
                                         "a pinned RKE2 release vX.Y.Z+rke2rN such as v1.33.5+rke2r1 "
                                         "(channels are not accepted)"), required=True),
        tls_sans=c.list("tlsSans", san) if c.raw.get("tlsSans") is not None else (hostname,),
        cluster_cidr=c.get("clusterCidr", cidr),
        service_cidr=c.get("serviceCidr", cidr),
        cluster_dns=c.get("clusterDns", lambda k, v: ip_literal(k, v, role="cluster DNS")),
        cni=c.get("cni", choice(CNI_CHOICES)),
        disable=c.list("disable", pattern(re.compile(r"[a-z0-9][a-z0-9-]{0,62}"),
                                          "a bundled component name such as rke2-ingress-nginx")),
        write_kubeconfig_mode=c.get("writeKubeconfigMode",
                                    pattern(MODE_RE, "an octal file mode string such as \"0600\"")),
        mobile=c.get("mobile", boolean),
        mobile_node_ip=c.get("mobileNodeIp", _mobile_node_ip),
        mobile_interface=c.get("mobileInterface", choice(MOBILE_INTERFACE_CHOICES)),
        extra_config=c.get("extraConfig", _extra_config("cluster.extraConfig"), {}),
        agent_extra_config=c.get("agentExtraConfig", _extra_config("cluster.agentExtraConfig"), {}),
        etcd_s3=c.get("etcdS3", _etcd_s3),
        install_script_url=c.get("installScriptUrl", url(("https", "file"))),
        artifact_dir=c.get("artifactDir", abs_path),
        retain_on_destroy=c.get("retainOnDestroy", boolean),
        ready_timeout_seconds=c.get("readyTimeoutSeconds", integer(30, 7200)),
        ca=c.get("ca", choice(CA_CHOICES)),
        certificate_rotation=c.get("certificateRotation", pattern(
            re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,62}"), "a label such as 2026-11-22 (letters, digits, . _ : -)")),
        system_default_registry=c.get("systemDefaultRegistry", registry_host),
        images_archives=c.get("imagesArchives", _image_archives, ()),
        profile=c.get("profile", choice(PROFILE_CHOICES)),
        upgrade=c.get("upgrade", _upgrade, None) or _upgrade("cluster.upgrade", {}),
        # RKE2 names the file <label>-<node>-<unix time>; the label must survive as a file name.
        snapshot=c.get("snapshot", pattern(SNAPSHOT_LABEL_RE, "a snapshot label such as before-rancher-2-12 "
                                           "(lower-case letters, digits, . and -, at most 63)")),
        restore=c.get("restore", _snapshot_ref),
        etcd_snapshots=c.get("etcdSnapshots", _etcd_snapshots),
    )
    _check_node_wide_duplicates(cluster)
    if cluster.etcd_s3 is not None and f"{NAMESPACE}:cluster" not in secret_keys:
        raise ConfigError("cluster.etcdS3", None, "a secret: set it with `pulumi config set --secret --path "
                          f"{NAMESPACE}:cluster.etcdS3.secretKey ...` (and accessKey)", secret=True)
    _check_etcd_s3_pairing(cluster)
    _check_cidrs(cluster)

    servers = _nodes("servers", raw.get("servers"), required=True)
    agents = _nodes("agents", raw.get("agents"), required=False)
    for i, n in enumerate(agents):
        if n.rebuild is not None:
            raise ConfigError(f"agents[{i}].rebuild", n.rebuild,
                              "only servers have it: remove the agent, `pulumi up` (its Node and node password go), "
                              "then add it back")
    if servers and servers[0].rebuild is not None and len(servers) > 1:
        raise ConfigError("servers[0].rebuild", servers[0].rebuild,
                          "a rebuilt server joins through servers[0], so servers[0] itself cannot: move it "
                          "later in `servers` (another server becomes the first), then set rebuild")
    seen: dict[str, str] = {}
    for kind, nodes in (("servers", servers), ("agents", agents)):
        for i, n in enumerate(nodes):
            if n.name in seen:
                raise ConfigError(f"{kind}[{i}].name", n.name, f"a unique node name ({seen[n.name]} has it)")
            seen[n.name] = f"{kind}[{i}]"

    lb = None
    if raw.get("loadBalancer") is not None:
        lb_s = _Section("loadBalancer", raw.get("loadBalancer"), KNOWN_KEYS["loadBalancer"])
        lb = LoadBalancerConfig(
            name=lb_s.get("name", node_name, required=True),
            address=lb_s.get("address", host_address, required=True),
            vip=lb_s.get("vip", lambda k, v: ip_literal(k, v, role="the VIP")),
            vip_interface=lb_s.get("vipInterface", pattern(INTERFACE_RE, "a network interface name such as eth0"),
                                   "eth0"),
        )
        if lb.vip is not None and (ipaddress.ip_address(lb.vip).is_loopback or ipaddress.ip_address(lb.vip).is_link_local):
            raise ConfigError("loadBalancer.vip", lb.vip, "an address the servers and agents can reach "
                                                          "(not loopback or link-local)")
        if lb.name in seen:
            raise ConfigError("loadBalancer.name", lb.name, f"a name no node uses ({seen[lb.name]} has it)")
    if len(servers) > 1 and lb is None:
        raise ConfigError("loadBalancer", None,
                          f"required with more than one server ({len(servers)} configured): "
                          "{name, address, vip?}")
    _check_unique_addresses(servers, agents, lb)
    if cluster.mobile and (len(servers) > 1 or lb is not None):
        raise ConfigError("cluster.mobile", True,
                          "mobile mode is for a single server only; HA clusters need stable "
                          "node addresses (set cluster.mobile: false)")
    if cluster.mobile and agents:
        # The server's node-ip and advertise address become cluster.mobileNodeIp, which exists
        # only on the server itself: agents would register at an address they cannot route to.
        raise ConfigError("cluster.mobile", True,
                          f"mobile mode is for a single server without agents ({len(agents)} configured): "
                          "the server advertises cluster.mobileNodeIp, which only the server itself can "
                          "reach (remove the agents or set cluster.mobile: false)")
    if cluster.mobile and servers[0].node_ip:
        raise ConfigError("servers[0].nodeIp", servers[0].node_ip,
                          "unset in mobile mode: node-ip is pinned to cluster.mobileNodeIp")

    ssh_hosts = {n.address for n in (*servers, *agents)} | ({lb.address} if lb else set())
    if ssh.bastion is not None:
        _check_bastion_address(ssh.bastion.address, servers, agents, lb)
    for addr in ssh.host_keys:
        if ssh.bastion is not None and addr == ssh.bastion.address:
            raise ConfigError(f"ssh.hostKeys.{key_segment(addr)}", addr,
                              "a host's address: the bastion's host key goes in ssh.bastion.hostKey")
        if addr not in ssh_hosts:
            raise ConfigError(f"ssh.hostKeys.{key_segment(addr)}", addr,
                              "the address of a server, agent or the load balancer as written in "
                              "servers[].address, agents[].address or loadBalancer.address "
                              "(an entry that matches no host would leave that host unverified)")

    token_key = f"{NAMESPACE}:token"
    token = top.get("token", non_empty_secret)
    token_is_secret = token is not None and token_key in secret_keys

    cm = _Section("certManager", raw.get("certManager"), KNOWN_KEYS["certManager"])
    cert_manager = CertManagerConfig(
        enabled=cm.get("enabled", boolean),
        version=cm.get("version", pattern(versions.CERT_MANAGER_VERSION_RE,
                                          "a pinned cert-manager version such as v1.16.5"),
                       pins.get("CERT_MANAGER_VERSION")),
        repository=cm.get("repository", url(("https", "http"))),
        repository_ca_file=_expand_home(cm.get("repositoryCaFile", abs_path_or_home)),
    )

    r = _Section("rancher", raw.get("rancher"), KNOWN_KEYS["rancher"])
    rancher_enabled = r.get("enabled", boolean)
    schedulable = sum(n.schedulable for n in (*servers, *agents))
    rancher = RancherConfig(
        enabled=rancher_enabled,
        version=r.get("version", pattern(versions.RANCHER_VERSION_RE,
                                         "a pinned Rancher chart version such as 2.12.3"),
                      pins.get("RANCHER_VERSION")),
        hostname=r.get("hostname", dns_name, hostname),
        # One replica per schedulable node, up to Rancher's own default of 3.
        replicas=r.get("replicas", integer(1, 100), max(1, min(3, schedulable))),
        bootstrap_password=r.get("bootstrapPassword", non_empty_secret,
                                 required=rancher_enabled),
        tls_source=r.get("tlsSource", choice(TLS_SOURCES)),
        repository=r.get("repository", url(("https", "http"))),
        letsencrypt_email=r.get("letsEncryptEmail", pattern(EMAIL_RE, "an e-mail address")),
        repository_ca_file=_expand_home(r.get("repositoryCaFile", abs_path_or_home)),
    )
    if rancher.enabled and rancher.tls_source == "letsEncrypt" and not rancher.letsencrypt_email:
        raise ConfigError("rancher.letsEncryptEmail", None, "required when rancher.tlsSource is letsEncrypt")
    if rancher.enabled and rancher.tls_source in ("rancher", "letsEncrypt") and not cert_manager.enabled:
        raise ConfigError("certManager.enabled", False,
                          f"true: rancher.tlsSource {rancher.tls_source!r} needs cert-manager "
                          "(or use rancher.tlsSource: secret)")
    if rancher.enabled:
        problem = versions.check_rancher_supports(rancher.version, cluster.version)
        if problem:
            raise ConfigError("rancher.version", rancher.version, problem)
    if cert_manager.enabled:
        versions.cert_manager_crd_values(cert_manager.version)

    registries = _registries(raw.get("registries"), secret_keys)
    for section, extra in (("cluster.extraConfig", cluster.extra_config),
                           ("cluster.agentExtraConfig", cluster.agent_extra_config)):
        if registries is not None and ("private-registry" in extra or "private-registry+" in extra):
            # RKE2 would read that file instead of the registries.yaml the program writes.
            raise ConfigError(f"{section}.private-registry", NOT_SHOWN,
                              "unset when `registries` is set: the program writes /etc/rancher/rke2/registries.yaml "
                              "and RKE2 reads only one registries file")

    return StackConfig(ssh=ssh, cluster=cluster, servers=servers, agents=agents, load_balancer=lb,
                       token=token, token_is_secret=token_is_secret, cert_manager=cert_manager,
                       rancher=rancher, registries=registries)


def _mobile_node_ip(key: str, value: Any) -> str:
    ip = ip_literal(key, value, role="the stable node address")
    addr = ipaddress.ip_address(ip)
    if addr.is_loopback:
        raise ConfigError(key, value, "a non-loopback address: etcd peers and pods reach the server there "
                                      "(the default 10.255.255.1 is held on a dummy interface)")
    return ip


def read_private_key(ssh: SshConfig, *, dry_run: bool) -> tuple[SshConfig, str | None]:
    """The SSH config with the key file's content in private_key (and the bastion's, when it
    has its own privateKeyPath), and a warning when a preview goes on without it. At `up` an
    unreadable key is a ConfigError (one line)."""
    warnings: list[str] = []
    b = ssh.bastion
    if b is not None and b.private_key is None and b.private_key_path is not None:
        content, warning = _read_key_file("ssh.bastion.privateKeyPath", b.private_key_path, dry_run)
        ssh = replace(ssh, bastion=replace(b, private_key=content))
        warnings += [warning] if warning else []
    if ssh.private_key is None:
        content, warning = _read_key_file("ssh.privateKeyPath", ssh.private_key_path or "~/.ssh/id_ed25519", dry_run)
        ssh = replace(ssh, private_key=content)
        warnings += [warning] if warning else []
    return ssh, "; ".join(warnings) or None


def _read_key_file(key: str, path: str, dry_run: bool) -> tuple[str, str | None]:
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(), None
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or "not a text key file"
        if dry_run:
            return "", (f"{NAMESPACE}:{key}: cannot read {path} ({reason}); "
                        "preview continues, `pulumi up` will need it")
        raise ConfigError(key, path, f"a readable private key file ({reason})") from None


def check_chart_ca_files(stack: StackConfig) -> None:
    """Each chart repository CA file is readable and holds PEM certificates (Helm reads it
    in the kubernetes provider, at preview too, where its own error would not name the key)."""
    from cryptography import x509

    for key, section in (("certManager", stack.cert_manager), ("rancher", stack.rancher)):
        path = section.repository_ca_file
        if not section.enabled or path is None:
            continue
        if not section.repository.startswith("https://"):
            raise ConfigError(f"{key}.repositoryCaFile", path,
                              f"unset: {key}.repository is not an https:// URL, so no certificate is checked")
        try:
            with open(path, "rb") as f:
                x509.load_pem_x509_certificates(f.read())
        except OSError as e:
            raise ConfigError(f"{key}.repositoryCaFile", path, f"a readable CA file ({e.strerror})") from None
        except ValueError:
            raise ConfigError(f"{key}.repositoryCaFile", path,
                              "a file of PEM certificates (-----BEGIN CERTIFICATE-----)") from None


def load_stack_config() -> StackConfig:
    """Reads `rke2-rancher:*` from the running Pulumi stack and validates it, and reads the
    SSH key file, so that every config problem is reported before anything is registered."""
    import pulumi  # local import: the pure parts of this module stay importable without the SDK
    from pulumi.runtime import config as runtime_config

    cfg = pulumi.Config(NAMESPACE)
    # Every key of our namespace, so a misspelt top-level key is reported, not ignored.
    present = {k.split(":", 1)[1] for k in (*runtime_config.CONFIG.get(), *runtime_config.get_config_env())
               if k.startswith(f"{NAMESPACE}:")}
    raw: dict[str, Any] = {}
    for key in sorted(present | set(KNOWN_KEYS[""])):
        # cfg.get, not get_object: pulumi's ConfigTypeError would print a non-JSON value
        # (which may be a secret) in a traceback. A non-JSON value stays a string, which
        # parse_config then refuses ("an object ..., not a string") without showing it.
        text = cfg.get(key)
        if text is None:
            continue
        if key == "token":
            raw[key] = text
            continue
        try:
            raw[key] = json.loads(text)
        except ValueError:
            raw[key] = text
    secret = {f"{NAMESPACE}:{k}" for k in raw if pulumi.runtime.is_config_secret(f"{NAMESPACE}:{k}")}
    stack = parse_config(raw, secret)
    check_chart_ca_files(stack)
    ssh, warning = read_private_key(stack.ssh, dry_run=pulumi.runtime.is_dry_run())
    if warning:
        pulumi.log.warn(warning)
    return replace(stack, ssh=ssh)
