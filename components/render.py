"""Pure rendering helpers: SANs, config.yaml, kubeconfig, fingerprints.

No Pulumi imports: these are tested directly (tests/unit/test_render.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from typing import Any

import yaml

from .config import (NODE_WIDE_RKE2_KEYS, RKE2_DEFAULT_S3_ENDPOINT, RKE2_DEFAULT_S3_REGION,
                     RKE2_DEFAULT_SNAPSHOT_RETENTION, RKE2_DEFAULT_SNAPSHOT_SCHEDULE, EtcdS3Credentials, NodeConfig,
                     RegistriesConfig, StackConfig, is_ip, url_host)

SERVER_CONFIG_PATH = "/etc/rancher/rke2/config.yaml"
# The join token lives in a drop-in of its own so config.yaml carries no secret and its
# diff stays readable in `pulumi preview --diff`.
TOKEN_CONFIG_PATH = "/etc/rancher/rke2/config.yaml.d/50-rke2-rancher-token.yaml"
# The etcd S3 credentials (cluster.etcdS3), likewise a 0600 drop-in from a secret input.
ETCD_S3_CONFIG_PATH = "/etc/rancher/rke2/config.yaml.d/60-rke2-rancher-etcd-s3.yaml"
KUBECONFIG_PATH = "/etc/rancher/rke2/rke2.yaml"
# Where `rke2 etcd-snapshot save` writes unless etcd-snapshot-dir says otherwise (docs.rke2.io/backup_restore).
DEFAULT_SNAPSHOT_DIR = "/var/lib/rancher/rke2/server/db/snapshots"


def snapshot_dir(server_cfg: dict) -> str:
    """servers[0]'s snapshot directory: its config.yaml's etcd-snapshot-dir, else RKE2's default."""
    return str(server_cfg.get("etcd-snapshot-dir") or DEFAULT_SNAPSHOT_DIR)
TOKEN_PATH = "/var/lib/rancher/rke2/server/token"
SUPERVISOR_PORT = 9345
API_PORT = 6443
# The bundled ingress controller's host ports (rke2-ingress-nginx / rke2-traefik DaemonSet).
INGRESS_PORTS = (80, 443)


def tls_sans(stack: StackConfig) -> list[str]:
    """tls-san for every server: the cluster hostname, the configured SANs, the LB address
    and VIP; duplicates (case-insensitive) dropped, first spelling and order kept."""
    candidates = [stack.cluster.hostname, *stack.cluster.tls_sans]
    if stack.load_balancer is not None:
        candidates.append(stack.load_balancer.address)
        if stack.load_balancer.vip:
            candidates.append(stack.load_balancer.vip)
    seen: set[str] = set()
    result = []
    for name in candidates:
        key = name.lower()
        if key not in seen:
            seen.add(key)
            result.append(name)
    return result


def openssl_san_form(name: str) -> str:
    """How `openssl x509 -ext subjectAltName` prints a SAN (the SAN-refresh script compares these)."""
    if is_ip(name):
        ip = ipaddress.ip_address(name)
        if ip.version == 6:
            return "IP Address:" + ":".join(f"{int(g, 16):X}" for g in ip.exploded.split(":"))
        return f"IP Address:{ip}"
    return f"DNS:{name}"


def registration_url(stack: StackConfig) -> str:
    """https://<registration host>:9345, an IPv6 address in brackets (RKE2 and curl need them)."""
    return f"https://{url_host(stack.registration_host)}:{SUPERVISOR_PORT}"


def api_via_load_balancer(stack: StackConfig) -> str:
    """The API server through the registration address (the load balancer forwards 6443 too)."""
    return f"https://{url_host(stack.registration_host)}:{API_PORT}"


def api_endpoint(stack: StackConfig) -> str:
    return f"https://{url_host(stack.cluster.hostname)}:{API_PORT}"


def node_ip(stack: StackConfig, node: NodeConfig) -> str | None:
    if stack.cluster.mobile:
        return stack.cluster.mobile_node_ip
    return node.node_ip


def _node_keys(stack: StackConfig, node: NodeConfig) -> dict[str, Any]:
    keys: dict[str, Any] = {"node-name": node.name}
    ip = node_ip(stack, node)
    if ip:
        keys["node-ip"] = ip
    if node.labels:
        keys["node-label"] = list(node.labels)
    if node.taints:
        keys["node-taint"] = list(node.taints)
    return keys


