"""Pure helpers for the stack's admin kubeconfig.

RKE2's own /etc/rancher/rke2/rke2.yaml carries a client certificate valid 365 days that the
host renews only at a start within 120 days of expiry, so a copy read once expires a year
later. With cluster.ca: generated the stack owns client-ca and issues its own admin
certificate with pulumi-tls (early renewal: any `pulumi up` inside the window reissues it);
with cluster.ca: rke2 the copy is re-read once per calendar quarter.
"""

from __future__ import annotations

import base64
import datetime as dt

import yaml
from cryptography import x509

# Kubernetes grants the system:masters group cluster-admin; the user name is RKE2's own.
ADMIN_USER = "system:admin"
ADMIN_GROUP = "system:masters"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def build(server_url: str, name: str, ca_pem: str, cert_pem: str, key_pem: str) -> str:
    """A kubeconfig for `server_url` with a client certificate, entries named `name`
    (the same layout as rewrite_kubeconfig gives RKE2's rke2.yaml)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server_url,
                                                 "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": name, "user": {"client-certificate-data": _b64(cert_pem),
                                           "client-key-data": _b64(key_pem)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


def client_cert_expiry(kubeconfig: str) -> str | None:
    """notAfter (RFC 3339, UTC) of the kubeconfig's client certificate, None without one."""
    doc = yaml.safe_load(kubeconfig) or {}
    for entry in doc.get("users") or []:
        data = (entry.get("user") or {}).get("client-certificate-data")
        if data:
            cert = x509.load_pem_x509_certificate(base64.b64decode(data))
            return cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def refresh_period(today: dt.date) -> str:
    """The calendar quarter: the trigger that re-reads rke2.yaml (cluster.ca: rke2) once per
    quarter, well inside RKE2's 120-day renewal window, and never twice in one."""
    return f"{today.year}-Q{(today.month - 1) // 3 + 1}"
