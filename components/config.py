"""Reads and validates the whole stack config (namespace `rke2-rancher:`) once.

`parse_config(raw, secret_keys)` is pure: it takes the config as plain data and
returns typed, frozen objects, or raises ConfigError naming the key, the bad value
and what is allowed. `load_stack_config()` is the thin adapter that reads
pulumi.Config. Organisational rules (replica counts, SAN hygiene, pins) are NOT
checked here: they belong to the policy pack (see CONTRACT.md).

Secret values (token, SSH private key, Rancher bootstrap password) are kept as
plain strings with repr disabled; components wrap them in Output.secret before
they reach any resource.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

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
    # Where the RKE2 installer is fetched from (point it at a mirror or file:// when air-gapped).
    "cluster.installScriptUrl": "https://get.rke2.io",
    # Keep RKE2 on the hosts on `pulumi destroy`.
    "cluster.retainOnDestroy": False,
    # Seconds to wait for the API server to answer /readyz after a start.
    "cluster.readyTimeoutSeconds": 600,
    # Who owns the cluster CA: the stack (pulumi-tls, survives rebuilds) or RKE2 itself.
    "cluster.ca": "generated",
    # cert-manager is needed by Rancher's default TLS source.
    "certManager.enabled": True,
    "rancher.enabled": True,
    # Rancher's default: a self-signed CA managed by cert-manager.
    "rancher.tlsSource": "rancher",
    # The stable Rancher chart repository.
    "rancher.repository": "https://releases.rancher.com/server-charts/stable",
}

CNI_CHOICES = ("canal", "calico", "cilium", "flannel", "none")
TLS_SOURCES = ("rancher", "letsEncrypt", "secret")
MOBILE_INTERFACE_CHOICES = ("auto", "dummy", "loopback")
CA_CHOICES = ("generated", "rke2")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# config.yaml keys the program writes itself; extraConfig must not fight them.
MANAGED_RKE2_KEYS = frozenset({
    "token", "token-file", "server", "tls-san", "node-name", "node-ip", "advertise-address",
    "node-label", "node-taint", "cni", "disable", "write-kubeconfig-mode",
    "cluster-cidr", "service-cidr", "cluster-dns",
})

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
DNS1123_LABEL_RE = re.compile(rf"^{_DNS_LABEL}$")
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_RE = re.compile(rf"^({_DNS_LABEL}(\.{_DNS_LABEL})*/)?{_LABEL_NAME}$")
LABEL_VALUE_RE = re.compile(rf"^({_LABEL_NAME})?$")
# Anything a shell would interpret. Names, SANs, labels and taints never need them.
SHELL_METACHARACTERS = set("$`\\\"';&|<>(){}[]*?!~#%^ \t\n\r")
HOST_KEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+$")
MODE_RE = re.compile(r"^0?[0-7]{3}$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


# Every key the program reads, per section; unknown keys are errors (typos surface at once).
# tests/unit/test_readme.py checks the README's config reference against this table.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "": ("ssh", "cluster", "servers", "agents", "loadBalancer", "token", "certManager", "rancher"),
    "ssh": ("user", "privateKeyPath", "privateKey", "port", "hostKeys"),
    "cluster": ("hostname", "version", "tlsSans", "clusterCidr", "serviceCidr", "clusterDns", "cni",
                "disable", "writeKubeconfigMode", "mobile", "mobileNodeIp", "mobileInterface",
                "extraConfig", "installScriptUrl", "artifactDir", "retainOnDestroy", "readyTimeoutSeconds",
                "ca", "certificateRotation"),
    "servers[]": ("name", "address", "nodeIp", "labels", "taints"),
    "loadBalancer": ("name", "address", "vip", "vipInterface"),
    "certManager": ("enabled", "version"),
    "rancher": ("enabled", "version", "hostname", "replicas", "bootstrapPassword", "tlsSource",
                "repository", "letsEncryptEmail"),
}


class ConfigError(ValueError):
    """A stack config value is missing or invalid. The message names key, value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str, *, secret: bool = False):
        shown = "[secret]" if secret else repr(value)
        self.key = key
        self.allowed = allowed
        super().__init__(f"{NAMESPACE}:{key}: {shown} is not valid: {allowed}")


