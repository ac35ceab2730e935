"""The lab's RKE2 stand-in follows upstream rules, checked against tests/upstream_rules.py
(openssl-based, independent of both the stand-in and the product)."""

from __future__ import annotations

import hashlib
import re
import importlib.util
from pathlib import Path

import pytest

from tests.upstream_rules import openssl_ca, upstream_ca_hash

STANDIN = Path(__file__).resolve().parents[1] / "lab" / "standin" / "rke2_standin.py"


@pytest.fixture(scope="module")
def standin():
    spec = importlib.util.spec_from_file_location("rke2_standin_under_test", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_standin_hashes_a_chain_like_k3s_hash_ca(standin, tmp_path):
    # k3s-io/k3s pkg/clientaccess/token.go hashCA: a bundle hashes its root's DER.
    root = openssl_ca(tmp_path, "root")
    inter = openssl_ca(tmp_path, "inter", signer="root")
    server_ca = openssl_ca(tmp_path, "server-ca", signer="inter")
    bundle = server_ca + inter + root
    assert standin.hash_ca(bundle) == upstream_ca_hash(bundle)
    assert standin.hash_ca(bundle) != hashlib.sha256(bundle).hexdigest()


def test_standin_hashes_one_certificate_as_its_file(standin, tmp_path):
    single = openssl_ca(tmp_path, "only")
    assert standin.hash_ca(single) == upstream_ca_hash(single)


def test_units_keep_rke2s_service_settings():
    # rancher/rke2 v1.33.5+rke2r1 bundle/lib/systemd/system/rke2-{server,agent}.service: both
    # Type=notify (the agent too; k3s's agent unit is Type=exec, RKE2's is not), KillMode=process,
    # no start timeout, restarted 5 s after any exit, no StartLimit settings (systemd's
    # defaults apply: 5 starts in 10 s).
    from pathlib import Path
    files = Path(__file__).resolve().parents[1] / "lab/standin/files"
    for role, other in (("server", "agent"), ("agent", "server")):
        unit = (files / f"rke2-{role}.service").read_text().splitlines()
        for line in ("Type=notify", "KillMode=process", "Delegate=yes", "TimeoutStartSec=0",
                     "Restart=always", "RestartSec=5s", f"Conflicts=rke2-{other}.service",
                     f"ExecStart=/usr/local/bin/rke2 {role}",
                     "EnvironmentFile=-/usr/local/lib/systemd/system/%N.env"):
            assert line in unit, (role, line)
        assert not [ln for ln in unit if ln.startswith("StartLimit")], role


# rancher/dynamiclistener v0.6.2 factory/gen.go: `cnRegexp` decides which names are kept;
# `getAnnotationKey` keeps "listener.cattle.io/cn-<name>" when it is shorter than 64 characters
# and has no ':', else replaces ':' by '_', cuts to 56 characters and appends '-' and the
# first 6 hex digits of the sha256 of the whole unshortened key. Kubernetes refuses annotation
# names beyond 63 characters or with ':' (apimachinery validation IsQualifiedName), which is
# how the lab found the stand-in writing "listener.cattle.io/cn-::1".
QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@pytest.mark.parametrize("name", ["jjtestserver", "10.77.0.11", "::1", "fe80::1",
                                  "a-very-long-name-for-a-load-balancer.lab.internal.example"])
def test_supervisor_names_become_valid_annotation_keys_as_dynamiclistener_makes_them(standin, name):
    key = standin.cn_annotation(name)
    prefix, _, name_part = key.partition("/")
    assert prefix == "listener.cattle.io" and QUALIFIED_NAME.match(name_part), key
    full = f"listener.cattle.io/cn-{name}"
    if len(full) < 64 and ":" not in full:
        assert key == full
    else:
        digest = hashlib.sha256(full.encode()).hexdigest()[:6]
        assert key == full.replace(":", "_")[:56] + "-" + digest


def test_names_dynamiclistener_drops_are_dropped(standin):
    assert standin.VALID_CN.match("::1") and standin.VALID_CN.match("a.b")
    assert not standin.VALID_CN.match("-bad") and not standin.VALID_CN.match("bad.") \
        and not standin.VALID_CN.match("*.wild")
