#!/usr/bin/env python3
"""rke2-standin: a behavioural stand-in for RKE2, used by the host lab. It is NOT RKE2.

RKE2 cannot be downloaded here, so the lab installs this program as /usr/local/bin/rke2
through RKE2's documented air-gap install path. It is glue around REAL upstream programs (the
lab's etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok, built
from Go modules at the versions the pinned RKE2 bundles; tests/lab/realparts), started the way
RKE2 runs them. It honours the parts of RKE2's contract that install tooling depends on (see
shared/reference/rke2-facts.md), each written from the k3s/RKE2 source cited where it is done:

- config: /etc/rancher/rke2/config.yaml then config.yaml.d/*.yaml (last wins, `key+` appends);
  the CIS profile's kernel and etcd-user checks (validate_profile);
- server: CA set under server/tls (created, or used when placed beforehand); API serving
  certificate regenerated only when a wanted name is missing, it expired or is due for
  renewal (so removed SANs stay until the file is deleted); supervisor certificate
  (dynamic-cert.json, merged at start with secret kube-system/rke2-serving in the real API,
  which a running server re-creates from its cache when deleted) that only grows;
  server/token `K10<k3s hashCA of server-ca.crt>::server:<password>`; rke2.yaml with
  write-kubeconfig-mode; the supervisor on 9345 (/ping, /cacerts, bootstrap data, /db/info,
  node certificates with node passwords);
- etcd: the real one, in server/db/etcd; a first server makes a new cluster, a joiner is
  added as a learner through the server it joins and promoted by the etcd leader, one at a
  time; a node whose member has another peer URL (moved) fails k3s's `Test` ("not a member
  of the etcd cluster") every 5 s, never exits, never sends READY=1 and keeps 9345 open,
  until `rke2 server --cluster-reset` (force-new-cluster); snapshots and restore are etcd's;
- the control plane: kube-apiserver on 6443 with the cluster's CAs and tls-san names,
  controller manager and scheduler; like RKE2's static pods under the unit's
  KillMode=process they keep running while rke2-server is stopped;
- nodes: every server and agent registers its Node with its own credentials; kwok keeps it
  Ready in place of the kubelet (pods scheduled on it run);
- sd_notify READY=1 when serving, logs in logrus format to stderr and
  /var/lib/rancher/rke2/standin.log; `rke2 certificate`, `rke2 etcd-snapshot save`.

What is the stand-in's own: the bootstrap record beside etcd's data (class Bootstrap), the
lab's kwok identity, the host paths of the parts (/opt/rk2lab-parts). Placeholders @...@ are
filled in by tests/lab/standin/__init__.py:build_artifacts.
"""
import base64
import datetime as dt
import glob
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VERSION = "@RKE2_STANDIN_VERSION@"
# The lab's real etcd, etcdctl, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and
# kubectl (bound read-only into the host by the lab), run with the arguments of the shipped
# rk2lab_realparts package (as k3s runs them).
PARTS_DIR = "/opt/rk2lab-parts"
DATA_DIR = "/var/lib/rancher/rke2"
CONFIG_FILE = "/etc/rancher/rke2/config.yaml"
KUBECONFIG = "/etc/rancher/rke2/rke2.yaml"
NODE_PASSWORD_FILE = "/etc/rancher/node/password"
TLS = f"{DATA_DIR}/server/tls"
ETCD_DIR = f"{DATA_DIR}/server/db/etcd"
WAL_DIR = f"{ETCD_DIR}/member/wal"  # k3s walDir: exists once etcd has run here
BOOTSTRAP_FILE = f"{ETCD_DIR}/standin-bootstrap.json"
LOG_FILE = f"{DATA_DIR}/standin.log"
NOT_MEMBER_RETRY_S = 5  # k3s pkg/cluster/managed.go retries the etcd test every 5 s
RENEW_DAYS = 120
CA_SET = [("server-ca", "rke2-server"), ("client-ca", "rke2-client"),
          ("request-header-ca", "rke2-request-header"), ("etcd/server-ca", "etcd-server"),
          ("etcd/peer-ca", "etcd-peer")]
CRITICAL = {"cluster-cidr": "10.42.0.0/16", "cluster-dns": "10.43.0.10",
            "cluster-domain": "cluster.local", "service-cidr": "10.43.0.0/16",
            "disable-kube-proxy": "false", "disable-cloud-controller": "false",
            "egress-selector-mode": "agent"}
LIST_KEYS = {"tls-san", "node-label", "node-taint", "node-ip", "node-external-ip", "disable",
             "cni", "kubelet-arg", "kube-apiserver-arg", "kube-controller-manager-arg",
             "kube-scheduler-arg", "kube-proxy-arg", "etcd-arg", "disable-charts"}
BOOL_FLAGS = {"cluster-reset", "debug", "cluster-init", "selinux", "disable-kube-proxy",
              "disable-cloud-controller", "protect-kernel-defaults", "embedded-registry",
              "etcd-disable-snapshots", "etcd-expose-metrics", "secrets-encryption"}
KNOWN_KEYS = LIST_KEYS | BOOL_FLAGS | set(CRITICAL) | {
    "token", "token-file", "agent-token", "agent-token-file", "server", "write-kubeconfig",
    "write-kubeconfig-mode", "node-name", "advertise-address", "profile", "data-dir",
    "cluster-reset-restore-path", "etcd-snapshot-schedule-cron", "etcd-snapshot-retention",
    "etcd-snapshot-dir", "etcd-s3", "etcd-s3-endpoint", "etcd-s3-bucket", "etcd-s3-region",
    "etcd-s3-folder", "etcd-s3-access-key", "etcd-s3-secret-key", "system-default-registry",
    "ingress-controller", "tls-san-security", "kube-apiserver-image", "node-external-dns",
    "bind-address", "https-listen-port", "supervisor-port", "cloud-provider-name",
    "with-node-id", "resolv-conf", "private-registry", "config", "audit-policy-file",
    "pod-security-admission-config-file", "container-runtime-endpoint", "snapshotter",
    "image-credential-provider-config", "image-credential-provider-bin-dir", "lb-server-port"}
STANDIN_NOTE = "rke2-standin: a behavioural stand-in for RKE2 used by the host lab; it is not RKE2"


# --- logging ------------------------------------------------------------------------------
class Log:
    def __init__(self):
        self.file = None
        self.lock = threading.Lock()

    def open(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.file = open(path, "a", buffering=1)

    def __call__(self, level: str, msg: str) -> None:
        ts = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
        line = f'time="{ts}" level={level} msg={json.dumps(msg)}'
        with self.lock:
            print(line, file=sys.stderr, flush=True)
            if self.file:
                self.file.write(line + "\n")


log = Log()


def info(msg):
    log("info", msg)


def warn(msg):
    log("warning", msg)


def fatal(msg):
    log("fatal", msg)
    sys.exit(1)


# --- profile (rancher/rke2 pkg/cli/cmds/profile_linux.go validateProfile, v1.33.5+rke2r1) ----
# Called by `rke2 server` and `rke2 agent` before anything starts (cmds/server.go, agent.go).
CIS_KERNEL_PARAMS = {"vm.overcommit_memory": 1, "vm.panic_on_oom": 0, "kernel.panic": 10,
                     "kernel.panic_on_oops": 1}  # kernelRuntimeParameters


def read_kernel_param(name: str) -> int:
    """profile_linux.go sysctl(): /proc/sys/<a/b>, must end in a newline, an integer."""
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        v = f.read()
    if len(v) < 2 or not v.endswith("\n"):
        raise ValueError(f"invalid contents: {name.replace('.', '/')}")
    return int(v.replace("\n", ""))


def validate_profile(cfg: dict, role: str) -> None:
    import grp
    import pwd
    profile = cfg.get("profile") or ""
    if profile == "":
        warn("not running in CIS mode")
        return
    if profile not in ("cis", "etcd"):
        fatal("invalid value provided for --profile flag")
    errors = []
    if profile == "cis":
        for name, want in CIS_KERNEL_PARAMS.items():
            try:
                got = read_kernel_param(name)
            except (OSError, ValueError) as e:
                fatal(str(e))  # validateKernelReqs: logrus.Fatal on a read error
            if got != want:
                errors.append(f"invalid kernel parameter value {name}={got} - expected {want}")
        if errors:
            fatal("\n".join(errors))
        if cfg.get("protect-kernel-defaults") is False:  # setCISFlags
            fatal(f"--protect-kernel-defaults must be true when using --profile={profile}")
    if role == "server":  # validateETCDReqs: the etcd user and group, servers only
        try:
            pwd.getpwnam("etcd")
        except KeyError:
            errors.append("missing required: user: unknown user etcd")
        try:
            grp.getgrnam("etcd")
        except KeyError:
            errors.append("missing required: group: unknown group etcd")
        if errors:
            fatal("\n".join(errors))


# --- config -------------------------------------------------------------------------------
def as_list(value) -> list:
    if value is None or value is False:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(value)]


def parse_cli(args: list) -> dict:
    cli = {}
    it = iter(args)
    for a in it:
        if not a.startswith("-"):
            fatal(f"unexpected argument {a!r}")
        key, eq, value = a.lstrip("-").partition("=")
        if key == "c":
            key = "config"
        if not eq:
            value = True if key in BOOL_FLAGS else next(it, "")
        if key in LIST_KEYS:
            cli[key] = as_list(cli.get(key)) + as_list(value)
        else:
            cli[key] = value
    return cli