# ---------------------------------------------------------------------------
# Typed config
# ---------------------------------------------------------------------------


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
    """address -> public host key; when given, host keys are verified."""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    """Node name (DNS-1123); also RKE2's node-name."""
    address: str
    """How SSH reaches the host (may change when the host moves)."""
    node_ip: str | None
    """RKE2 node-ip, when pinned."""
    labels: tuple[str, ...]
    """`key=value` node labels."""
    taints: tuple[str, ...]
    """`key[=value]:Effect` node taints."""

    @property
    def schedulable(self) -> bool:
        """Whether ordinary workloads (Rancher) can land here."""
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
class ClusterConfig:
    hostname: str
    """Stable identity: registration address, kubeconfig server, always in tls-san."""
    version: str
    """Pinned RKE2 release, e.g. v1.33.5+rke2r1."""
    tls_sans: tuple[str, ...]
    """Extra names/IPs for the API and supervisor certs (as configured)."""
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
    install_script_url: str
    artifact_dir: str | None
    """Air-gap: a directory on each host holding the RKE2 release artifacts."""
    retain_on_destroy: bool
    ready_timeout_seconds: int
    ca: str
    """generated: the stack owns the CA set (pulumi-tls); rke2: RKE2 creates it on first start."""
    certificate_rotation: str | None
    """Any label; changing it rotates the leaf certificates, one server at a time."""


@dataclass(frozen=True)
class CertManagerConfig:
    enabled: bool
    version: str


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
# Field validators: each returns the cleaned value or raises ConfigError.
# ---------------------------------------------------------------------------


def _reject_shell_metacharacters(key: str, value: str, *, allow_leading_wildcard: bool = False) -> None:
    check = value[2:] if allow_leading_wildcard and value.startswith("*.") else value
    bad = sorted(set(check) & SHELL_METACHARACTERS)
    if bad:
        raise ConfigError(key, value, f"shell metacharacters {''.join(bad)!r} are not allowed here")


def dns_name(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "a DNS-1123 name (string)")
    _reject_shell_metacharacters(key, value)
    if len(value) > 253 or not DNS1123_SUBDOMAIN_RE.match(value):
        raise ConfigError(key, value, "a DNS-1123 name: lowercase letters, digits, '-' and '.', "
                                      "labels of 1-63 characters, at most 253 in all")
    return value


def node_name(key: str, value: Any) -> str:
    return dns_name(key, value)


def ip_literal(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "an IPv4 or IPv6 address (string)")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(key, value, "an IPv4 or IPv6 address such as 10.0.0.5") from None


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def host_address(key: str, value: Any) -> str:
    """An SSH address: IP literal or DNS name."""
    if isinstance(value, str) and is_ip(value):
        return ip_literal(key, value)
    if not isinstance(value, str):
        raise ConfigError(key, value, "an IP address or DNS name (string)")
    _reject_shell_metacharacters(key, value)
    if not DNS1123_SUBDOMAIN_RE.match(value) or len(value) > 253:
        raise ConfigError(key, value, "an IP address or a DNS-1123 name")
    return value


def san(key: str, value: Any) -> str:
    """A tls-san entry: IP literal or DNS name; a leading `*.` is passed through for the policy to judge."""
    if not isinstance(value, str):
        raise ConfigError(key, value, "a DNS name or IP address (string)")
    if is_ip(value):
        return ip_literal(key, value)
    _reject_shell_metacharacters(key, value, allow_leading_wildcard=True)
    name = value[2:] if value.startswith("*.") else value
    if len(name) > 253 or not DNS1123_SUBDOMAIN_RE.match(name):
        raise ConfigError(key, value, "a DNS-1123 name or an IP address")
    return value