def server_config(stack: StackConfig, index: int) -> dict[str, Any]:
    """config.yaml of servers[index] as a dict; keys only when set (no token: see TOKEN_CONFIG_PATH)."""
    c = stack.cluster
    node = stack.servers[index]
    cfg: dict[str, Any] = {}
    if index > 0:
        cfg["server"] = registration_url(stack)
    cfg.update(_node_keys(stack, node))
    if c.mobile:
        cfg["advertise-address"] = c.mobile_node_ip
    cfg["tls-san"] = tls_sans(stack)
    cfg["write-kubeconfig-mode"] = c.write_kubeconfig_mode
    cfg["cni"] = c.cni
    for key, value in (("cluster-cidr", c.cluster_cidr), ("service-cidr", c.service_cidr),
                       ("cluster-dns", c.cluster_dns)):
        if value:
            cfg[key] = value
    if c.disable:
        cfg["disable"] = list(c.disable)
    cfg.update(node_wide_keys(stack))
    if psa_config(stack) is not None:
        cfg["pod-security-admission-config-file"] = PSA_CONFIG_PATH
    cfg.update(etcd_snapshot_keys(stack))
    cfg.update(c.extra_config)
    return cfg


def etcd_snapshot_keys(stack: StackConfig) -> dict[str, Any]:
    """The config.yaml keys of cluster.etcdSnapshots, servers only (RKE2 reads them in `rke2 server`
    and `rke2 etcd-snapshot`, docs.rke2.io datastore/backup_restore): a key for each field the stack
    sets, so RKE2's own defaults stay in force for the others. The S3 credentials are not here
    (etcd_s3_yaml, a secret drop-in).

    etcd-s3-retention: since the 2025-08 releases (k3s-io/k3s#12669, so in v1.33.5+rke2r1) RKE2
    keeps 5 snapshots in S3 whatever etcd-snapshot-retention says, until k3s-io/k3s#13770 (2026-03)
    made etcd-snapshot-retention its default again. It is written as s3.retention, else as
    retention, so the bucket keeps what the stack says on every release (older releases skip the
    key with "Unknown flag ... found in config.yaml, skipping" and use etcd-snapshot-retention)."""
    snaps = stack.cluster.etcd_snapshots
    if snaps is None:
        return {}
    keys: dict[str, Any] = {}
    if snaps.schedule is not None:
        keys["etcd-snapshot-schedule-cron"] = snaps.schedule
    if snaps.retention is not None:
        keys["etcd-snapshot-retention"] = snaps.retention
    if snaps.disabled:
        keys["etcd-disable-snapshots"] = True
    s3 = snaps.s3
    if s3 is not None:
        keys["etcd-s3"] = True
        for key, value in (("etcd-s3-endpoint", s3.endpoint), ("etcd-s3-endpoint-ca", s3.endpoint_ca)):
            if value is not None:
                keys[key] = value
        if s3.skip_ssl_verify:
            keys["etcd-s3-skip-ssl-verify"] = True
        if s3.insecure:
            keys["etcd-s3-insecure"] = True
        keys["etcd-s3-bucket"] = s3.bucket
        for key, value in (("etcd-s3-region", s3.region), ("etcd-s3-folder", s3.folder),
                           ("etcd-s3-retention", snaps.s3_retention)):
            if value is not None:
                keys[key] = value
    return keys


def etcd_snapshot_props(stack: StackConfig) -> dict[str, Any]:
    """cluster.etcdSnapshots as policies read it (RKE2Server props): every field with the value in
    force, RKE2's default where the stack leaves it unset. Empty without cluster.etcdSnapshots (so
    the props of stacks without it stay as they were). Never a credential: etcdS3Credentials only
    says where RKE2 gets them."""
    snaps = stack.cluster.etcd_snapshots
    if snaps is None:
        return {}
    retention = snaps.retention if snaps.retention is not None else RKE2_DEFAULT_SNAPSHOT_RETENTION
    s3 = None
    if snaps.s3 is not None:
        t = snaps.s3
        s3 = {"endpoint": t.endpoint or RKE2_DEFAULT_S3_ENDPOINT, "bucket": t.bucket, "folder": t.folder,
              "region": t.region or RKE2_DEFAULT_S3_REGION, "skipSslVerify": t.skip_ssl_verify,
              "endpointCa": t.endpoint_ca, "insecure": t.insecure,
              "retention": snaps.s3_retention if snaps.s3_retention is not None else retention}
    props: dict[str, Any] = {"etcdSnapshots": {
        "schedule": snaps.schedule or RKE2_DEFAULT_SNAPSHOT_SCHEDULE, "retention": retention,
        "disabled": snaps.disabled, "s3": s3}}
    if s3 is not None:
        # cluster.etcdS3's static keys, or RKE2's fallback to the host's AWS credentials file or
        # instance role (k3s pkg/etcd/s3/s3.go: credentials.Static, FileAWSCredentials, IAM).
        props["etcdS3Credentials"] = "static" if stack.cluster.etcd_s3 is not None else "host"
    return props