def load_config(cli: dict) -> dict:
    path = cli.get("config") or os.environ.get("RKE2_CONFIG_FILE") or CONFIG_FILE
    files = ([path] if os.path.exists(path) else []) + sorted(glob.glob(f"{path}.d/*.yaml"))
    cfg = {}
    for f in files:
        try:
            with open(f) as fh:
                data = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError) as e:
            fatal(f"failed to parse {f}: {e}")
        if not isinstance(data, dict):
            fatal(f"{f}: expected a map of flag names to values")
        for key, value in data.items():
            key = str(key)
            if key.endswith("+"):
                cfg[key[:-1]] = as_list(cfg.get(key[:-1])) + as_list(value)
            else:
                cfg[key] = value
    for key, value in cli.items():
        cfg[key] = as_list(cfg.get(key)) + as_list(value) if key in LIST_KEYS else value
    for env, key in (("RKE2_TOKEN", "token"), ("RKE2_URL", "server")):
        if os.environ.get(env) and key not in cfg:
            cfg[key] = os.environ[env]
    for key in ("token", "agent-token"):
        if cfg.get(f"{key}-file") and not cfg.get(key):
            with open(cfg[f"{key}-file"]) as fh:
                cfg[key] = fh.read().strip()
    for key in cfg:
        if key not in KNOWN_KEYS:
            warn(f"Unknown flag --{key} found in config.yaml, skipping")
    if cfg.get("data-dir") and cfg["data-dir"] != DATA_DIR:
        warn(f"data-dir {cfg['data-dir']} is not supported by the stand-in; using {DATA_DIR}")
    info(f"config files read: {files or 'none'}")
    return cfg


def critical_values(cfg: dict) -> dict:
    return {k: str(cfg.get(k, d)).lower() for k, d in CRITICAL.items()}


# --- identity and addresses ---------------------------------------------------------------
def ip_json(*args) -> list:
    res = subprocess.run(["ip", "-j", *args], capture_output=True, text=True)
    try:
        return json.loads(res.stdout or "[]")
    except ValueError:
        return []


def default_ip() -> str:
    """The IPv4 address of the interface holding the default route, as RKE2 picks it."""
    routes = ip_json("-4", "route", "show", "default")
    devs = [r["dev"] for r in routes if r.get("dev")]
    for link in ip_json("-4", "addr"):
        if (not devs or link.get("ifname") in devs) and link.get("ifname") != "lo":
            for a in link.get("addr_info", []):
                if a.get("scope") == "global":
                    return a["local"]
    return "127.0.0.1"


def local_ips() -> set:
    return {a["local"] for link in ip_json("addr") for a in link.get("addr_info", [])}


class Identity:
    def __init__(self, cfg: dict):
        self.name = str(cfg.get("node-name") or socket.gethostname()).lower()
        self.ips = as_list(cfg.get("node-ip")) or [default_ip()]
        self.external_ips = as_list(cfg.get("node-external-ip"))
        self.advertise = str(cfg.get("advertise-address") or self.ips[0])
        self.tls_sans = as_list(cfg.get("tls-san"))
        self.labels = as_list(cfg.get("node-label"))
        self.taints = as_list(cfg.get("node-taint"))
        self.service_ip = str(next(ipaddress.ip_network(
            str(cfg.get("service-cidr") or CRITICAL["service-cidr"]).split(",")[0]).hosts()))
        self.cluster_domain = str(cfg.get("cluster-domain") or "cluster.local")

    @property
    def peer_url(self) -> str:
        return f"https://{self.ips[0]}:2380"

    def api_names(self) -> tuple[set, set]:
        """DNS names and IPs the API serving certificate must carry."""
        dns = {"kubernetes", "kubernetes.default", "kubernetes.default.svc",
               f"kubernetes.default.svc.{self.cluster_domain}", "localhost", self.name}
        ips = {"127.0.0.1", "::1", self.service_ip, self.advertise, *self.ips, *self.external_ips}
        for san in self.tls_sans:
            (ips if is_ip(san) else dns).add(san)
        return dns, {str(ipaddress.ip_address(i)) for i in ips}


def is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


# --- certificates -------------------------------------------------------------------------
def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def cert_pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_file(path: str, data, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def make_ca(common_name: str, key):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now() - dt.timedelta(hours=1))
            .not_valid_after(now() + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         key_cert_sign=True, content_commitment=False,
                                         data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256()))


def sign_leaf(common_name: str, orgs: list, dns: set, ips: set, ca_cert, ca_key, key,
              server: bool, client: bool):
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
             ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder().subject_name(x509.Name(attrs))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now() - dt.timedelta(hours=1))
               .not_valid_after(now() + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                            key_cert_sign=False, content_commitment=False,
                                            data_encipherment=False, key_agreement=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_cert.public_key()), critical=False))
    names = [x509.DNSName(d) for d in sorted(dns)] + \
            [x509.IPAddress(ipaddress.ip_address(i)) for i in sorted(ips)]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def load_pair(rel: str):
    cert = x509.load_pem_x509_certificate(read_bytes(f"{TLS}/{rel}.crt"))
    key = serialization.load_pem_private_key(read_bytes(f"{TLS}/{rel}.key"), None)
    return cert, key


def cert_sans(cert) -> tuple[set, set]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return (set(ext.get_values_for_type(x509.DNSName)),
            {str(i) for i in ext.get_values_for_type(x509.IPAddress)})


def needs_renewal(cert, ca_cert) -> str:
    """Why a leaf must be reissued ('' when it is fine): not from this CA, expired, or
    within the renewal window."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:
        return "not signed by the current CA"
    if cert.not_valid_after_utc - now() < dt.timedelta(days=RENEW_DAYS):
        return "expired or due for renewal"
    return ""


def ensure_cas() -> None:
    for rel, prefix in CA_SET:
        crt, key = f"{TLS}/{rel}.crt", f"{TLS}/{rel}.key"
        if os.path.exists(crt) and os.path.exists(key):
            cert, k = load_pair(rel)
            if cert.public_key().public_numbers() != k.public_key().public_numbers():
                fatal(f"{crt} does not match {key}")
            continue
        if os.path.exists(crt) or os.path.exists(key):
            fatal(f"only one of {crt} and {key} exists; place both or neither")
        k = new_key()
        write_file(key, key_pem(k), 0o600)
        write_file(crt, cert_pem(make_ca(f"{prefix}-ca@{int(time.time())}", k)))
        info(f"generated CA {rel}")
    if not os.path.exists(f"{TLS}/service.key"):
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_file(f"{TLS}/service.key", key_pem(k), 0o600)


def hash_ca(bundle: bytes) -> str:
    """k3s-io/k3s pkg/clientaccess/token.go `hashCA`: a single certificate hashes the file's
    bytes; a bundle hashes the DER of the root its first certificate chains to (a root: no
    authority key id, or one equal to its subject key id), else the file's bytes."""
    certs = x509.load_pem_x509_certificates(bundle) if b"-----BEGIN" in bundle else []
    if len(certs) < 2:
        return hashlib.sha256(bundle).hexdigest()

    def ext(cert, kind):
        try:
            return cert.extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None

    def is_root(cert) -> bool:
        aki = ext(cert, x509.AuthorityKeyIdentifier)
        ski = ext(cert, x509.SubjectKeyIdentifier)
        return aki is None or aki.key_identifier is None or (ski is not None and ski.digest == aki.key_identifier)

    current = certs[0]
    for _ in certs:
        issuer = next((c for c in certs[1:] if c is not current and c.subject == current.issuer), None)
        if issuer is None:
            break
        try:
            current.verify_directly_issued_by(issuer)
        except Exception:
            break
        if is_root(issuer):
            return hashlib.sha256(issuer.public_bytes(serialization.Encoding.DER)).hexdigest()
        current = issuer
    return hashlib.sha256(bundle).hexdigest()


def ca_hash() -> str:
    return hash_ca(read_bytes(f"{TLS}/server-ca.crt"))


def ensure_leaf(rel: str, ca: str, cn: str, orgs: list, dns: set, ips: set,
                server: bool, client: bool) -> None:
    """RKE2's rule: reissue only when missing, not from the CA, expiring, or lacking a
    wanted name. A reissued certificate carries exactly the wanted names."""
    ca_cert, ca_key = load_pair(ca)
    crt, key = f"{TLS}/{rel}.crt", f"{TLS}/{rel}.key"
    reason = "missing"
    if os.path.exists(crt) and os.path.exists(key):
        cert = x509.load_pem_x509_certificate(read_bytes(crt))
        have_dns, have_ips = cert_sans(cert)
        reason = needs_renewal(cert, ca_cert)
        missing = (dns - have_dns) | (ips - have_ips)
        if not reason and missing:
            reason = f"new names {sorted(missing)}"
        if not reason:
            return
    k = new_key()
    cert = sign_leaf(cn, orgs, dns, ips, ca_cert, ca_key, k, server, client)
    write_file(key, key_pem(k), 0o600)
    # Leaf then the whole CA file, as k3s/RKE2 write it: with a custom CA (server-ca +
    # intermediate + root) clients that trust only the root can build the chain.
    write_file(crt, cert_pem(cert) + read_bytes(f"{TLS}/{ca}.crt"))
    info(f"certificate {rel} (re)generated: {reason}; names {sorted(dns) + sorted(ips)}")


# --- tokens -------------------------------------------------------------------------------
def parse_token(token: str) -> tuple:
    """(ca hash or None, user or None, password) from `K10<hash>::<user>:<password>` or a
    bare password."""
    token = str(token).strip()
    m = re.fullmatch(r"K10([0-9a-f]+)::([^:]+):(.+)", token)
    if m:
        return m.group(1), m.group(2), m.group(3)
    return None, None, token


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


# --- HTTP helpers -------------------------------------------------------------------------
def client_ctx(cadata: str | None, check_hostname: bool = True) -> ssl.SSLContext:
    if cadata is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cadata=cadata)
    ctx.check_hostname = check_hostname
    return ctx


def request(url: str, ctx, method: str = "GET", body=None, auth: tuple | None = None,
            timeout: float = 10, headers: dict | None = None) -> tuple[int, bytes]:
    """`body`: JSON-encoded, or sent as is when bytes."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=timeout)
    headers = dict(headers or {})
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode()).decode()
    data = None
    if isinstance(body, bytes):
        data = body
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=data,
                     headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def sd_notify(msg: str) -> None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(msg.encode())


def fetch_cacerts(url: str, token_hash: str | None) -> str:
    """GET /cacerts (unverified, as RKE2 does) until it answers; check the token's hash."""
    attempt = 0
    while True:
        try:
            status, body = request(f"{url}/cacerts", client_ctx(None))
            if status == 200:
                break
            err = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as e:
            err = str(e)
        if attempt % 5 == 0:
            info(f"Waiting to retrieve CA certificates from {url}: {err}")
        attempt += 1
        time.sleep(1)
    actual = hash_ca(body)
    if token_hash and token_hash != actual:
        fatal(f"token CA hash does not match the Cluster CA certificate hash: "
              f"{token_hash} != {actual}")
    return body.decode()