def cidr(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "a CIDR such as 10.42.0.0/16")
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as e:
        raise ConfigError(key, value, f"a CIDR such as 10.42.0.0/16 ({e})") from None


def choice(options: Iterable[str]) -> Callable[[str, Any], str]:
    options = tuple(options)

    def check(key: str, value: Any) -> str:
        if value not in options:
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
        if isinstance(value, bool):
            raise ConfigError(key, value, f"an integer from {lo} to {hi}")
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, f"an integer from {lo} to {hi}") from None
        if str(n) != str(value).strip() or not lo <= n <= hi:
            raise ConfigError(key, value, f"an integer from {lo} to {hi}")
        return n

    return check


def pattern(regex: re.Pattern, allowed: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or not regex.match(value):
            raise ConfigError(key, value, allowed)
        return value

    return check


def label(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "a label `key=value`")
    _reject_shell_metacharacters(key, value)
    k, sep, v = value.partition("=")
    if not sep or not LABEL_KEY_RE.match(k) or not LABEL_VALUE_RE.match(v):
        raise ConfigError(key, value, "a Kubernetes label `key=value` (key: [prefix/]name, "
                                      "value: up to 63 of A-Z a-z 0-9 - _ .)")
    return value


def taint(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "a taint `key[=value]:Effect`")
    _reject_shell_metacharacters(key, value)
    kv, sep, effect = value.rpartition(":")
    k, _, v = kv.partition("=")
    if not sep or effect not in TAINT_EFFECTS or not LABEL_KEY_RE.match(k) or not LABEL_VALUE_RE.match(v):
        raise ConfigError(key, value, "a taint `key[=value]:Effect` with Effect one of "
                                      + ", ".join(TAINT_EFFECTS))
    return value


def url(key: str, value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^(https?|file)://[^\s'\"`$\\;|&<>]+$", value):
        raise ConfigError(key, value, "an http(s):// or file:// URL without spaces or shell metacharacters")
    return value


def abs_path(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(key, value, "an absolute path")
    _reject_shell_metacharacters(key, value)
    return value


def non_empty_secret(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, value, "a non-empty string (set it with `pulumi config set --secret`)",
                          secret=True)
    return value


# ---------------------------------------------------------------------------
# Structured reading
# ---------------------------------------------------------------------------


class _Section:
    """Reads one config object, tracking which keys were used so typos are reported."""

    def __init__(self, prefix: str, raw: Any):
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(prefix, raw, "an object (YAML mapping)")
        self.prefix = prefix
        self.raw = raw

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
                raise ConfigError(self.key(name), self.raw[name],
                                  "not a known key; known keys: " + ", ".join(sorted(known)))


def _node(key: str, raw: Any) -> NodeConfig:
    s = _Section(key, raw)
    s.reject_unknown(KNOWN_KEYS["servers[]"])
    return NodeConfig(
        name=s.get("name", node_name, required=True),
        address=s.get("address", host_address, required=True),
        node_ip=s.get("nodeIp", ip_literal),
        labels=s.list("labels", label),
        taints=s.list("taints", taint),
    )


def _nodes(key: str, raw: Any, *, required: bool) -> tuple[NodeConfig, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ConfigError(key, raw, "a list of {name, address, nodeIp?, labels?, taints?}")
    if required and not raw:
        raise ConfigError(key, raw, "at least one server")
    return tuple(_node(f"{key}[{i}]", item) for i, item in enumerate(raw))


def _extra_config(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, "an object of RKE2 config.yaml keys")
    for k in value:
        if k in MANAGED_RKE2_KEYS or k.rstrip("+") in MANAGED_RKE2_KEYS:
            raise ConfigError(f"{key}.{k}", value[k],
                              "not settable through extraConfig: the program manages it "
                              "(use the matching cluster/servers key)")
    return dict(value)


def _host_keys(key: str, value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, "a map of address -> public host key")
    for addr, hk in value.items():
        host_address(f"{key}.{addr}", addr)
        if not isinstance(hk, str) or not HOST_KEY_RE.match(hk.strip()):
            raise ConfigError(f"{key}.{addr}", hk,
                              "an OpenSSH public key line such as 'ssh-ed25519 AAAA...'")
    return {a: hk.strip() for a, hk in value.items()}


def parse_config(raw: Mapping[str, Any], secret_keys: Iterable[str] = (), pins: Mapping[str, str] | None = None
                 ) -> StackConfig:
    """Validates the plain stack config (keys without the namespace) into a StackConfig."""
    pins = versions.load_pins() if pins is None else pins
    secret_keys = set(secret_keys)
    top = _Section("", raw)
    top.reject_unknown(KNOWN_KEYS[""])

    ssh_s = _Section("ssh", raw.get("ssh"))
    ssh_s.reject_unknown(KNOWN_KEYS["ssh"])
    ssh = SshConfig(
        user=ssh_s.get("user", pattern(re.compile(r"^[a-z_][a-z0-9_-]{0,31}$"), "a Unix user name")),
        port=ssh_s.get("port", integer(1, 65535)),
        private_key_path=ssh_s.get("privateKeyPath", abs_path_or_home),
        private_key=ssh_s.get("privateKey", non_empty_secret),
        host_keys=ssh_s.get("hostKeys", _host_keys, {}),
    )
    if ssh.private_key and ssh.private_key_path:
        raise ConfigError("ssh.privateKey", "[secret]", "set ssh.privateKey or ssh.privateKeyPath, not both")

    c = _Section("cluster", raw.get("cluster"))
    c.reject_unknown(KNOWN_KEYS["cluster"])
    hostname = c.get("hostname", dns_name, required=True)
    cluster = ClusterConfig(
        hostname=hostname,
        version=c.get("version", pattern(versions.RKE2_VERSION_RE,
                                         "a pinned RKE2 release vX.Y.Z+rke2rN such as v1.33.5+rke2r1 "
                                         "(channels are not accepted)"), required=True),
        tls_sans=c.list("tlsSans", san) if "tlsSans" in c.raw else (hostname,),
        cluster_cidr=c.get("clusterCidr", cidr),
        service_cidr=c.get("serviceCidr", cidr),
        cluster_dns=c.get("clusterDns", ip_literal),
        cni=c.get("cni", choice(CNI_CHOICES)),
        disable=c.list("disable", pattern(re.compile(r"^[a-z0-9][a-z0-9-]*$"),
                                          "a bundled component name such as rke2-ingress-nginx")),
        write_kubeconfig_mode=c.get("writeKubeconfigMode",
                                    pattern(MODE_RE, "an octal file mode string such as \"0600\"")),
        mobile=c.get("mobile", boolean),
        mobile_node_ip=c.get("mobileNodeIp", ip_literal),
        mobile_interface=c.get("mobileInterface", choice(MOBILE_INTERFACE_CHOICES)),
        extra_config=c.get("extraConfig", _extra_config, {}),
        install_script_url=c.get("installScriptUrl", url),
        artifact_dir=c.get("artifactDir", abs_path),
        retain_on_destroy=c.get("retainOnDestroy", boolean),
        ready_timeout_seconds=c.get("readyTimeoutSeconds", integer(30, 7200)),
        ca=c.get("ca", choice(CA_CHOICES)),
        certificate_rotation=c.get("certificateRotation", pattern(
            re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$"), "a label such as 2026-11-22 (letters, digits, . _ : -)")),
    )
    if cluster.cluster_dns and cluster.service_cidr and \
            ipaddress.ip_address(cluster.cluster_dns) not in ipaddress.ip_network(cluster.service_cidr):
        raise ConfigError("cluster.clusterDns", cluster.cluster_dns,
                          f"an address inside cluster.serviceCidr {cluster.service_cidr}")

    servers = _nodes("servers", raw.get("servers"), required=True)
    agents = _nodes("agents", raw.get("agents"), required=False)
    seen: dict[str, str] = {}
    for kind, nodes in (("servers", servers), ("agents", agents)):
        for i, n in enumerate(nodes):
            if n.name in seen:
                raise ConfigError(f"{kind}[{i}].name", n.name, f"a unique node name ({seen[n.name]} has it)")
            seen[n.name] = f"{kind}[{i}]"

    lb = None
    if raw.get("loadBalancer") is not None:
        lb_s = _Section("loadBalancer", raw.get("loadBalancer"))
        lb_s.reject_unknown(KNOWN_KEYS["loadBalancer"])
        lb = LoadBalancerConfig(
            name=lb_s.get("name", node_name, required=True),
            address=lb_s.get("address", host_address, required=True),
            vip=lb_s.get("vip", ip_literal),
            vip_interface=lb_s.get("vipInterface", pattern(re.compile(r"^[a-zA-Z0-9_.-]{1,15}$"),
                                                           "a network interface name such as eth0"),
                                   "eth0"),
        )
    if len(servers) > 1 and lb is None:
        raise ConfigError("loadBalancer", None,
                          f"required with more than one server ({len(servers)} configured): "
                          "{name, address, vip?}")
    if cluster.mobile and (len(servers) > 1 or lb is not None):
        raise ConfigError("cluster.mobile", True,
                          "mobile mode is for a single server only; HA clusters need stable "
                          "node addresses (set cluster.mobile: false)")
    if cluster.mobile and servers[0].node_ip:
        raise ConfigError("servers[0].nodeIp", servers[0].node_ip,
                          "unset in mobile mode: node-ip is pinned to cluster.mobileNodeIp")

    token_key = f"{NAMESPACE}:token"
    token = top.get("token", non_empty_secret)
    token_is_secret = token is not None and token_key in secret_keys

    cm = _Section("certManager", raw.get("certManager"))
    cm.reject_unknown(KNOWN_KEYS["certManager"])
    cert_manager = CertManagerConfig(
        enabled=cm.get("enabled", boolean),
        version=cm.get("version", pattern(versions.CERT_MANAGER_VERSION_RE,
                                          "a pinned cert-manager version such as v1.16.5"),
                       pins.get("CERT_MANAGER_VERSION")),
    )

    r = _Section("rancher", raw.get("rancher"))
    r.reject_unknown(KNOWN_KEYS["rancher"])
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
        repository=r.get("repository", url),
        letsencrypt_email=r.get("letsEncryptEmail", pattern(EMAIL_RE, "an e-mail address")),
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

    return StackConfig(ssh=ssh, cluster=cluster, servers=servers, agents=agents, load_balancer=lb,
                       token=token, token_is_secret=token_is_secret, cert_manager=cert_manager,
                       rancher=rancher)


def abs_path_or_home(key: str, value: Any) -> str:
    if isinstance(value, str) and value.startswith("~/"):
        return value
    return abs_path(key, value)


def load_stack_config() -> StackConfig:
    """Reads `rke2-rancher:*` from the running Pulumi stack and validates it."""
    import pulumi  # local import: the pure parts of this module stay importable without the SDK
    from pulumi.runtime import config as runtime_config

    cfg = pulumi.Config(NAMESPACE)
    # Every key of our namespace, so a misspelt top-level key is reported, not ignored.
    present = {k.split(":", 1)[1] for k in (*runtime_config.CONFIG.get(), *runtime_config.get_config_env())
               if k.startswith(f"{NAMESPACE}:")}
    raw: dict[str, Any] = {}
    for key in sorted(present | set(KNOWN_KEYS[""])):
        value = cfg.get(key) if key == "token" else cfg.get_object(key)
        if value is not None:
            raw[key] = value
    secret = {f"{NAMESPACE}:{k}" for k in raw if pulumi.runtime.is_config_secret(f"{NAMESPACE}:{k}")}
    return parse_config(raw, secret)
