"""Certificate lifetimes the stack owns (cluster.ca: generated): warn before they expire.

RKE2 never renews its CAs by itself and its leaves only at a start within 120 days of
expiry, so a cluster left off (or a CA nobody watched) expires silently. The policy sees
the stack's pulumi-tls certificates and their `validityEndTime` outputs (the stack's admin
kubeconfig certificate among them with cluster.ca: generated), and, with cluster.ca: rke2,
the `kubeconfigExpiry` of the rke2.yaml copy the first server's component holds. Other
certificates RKE2 issues on the hosts are not in the stack and not checked here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs

from .common import config_int, read

CERT_TYPES = ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert")
DEFAULT_WARNING_DAYS = 90


def _end_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None  # unknown during a first preview: nothing to judge yet
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def validate_certificate_expiry(args: StackValidationArgs, report: ReportViolation, now: datetime | None = None
                                ) -> None:
    days = config_int(args, "warningDays", DEFAULT_WARNING_DAYS)
    now = now or datetime.now(timezone.utc)
    for r in args.resources:
        if r.resource_type in CERT_TYPES:
            end = _end_time(read(r.props, "validityEndTime"))
            what = "certificate"
            if read(r.props, "isCaCertificate") is True:
                fix = "plan a CA rotation (README: Cluster identity); RKE2 never renews CAs"
            else:
                fix = ("run `pulumi up`: certificates within their early-renewal window are reissued, "
                       "or set cluster.certificateRotation for the servers' own certificates")
        elif r.resource_type == "rke2:index:RKE2Server":
            end = _end_time(read(r.props, "kubeconfigExpiry"))
            what = "kubeconfig client certificate (rke2.yaml)"
            fix = (f"restart rke2-server on {read(r.props, 'nodeName', default=r.name)} (RKE2 renews "
                   "rke2.yaml's certificate at a start within 120 days of its expiry), then `pulumi up "
                   f"--replace` the {r.name}-kubeconfig step (the stack re-reads it each quarter), or use "
                   "cluster.ca: generated, where `pulumi up` renews the stack's own admin certificate")
        else:
            continue
        if end is None:
            continue
        left = (end - now).days
        if left < days:
            state = f"expired {-left} days ago" if left < 0 else f"expires in {left} days"
            report(f"{r.name}: {what} {state} ({end.date().isoformat()}), inside the {days}-day "
                   f"warning window. Fix: {fix}.", r.urn)