# --- the bootstrap record ------------------------------------------------------------------
class Bootstrap:
    """The cluster's bootstrap record: its id, the hashes of the server and agent token
    passwords and the critical configuration values. k3s keeps this bootstrap data in the
    datastore itself, encrypted with the token (k3s-io/k3s pkg/cluster/storage.go `Save`,
    key /bootstrap/<hash of the token>); the stand-in keeps it in BOOTSTRAP_FILE beside etcd's
    data (it comes back with a restore), given to joiners by /v1-rke2/server-bootstrap. All
    cluster data proper (Nodes, Secrets, the members) is in the real etcd and API."""

    def __init__(self, data: dict | None = None):
        if data is None:
            with open(BOOTSTRAP_FILE) as f:
                data = json.load(f)
        self.data = data

    def save(self) -> None:
        os.makedirs(ETCD_DIR, mode=0o700, exist_ok=True)
        write_file(BOOTSTRAP_FILE, json.dumps(self.data, sort_keys=True), 0o600)


# --- the server ---------------------------------------------------------------------------
class Runtime:
    """What the HTTP handlers of a running server need."""

    def __init__(self, cfg, ident, boot: Bootstrap, server_pw):
        self.cfg, self.ident, self.boot = cfg, ident, boot
        self.server_pw = server_pw
        self.stop = threading.Event()

    def auth_ok(self, header: str | None, users: tuple) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        if user not in users:
            return False
        pw_sha = sha(pw)
        if hmac.compare_digest(pw_sha, self.boot.data.get("token_sha", "")):
            return True
        agent_sha = self.boot.data.get("agent_sha")
        return user == "node" and bool(agent_sha) and hmac.compare_digest(pw_sha, agent_sha)


class Handler(BaseHTTPRequestHandler):
    server_version = "rke2-standin"
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # quiet: the journal is for the server's own events
        pass

    @property
    def rt(self) -> Runtime:
        return self.server.rt

    def reply(self, code: int, body, ctype: str = "application/json") -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method: str) -> None:
        try:
            self.supervisor(method, urllib.parse.urlsplit(self.path).path)
        except Exception as e:  # report, never kill the server thread silently
            log("error", f"supervisor {method} {self.path}: {type(e).__name__}: {e}")
            self.reply(500, f"{type(e).__name__}: {e}", "text/plain")

    # --- 9345 ---
    def supervisor(self, method: str, path: str) -> None:
        rt, auth = self.rt, self.headers.get("Authorization")
        if path == "/ping":
            return self.reply(200, "pong", "text/plain")
        if path == "/cacerts":
            return self.reply(200, read_bytes(f"{TLS}/server-ca.crt"), "text/plain")
        if path in NODE_CERTS and method == "POST":
            if not rt.auth_ok(auth, ("node", "server")):
                return self.reply(401, "Unauthorized", "text/plain")
            return self.node_cert(path)
        if not rt.auth_ok(auth, ("server",)):
            return self.reply(401, "Unauthorized", "text/plain")
        if path == "/db/info":
            # k3s pkg/etcd/etcd.go `handler`/`infoHandler`: the member list for joiners
            # (auth.IsLocalOrHasRole(<program>:server): the server token).
            members = etcdctl_json("member", "list")
            if members is None:
                return self.reply(500, "failed to get etcd MemberList", "text/plain")
            return self.reply(200, {"members": members.get("members", [])})
        if path == "/v1-rke2/server-bootstrap":
            files = {f"{rel}.{ext}": read_bytes(f"{TLS}/{rel}.{ext}").decode()
                     for rel, _ in CA_SET for ext in ("crt", "key")}
            files["service.key"] = read_bytes(f"{TLS}/service.key").decode()
            return self.reply(200, {"files": files, "bootstrap": rt.boot.data})
        if path == "/v1-rke2/config":
            return self.reply(200, rt.boot.data.get("critical", {}))
        self.reply(404, "404 page not found", "text/plain")

    def node_cert(self, path: str) -> None:
        """k3s-io/k3s pkg/server/handlers/handlers.go `ClientKubeletCert`:
        the node is authenticated by its node password (nodepassword.GetNodeAuthValidator:
        headers <program>-Node-Name / -Node-Password, checked against secret
        kube-system/<node>.node-password.<program>, created on first use), then the client CA
        signs the public key of the CSR in the POST body (`signAndSend`/`getCSR`: DER) as
        CN system:node:<node>, O system:nodes; the answer is the certificate then the CA.
        /v1-rke2/client-rk2lab-kwok.crt is the lab's own (kwok, the kubelet stand-in, lists
        all nodes, which node credentials may not): CN rk2lab-kwok, O rk2lab:kwok."""
        name = (self.headers.get("rke2-Node-Name") or "").lower()
        password = self.headers.get("rke2-Node-Password") or ""
        if not name or not password:
            return self.reply(401, "Unauthorized", "text/plain")
        err, code = node_password_check(name, password)
        if err:
            return self.reply(code, err, "text/plain")
        n = int(self.headers.get("Content-Length") or 0)
        try:
            csr = x509.load_der_x509_csr(self.rfile.read(n))
        except ValueError as e:
            return self.reply(400, f"invalid certificate request: {e}", "text/plain")
        cn, orgs = NODE_CERTS[path]
        ca_cert, ca_key = load_pair("client-ca")
        cert = sign_leaf(cn.format(node=name), orgs, set(), set(), ca_cert, ca_key,
                         _PublicOnly(csr.public_key()), False, True)
        self.reply(200, cert_pem(cert) + read_bytes(f"{TLS}/client-ca.crt"), "text/plain")

NODE_CERTS = {"/v1-rke2/client-kubelet.crt": ("system:node:{node}", ["system:nodes"]),
              "/v1-rke2/client-rk2lab-kwok.crt": ("rk2lab-kwok", ["rk2lab:kwok"])}


class _PublicOnly:
    """A CSR's public key where sign_leaf expects a key pair (it needs only public_key())."""

    def __init__(self, public):
        self._public = public

    def public_key(self):
        return self._public


def node_password_check(name: str, password: str) -> tuple[str, int]:
    """k3s-io/k3s pkg/nodepassword/nodepassword.go `Ensure`: secret
    kube-system/<node>.node-password.rke2 holds the hash of the node's password; a first
    request creates it, a later one with another password is refused (403). The
    secret is in the real API (the hash is the lab's: sha256)."""
    secret = f"{name}.node-password.rke2"
    res = kubectl_real("-n", "kube-system", "get", "secret", secret, "-o",
                       "jsonpath={.data.hash}", "--request-timeout=5s", timeout=15)
    if res.returncode == 0:
        if hmac.compare_digest(base64.b64decode(res.stdout or "").decode(), sha(password)):
            return "", 200
        return ("Node password rejected, duplicate hostname or contents of "
                "'/etc/rancher/node/password' may not match server node-passwd entry, try "
                "enabling a unique node name with the --with-node-id flag", 403)
    if "NotFound" not in res.stderr:
        return f"the API server is not ready: {res.stderr.strip()[:200]}", 503
    doc = {"apiVersion": "v1", "kind": "Secret", "type": "rke2.io/node-password",
           "metadata": {"name": secret, "namespace": "kube-system"},
           "data": {"hash": base64.b64encode(sha(password).encode()).decode()}}
    res = kubectl_real("create", "-f", "-", "--request-timeout=5s", data=json.dumps(doc), timeout=15)
    if res.returncode != 0 and "AlreadyExists" not in res.stderr:
        return f"could not store the node password: {res.stderr.strip()[:200]}", 503
    info(f"node password secret kube-system/{secret} created")
    return "", 200


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, ctx: ssl.SSLContext, rt: Runtime):
        self.ctx, self.rt = ctx, rt
        super().__init__(("0.0.0.0", port), Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake happens here, in the connection's thread, not in accept().
        request.settimeout(30)
        try:
            conn = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            request.close()
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()


SERVING_SECRET = "kube-system/rke2-serving"
CN_PREFIX = "listener.cattle.io/cn-"
SUP_CRT, SUP_KEY = f"{TLS}/standin-supervisor.crt", f"{TLS}/standin-supervisor.key"


def doc_names(doc: dict | None) -> set:
    """The names a dynamiclistener secret carries (its listener.cattle.io/cn-* annotations)."""
    if not doc:
        return set()
    return {v for k, v in doc["metadata"].get("annotations", {}).items() if k.startswith(CN_PREFIX)}


# rancher/dynamiclistener v0.6.2 factory/gen.go: names that do not match cnRegexp are dropped
# ("dropping invalid CN"); getAnnotationKey shortens keys of 64 characters or more and those
# with ':' (IPv6), which Kubernetes refuses in an annotation name.
VALID_CN = re.compile(r"^([A-Za-z0-9:][-A-Za-z0-9_.:]*)?[A-Za-z0-9:]$")


def cn_annotation(name: str) -> str:
    key = CN_PREFIX + name
    if len(key) < 64 and ":" not in key:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:6]
    return key.replace(":", "_")[:56] + "-" + digest


def sign_supervisor_doc(names: set, key=None) -> dict:
    ca_cert, ca_key = load_pair("server-ca")
    key = key or new_key()
    for bad in sorted(n for n in names if not VALID_CN.match(n)):
        log("error", f"dropping invalid CN: {bad}")
    names = {n for n in names if VALID_CN.match(n)}
    ips = {n for n in names if is_ip(n)}
    cert = sign_leaf("rke2", ["rke2"], names - ips, ips, ca_cert, ca_key, key, True, False)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "rke2-serving", "namespace": "kube-system", "annotations": {
                cn_annotation(n): n for n in sorted(names)}},
            "data": {"tls.crt": base64.b64encode(cert_pem(cert) + cert_pem(ca_cert)).decode(),
                     "tls.key": base64.b64encode(key_pem(key)).decode()}}