def node_wide_keys(stack: StackConfig) -> dict[str, Any]:
    """config.yaml keys of dedicated stack keys that RKE2 reads on servers and agents alike
    (docs.rke2.io/reference/linux_agent_config lists system-default-registry and profile)."""
    c = stack.cluster
    keys: dict[str, Any] = {}
    if c.system_default_registry:
        keys["system-default-registry"] = c.system_default_registry
    if c.profile:
        keys["profile"] = c.profile
    return keys


def agent_config(stack: StackConfig, index: int) -> dict[str, Any]:
    """config.yaml of agents[index]: the join address, the node's own keys, the node-wide keys of
    cluster.extraConfig (RKE2 reads them on every node), then cluster.agentExtraConfig."""
    cfg: dict[str, Any] = {"server": registration_url(stack)}
    cfg.update(_node_keys(stack, stack.agents[index]))
    cfg.update(node_wide_keys(stack))
    extra = stack.cluster.extra_config
    for key in extra:
        if key.rstrip("+") in NODE_WIDE_RKE2_KEYS and not _sets(stack.cluster.agent_extra_config, key):
            cfg[key] = extra[key]
    cfg.update(stack.cluster.agent_extra_config)
    return cfg


def _sets(config: Any, key: str) -> bool:
    base = key.rstrip("+")
    return base in config or f"{base}+" in config


def to_yaml(data: dict[str, Any]) -> str:
    header = "# Managed by rke2-rancher (Pulumi). Local edits are overwritten on the next `pulumi up`.\n"
    return header + yaml.safe_dump(data, default_flow_style=False, sort_keys=False)


def token_yaml(token: str) -> str:
    return yaml.safe_dump({"token": token}, default_flow_style=False)


def etcd_s3_yaml(creds: EtcdS3Credentials) -> str:
    """The etcd S3 credential drop-in (secret): only the credential keys; the target and the
    schedule (cluster.etcdSnapshots) are in config.yaml (etcd_snapshot_keys)."""
    data = {"etcd-s3-access-key": creds.access_key, "etcd-s3-secret-key": creds.secret_key}
    if creds.session_token:
        data["etcd-s3-session-token"] = creds.session_token
    return yaml.safe_dump(data, default_flow_style=False)


REGISTRIES_PATH = "/etc/rancher/rke2/registries.yaml"
IMAGES_DIR = "/var/lib/rancher/rke2/agent/images"
CIS_SYSCTL_PATH = "/etc/sysctl.d/60-rke2-cis.conf"
PSA_CONFIG_PATH = "/etc/rancher/rke2/rke2-rancher-pss.yaml"
# With profile: cis RKE2 enforces the restricted Pod Security Standard everywhere except these
# namespaces (rancher/rke2 pkg/rke2/psa.go restrictedPSAConfig, v1.33.5+rke2r1).
RKE2_CIS_PSA_EXEMPT = ("kube-system", "cis-operator-system", "tigera-operator")
# Namespaces of Rancher itself on its local cluster (Rancher docs, reference-guides/rancher-security/
# psa-restricted-exemptions, v2.12: the cattle-*/fleet-* entries Rancher creates without optional apps).
RANCHER_PSA_EXEMPT = ("cattle-system", "cattle-fleet-system", "cattle-fleet-local-system", "cattle-impersonation-system",
                      "cattle-global-data", "cattle-global-nt", "cattle-provisioning-capi-system", "cattle-capi-system",
                      "cattle-turtles-system", "cattle-ui-plugin-system", "fleet-default", "fleet-local")


