"""Pins agree across files, and the compatibility rules hold."""

import re
from pathlib import Path

import pytest
import yaml

from components import versions

ROOT = Path(__file__).resolve().parent.parent.parent
PINS = versions.load_pins()


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_every_requirement_is_pinned():
    for path in (ROOT / "requirements.txt", ROOT / "policy" / "requirements.txt",
                 ROOT / "toolchain" / "offline" / "requirements.txt"):
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                assert "==" in line, f"{path.name}: {line!r} is not pinned with =="


@pytest.mark.parametrize("package, pin", [
    ("pulumi", "PULUMI_VERSION"),
    ("pulumi-command", "PULUMI_COMMAND_PROVIDER_VERSION"),
    ("pulumi-kubernetes", "PULUMI_KUBERNETES_PROVIDER_VERSION"),
    ("pulumi-tls", "PULUMI_TLS_PROVIDER_VERSION"),
])
def test_python_sdks_match_the_toolchain_pins(package, pin):
    assert requirement_pins(ROOT / "requirements.txt")[package] == PINS[pin]


def test_offline_plugins_use_the_same_pulumi_sdk():
    offline = requirement_pins(ROOT / "toolchain" / "offline" / "requirements.txt")
    assert offline["pulumi"] == PINS["PULUMI_VERSION"]


@pytest.mark.parametrize("stack", ["dev", "ha"])
def test_sample_stacks_use_the_pinned_versions(stack):
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert doc["rke2-rancher:cluster"]["version"] == PINS["RKE2_VERSION"]
    assert doc["rke2-rancher:certManager"]["version"] == PINS["CERT_MANAGER_VERSION"]
    assert doc["rke2-rancher:rancher"]["version"] == PINS["RANCHER_VERSION"]


def test_pinned_combination_is_supported():
    assert versions.check_rancher_supports(PINS["RANCHER_VERSION"], PINS["RKE2_VERSION"]) is None


@pytest.mark.parametrize("rancher, rke2, ok", [
    ("2.12.3", "v1.33.5+rke2r1", True),
    ("2.12.3", "v1.34.1+rke2r1", False),
    ("2.11.2", "v1.32.9+rke2r1", True),
    ("2.11.2", "v1.33.0+rke2r1", False),
    ("2.8.5", "v1.28.15+rke2r1", True),
    ("2.8.5", "v1.29.0+rke2r1", False),
    ("2.15.0", "v1.36.2+rke2r1", True),
    ("2.15.0", "v1.37.0+rke2r1", False),
])
def test_rancher_kube_bound(rancher, rke2, ok):
    problem = versions.check_rancher_supports(rancher, rke2)
    assert (problem is None) == ok, problem
    if not ok:
        assert rancher in problem and rke2 in problem


def test_unknown_rancher_minor_is_refused():
    assert "no Kubernetes bound" in versions.check_rancher_supports("2.99.0", "v1.33.5+rke2r1")


@pytest.mark.parametrize("version, values", [
    ("v1.14.7", {"installCRDs": True}),
    ("v1.15.0", {"crds": {"enabled": True, "keep": True}}),
    ("v1.16.5", {"crds": {"enabled": True, "keep": True}}),
])
def test_cert_manager_crd_values(version, values):
    assert versions.cert_manager_crd_values(version) == values


def test_bad_version_strings():
    with pytest.raises(ValueError):
        versions.Rke2Version.parse("latest")
    with pytest.raises(ValueError):
        versions.cert_manager_crd_values("1.16")
    with pytest.raises(ValueError):
        versions.rancher_minor("v2.12")