class ApiUnreachable(Exception):
    """The real API does not answer (yet), so the secret is unknown."""


def shared_doc(rt: Runtime) -> dict | None:
    res = kubectl_real("-n", "kube-system", "get", "secret", "rke2-serving", "-o", "json",
                       "--request-timeout=3s", timeout=10)
    if res.returncode != 0:
        if "NotFound" in res.stderr:
            return None
        raise ApiUnreachable(res.stderr.strip())
    got = json.loads(res.stdout)
    return {"metadata": {"annotations": got["metadata"].get("annotations", {})}, "data": got["data"]}


def put_shared_doc(rt: Runtime, doc: dict) -> None:
    res = kubectl_real("apply", "-f", "-", "--request-timeout=3s", data=json.dumps(doc), timeout=10)
    if res.returncode != 0:
        log("warning", f"could not write secret {SERVING_SECRET}: {res.stderr.strip()}")


def use_supervisor_doc(doc: dict) -> None:
    """Cache (dynamic-cert.json) and the files the 9345 listener loads."""
    write_file(f"{TLS}/dynamic-cert.json", json.dumps(doc), 0o600)
    write_file(SUP_CRT, base64.b64decode(doc["data"]["tls.crt"]))
    write_file(SUP_KEY, base64.b64decode(doc["data"]["tls.key"]), 0o600)


def supervisor_cert(rt: Runtime) -> dict:
    """The 9345 certificate at start, as rancher/dynamiclistener builds it for k3s (k3s
    pkg/cluster/https.go: storage = kubernetes.New(secret kube-system/rke2-serving,
    memory.NewBacked(file.New(tls/dynamic-cert.json)))): the cached names, the configured
    names and the names of the shared secret are merged (storage/kubernetes/controller.go
    saveInK8s -> factory.TLS.Merge: the union of both lists); names are only ever added."""
    ident = rt.ident
    dns, ips = ident.api_names()
    ips |= {i for i in local_ips() if ipaddress.ip_address(i).version == 4}
    path = f"{TLS}/dynamic-cert.json"
    cached = None
    if os.path.exists(path):
        with open(path) as f:
            cached = json.load(f)
    try:
        shared = shared_doc(rt)
    except ApiUnreachable:  # dynamiclistener starts from its file cache; the watch syncs later
        shared = None
    names = dns | ips | doc_names(cached) | doc_names(shared)
    ca_cert, _ = load_pair("server-ca")
    key, reason = None, "no cached certificate"
    if cached:
        cert = x509.load_pem_x509_certificate(base64.b64decode(cached["data"]["tls.crt"]))
        key = serialization.load_pem_private_key(base64.b64decode(cached["data"]["tls.key"]), None)
        added = names - doc_names(cached)
        reason = needs_renewal(cert, ca_cert) or (f"new names {sorted(added)}" if added else "")
    doc = cached
    if reason:
        doc = sign_supervisor_doc(names, key)
        info(f"supervisor certificate (re)generated: {reason}")
    use_supervisor_doc(doc)
    if shared is None or doc_names(shared) != names:
        put_shared_doc(rt, doc)
        info(f"{'Creating new' if shared is None else 'Updating'} TLS secret for {SERVING_SECRET} "
             f"(count: {len(names)})")
    return doc


def watch_serving_secret(rt: Runtime, doc: dict, sup_ctx: ssl.SSLContext) -> None:
    """While the supervisor runs (dynamiclistener storage/kubernetes/controller.go init():
    a watch on the secret; update() -> saveInK8s()): a deleted secret is created again from
    the cached certificate, and names another server added to the shared secret are merged
    into this server's certificate (and the union written back)."""
    # A watch reacts at once; here the API is polled every second.
    while not rt.stop.wait(1.0):
        try:
            shared = shared_doc(rt)
        except ApiUnreachable:
            continue
        ours = doc_names(doc)
        if shared is None:
            put_shared_doc(rt, doc)
            info(f"Creating new TLS secret for {SERVING_SECRET} (count: {len(ours)}) from the cache")
            continue
        theirs = doc_names(shared)
        if not theirs <= ours:
            key = serialization.load_pem_private_key(base64.b64decode(doc["data"]["tls.key"]), None)
            doc = sign_supervisor_doc(ours | theirs, key)
            use_supervisor_doc(doc)
            sup_ctx.load_cert_chain(SUP_CRT, SUP_KEY)
            info(f"supervisor certificate merged with {SERVING_SECRET}: {sorted(theirs - ours)}")
            put_shared_doc(rt, doc)
        elif ours - theirs:
            put_shared_doc(rt, doc)


# --- the control plane on the real parts ------------------------------------------------
CHILDREN_DIR = f"{DATA_DIR}/server/standin-parts"  # <name>.pid of each running part
PART_LOGS = f"{DATA_DIR}/agent/logs"
def require_parts(*names: str) -> None:
    """The lab binds the real parts into every host made after they were built; say so
    plainly when a host has none (a lab made too early)."""
    missing = [n for n in names if not os.access(f"{PARTS_DIR}/{n}", os.X_OK)]
    if missing:
        fatal(f"the lab's real parts are not in this host ({PARTS_DIR}: no {', '.join(missing)}); "
              "make the lab after the parts are built (tests/lab/fixtures.py realparts_artifacts)")


def _realparts():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(sys.argv[0])),
                                    "..", "share", "rke2-standin"))
    import rk2lab_realparts.parts as parts  # shipped in the tarball by build_artifacts
    return parts


def stop_parts() -> None:
    """Stop the parts a previous start left running (the unit's KillMode=process leaves them,
    as it leaves RKE2's static pods), newest first."""
    if not os.path.isdir(CHILDREN_DIR):
        return
    for f in sorted(glob.glob(f"{CHILDREN_DIR}/*.pid"), key=os.path.getmtime, reverse=True):
        try:
            pid = int(read_bytes(f).decode().strip())
            # After a reboot the number may belong to another process: only ours.
            if not read_bytes(f"/proc/{pid}/cmdline").startswith(PARTS_DIR.encode() + b"/"):
                raise ProcessLookupError
            os.kill(pid, signal.SIGTERM)
            deadline = time.time() + 20
            while time.time() < deadline and os.path.exists(f"/proc/{pid}") and \
                    not read_bytes(f"/proc/{pid}/stat").decode().rsplit(")", 1)[1].split()[0] == "Z":
                time.sleep(0.1)
            if os.path.exists(f"/proc/{pid}"):
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        os.unlink(f)


def spawn_part(name: str, argv: list) -> subprocess.Popen:
    os.makedirs(CHILDREN_DIR, exist_ok=True)
    os.makedirs(PART_LOGS, exist_ok=True)
    # Children must not inherit NOTIFY_SOCKET: etcd sends READY=1 itself (etcdmain notifySystemd).
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    with open(f"{PART_LOGS}/{name}.log", "ab") as out:
        proc = subprocess.Popen([str(a) for a in argv], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True, close_fds=True)
    write_file(f"{CHILDREN_DIR}/{name}.pid", f"{proc.pid}\n")
    info(f"started {name} (pid {proc.pid}; log {PART_LOGS}/{name}.log)")
    return proc