def psa_config(stack: StackConfig) -> str | None:
    """With cluster.profile: cis, RKE2's restricted Pod Security Admission defaults plus exemptions
    for the namespaces of the charts this stack installs (cert-manager, Rancher), which do not run
    under `restricted`; None without the profile, without those charts, or when
    cluster.extraConfig points RKE2 at a PSA file of the user's own."""
    c = stack.cluster
    if (c.profile or c.extra_config.get("profile")) != "cis" or "pod-security-admission-config-file" in c.extra_config:
        return None
    extra = (("cert-manager",) if stack.cert_manager.enabled else ()) + \
        (RANCHER_PSA_EXEMPT if stack.rancher.enabled else ())
    if not extra:
        return None
    doc = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [{"name": "PodSecurity", "configuration": {
            "apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration",
            "defaults": {"enforce": "restricted", "enforce-version": "latest", "audit": "restricted",
                         "audit-version": "latest", "warn": "restricted", "warn-version": "latest"},
            "exemptions": {"usernames": [], "runtimeClasses": [],
                           "namespaces": sorted(set(RKE2_CIS_PSA_EXEMPT) | set(extra))},
        }}],
    }
    return to_yaml(doc)


def registries_yaml(registries: RegistriesConfig) -> str:
    """registries.yaml in the RKE2/k3s format (rancher/wharfie pkg/registries/types.go: mirrors
    {endpoint, rewrite}, configs {auth {username, password, identity_token}, tls {ca_file,
    cert_file, key_file, insecure_skip_verify}}); keys only when set."""
    mirrors = {}
    for host, m in registries.mirrors.items():
        entry: dict[str, Any] = {"endpoint": list(m.endpoints)}
        if m.rewrites:
            entry["rewrite"] = dict(m.rewrites)
        mirrors[host] = entry
    configs = {}
    for host, c in registries.configs.items():
        entry = {}
        if c.auth is not None:
            a = c.auth
            entry["auth"] = ({"identity_token": a.token} if a.token is not None
                             else {"username": a.username, "password": a.password})
        if c.tls is not None:
            t = c.tls
            tls = {k: v for k, v in (("ca_file", t.ca_file), ("cert_file", t.cert_file), ("key_file", t.key_file))
                   if v}
            if t.insecure_skip_verify:
                tls["insecure_skip_verify"] = True
            entry["tls"] = tls
        configs[host] = entry
    data: dict[str, Any] = {"mirrors": mirrors, "configs": configs}
    header = "# Managed by rke2-rancher (Pulumi). Local edits are overwritten on the next `pulumi up`.\n"
    return header + yaml.safe_dump(data, default_flow_style=False, sort_keys=True)


def images_list(archives) -> str:
    """The image-archive step's stdin: one `sha256 name url` line per archive."""
    return "".join(f"{a.sha256} {a.name} {a.url}\n" for a in archives)


def restart_fingerprint(cfg: dict[str, Any]) -> str:
    """Hash of the config keys whose change needs a plain restart. tls-san is left out:
    the SAN-refresh step handles it (and a removed SAN needs more than a restart)."""
    relevant = {k: v for k, v in cfg.items() if k != "tls-san"}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def secret_fingerprint(text: str) -> str:
    """A restart trigger for a secret drop-in; callers keep it a secret Output too."""
    return hashlib.sha256(b"rke2-rancher-secret-drop-in\0" + text.encode()).hexdigest()[:16]


