"""san-hygiene (structure, mandatory) and san-hygiene-volatile-ip (location-bound IPs, advisory).

Two policies because a policy has one enforcement level: the structure checks must always
block, the volatile-IP check warns by default and a `--policy-pack-config` file raises it to
mandatory (policy/examples/strict.json).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs

from .common import (HELM_RELEASE, RANCHER, SERVER, UNKNOWN, config_bool, config_strings, is_dns1123, is_ip,
                     is_rancher_chart, items, label, parent_is, read, san_key, url_host)


def _sans(props: Any, key: str) -> list[str]:
    values = items(read(props, key))
    return [] if values is UNKNOWN else [v for v in values if isinstance(v, str)]


def validate_required_sans(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """The names clients use to reach the API and supervisor are in tls-san."""
    if args.resource_type != SERVER:
        return
    props, who = args.props, label(SERVER, args.name)
    if read(props, "tlsSans") is None or items(read(props, "tlsSans")) is UNKNOWN:
        return  # not registered, or unknown during preview
    sans = _sans(props, "tlsSans")
    present = {san_key(s) for s in sans}
    required = [
        ("cluster hostname", read(props, "clusterHostname")),
        ("kubeconfig server host", url_host(read(props, "kubeconfigServer"))),
        ("registration address host", url_host(read(props, "registrationAddress"))),
        ("load balancer address", read(props, "loadBalancerAddress")),
        ("load balancer VIP", read(props, "loadBalancerVip")),
    ]
    reported: set[str] = set()
    for what, value in required:
        if not isinstance(value, str) or not value:
            continue
        key = san_key(value)
        if key in present or key in reported:
            continue
        reported.add(key)
        report(f"{who}: the {what} {value!r} is missing from tls-san {sans}; clients that reach the "
               f"cluster by it fail with 'x509: certificate is valid for ..., not {value}'. "
               f"Fix: add {value!r} to cluster.tlsSans.")


def validate_san_syntax(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Every SAN is a DNS-1123 name or an IP literal, never a wildcard, never listed twice."""
    if args.resource_type != SERVER:
        return
    who = label(SERVER, args.name)
    reported: set[str] = set()
    for key, where in (("tlsSans", "tls-san"), ("configuredTlsSans", "cluster.tlsSans")):
        seen: dict[str, str] = {}
        duplicated: set[str] = set()
        uppercase: list[str] = []
        for san in _sans(args.props, key):
            if san in reported:
                continue
            if "*" in san:
                reported.add(san)
                report(f"{who}: {where} entry {san!r} is a wildcard; the API server certificate would "
                       f"answer for every host under it. Fix: list each name explicitly in "
                       f"cluster.tlsSans.")
                continue
            if not is_ip(san) and not is_dns1123(san.lower()):
                reported.add(san)
                report(f"{who}: {where} entry {san!r} is neither a DNS-1123 name (lowercase letters, "
                       f"digits, '-' and '.') nor an IP literal. Fix: correct or remove it in "
                       f"cluster.tlsSans.")
                continue
            k = san_key(san)
            if k in seen:
                duplicated.add(k)
                report(f"{who}: {where} lists {seen[k]!r} and {san!r}, the same "
                       f"{'address' if is_ip(san) else 'name (case-insensitive)'} twice. "
                       f"Fix: keep one of them, in lowercase, in cluster.tlsSans.")
                continue
            seen[k] = san
            if not is_ip(san) and san != san.lower():
                uppercase.append(san)
        for san in uppercase:
            if san_key(san) not in duplicated and san not in reported:
                reported.add(san)
                report(f"{who}: {where} entry {san!r} has uppercase letters; DNS-1123 names are "
                       f"lowercase. Fix: write it as {san.lower()!r} in cluster.tlsSans.")


def validate_rancher_hostname(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Rancher's hostname is a DNS name: downstream clusters and its certificate are bound to it."""
    if args.resource_type == RANCHER:
        hostname = read(args.props, "hostname")
    elif args.resource_type == HELM_RELEASE:
        parent = getattr(args.opts, "parent", None) if args.opts is not None else None
        # The RancherRelease component reports for its own chart.
        if not is_rancher_chart(args.props, args.urn, parent) or parent_is(RANCHER, args.urn, parent):
            return
        hostname = read(args.props, "values", "hostname")
    else:
        return
    if not isinstance(hostname, str):
        return
    who = label(args.resource_type, args.name)
    if is_ip(hostname):
        report(f"{who}: Rancher's hostname {hostname!r} is an IP literal; Rancher's URL, its ingress "
               f"certificate and every downstream cluster's agent are bound to it, so a new address "
               f"breaks them all. Fix: set rancher.hostname to a DNS name (it defaults to "
               f"cluster.hostname).")
    elif not is_dns1123(hostname):
        report(f"{who}: Rancher's hostname {hostname!r} is not a DNS-1123 name (lowercase letters, "
               f"digits, '-' and '.', no wildcard). Fix: set rancher.hostname to a DNS name such as "
               f"rancher.example.internal.")


STRUCTURE_VALIDATORS = [validate_required_sans, validate_san_syntax, validate_rancher_hostname]


def allowed_networks(args: Any, report: ReportViolation, who: str) -> list[Any]:
    nets = []
    for entry in config_strings(args, "allowedIps"):
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            report(f"{who}: policy config allowedIps entry {entry!r} is not an IP address or CIDR and is "
                   f"ignored. Fix: use entries such as \"10.20.0.100\" or \"10.20.0.0/24\" in the "
                   f"--policy-pack-config file.")
    return nets


def validate_volatile_ips(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Non-loopback IP literals in tls-san bind the cluster's identity to a network location."""
    if args.resource_type != SERVER:
        return
    props, who = args.props, label(SERVER, args.name)
    nets = allowed_networks(args, report, who)
    vip = read(props, "loadBalancerVip")
    allow_vip = config_bool(args, "allowLoadBalancerVip", True)
    hostname = read(props, "clusterHostname")
    name_hint = f"its name ({hostname})" if isinstance(hostname, str) else "cluster.hostname"
    for san in _sans(props, "tlsSans"):
        if not is_ip(san):
            continue
        ip = ipaddress.ip_address(san)
        if ip.is_loopback:
            continue
        if allow_vip and isinstance(vip, str) and is_ip(vip) and san_key(vip) == san_key(san):
            continue
        if any(ip.version == net.version and ip in net for net in nets):
            continue
        report(f"{who}: tls-san {san} is an IP literal, so the server's certificate identity is bound to "
               f"where the host sits on the network; after a move (DHCP, another LAN) clients using it "
               f"get x509 errors or reach another host. Fix: reach the cluster by {name_hint} and remove "
               f"{san} from cluster.tlsSans, or, if the address is stable, allow it in this policy's "
               f"config: {{\"san-hygiene-volatile-ip\": {{\"allowedIps\": [\"{san}\"]}}}}.")
