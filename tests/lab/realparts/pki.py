"""Certificates laid out as RKE2 lays them out under /var/lib/rancher/rke2/server/tls, for
running the real etcd and kube-apiserver in the lab.

Layout and contents follow k3s `pkg/daemons/control/deps/deps.go` (`CreateRuntimeCertFiles`
names the files, `genETCDCerts` / `genServerCerts` / `genClientCerts` say what each holds):

    tls/etcd/server-ca.{crt,key}          CA "etcd-server-ca@<unix>"
    tls/etcd/peer-ca.{crt,key}            CA "etcd-peer-ca@<unix>"
    tls/etcd/server-client.{crt,key}      CN etcd-server, server+client auth, SANs = node SANs
    tls/etcd/peer-server-client.{crt,key} CN etcd-peer, server+client auth, SANs = node SANs
    tls/etcd/client.{crt,key}             CN etcd-client, client auth (the apiserver's)
    tls/server-ca.{crt,key}, client-ca.{crt,key}
    tls/serving-kube-apiserver.{crt,key}  CN kube-apiserver, server auth, kubernetes.* + SANs
    tls/client-admin.{crt,key}            CN system:admin, O system:masters
    tls/client-controller.{crt,key}       CN system:kube-controller-manager
    tls/client-scheduler.{crt,key}        CN system:kube-scheduler
    tls/service.key                       service-account signing key

Leaf files hold the leaf followed by its CA (deps.go `createClientCertKey` writes both).
Keys are ECDSA P-256 in "EC PRIVATE KEY" PEM, as rancher/dynamiclistener `cert.NewPrivateKey`
+ `EncodePrivateKeyPEM` (used by k3s) write them; kube-apiserver reads service.key in that
form, not PKCS#8. The CAs are shared by every server of a cluster (a joiner receives them
with the bootstrap data); leaves are per node.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CA:
    def __init__(self, cert: x509.Certificate, key):
        self.cert, self.key = cert, key

    @classmethod
    def new(cls, prefix: str) -> "CA":
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        name = _name(f"{prefix}-ca@{int(time.time())}")
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                             key_cert_sign=True, content_commitment=False,
                                             data_encipherment=False, key_agreement=False,
                                             crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @classmethod
    def load(cls, crt: Path, key: Path) -> "CA":
        return cls(x509.load_pem_x509_certificate(crt.read_bytes()),
                   serialization.load_pem_private_key(key.read_bytes(), None))

    def write(self, crt: Path, key: Path) -> None:
        _write(crt, _cert_pem(self.cert), 0o644)
        _write(key, _key_pem(self.key), 0o600)

    def issue(self, cn: str, usages: list, sans: list[str] = (), orgs: tuple[str, ...] = ()):
        """A leaf (cert PEM + CA PEM, key PEM). `sans` are IPs or DNS names."""
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder().subject_name(_name(cn, orgs))
             .issuer_name(self.cert.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=365))
             .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                          key_cert_sign=False, content_commitment=False,
                                          data_encipherment=False, key_agreement=False,
                                          crl_sign=False, encipher_only=False,
                                          decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        names = []
        for s in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                names.append(x509.DNSName(s))
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        return _cert_pem(cert) + _cert_pem(self.cert), _key_pem(key)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def node_sans(name: str, ips: list[str]) -> list[str]:
    """What k3s puts in config.SANs for a server's etcd certs: loopback, localhost, the node
    name and its IPs (k3s `pkg/cli/server/server.go` appends them to `serverConfig.ControlConfig.SANs`)."""
    return ["127.0.0.1", "::1", "localhost", name, *ips]


class ClusterCAs:
    """The CAs of one cluster (shared by its servers)."""

    def __init__(self):
        self.etcd_server = CA.new("etcd-server")
        self.etcd_peer = CA.new("etcd-peer")
        self.server = CA.new("rke2-server")
        self.client = CA.new("rke2-client")

    def write_etcd(self, tls: Path, sans: list[str]) -> None:
        """tls/etcd/* for one server (CAs + this node's leaves), as genETCDCerts does."""
        d = tls / "etcd"
        self.etcd_server.write(d / "server-ca.crt", d / "server-ca.key")
        self.etcd_peer.write(d / "peer-ca.crt", d / "peer-ca.key")
        for stem, ca, cn, usages, s in (
                ("server-client", self.etcd_server, "etcd-server", [SERVER_AUTH, CLIENT_AUTH], sans),
                ("client", self.etcd_server, "etcd-client", [CLIENT_AUTH], []),
                ("peer-server-client", self.etcd_peer, "etcd-peer", [SERVER_AUTH, CLIENT_AUTH], sans)):
            crt, key = ca.issue(cn, usages, s)
            _write(d / f"{stem}.crt", crt, 0o644)
            _write(d / f"{stem}.key", key, 0o600)

    def write_server(self, tls: Path, sans: list[str], cluster_domain: str = "cluster.local",
                     service_ip: str = "10.43.0.1") -> None:
        """API server TLS for one server, as genServerCerts/genClientCerts do (subset)."""
        self.server.write(tls / "server-ca.crt", tls / "server-ca.key")
        self.client.write(tls / "client-ca.crt", tls / "client-ca.key")
        api_sans = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    f"kubernetes.default.svc.{cluster_domain}", service_ip, *sans]
        crt, key = self.server.issue("kube-apiserver", [SERVER_AUTH], api_sans)
        _write(tls / "serving-kube-apiserver.crt", crt, 0o644)
        _write(tls / "serving-kube-apiserver.key", key, 0o600)
        for stem, cn, orgs in (("client-admin", "system:admin", ("system:masters",)),
                               ("client-controller", "system:kube-controller-manager", ()),
                               ("client-scheduler", "system:kube-scheduler", ())):
            crt, key = self.client.issue(cn, [CLIENT_AUTH], orgs=orgs)
            _write(tls / f"{stem}.crt", crt, 0o644)
            _write(tls / f"{stem}.key", key, 0o600)
        if not (tls / "service.key").exists():
            _write(tls / "service.key", _key_pem(_key()), 0o600)


def write_agent(cas: "ClusterCAs", agent_dir: Path, node_name: str) -> None:
    """An agent's kubelet credentials as k3s lays them out under agent/ (server-ca.crt,
    client-kubelet.{crt,key}: CN system:node:<name>, O system:nodes, from the client CA; the
    supervisor issues them in k3s `pkg/server/router.go` `servingKubeletCert`/`clientKubeletCert`)."""
    _write(agent_dir / "server-ca.crt", _cert_pem(cas.server.cert), 0o644)
    crt, key = cas.client.issue(f"system:node:{node_name}", [CLIENT_AUTH], orgs=("system:nodes",))
    _write(agent_dir / "client-kubelet.crt", crt, 0o644)
    _write(agent_dir / "client-kubelet.key", key, 0o600)
    # The lab's kubelet stand-in (kwok) lists every node, which node credentials may not
    # (Node authorizer): it gets its own identity, bound by the server to KWOK_CLUSTER_ROLE.
    crt, key = cas.client.issue(f"rk2lab:kwok:{node_name}", [CLIENT_AUTH], orgs=("rk2lab:kwok",))
    _write(agent_dir / "client-kwok.crt", crt, 0o644)
    _write(agent_dir / "client-kwok.key", key, 0o600)


def kubeconfig(server: str, ca_file: Path, cert_file: Path | None, key_file: Path | None) -> str:
    """A kubeconfig like rke2.yaml (files referenced by path; no user when cert is None)."""
    user = (f"    client-certificate: {cert_file}\n    client-key: {key_file}\n"
            if cert_file else "    {}\n")
    return ("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
            f"    certificate-authority: {ca_file}\n    server: {server}\n  name: default\n"
            "contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\n"
            "current-context: default\npreferences: {}\nusers:\n- name: default\n  user:\n"
            + user)
