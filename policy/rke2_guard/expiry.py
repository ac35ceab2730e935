"""Certificate lifetimes the stack owns (cluster.ca: generated): warn before they expire.

RKE2 never renews its CAs by itself and its leaves only at a start within 120 days of
expiry, so a cluster left off (or a CA nobody watched) expires silently. The policy sees
the stack's pulumi-tls certificates and their `validityEndTime` outputs; certificates RKE2
issues on the hosts are not in the stack and not checked here.
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
        if r.resource_type not in CERT_TYPES:
            continue
        end = _end_time(read(r.props, "validityEndTime"))
        if end is None:
            continue
        left = (end - now).days
        if left < days:
            is_ca = read(r.props, "isCaCertificate") is True
            fix = ("plan a CA rotation (README: Cluster identity); RKE2 never renews CAs"
                   if is_ca else "run `pulumi up`: certificates within their early-renewal window are reissued, "
                                 "or set cluster.certificateRotation for the servers' own certificates")
            state = f"expired {-left} days ago" if left < 0 else f"expires in {left} days"
            report(f"{r.name}: certificate {state} ({end.date().isoformat()}), inside the {days}-day "
                   f"warning window. Fix: {fix}.", r.urn)
