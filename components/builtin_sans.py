"""Names RKE2 puts in a server's certificates by itself, whatever `tls-san` says.

Pure module. The SAN-refresh step never treats these as stale: removing one of them from
`cluster.tlsSans` cannot remove it from the certificate, so trying would loop forever.
Read in k3s (shared/reference/rke2-facts.md, "More behaviour read in the sources"):
`pkg/cli/server/server.go` run() appends the advertise address, the first address of the
service CIDR, 127.0.0.1, ::1, localhost, the node name, every node IP and node-external-ip
to ControlConfig.SANs; `pkg/daemons/control/deps/deps.go` and `pkg/cluster/https.go` add
kubernetes, kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.<domain>.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .render import openssl_san_form

# RKE2's defaults when config.yaml does not set the key.
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def _values(cfg: dict[str, Any], key: str) -> list[str]:
    """A config.yaml value as a list: RKE2 flags accept a list or a comma-separated string."""
    raw = cfg.get(key)
    if raw is None:
        return []
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def service_ips(cfg: dict[str, Any]) -> list[str]:
    """The API service address of each service CIDR: its network address + 1."""
    result = []
    for cidr in _values(cfg, "service-cidr") or [DEFAULT_SERVICE_CIDR]:
        net = ipaddress.ip_network(cidr, strict=False)
        result.append(str(net.network_address + 1))
    return result


def builtin_sans(cfg: dict[str, Any]) -> list[str]:
    """The names RKE2 adds to the API serving certificate of the server whose config.yaml
    is `cfg` (as render.server_config returns it), in openssl's SAN spelling."""
    domain = (_values(cfg, "cluster-domain") or [DEFAULT_CLUSTER_DOMAIN])[0]
    names = ["127.0.0.1", "::1", "localhost",
             "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             f"kubernetes.default.svc.{domain}"]
    names += _values(cfg, "node-name")
    for key in ("node-ip", "node-external-ip", "advertise-address"):
        names += _values(cfg, key)
    names += service_ips(cfg)
    seen: set[str] = set()
    result = []
    for name in names:
        form = openssl_san_form(name)
        if form.lower() not in seen:
            seen.add(form.lower())
            result.append(form)
    return result