def kubectl_real(*args: str, data: str | None = None, kubeconfig: str = KUBECONFIG,
                 timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([f"{PARTS_DIR}/kubectl", f"--kubeconfig={kubeconfig}", *args],
                          input=data, capture_output=True, text=True, timeout=timeout)


def wait_until(what: str, pred, proc: subprocess.Popen | None = None, timeout: float = 120,
               stop: threading.Event | None = None) -> bool:
    """Until `pred()` holds (True), the process exits or the time is up (fatal), or `stop` is
    set (False: the unit is being stopped)."""
    deadline = time.time() + timeout
    while not pred():
        if stop is not None and stop.is_set():
            return False
        if proc is not None and proc.poll() is not None:
            fatal(f"{what}: the process exited with {proc.returncode}; see {PART_LOGS}")
        if time.time() > deadline:
            fatal(f"{what}: not within {timeout:.0f}s; see {PART_LOGS}")
        time.sleep(0.5)
    return True


def ensure_etcd_leaves(ident: Identity) -> None:
    """etcd's certificates as k3s issues them (deps.go genETCDCerts): server and peer with the
    node's name and IP, and the client certificate the API server and etcdctl use."""
    ip = ident.ips[0]
    ensure_leaf("etcd/server-client", "etcd/server-ca", "etcd-server", [], {"localhost", ident.name},
                {"127.0.0.1", ip}, True, True)
    ensure_leaf("etcd/peer-server-client", "etcd/peer-ca", "etcd-peer", [], {"localhost", ident.name},
                {"127.0.0.1", ip}, True, True)
    ensure_leaf("etcd/client", "etcd/server-ca", "etcd-client", [], set(), set(), False, True)


def etcdctl(*args: str, endpoints: list | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """The real etcdctl against this node's etcd (or `endpoints`), with the etcd client
    certificate."""
    try:
        return subprocess.run([f"{PARTS_DIR}/etcdctl",
                               f"--endpoints={','.join(endpoints or ['https://127.0.0.1:2379'])}",
                               f"--cacert={TLS}/etcd/server-ca.crt", f"--cert={TLS}/etcd/client.crt",
                               f"--key={TLS}/etcd/client.key", "--dial-timeout=3s",
                               f"--command-timeout={max(3, int(timeout) - 5)}s", *args],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 1, "", f"etcdctl {' '.join(args)}: timed out")


def etcdctl_json(*args: str, endpoints: list | None = None):
    """etcdctl -w json; None when it fails."""
    res = etcdctl("-w", "json", *args, endpoints=endpoints)
    if res.returncode != 0:
        return None
    try:
        return json.loads(res.stdout)
    except ValueError:
        return None


def etcd_last_error(res: subprocess.CompletedProcess) -> str:
    """etcd's own error text (etcdctl's last line without its "Error: " prefix), as k3s's
    client library returns it."""
    lines = (res.stderr or res.stdout or "").strip().splitlines()
    return lines[-1].removeprefix("Error: ") if lines else f"exit {res.returncode}"


def real_etcd_join(url: str, ctx, pw: str, ident: Identity, member: str) -> str:
    """k3s-io/k3s pkg/etcd/etcd.go `(*ETCD).join`: the member list comes from the server the
    node joins through (`ClientURLs`: GET /db/info on its supervisor, with the server token),
    then the voting members' client URLs (but this node's own) are asked for MemberList and,
    unless this node's peer URL is already there, for MemberAddAsLearner. Returns etcd's
    --initial-cluster (every member's first peer URL) for a start with
    initial-cluster-state=existing. etcd admits one learner at a time ("too many learner
    members in cluster"): a refused add is fatal, as k3s's `logrus.Fatalf("ETCD join
    failed: ...")`, and systemd (Restart=always) runs the join again. A member of this node's
    name under another member name (a rebuilt server) refuses the join: "duplicate node name
    found, please use a unique name for this node" (same function)."""
    ip = ident.ips[0]
    try:
        status, body = request(f"{url}/db/info", ctx, auth=("server", pw))
    except (OSError, http.client.HTTPException) as e:
        fatal(f"ETCD join failed: GET {url}/db/info: {e}")
    if status != 200:
        fatal(f"ETCD join failed: GET {url}/db/info: {status} {body[:200]!r}")
    endpoints = [u for m in json.loads(body).get("members", []) if not m.get("isLearner")
                 for u in m.get("clientURLs", []) if f"//{ip}:" not in u]
    if not endpoints:
        fatal(f"ETCD join failed: no voting member with a client URL in {url}/db/info")
    res = etcdctl("-w", "json", "member", "list", endpoints=endpoints)
    if res.returncode != 0:
        fatal(f"ETCD join failed: member list via {endpoints}: {etcd_last_error(res)}")
    cluster, add = [], True
    for m in json.loads(res.stdout).get("members", []):
        mname = m.get("name", "")
        for peer in m.get("peerURLs", []):
            if urllib.parse.urlsplit(peer).hostname == ip:
                # An added member that never started has no name yet (k3s: `member.Name == ""`
                # with our peer URL is this node, added by an earlier attempt).
                if mname in ("", member):
                    mname, add = member, False
        if m.get("peerURLs"):
            cluster.append(f"{mname}={m['peerURLs'][0]}")
        # k3s: another member of this node's name (the name up to its last hyphen) refuses the
        # join, and the name file goes so that a fixed node name makes a new member name.
        hyphen = mname.rfind("-")
        if mname != member and (mname[:hyphen] if hyphen > 1 else mname) == ident.name:
            try:
                os.remove(f"{ETCD_DIR}/name")
            except FileNotFoundError:
                pass
            fatal("etcd cluster join failed: duplicate node name found, please use a unique name for this node")
    if add:
        info(f"Adding member {member}={ident.peer_url} to etcd cluster {cluster} as a learner")
        res = etcdctl("member", "add", member, f"--peer-urls={ident.peer_url}", "--learner",
                      endpoints=endpoints)
        if res.returncode != 0:
            fatal(f"ETCD join failed: {etcd_last_error(res)}")
        cluster.append(f"{member}={ident.peer_url}")
    else:
        info(f"etcd member {member}={ident.peer_url} was added before; starting it")
    return ",".join(cluster)


LEARNER_TICK_S = 5  # k3s manageTickerTime is 15 s; shorter in the lab (fewer idle seconds per join)


def is_etcd_leader() -> bool:
    """Whether this node's etcd member is the leader (k3s controllers that act on the
    cluster's membership run their work on the leader only)."""
    status = etcdctl_json("endpoint", "status")
    if not status:
        return False
    st = status[0].get("Status", {})
    return st.get("header", {}).get("member_id") == st.get("leader")


def manage_learners(stop: threading.Event) -> None:
    """k3s-io/k3s pkg/etcd/etcd.go `(*ETCD).manageLearners` (every server runs it; only the etcd
    leader acts): every tick, on the leader, MemberPromote each learner. etcd refuses a
    learner that has not caught up with the leader's log ("can only promote a learner member
    which is in sync with leader"); it is tried again next tick (k3s `trackLearnerProgress`
    also removes a learner stalled for minutes: not modelled)."""
    while not stop.wait(LEARNER_TICK_S):
        if not is_etcd_leader():
            continue
        members = etcdctl_json("member", "list") or {}
        for m in members.get("members", []):
            if not m.get("isLearner"):
                continue
            res = etcdctl("member", "promote", format(m["ID"], "x"))
            if res.returncode == 0:
                info(f"Promoted learner {m.get('name', '')} to voting member")
            else:
                info(f"Learner {m.get('name', '')} not promoted yet: {etcd_last_error(res)}")


# k3s pkg/etcd: NodeNameAnnotation / NodeAddressAnnotation (set on each server's Node by the
# metadata controller) and member_controller.go's removal annotations, with Program = rke2.
ETCD_NODE_NAME = "etcd.rke2.cattle.io/node-name"
ETCD_NODE_ADDRESS = "etcd.rke2.cattle.io/node-address"
ETCD_REMOVE = "etcd.rke2.cattle.io/remove"
ETCD_REMOVED_NODE_NAME = "etcd.rke2.cattle.io/removed-node-name"


def manage_member_removal(stop: threading.Event) -> None:
    """k3s-io/k3s pkg/etcd/member_controller.go `sync` (the "managed etcd member removal
    controller"), on the etcd leader: a Node labelled etcd with `remove: "true"` and no
    removed-node-name gets the member named in its node-name annotation removed; then
    removed-node-name is set and the name/address annotations dropped. When etcd refuses
    (k3s: ErrMemberNotEnoughStarted; here also the only voting member) the remove annotation
    is cleared. Not modelled: `onRemove` (the same removal on Node deletion, through a
    finalizer), which the product does not rely on: it annotates first."""
    while not stop.wait(LEARNER_TICK_S):
        if not is_etcd_leader():
            continue
        res = kubectl_real("get", "nodes", "-l", "node-role.kubernetes.io/etcd", "-o", "json")
        if res.returncode != 0:
            continue
        for node in json.loads(res.stdout).get("items", []):
            ann = node["metadata"].get("annotations") or {}
            if str(ann.get(ETCD_REMOVE, "")).lower() != "true" or ann.get(ETCD_REMOVED_NODE_NAME):
                continue
            node_name, name = node["metadata"]["name"], ann.get(ETCD_NODE_NAME)
            members = (etcdctl_json("member", "list") or {}).get("members", [])
            voting = [m for m in members if not m.get("isLearner")]
            target = next((m for m in members if m.get("name") == name), None)
            if target is not None and voting == [target]:
                info(f"etcd member removal rejected, clearing remove annotation: {name} is the only voting member")
                kubectl_real("annotate", "node", node_name, f"{ETCD_REMOVE}-")
                continue
            if target is not None:
                info(f"Removing etcd member from cluster due to remove annotation: {name}")
                rm = etcdctl("member", "remove", format(target["ID"], "x"))
                if rm.returncode != 0:
                    info(f"etcd member removal of {name} failed: {etcd_last_error(rm)}")
                    continue
            kubectl_real("annotate", "node", node_name, "--overwrite", f"{ETCD_REMOVED_NODE_NAME}={name}",
                         f"{ETCD_NODE_NAME}-", f"{ETCD_NODE_ADDRESS}-")
            info(f"etcd member {name} removed successfully")


def etcd_test(ident: Identity, member: str) -> str | None:
    """k3s-io/k3s pkg/etcd/etcd.go `(*ETCD).Test`: None when this node's etcd is a voting
    member under its name and current peer URL, else the error k3s logs and retries on."""
    status = etcdctl_json("endpoint", "status")
    if not status:
        return "etcd does not answer"
    if status[0].get("Status", {}).get("isLearner"):
        return "this server has not yet been promoted from learner to voting member"
    found = []
    for m in (etcdctl_json("member", "list") or {}).get("members", []):
        if m.get("name") == member and ident.peer_url in m.get("peerURLs", []):
            return None
        if m.get("peerURLs"):
            found.append(f"{m.get('name', '')}={m['peerURLs'][0]}")
    return (f"this server is a not a member of the etcd cluster. Found [{' '.join(found)}], "
            f"expect: {member}={ident.peer_url}")


def start_real_control_plane(cfg: dict, ident: Identity, member: str, stop: threading.Event,
                             join: tuple | None = None) -> bool:
    """A server's control plane on the real parts, as RKE2 runs its static pods: the
    certificates k3s issues for them (pkg/daemons/control/deps/deps.go genServerCerts,
    genETCDCerts), etcd with data in server/db/etcd, kube-apiserver on 6443 (against this
    node's etcd), the controller manager and scheduler with their own client certificates
    (leader election on, their default), this node's Node kept Ready by kwok in place of the
    kubelet. `join` = (url, ssl context, token password) on a joining server's first start:
    etcd joins as a learner (`real_etcd_join`) and nothing else starts before the leader
    has promoted it (k3s `Test` fails with "not yet been promoted" until then). A server
    whose etcd member has another peer URL (a moved node: etcd itself starts, keeping the
    old URL) never gets past `Test`: "not a member of the etcd cluster", retried until
    `stop` is set (then False), as k3s does (it neither exits nor becomes ready)."""
    parts = _realparts()
    ip = ident.ips[0]
    ensure_etcd_leaves(ident)
    cred = f"{DATA_DIR}/server/cred"
    for leaf, cn, orgs in (("client-controller", "system:kube-controller-manager", []),
                           ("client-scheduler", "system:kube-scheduler", []),
                           ("client-rk2lab-kwok", "rk2lab-kwok", ["rk2lab:kwok"])):
        ensure_leaf(leaf, "client-ca", cn, orgs, set(), set(), False, True)
        write_file(f"{cred}/{leaf.removeprefix('client-')}.kubeconfig", parts.kubeconfig(
            "https://127.0.0.1:6443", f"{TLS}/server-ca.crt", f"{TLS}/{leaf}.crt", f"{TLS}/{leaf}.key"), 0o600)
    link = f"{DATA_DIR}/bin"
    if not os.path.islink(link):
        shutil.rmtree(link, ignore_errors=True)
        os.symlink(PARTS_DIR, link)  # bin/kubectl is the real one
    stop_parts()
    if join is None:
        etcd = spawn_part("etcd", parts.etcd_args(f"{PARTS_DIR}/etcd", member, ip, ETCD_DIR, TLS))
    else:
        initial = real_etcd_join(*join, ident, member)
        etcd = spawn_part("etcd", parts.etcd_args(f"{PARTS_DIR}/etcd", member, ip, ETCD_DIR, TLS,
                                                  initial_cluster=initial, state="existing"))
    # k3s pkg/cluster/managed.go `testClusterDB`: `Test` until it passes, logging "Failed to
    # test data store connection" every 5 s, no time limit, before the API server starts.
    # (Tested every second here, logged every 5 s: a join in the lab waits less.)
    last, next_log = None, 0.0
    while (err := etcd_test(ident, member)) is not None:
        if etcd.poll() is not None:
            fatal(f"etcd exited with {etcd.returncode}; see {PART_LOGS}/etcd.log")
        if err != last or time.time() >= next_log:
            info(f"Failed to test data store connection: {err}")
            last, next_log = err, time.time() + NOT_MEMBER_RETRY_S
        if stop.wait(1):
            return False
    info("Data store connection OK")
    if not wait_until("etcd healthy", lambda: etcdctl("endpoint", "health").returncode == 0, etcd, stop=stop):
        return False
    svc = str(cfg.get("service-cidr") or CRITICAL["service-cidr"])
    api = spawn_part("kube-apiserver", parts.apiserver_args(
        f"{PARTS_DIR}/kube-apiserver", ip, TLS, f"{TLS}/temporary-certs", service_cidr=svc))
    if not wait_until("kube-apiserver ready", lambda: kubectl_real("get", "--raw", "/readyz").stdout == "ok",
                      api, stop=stop):
        return False
    spawn_part("kube-controller-manager", parts.controller_manager_args(
        f"{PARTS_DIR}/kube-controller-manager", TLS, f"{cred}/controller.kubeconfig",
        cluster_cidr=str(cfg.get("cluster-cidr") or CRITICAL["cluster-cidr"]), service_cidr=svc))
    spawn_part("kube-scheduler", parts.scheduler_args(f"{PARTS_DIR}/kube-scheduler", f"{cred}/scheduler.kubeconfig"))
    labels = {"kubernetes.io/hostname": ident.name, "node-role.kubernetes.io/control-plane": "true",
              "node-role.kubernetes.io/etcd": "true", "node-role.kubernetes.io/master": "true"}
    for lbl in ident.labels:
        k, _, v = str(lbl).partition("=")
        labels[k] = v
    # k3s pkg/etcd/metadata_controller.go: the member name and address on the server's Node.
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": ident.name, "labels": labels,
        "annotations": {ETCD_NODE_NAME: member, ETCD_NODE_ADDRESS: ip}}}
    for doc in (parts.KWOK_RBAC, node):
        res = kubectl_real("apply", "-f", "-", data=json.dumps(doc))
        if res.returncode != 0:
            fatal(f"kubectl apply: {res.stderr.strip()}")
    # The kubelet reports RKE2's version (v1.33.5+rke2r1); kwok keeps a kubeletVersion that is
    # already there (kwok v0.7.0 kustomize/stage/node/fast/node-initialize.yaml:
    # `or $nodeInfo.kubeletVersion $kwokVersion`), so set it at each start, as a new kubelet would.
    res = kubectl_real("patch", "node", ident.name, "--subresource=status", "--type=merge", "-p",
                       json.dumps({"status": {"nodeInfo": {"kubeletVersion": VERSION,
                                                           "kubeProxyVersion": VERSION}}}))
    if res.returncode != 0:
        fatal(f"kubectl patch node {ident.name} status: {res.stderr.strip()}")
    kwok = spawn_part("kwok", [f"{PARTS_DIR}/kwok", f"--kubeconfig={cred}/rk2lab-kwok.kubeconfig",
                               f"--manage-single-node={ident.name}", f"--node-ip={ip}"])
    if not wait_until(f"node {ident.name} Ready", lambda: kubectl_real(
        "get", "node", ident.name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"
    ).stdout == "True", kwok, stop=stop):
        return False
    start_pod_ready_resync(ident.name, f"{cred}/rk2lab-kwok.kubeconfig")
    info(f"control plane on the real parts is up; node {ident.name} is Ready")
    return True


