"""Pure helpers for the stack-owned cluster identity (see cluster_identity.py)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

# RKE2's CA files under /var/lib/rancher/rke2/server/tls (shared/reference/rke2-facts.md).
CA_NAMES = ("server-ca", "client-ca", "request-header-ca", "etcd/server-ca", "etcd/peer-ca")
TLS_DIR = "/var/lib/rancher/rke2/server/tls"


def resource_label(ca: str) -> str:
    return ca.replace("/", "-")


def common_name(ca: str) -> str:
    return f"rke2-{resource_label(ca)}"


def chain(*pems: str) -> str:
    return "".join(p if p.endswith("\n") else p + "\n" for p in pems)


def tls_files(pems: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{path relative to TLS_DIR: (mode, content)}: each CA cert with its chain to the root
    (so clients trusting the root verify it), its key 0600, and service.key."""
    files: dict[str, tuple[str, str]] = {}
    for ca in CA_NAMES:
        files[f"{ca}.crt"] = ("0644", chain(pems[f"{ca}.crt"], pems["inter"], pems["root"]))
        files[f"{ca}.key"] = ("0600", pems[f"{ca}.key"])
    files["service.key"] = ("0600", pems["service_key"])
    files["root-ca.pem"] = ("0644", pems["root"])
    files["intermediate-ca.pem"] = ("0644", pems["inter"])
    return files


def encode_files(files: dict[str, tuple[str, str]]) -> str:
    """The stdin of the CA placement step: one `path mode base64` line per file, sorted."""
    return "".join(f"{path} {mode} {base64.b64encode(content.encode()).decode()}\n"
                   for path, (mode, content) in sorted(files.items()))


def ca_hash(server_ca_bundle: str) -> str:
    """What RKE2 puts after K10, the rule of k3s `pkg/clientaccess/token.go` `hashCA`: one
    certificate in server-ca.crt: sha256 of the file's bytes; more than one: sha256 of the DER
    of the root that the first certificate chains to (through the others), falling back to the
    file's bytes when it chains to none."""
    data = server_ca_bundle.encode()
    certs = x509.load_pem_x509_certificates(data)
    if len(certs) > 1:
        root = _chain_root(certs[0], certs[1:])
        if root is not None:
            data = root.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(data).hexdigest()


def _is_root(cert: x509.Certificate) -> bool:
    """k3s counts a bundle certificate as a root when it has no authority key id or that id
    equals its subject key id; every other one is an intermediate."""
    aki = _extension(cert, x509.AuthorityKeyIdentifier)
    if aki is None or aki.key_identifier is None:
        return True
    ski = _extension(cert, x509.SubjectKeyIdentifier)
    return ski is not None and ski.digest == aki.key_identifier


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _chain_root(leaf: x509.Certificate, others: list[x509.Certificate]) -> x509.Certificate | None:
    """The root that `leaf` chains to through `others` (signatures checked), or None.
    Hand-written: cryptography's verifier applies web PKI rules to the leaf, which refuse a
    CA certificate as the leaf; this walk checks what Go's x509 Verify checks here (issuer
    name, signature, validity)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    current, seen = leaf, 0
    while seen <= len(others):
        seen += 1
        for issuer in others:
            if issuer.subject != current.issuer or issuer is current:
                continue
            try:
                current.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
                continue
            if _is_root(issuer):
                return issuer
            current = issuer
            break
        else:
            return None
    return None


def derived_password(secret_pem: str) -> str:
    """A join password derived from a stack-owned secret key (stable, never stored apart)."""
    return hmac.new(secret_pem.encode(), b"rke2-rancher join token", hashlib.sha256).hexdigest()[:40]


def token_password(token: str) -> str:
    """The password part of a join token, as k3s `pkg/clientaccess/token.go` parseToken reads
    it: K10<hash>::<user>:<password>, K10<user>:<password>, or a bare password."""
    if not token.startswith("K10"):
        return token
    rest = token[3:]
    creds = rest.split("::", 1)[1] if "::" in rest else rest
    return creds.split(":", 1)[1] if ":" in creds else creds


def full_token(server_ca_bundle: str, password: str) -> str:
    """K10<ca hash>::server:<password>; a configured K10 token keeps only its password part."""
    return f"K10{ca_hash(server_ca_bundle)}::server:{token_password(password)}"


def token_step_input(token: str) -> str:
    """Stdin of the token step (scripts/token.sh): the password in base64 on the first line
    (compared on the host with the cluster's own), then the drop-in's YAML."""
    password = base64.b64encode(token_password(token).encode()).decode()
    return password + "\n" + yaml.safe_dump({"token": token}, default_flow_style=False)
