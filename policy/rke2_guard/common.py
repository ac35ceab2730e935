"""Shared readers for the props the rke2-rancher components register, and the helm Releases.

Everything here tolerates the three shapes a value can take inside a policy:
- plain values (what the engine sends once secrets are unwrapped by pulumi_policy);
- secret wrappers (`pulumi_policy.secret.Secret`, or the raw wire form
  `{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": ...}`),
  which tests and the Remediate path can produce;
- unknown values during preview: pulumi_policy's proxies raise `UnknownValueError` on access
  and the raw form is a sentinel string. Readers return `UNKNOWN` instead of raising, and the
  checks skip what they cannot know yet (they run again, with known values, on `pulumi up`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError
from pulumi_policy.secret import Secret

SERVER = "rke2:index:RKE2Server"
AGENT = "rke2:index:RKE2Agent"
LOAD_BALANCER = "rke2:index:HALoadBalancer"
CERT_MANAGER = "rke2:index:CertManager"
RANCHER = "rke2:index:RancherRelease"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_TYPES = (SERVER, AGENT)

# Short labels for messages.
KIND = {SERVER: "RKE2Server", AGENT: "RKE2Agent", LOAD_BALANCER: "HALoadBalancer",
        CERT_MANAGER: "CertManager", RANCHER: "RancherRelease", HELM_RELEASE: "helm Release"}

# Copied from components/config.py (the pack must not import the program): one DNS-1123 label,
# and a subdomain made of them (lowercase letters, digits, '-', dots between labels, <= 253).
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")

_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# pulumi_policy.proxy's sentinels for values that are unknown during preview.
_UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
})


class _Unknown:
    """A value the engine does not know yet (preview)."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()


def unwrap(value: Any) -> Any:
    """The plain value behind secret wrappers; UNKNOWN for unknown sentinels."""
    while True:
        if isinstance(value, Secret):
            value = value.value
        elif isinstance(value, Mapping) and _is_wire_secret(value):
            value = _get(value, "value")
        else:
            break
    if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
        return UNKNOWN
    return value


def _is_wire_secret(value: Mapping) -> bool:
    try:
        return value.get(_SECRET_SIG_KEY) == _SECRET_SIG
    except UnknownValueError:
        return False


def _get(mapping: Mapping, key: str, default: Any = None) -> Any:
    try:
        return mapping[key]
    except KeyError:
        return default
    except UnknownValueError:
        return UNKNOWN


def read(props: Any, *path: str, default: Any = None) -> Any:
    """props[path[0]][path[1]]…, unwrapped; `default` when a key is missing, UNKNOWN when unknown."""
    current = unwrap(props)
    for key in path:
        if current is UNKNOWN:
            return UNKNOWN
        if not isinstance(current, Mapping):
            return default
        current = _get(current, key, _MISSING)
        if current is _MISSING:
            return default
        current = unwrap(current)
    return current


_MISSING = object()


def items(value: Any) -> list[Any] | Any:
    """A list prop as a plain list of unwrapped items (UNKNOWN items kept); UNKNOWN if the list is."""
    value = unwrap(value)
    if value is UNKNOWN:
        return UNKNOWN
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return []
    result = []
    for i in range(len(value)):
        try:
            result.append(unwrap(value[i]))
        except UnknownValueError:
            result.append(UNKNOWN)
    return result


def known(*values: Any) -> bool:
    return all(v is not UNKNOWN and v is not None for v in values)


def as_int(value: Any) -> int | None:
    """An integer prop (JSON numbers arrive as floats); None when absent, unknown or not integral."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


# ---------------------------------------------------------------------------
# Addresses and names
# ---------------------------------------------------------------------------


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def is_dns1123(value: str) -> bool:
    return len(value) <= 253 and DNS1123_SUBDOMAIN_RE.match(value) is not None


def san_key(value: str) -> str:
    """Comparison key of a SAN: IPs in canonical form, names lowercased."""
    if is_ip(value):
        return str(ipaddress.ip_address(value))
    return value.lower()


def url_host(url: Any) -> str | None:
    """Host part of https://host:port (IPv6 in brackets), or None."""
    if not isinstance(url, str):
        return None
    match = re.match(r"^[a-z][a-z0-9+.-]*://(\[[^\]]+\]|[^/:]+)(:\d+)?(/.*)?$", url, re.IGNORECASE)
    if not match:
        return None
    return match.group(1).strip("[]")