POD_RESYNC_S = 10


def start_pod_ready_resync(node: str, kubeconfig: str) -> threading.Thread:
    """The kubelet's status manager, which kwok does not model: kube-controller-manager's node
    lifecycle controller marks the pods of a node NotReady when the node's heartbeat is late
    (k8s pkg/controller/nodelifecycle, MarkPodsNotReady), and once the node is back the kubelet
    reports its running pods Ready again (pkg/kubelet/status/status_manager.go syncPod; a
    container without a readiness probe is ready while it runs, pkg/kubelet/prober). kwok v0.7.0
    sets Ready only when it first starts a pod (kustomize/stage/pod/fast/pod-ready.yaml selects
    pods without a podIP), so on a loaded lab a late heartbeat left pods NotReady for good.
    Every POD_RESYNC_S seconds: this node's running pods whose containers are ready but the pod
    is not are patched Ready."""
    def loop() -> None:
        while True:
            time.sleep(POD_RESYNC_S)
            try:
                res = kubectl_real("get", "pods", "-A", f"--field-selector=spec.nodeName={node},status.phase=Running",
                                   "--request-timeout=5s", "-o", "json", kubeconfig=kubeconfig, timeout=15)
                if res.returncode != 0:
                    continue
                for pod in json.loads(res.stdout).get("items", []):
                    meta, conds = pod["metadata"], {c["type"]: c for c in pod["status"].get("conditions", [])}
                    if meta.get("deletionTimestamp") or conds.get("ContainersReady", {}).get("status") != "True" \
                            or conds.get("Ready", {}).get("status") != "False":
                        continue
                    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    patch = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}}
                    res = kubectl_real("patch", "pod", "-n", meta["namespace"], meta["name"], "--subresource=status",
                                       "--type=strategic", "-p", json.dumps(patch), "--request-timeout=5s",
                                       kubeconfig=kubeconfig, timeout=15)
                    info(f"pod {meta['namespace']}/{meta['name']} Ready again" if res.returncode == 0 else
                         f"pod {meta['namespace']}/{meta['name']}: Ready not re-reported: {res.stderr.strip()[:200]}")
            except (OSError, ValueError, KeyError, subprocess.SubprocessError):
                continue
    t = threading.Thread(target=loop, name="pod-ready-resync", daemon=True)
    t.start()
    return t


def real_etcd_reset(ident: Identity, member: str) -> None:
    """k3s `(*ETCD).Reset` (pkg/etcd/etcd.go) without a restore path: etcd with
    --force-new-cluster listening on loopback only, then, with one member left, MemberUpdate
    to this node's peer URL (force-new-cluster keeps the data but not the new address), stop."""
    parts = _realparts()
    stop_parts()
    ensure_etcd_leaves(ident)
    etcd = spawn_part("etcd", parts.etcd_args(f"{PARTS_DIR}/etcd", member, ident.ips[0], ETCD_DIR, TLS,
                                              reset=True))

    def members() -> list:
        res = etcdctl("-w", "json", "member", "list")
        return json.loads(res.stdout).get("members", []) if res.returncode == 0 else []

    wait_until("etcd (force-new-cluster) answering", lambda: bool(members()), etcd)
    [m] = members()
    if ident.peer_url not in m.get("peerURLs", []):
        res = etcdctl("member", "update", format(m["ID"], "x"), f"--peer-urls={ident.peer_url}")
        if res.returncode != 0:
            fatal(f"etcd member update: {res.stderr.strip()}")
    stop_parts()
    info("Etcd is running, restart without --cluster-reset flag now")


def real_etcd_restore(path: str, ident: Identity, member: str) -> None:
    """k3s `(*ETCD).Restore` (pkg/etcd/etcd.go), as docs.rke2.io/backup_restore describes it:
    the old data directory moves to server/db/etcd-old-<date>, and the snapshot is restored
    into a new one as a one-member cluster of this node (here with `etcdctl snapshot
    restore`, which k3s does through etcd's snapshot package); the reset follows."""
    if not os.path.isfile(path):
        fatal(f"etcd snapshot {path} does not exist")
    stop_parts()
    old = f"{DATA_DIR}/server/db/etcd-old-{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    if os.path.isdir(ETCD_DIR):
        os.rename(ETCD_DIR, old)
        info(f"moved the old etcd data to {old}")
    res = subprocess.run([f"{PARTS_DIR}/etcdctl", "snapshot", "restore", path, f"--data-dir={ETCD_DIR}",
                          f"--name={member}", f"--initial-cluster={member}={ident.peer_url}",
                          f"--initial-advertise-peer-urls={ident.peer_url}"],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        fatal(f"etcd snapshot restore {path}: {etcd_last_error(res)}")
    os.chmod(ETCD_DIR, 0o700)
    # The stand-in's own records (the bootstrap data, the member name) sit beside etcd's
    # data; in k3s the bootstrap data is inside etcd and comes back with it.
    for f in ("name", os.path.basename(BOOTSTRAP_FILE)):
        if os.path.exists(f"{old}/{f}"):
            shutil.copy2(f"{old}/{f}", f"{ETCD_DIR}/{f}")
    info(f"etcd data restored from {path}")


def write_kubeconfig(cfg: dict) -> None:
    ca = read_bytes(f"{TLS}/server-ca.crt")
    kc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
          "clusters": [{"name": "default", "cluster": {
              "server": "https://127.0.0.1:6443",
              "certificate-authority-data": base64.b64encode(ca).decode()}}],
          "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
          "current-context": "default",
          "users": [{"name": "default", "user": {
              "client-certificate-data": base64.b64encode(read_bytes(f"{TLS}/client-admin.crt")).decode(),
              "client-key-data": base64.b64encode(read_bytes(f"{TLS}/client-admin.key")).decode()}}]}
    mode_s = str(cfg.get("write-kubeconfig-mode") or "0600")
    try:
        mode = int(mode_s, 8)
    except ValueError:
        fatal(f"invalid write-kubeconfig-mode {mode_s!r}")
    path = str(cfg.get("write-kubeconfig") or KUBECONFIG)
    write_file(path, yaml.safe_dump(kc, sort_keys=False), mode)
    info(f"Wrote kubeconfig {path} (mode {mode_s})")


