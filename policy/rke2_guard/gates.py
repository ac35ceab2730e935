"""The gates the field needs: HA shape, pinned versions, credentials, file modes, host keys,
and cert-manager under Rancher. One validator per check."""

from __future__ import annotations

import re
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs

from .common import (AGENT, CERT_MANAGER, HELM_RELEASE, LOAD_BALANCER, NODE_TYPES, SERVER, as_int,
                     config_bool, config_int, config_strings, is_rancher_chart, label, rancher_installs,
                     read, urn_type_chain)

RKE2_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+\+rke2r\d+$")
CHART_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
MODE_RE = re.compile(r"^0?[0-7]{3}$")

DEFAULT_MIN_PASSWORD_LENGTH = 12
# Passwords scanners try first, and the defaults seen in Rancher/RKE2 tutorials and charts.
KNOWN_DEFAULT_PASSWORDS = frozenset({
    "admin", "administrator", "password", "passw0rd", "password1", "password123", "rancher",
    "rancher123", "rancheradmin", "changeme", "change-me", "changeit", "default", "secret",
    "root", "toor", "letmein", "welcome", "welcome1", "123456", "12345678", "123456789",
    "1234567890", "qwerty", "admin123", "admin1234", "adminadmin", "defaultsecret12345",
})
# Rancher chart default for ingress.tls.source; sources that need cert-manager.
CHART_DEFAULT_TLS_SOURCE = "rancher"
TLS_SOURCES_NEEDING_CERT_MANAGER = ("rancher", "letsEncrypt")


def _first_server(props: Any) -> bool:
    """Cluster-wide facts are reported once, on servers[0] (or when the index is not told)."""
    return as_int(read(props, "index")) in (None, 0)