# ---------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------


def label(resource_type: str, name: str) -> str:
    """How messages name a resource: `RKE2Server 'jjtestserver'`."""
    return f"{KIND.get(resource_type, resource_type)} '{name}'"


def urn_type_chain(urn: str | None) -> list[str]:
    """Types of a URN's ancestors and itself: urn:pulumi:s::p::a$b::name -> [a, b]."""
    if not urn:
        return []
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def is_rancher_chart(props: Any, urn: str | None = None, parent_urn: str | None = None) -> bool:
    """Whether a helm Release installs the Rancher chart (by chart name or by its RancherRelease parent)."""
    chart = read(props, "chart")
    if isinstance(chart, str) and chart.rsplit("/", 1)[-1] == "rancher":
        return True
    return RANCHER in urn_type_chain(parent_urn) or RANCHER in urn_type_chain(urn)[:-1]


def parent_is(resource_type: str, urn: str | None, parent_urn: str | None) -> bool:
    chain = urn_type_chain(parent_urn) or urn_type_chain(urn)[:-1]
    return bool(chain) and chain[-1] == resource_type


# ---------------------------------------------------------------------------
# Policy config
# ---------------------------------------------------------------------------


def config(args: Any, key: str, default: Any) -> Any:
    """A policy config value (the engine fills schema defaults; direct calls may not)."""
    try:
        cfg = args.get_config() or {}
    except AttributeError:
        cfg = {}
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else default
    return default if value is None else value


def config_int(args: Any, key: str, default: int) -> int:
    value = as_int(config(args, key, default))
    return default if value is None else value


def config_strings(args: Any, key: str) -> list[str]:
    value = config(args, key, [])
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, Sequence) else []



def config_bool(args: Any, key: str, default: bool) -> bool:
    value = config(args, key, default)
    return value if isinstance(value, bool) else default


# ---------------------------------------------------------------------------
# Rancher installs in a stack (StackValidationPolicy helpers)
# ---------------------------------------------------------------------------


class RancherInstall:
    """A RancherRelease component and/or the helm Release of the Rancher chart under it."""

    def __init__(self, component: Any = None, helm: Any = None):
        self.component = component
        self.helm = helm

    @property
    def resource(self) -> Any:
        """What violations are reported against: the component when there is one."""
        return self.component or self.helm

    @property
    def label(self) -> str:
        r = self.resource
        return label(r.resource_type, r.name)

    def helm_values(self) -> Any:
        """The helm Release's values when the engine shows them (None before the provider is configured)."""
        if self.helm is None:
            return None
        values = read(self.helm.props, "values")
        return values if isinstance(values, Mapping) else None

    def value(self, *path: str, component_prop: str | None = None, chart_default: Any = None) -> tuple[Any, str]:
        """(value, where it came from): helm values first (what is installed), then the component's
        values, then its own prop; the chart's default when helm values are shown without the key."""
        values = self.helm_values()
        if values is not None:
            v = read(values, *path)
            if known(v):
                return v, "helm values." + ".".join(path)
            if v is None and chart_default is not None:
                return chart_default, "the chart default for " + ".".join(path)
        if self.component is not None:
            v = read(self.component.props, "values", *path)
            if known(v):
                return v, "values." + ".".join(path)
            if component_prop:
                v = read(self.component.props, component_prop)
                if known(v):
                    return v, component_prop
        return None, ""


def rancher_installs(resources: Sequence[Any]) -> list[RancherInstall]:
    installs: dict[str, RancherInstall] = {}
    for r in resources:
        if r.resource_type == RANCHER:
            installs[r.urn] = RancherInstall(component=r)
    for r in resources:
        if r.resource_type != HELM_RELEASE:
            continue
        parent = getattr(r, "parent", None)
        parent_urn = parent.urn if parent is not None else getattr(getattr(r, "opts", None), "parent", None)
        if not is_rancher_chart(r.props, r.urn, parent_urn):
            continue
        if parent_urn in installs and installs[parent_urn].helm is None:
            installs[parent_urn].helm = r
        else:
            installs[r.urn] = RancherInstall(helm=r)
    return list(installs.values())