def member_name_for(ident: Identity) -> str:
    path = f"{ETCD_DIR}/name"
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    return f"{ident.name}-{secrets.token_hex(4)}"


def record_member(name: str) -> None:
    """k3s `(*ETCD).setName`: the member name in server/db/etcd/name (etcd makes the rest of
    the data dir itself; its member/wal directory means "initialized")."""
    os.makedirs(ETCD_DIR, mode=0o700, exist_ok=True)
    write_file(f"{ETCD_DIR}/name", name + "\n", 0o600)


def join_cluster(cfg: dict, ident: Identity, member: str) -> tuple:
    """First start of a joining server: CA check, bootstrap, config check. Returns the
    bootstrap record, the token password and (url, ssl context, password) for the etcd join,
    which start_real_control_plane does (real_etcd_join)."""
    url = str(cfg["server"]).rstrip("/")
    if not cfg.get("token"):
        fatal("--token is required to join a cluster")
    token_hash, _, pw = parse_token(cfg["token"])
    cacerts = fetch_cacerts(url, token_hash)
    ctx = client_ctx(cacerts)
    try:
        status, body = request(f"{url}/v1-rke2/server-bootstrap", ctx, auth=("server", pw))
    except ssl.SSLError as e:
        fatal(f"failed to get bootstrap data from {url}: {e}")
    except OSError as e:
        fatal(f"failed to get bootstrap data from {url}: {e}")
    if status != 200:
        fatal(f"failed to get bootstrap data from {url}: {status} "
              f"{'Unauthorized (token rejected)' if status == 401 else body[:200]!r}")
    got = json.loads(body)
    theirs, mine = got["bootstrap"].get("critical", {}), critical_values(cfg)
    bad = sorted(k for k in CRITICAL if theirs.get(k) != mine.get(k))
    if cfg.get("agent-token") and sha(parse_token(cfg["agent-token"])[2]) != got["bootstrap"].get("agent_sha"):
        bad.append("agent-token")
    if bad:
        fatal(f"failed to validate server configuration: critical configuration value mismatch "
              f"between servers: {', '.join(bad)}")
    for rel, text in got["files"].items():
        path = f"{TLS}/{rel}"
        if os.path.exists(path) and read_bytes(path).decode() != text:
            fatal(f"{path} on disk differs from the cluster's; remove it or place the cluster's file")
        write_file(path, text, 0o600 if rel.endswith(".key") else 0o644)
    boot = Bootstrap(got["bootstrap"])
    boot.save()
    info(f"bootstrap data of cluster {boot.data.get('cluster_id')} taken from {url}")
    return boot, pw, (url, ctx, pw)


def server_main(args: list) -> int:
    cli = parse_cli(args)
    log.open(LOG_FILE)
    info(f"Starting rke2 {VERSION} server ({STANDIN_NOTE})")
    cfg = load_config(cli)
    validate_profile(cfg, "server")
    require_parts("etcd", "etcdctl", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                  "kwok", "kubectl")
    ident = Identity(cfg)
    os.makedirs(TLS, mode=0o700, exist_ok=True)
    initialized = os.path.isdir(WAL_DIR)  # k3s (*ETCD).IsInitialized
    member = member_name_for(ident)
    join = None  # (url, ssl context, token password) when etcd must join through the server URL
    if cli.get("cluster-reset"):
        return cluster_reset(cfg, ident, member, initialized)
    if initialized:
        if cfg.get("server"):
            info("etcd data exists; ignoring server: (the node is already a cluster member)")
        try:
            boot = Bootstrap()
        except FileNotFoundError:
            fatal(f"etcd data in {ETCD_DIR} but no bootstrap data ({BOOTSTRAP_FILE})")
        token_file = f"{DATA_DIR}/server/token"
        stored_pw = parse_token(read_bytes(token_file).decode())[2] if os.path.exists(token_file) else None
        pw = parse_token(cfg["token"])[2] if cfg.get("token") else stored_pw
        if pw is None or sha(pw) != boot.data.get("token_sha"):
            fatal("bootstrap data already found and encrypted with different token")
    elif cfg.get("server"):
        boot, pw, join = join_cluster(cfg, ident, member)
        record_member(member)
    else:
        ensure_cas()
        if cfg.get("token"):
            token_hash, _, pw = parse_token(cfg["token"])
            if token_hash and token_hash != ca_hash():
                fatal(f"token CA hash does not match the Cluster CA certificate hash: "
                      f"{token_hash} != {ca_hash()}")
        else:
            pw = secrets.token_hex(16)
        boot = Bootstrap({"cluster_id": str(uuid.uuid4()), "created": time.time(),
                          "token_sha": sha(pw), "critical": critical_values(cfg)})
        if cfg.get("agent-token"):
            boot.data["agent_sha"] = sha(parse_token(cfg["agent-token"])[2])
        boot.save()
        record_member(member)
        info(f"etcd: initialized new cluster {boot.data['cluster_id']} with member "
             f"{member}={ident.peer_url}")
    ensure_cas()
    hash_ = ca_hash()
    write_file(f"{DATA_DIR}/server/token", f"K10{hash_}::server:{pw}\n", 0o600)
    if not os.path.lexists(f"{DATA_DIR}/server/node-token"):
        os.symlink("token", f"{DATA_DIR}/server/node-token")
    if cfg.get("agent-token"):
        write_file(f"{DATA_DIR}/server/agent-token",
                   f"K10{hash_}::node:{parse_token(cfg['agent-token'])[2]}\n", 0o600)
    dns, ips = ident.api_names()
    ensure_leaf("serving-kube-apiserver", "server-ca", "kube-apiserver", [], dns, ips, True, False)
    ensure_leaf("client-admin", "client-ca", "system:admin", ["system:masters"], set(), set(),
                False, True)
    rt = Runtime(cfg, ident, boot, pw)
    sup_doc = supervisor_cert(rt)
    write_kubeconfig(cfg)
    # The supervisor listens before etcd is started and tested (k3s pkg/cluster/cluster.go
    # `Start`: initClusterAndHTTPS, then the datastore), so a server that is not (yet) a
    # member keeps 9345 open while it retries.
    sup_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sup_ctx.load_cert_chain(SUP_CRT, SUP_KEY)
    try:
        supervisor = TLSServer(9345, sup_ctx, rt)
    except OSError as e:
        fatal(f"listen tcp :9345: bind: {e.strerror}")
    threading.Thread(target=supervisor.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: rt.stop.set())
    signal.signal(signal.SIGINT, lambda *_: rt.stop.set())
    try:
        if not start_real_control_plane(cfg, ident, member, rt.stop, join):
            return 0  # stopped while etcd was not (yet) usable
        threading.Thread(target=manage_learners, args=(rt.stop,), daemon=True).start()
        threading.Thread(target=manage_member_removal, args=(rt.stop,), daemon=True).start()
        threading.Thread(target=watch_serving_secret, args=(rt, sup_doc, sup_ctx), daemon=True).start()
        if rt.stop.is_set():  # stopped while starting: never report ready
            return 0
        sd_notify("READY=1")
        info(f"rke2 is up and running (rke2-standin server {ident.name}, node-ip {ident.ips[0]})")
        rt.stop.wait()
        info("rke2-standin server shutting down")
        return 0
    finally:
        supervisor.shutdown()
        supervisor.server_close()


def cluster_reset(cfg: dict, ident: Identity, member: str, initialized: bool) -> int:
    if not initialized:
        fatal(f"etcd database not found in {ETCD_DIR}; there is nothing to reset")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", 9345))
        except OSError:
            fatal("another rke2 server is running on this host (port 9345 in use); "
                  "stop rke2-server before --cluster-reset")
    restore = cfg.get("cluster-reset-restore-path")
    if restore:
        real_etcd_restore(str(restore), ident, member)
    real_etcd_reset(ident, member)
    record_member(member)
    dns, ips = ident.api_names()
    ensure_leaf("serving-kube-apiserver", "server-ca", "kube-apiserver", [], dns, ips, True, False)
    info("Managed etcd cluster membership has been reset, restart without --cluster-reset flag "
         "now. Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes")
    return 0


# --- the agent ----------------------------------------------------------------------------
def agent_main(args: list) -> int:
    cli = parse_cli(args)
    log.open(LOG_FILE)
    info(f"Starting rke2 {VERSION} agent ({STANDIN_NOTE})")
    cfg = load_config(cli)
    validate_profile(cfg, "agent")
    require_parts("kwok", "kubectl")
    ident = Identity(cfg)
    if not cfg.get("server"):
        fatal("--server is required")
    if not cfg.get("token"):
        fatal("--token is required")
    url = str(cfg["server"]).rstrip("/")
    token_hash, _, pw = parse_token(cfg["token"])
    cacerts = fetch_cacerts(url, token_hash)
    write_file(f"{DATA_DIR}/agent/server-ca.crt", cacerts)
    ctx = client_ctx(cacerts)
    if not os.path.exists(NODE_PASSWORD_FILE):
        write_file(NODE_PASSWORD_FILE, secrets.token_hex(16) + "\n", 0o600)
    with open(NODE_PASSWORD_FILE) as f:
        node_pw = f.read().strip()
    return agent_on_real_api(ident, url, ctx, pw, node_pw)