def validate_odd_server_count(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SERVER or not _first_server(args.props):
        return
    count = as_int(read(args.props, "serverCount"))
    if count is None or count < 2 or count % 2:
        return
    quorum = count // 2 + 1
    report(f"{label(SERVER, args.name)}: the cluster has {count} servers; etcd needs {quorum} of them "
           f"for quorum, so {count} servers survive no more failures than {count - 1} and a partition "
           f"can stop them all. Fix: run {count - 1} or {count + 1} servers (3 or 5 for HA).")


def validate_rke2_version_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in NODE_TYPES:
        return
    version = read(args.props, "version")
    if not isinstance(version, str) or RKE2_VERSION_RE.match(version):
        return
    report(f"{label(args.resource_type, args.name)}: RKE2 version {version!r} is not a pinned release "
           f"(a channel or partial version installs whatever is newest, so two runs differ and a new "
           f"minor can break Rancher's Kubernetes bound). Fix: set cluster.version to a release such as "
           f"'v1.33.5+rke2r1'.")


def validate_chart_version_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != HELM_RELEASE:
        return
    version = read(args.props, "version")
    if isinstance(version, str) and CHART_VERSION_RE.match(version):
        return
    if version is not None and not isinstance(version, str):
        return  # unknown during preview
    chart = read(args.props, "chart")
    if isinstance(chart, str) and (chart.endswith((".tgz", ".tar.gz")) or chart.startswith(("/", "./", "../"))):
        return  # a chart archive or directory is pinned by its content
    shown = repr(version) if version else "no version"
    report(f"{label(HELM_RELEASE, args.name)}: chart {chart!r} has {shown}, so Helm installs whatever "
           f"the repository serves as newest. Fix: pin an exact chart version (certManager.version "
           f"such as 'v1.16.5', rancher.version such as '2.12.3').")


def validate_bootstrap_password(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Reads values.bootstrapPassword of the Rancher chart. Policies receive secrets as plain
    values (the engine sends them with KeepSecrets and pulumi_policy unwraps them); messages
    never repeat the password."""
    if args.resource_type != HELM_RELEASE:
        return
    parent = getattr(args.opts, "parent", None) if args.opts is not None else None
    if not is_rancher_chart(args.props, args.urn, parent):
        return
    password = read(args.props, "values", "bootstrapPassword")
    if not isinstance(password, str):
        # Absent: the chart generates a random one. Unknown: checked again on `pulumi up`.
        return
    who = label(HELM_RELEASE, args.name)
    forbidden = KNOWN_DEFAULT_PASSWORDS | {p.lower() for p in config_strings(args, "forbiddenPasswords")}
    if password.strip().lower() in forbidden:
        report(f"{who}: Rancher's bootstrap password (values.bootstrapPassword, secret, not shown) is a "
               f"well-known default; it is the first admin login on {_rancher_url(args.props)}. "
               f"Fix: `pulumi config set --secret rancher.bootstrapPassword` to a long random value.")
    minimum = config_int(args, "minPasswordLength", DEFAULT_MIN_PASSWORD_LENGTH)
    if len(password) < minimum:
        report(f"{who}: Rancher's bootstrap password (values.bootstrapPassword, secret, not shown) has "
               f"{len(password)} characters, fewer than {minimum}. Fix: `pulumi config set --secret "
               f"rancher.bootstrapPassword` to at least {minimum} random characters.")


def _rancher_url(props: Any) -> str:
    hostname = read(props, "values", "hostname")
    return f"https://{hostname}" if isinstance(hostname, str) else "Rancher's URL"


def validate_token_secret(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SERVER or not _first_server(args.props):
        return
    if read(args.props, "tokenSource") != "plaintext":
        return
    report(f"{label(SERVER, args.name)}: the cluster join token (tokenSource 'plaintext') is stored "
           f"unencrypted in the stack config, so anyone who can read the repository can join nodes "
           f"to the cluster. Fix: `pulumi config set --secret token <value>`, or remove `token` and "
           f"let servers[0] generate it.")


def validate_kubeconfig_mode(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SERVER:
        return
    mode = read(args.props, "writeKubeconfigMode")
    if isinstance(mode, (int, float)) and not isinstance(mode, bool):
        mode = str(int(mode))  # a YAML 644 written without quotes
    if not isinstance(mode, str):
        return
    who = label(SERVER, args.name)
    if not MODE_RE.match(mode):
        report(f"{who}: writeKubeconfigMode {mode!r} is not an octal file mode. Fix: set "
               f"cluster.writeKubeconfigMode to \"0600\".")
        return
    if int(mode, 8) & ~0o600:
        report(f"{who}: writeKubeconfigMode {mode!r} is wider than 0600: other local users can read the "
               f"cluster-admin credentials in /etc/rancher/rke2/rke2.yaml. Fix: set "
               f"cluster.writeKubeconfigMode to \"0600\" (the default) and use the stack's `kubeconfig` "
               f"output instead.")


def validate_host_key_verified(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (SERVER, AGENT, LOAD_BALANCER):
        return
    address = read(args.props, "address")
    where = repr(address) if isinstance(address, str) else "this host"
    if read(args.props, "hostKeyVerified") is False:
        report(f"{label(args.resource_type, args.name)}: SSH to {where} does not verify the host key, so a "
               f"spoofed host would receive the join token and the cluster config. Fix: add its key under "
               f"ssh.hostKeys ({where}: 'ssh-ed25519 AAAA...', from `ssh-keyscan -t ed25519 <host>` checked "
               f"out of band).")
    # With ssh.bastion every step is dialed through the bastion (pulumi-command `proxy`), which
    # is authenticated only by its own pinned host key.
    if read(args.props, "bastionHostKeyVerified") is False:
        bastion = read(args.props, "bastion")
        jump = repr(bastion) if isinstance(bastion, str) else "the bastion"
        report(f"{label(args.resource_type, args.name)}: SSH to {where} goes through the bastion {jump}, "
               f"whose host key is not verified, so a spoofed bastion chooses where every step connects "
               f"(the hosts themselves too when their keys are not pinned) and sees which hosts are managed. "
               f"Fix: set ssh.bastion.hostKey ('ssh-ed25519 AAAA...', from `ssh-keyscan -t ed25519 "
               f"<bastion>` checked out of band).")


def _has_cert_manager(args: StackValidationArgs) -> bool:
    for r in args.resources:
        if r.resource_type == CERT_MANAGER:
            return True
        if r.resource_type == HELM_RELEASE:
            chart = read(r.props, "chart")
            if isinstance(chart, str) and chart.rsplit("/", 1)[-1] == "cert-manager":
                return True
            if CERT_MANAGER in urn_type_chain(r.urn)[:-1]:
                return True
    return False


def validate_cert_manager_for_rancher(args: StackValidationArgs, report: ReportViolation) -> None:
    if config_bool(args, "externalCertManager", False) or _has_cert_manager(args):
        return
    for install in rancher_installs(args.resources):
        source, where = install.value("ingress", "tls", "source", component_prop="tlsSource",
                                      chart_default=CHART_DEFAULT_TLS_SOURCE)
        if source not in TLS_SOURCES_NEEDING_CERT_MANAGER:
            continue
        report(f"{install.label}: Rancher's TLS source is {source!r} ({where}), which needs cert-manager, "
               f"but the stack installs none; the Rancher chart's Issuer/Certificate objects would fail "
               f"after the cluster is built. Fix: set certManager.enabled to true, or rancher.tlsSource "
               f"to 'secret', or set this policy's externalCertManager to true if cert-manager is "
               f"installed outside this stack.", install.resource.urn)
