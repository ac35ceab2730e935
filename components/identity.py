"""Pure helpers for the stack-owned cluster identity (see cluster_identity.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac

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
    """What RKE2 puts after K10: sha256 of server-ca.crt as served on /cacerts."""
    return hashlib.sha256(server_ca_bundle.encode()).hexdigest()


def derived_password(secret_pem: str) -> str:
    """A join password derived from a stack-owned secret key (stable, never stored apart)."""
    return hmac.new(secret_pem.encode(), b"rke2-rancher join token", hashlib.sha256).hexdigest()[:40]


def full_token(server_ca_bundle: str, password: str) -> str:
    """K10<ca hash>::server:<password>; a configured K10 token keeps only its password part."""
    if password.startswith("K10") and "::" in password:
        password = password.split("::", 1)[1].split(":", 1)[-1]
    return f"K10{ca_hash(server_ca_bundle)}::server:{password}"