def fetch_node_cert(url: str, ctx, pw: str, ident: Identity, node_pw: str, endpoint: str,
                    rel: str, stop: threading.Event) -> None:
    """An agent's client certificate from the supervisor (k3s-io/k3s pkg/agent/config/config.go
    `getNodeNamedCrt`: POST a CSR to /v1-<program>/<endpoint> with the token and the node
    name/password headers; retried while the server is not ready). The key stays on the node
    (reused when present); agent/<rel>.crt gets the certificate and the CA."""
    agent = f"{DATA_DIR}/agent"
    key_file = f"{agent}/{rel}.key"
    if os.path.exists(key_file):
        key = serialization.load_pem_private_key(read_bytes(key_file), None)
    else:
        key = new_key()
        write_file(key_file, key_pem(key), 0o600)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ident.name)]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    headers = {"rke2-Node-Name": ident.name, "rke2-Node-Password": node_pw}
    attempt = 0
    while not stop.is_set():
        try:
            status, body = request(f"{url}/v1-rke2/{endpoint}", ctx, "POST", csr, ("node", pw),
                                   headers=headers)
            err = "" if status == 200 else f"{status} {body.decode(errors='replace')[:300]}"
        except (OSError, http.client.HTTPException) as e:
            status, err = 0, str(e)
        if not err:
            write_file(f"{agent}/{rel}.crt", body)
            return
        if status in (401, 403):
            fatal(f"failed to get {endpoint} from {url}: {err}")
        if attempt % 5 == 0:
            log("error", f"Waiting to retrieve agent configuration; server is not ready: {err}")
        attempt += 1
        stop.wait(2)
    sys.exit(0)


def agent_on_real_api(ident: Identity, url: str, ctx, pw: str, node_pw: str) -> int:
    """`rke2 agent` on the real API: the kubelet's client certificate from
    the supervisor (CN system:node:<node>, O system:nodes: k3s pkg/server/handlers
    `ClientKubeletCert`), the Node registered with it (the Node authorizer and NodeRestriction
    admit exactly the node's own object), kwok keeping it Ready in place of the kubelet (with
    the lab's rk2lab:kwok identity: kwok lists all nodes), READY=1 once Ready (the unit is
    Type=notify). The API is reached at the supervisor address's port 6443: RKE2's agent runs
    a client-side load balancer (k3s pkg/agent/loadbalancer, 127.0.0.1:6444) over the
    servers it learns from /v1-rke2/apiservers; the lab connects to <server host>:6443
    directly, which is the load balancer's 6443 in HA and the server itself otherwise."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent = f"{DATA_DIR}/agent"
    link = f"{DATA_DIR}/bin"
    if not os.path.islink(link):
        shutil.rmtree(link, ignore_errors=True)
        os.symlink(PARTS_DIR, link)  # bin/kubectl is the real one
    for endpoint, rel in (("client-kubelet.crt", "client-kubelet"),
                          ("client-rk2lab-kwok.crt", "client-rk2lab-kwok")):
        fetch_node_cert(url, ctx, pw, ident, node_pw, endpoint, rel, stop)
    parts = _realparts()
    api = f"https://{urllib.parse.urlsplit(url).hostname}:6443"
    kubelet_kc, kwok_kc = f"{agent}/kubelet.kubeconfig", f"{agent}/rk2lab-kwok.kubeconfig"
    for kc, rel in ((kubelet_kc, "client-kubelet"), (kwok_kc, "client-rk2lab-kwok")):
        write_file(kc, parts.kubeconfig(api, f"{agent}/server-ca.crt", f"{agent}/{rel}.crt",
                                        f"{agent}/{rel}.key"), 0o600)
    stop_parts()
    labels = {"kubernetes.io/hostname": ident.name}
    for lbl in ident.labels:
        k, _, v = str(lbl).partition("=")
        labels[k] = v
    taints = []
    for t in ident.taints:
        kv, _, effect = str(t).partition(":")
        k, _, v = kv.partition("=")
        taints.append({"key": k, "value": v, "effect": effect} if v else {"key": k, "effect": effect})
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": ident.name, "labels": labels}, "spec": {"taints": taints}}
    # The kubelet registers its Node once (create; an existing one is kept, as kubelet's
    # registerWithAPIServer does), then reports its version in the status.
    attempt = 0
    while not stop.is_set():
        res = kubectl_real("create", "-f", "-", "--request-timeout=5s", data=json.dumps(node),
                           kubeconfig=kubelet_kc, timeout=20)
        if res.returncode == 0 or "AlreadyExists" in res.stderr:
            break
        if attempt % 5 == 0:
            log("error", f"Unable to register node {ident.name} with API server {api}: "
                         f"{res.stderr.strip()[:300]}")
        attempt += 1
        stop.wait(2)
    # A PATCH of nodes/<node>/status (the system:node role may patch it, not get it, which
    # `kubectl patch --subresource=status` would do first).
    kubelet_ctx = client_ctx(read_bytes(f"{agent}/server-ca.crt").decode())
    kubelet_ctx.load_cert_chain(f"{agent}/client-kubelet.crt", f"{agent}/client-kubelet.key")
    patch = {"status": {"nodeInfo": {"kubeletVersion": VERSION, "kubeProxyVersion": VERSION}}}
    try:
        status, body = request(f"{api}/api/v1/nodes/{ident.name}/status", kubelet_ctx, "PATCH",
                               json.dumps(patch).encode(),
                               headers={"Content-Type": "application/merge-patch+json"})
    except (OSError, http.client.HTTPException) as e:
        status, body = 0, str(e).encode()
    if status != 200:
        fatal(f"patch node {ident.name} status: {status} {body[:300]!r}")
    kwok = spawn_part("kwok", [f"{PARTS_DIR}/kwok", f"--kubeconfig={kwok_kc}",
                               f"--manage-single-node={ident.name}", f"--node-ip={ident.ips[0]}"])

    def node_ready() -> bool:
        return kubectl_real("get", "node", ident.name, "--request-timeout=5s", "-o",
                            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                            kubeconfig=kubelet_kc, timeout=15).stdout == "True"

    if wait_until(f"node {ident.name} Ready", node_ready, kwok, timeout=600, stop=stop):
        start_pod_ready_resync(ident.name, kwok_kc)
        sd_notify("READY=1")
        info(f"rke2 agent is up and running (rke2-standin agent {ident.name}, API {api})")
    stop.wait()
    # The unit's ExecStopPost kills the kubelet (rancher/rke2 bundle/lib/systemd/system/
    # rke2-agent.service); kwok stands in for it.
    stop_parts()
    info("rke2-standin agent shutting down")
    return 0


# --- certificate subcommand ---------------------------------------------------------------
def certificate_main(args: list) -> int:
    if not args or args[0] not in ("check", "rotate"):
        print("rke2 certificate: subcommands: check, rotate (rotate-ca is not in the stand-in)",
              file=sys.stderr)
        return 1
    if args[0] == "check":
        for f in sorted(glob.glob(f"{TLS}/**/*.crt", recursive=True)):
            cert = x509.load_pem_x509_certificate(read_bytes(f))
            print(f"{f}: expires {cert.not_valid_after_utc.isoformat()}")
        return 0
    for f in ("serving-kube-apiserver.crt", "serving-kube-apiserver.key", "client-admin.crt",
              "client-admin.key", "dynamic-cert.json"):
        if os.path.exists(f"{TLS}/{f}"):
            os.unlink(f"{TLS}/{f}")
    print("certificates removed; they are regenerated when rke2 next starts")
    return 0


# --- etcd-snapshot ------------------------------------------------------------------------
def etcd_snapshot_main(args: list) -> int:
    """`etcd-snapshot save [--name N]` (k3s pkg/cli/etcdsnapshot): a local snapshot file
    <name>-<node name>-<unix time> under server/db/snapshots, taken from this server's etcd
    data (refused without it), in etcd's own snapshot format (k3s (*ETCD).Snapshot uses the
    etcd client's snapshot.SaveWithVersion, as `etcdctl snapshot save` does)."""
    if not args or args[0] != "save":
        print("rke2 (standin): etcd-snapshot supports only `save [--name NAME]`", file=sys.stderr)
        return 1
    name = "on-demand"
    if "--name" in args[1:-1]:
        name = args[args.index("--name") + 1]
    if not os.path.isdir(WAL_DIR):
        print(f"rke2 (standin): etcd-snapshot: no etcd data in {ETCD_DIR}", file=sys.stderr)
        return 1
    snapshots = f"{DATA_DIR}/server/db/snapshots"
    os.makedirs(snapshots, exist_ok=True)
    path = f"{snapshots}/{name}-{socket.gethostname().lower()}-{int(time.time())}"
    res = etcdctl("snapshot", "save", path, timeout=120)
    if res.returncode != 0:
        print(f"rke2 (standin): etcd-snapshot: {etcd_last_error(res)}", file=sys.stderr)
        return 1
    os.chmod(path, 0o600)
    print(f"Snapshot {os.path.basename(path)} saved.", file=sys.stderr)
    return 0


# --- entry --------------------------------------------------------------------------------
def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(f"rke2 {VERSION} (standin)\n{STANDIN_NOTE}\n\nCommands: server, agent, "
              "certificate check|rotate, --version")
        return 0 if args else 1
    if args[0] in ("--version", "-v", "version"):
        print(f"rke2 version {VERSION} (standin)\ngo version none ({STANDIN_NOTE})")
        return 0
    if os.geteuid() != 0 and args[0] in ("server", "agent"):
        fatal("rke2 must be run as root")
    if args[0] == "server":
        return server_main(args[1:])
    if args[0] == "agent":
        return agent_main(args[1:])
    if args[0] == "certificate":
        return certificate_main(args[1:])
    if args[0] == "etcd-snapshot":
        return etcd_snapshot_main(args[1:])
    print(f"rke2 (standin): unknown command {args[0]!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