def rewrite_kubeconfig(text: str, server_url: str, name: str) -> str:
    """Points RKE2's rke2.yaml at the cluster hostname and names its entries after the cluster."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or not doc.get("clusters"):
        raise ValueError("rke2.yaml has no clusters")
    for entry in doc["clusters"]:
        entry["cluster"]["server"] = server_url
        entry["name"] = name
    for entry in doc.get("users", []):
        entry["name"] = name
    for entry in doc.get("contexts", []):
        entry["name"] = name
        entry["context"]["cluster"] = name
        entry["context"]["user"] = name
    doc["current-context"] = name
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


def kubeconfig_ca_pem(kubeconfig: str) -> str:
    """The cluster CA (server-ca) from a kubeconfig, as PEM: agents verify the
    registration address with it instead of skipping TLS verification."""
    import base64

    doc = yaml.safe_load(kubeconfig)
    data = doc["clusters"][0]["cluster"]["certificate-authority-data"]
    return base64.b64decode(data).decode()


def lb_backend_address(stack: StackConfig, node: NodeConfig) -> str:
    """Where the load balancer reaches a node: its pinned node IP, else its SSH address."""
    return node.node_ip or node.address


def ingress_nodes(stack: StackConfig) -> list[NodeConfig]:
    """Nodes that run RKE2's bundled ingress controller: it is a DaemonSet with host ports
    80/443 on every node that takes ordinary workloads, servers and agents alike (a server
    tainted NoSchedule/NoExecute gets none). Empty when the bundled ingress is disabled."""
    if not stack.cluster.ingress_enabled:
        return []
    return [n for n in (*stack.servers, *stack.agents) if n.schedulable]


# Every token pasted into haproxy.cfg / keepalived.conf: config.py validated these values;
# this re-check makes sure nothing else (a space, a newline, a '#') can ever reach the file.
_SAFE_TOKEN_RE = re.compile(r"[A-Za-z0-9._:\[\]/-]{1,253}", re.ASCII)


def _safe(value: str) -> str:
    if not isinstance(value, str) or not _SAFE_TOKEN_RE.fullmatch(value):
        raise ValueError(f"refusing to write {value!r} into a daemon's config file")
    return value


def _by_name(stack: StackConfig) -> bool:
    """Whether some backend is a DNS name: HAProxy then resolves it through the system's
    resolvers at run time, and a name that does not resolve yet only disables that server
    (by default HAProxy refuses to start at all)."""
    return any(not is_ip(lb_backend_address(stack, n)) for n in (*stack.servers, *stack.agents))


def _backend(name: str, nodes: list[NodeConfig], stack: StackConfig, port: int) -> list[str]:
    resolve = " init-addr libc,none resolvers system" if _by_name(stack) else ""
    return [
        f"frontend {name}",
        f"    bind :{port}",
        f"    default_backend {name}",
        "",
        f"backend {name}",
        "    balance roundrobin",
        "    option tcp-check",
        f"    default-server inter 2s fall 3 rise 2{resolve}",
        *(f"    server {_safe(n.name)} {_safe(url_host(lb_backend_address(stack, n)))}:{port} check"
          for n in nodes),
        "",
    ]


def haproxy_cfg(stack: StackConfig) -> str:
    """HAProxy config, all TCP: 9345 and 6443 to every server; 80 and 443 to every node that
    runs the bundled ingress, so Rancher's hostname can point at the load balancer (or VIP)."""
    lines = [
        "# Managed by rke2-rancher (Pulumi). Local edits are overwritten on the next `pulumi up`.",
        "global",
        "    log stdout format raw local0",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    timeout connect 5s",
        "    timeout client 1h",
        "    timeout server 1h",
        "",
    ]
    if _by_name(stack):
        lines += ["resolvers system", "    parse-resolv-conf", "    hold valid 10s", ""]
    for port, label in ((SUPERVISOR_PORT, "rke2-supervisor"), (API_PORT, "kube-apiserver")):
        lines += _backend(label, list(stack.servers), stack, port)
    ingress = ingress_nodes(stack)
    if ingress:
        for port, label in zip(INGRESS_PORTS, ("ingress-http", "ingress-https")):
            lines += _backend(label, ingress, stack, port)
    return "\n".join(lines)


def keepalived_conf(stack: StackConfig) -> str:
    """keepalived config holding the VIP on the load balancer (single LB: MASTER)."""
    lb = stack.load_balancer
    if lb is None or not lb.vip:
        raise ValueError("keepalived_conf needs loadBalancer.vip")
    return "\n".join([
        "# Managed by rke2-rancher (Pulumi).",
        "global_defs {",
        "    enable_script_security",
        "}",
        "",
        "# The VIP follows a running haproxy (no helper script or extra package needed).",
        "vrrp_track_process track_haproxy {",
        "    process haproxy",
        "    delay 2",
        "}",
        "",
        "vrrp_instance rke2_vip {",
        "    state MASTER",
        f"    interface {_safe(lb.vip_interface)}",
        "    virtual_router_id 51",
        "    priority 100",
        "    advert_int 1",
        "    virtual_ipaddress {",
        f"        {_safe(lb.vip)}",
        "    }",
        "    track_process {",
        "        track_haproxy",
        "    }",
        "}",
        "",
    ])
