"""certificate-expiry-window: one compliant fixture, one change per failing case."""

from datetime import datetime, timedelta, timezone

import pytest

from rke2_guard import expiry
from tests.policy.support import Res, Reporter, stack_args

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)
ROOT = "tls:index/selfSignedCert:SelfSignedCert"
LEAF = "tls:index/locallySignedCert:LocallySignedCert"


def certs(root_days=3650, leaf_days=365, root_end=None):
    end = lambda d: (NOW + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        Res(ROOT, "cluster-identity-root-ca", {"isCaCertificate": True, "validityEndTime": root_end or end(root_days)}),
        Res(LEAF, "cluster-identity-rancher-ingress", {"isCaCertificate": False, "validityEndTime": end(leaf_days)}),
        Res("rke2:index:RKE2Server", "jjtestserver", {"nodeName": "jjtestserver"}),
    ]


def check(resources, config=None) -> Reporter:
    report = Reporter()
    expiry.validate_certificate_expiry(stack_args(resources, config), report, now=NOW)
    return report


def test_compliant_stack_passes():
    assert check(certs()).calls == []


def test_ca_inside_the_window_is_reported_with_the_rotation_fix():
    msg = check(certs(root_days=30)).only()
    assert "cluster-identity-root-ca" in msg
    assert "expires in 29 days" in msg or "expires in 30 days" in msg
    assert "CA rotation" in msg


def test_leaf_inside_the_window_is_reported_with_the_up_fix():
    msg = check(certs(leaf_days=10)).only()
    assert "cluster-identity-rancher-ingress" in msg and "pulumi up" in msg


def test_expired_certificate_says_so():
    msg = check(certs(leaf_days=-3)).only()
    assert "expired 3 days ago" in msg


def test_window_comes_from_the_policy_config():
    assert check(certs(leaf_days=100)).calls == []
    assert len(check(certs(leaf_days=100), {"warningDays": 120}).calls) == 1


@pytest.mark.parametrize("value", [None, "not a time"])
def test_unknown_or_unparsable_end_times_are_skipped(value):
    resources = certs()
    resources[0].props["validityEndTime"] = value
    assert check(resources).calls == []


def test_rke2_kubeconfig_copy_inside_the_window_is_reported_with_the_restart_fix():
    # rke2-facts.md: rke2.yaml's client certificate lives 365 days; RKE2 renews it only at a
    # start within 120 days of expiry, so the fix is a restart, then a re-read.
    resources = certs()
    resources[2].props["kubeconfigExpiry"] = (NOW + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    msg = check(resources).only()
    assert "jjtestserver: kubeconfig client certificate" in msg and "expires in 20 days" in msg
    assert "restart rke2-server on jjtestserver" in msg and "jjtestserver-kubeconfig" in msg
    resources[2].props["kubeconfigExpiry"] = (NOW + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert check(resources).calls == []
