"""Version pins and the compatibility rules between them.

Pure module: no Pulumi imports, so tests and the policy pack's docs can use it.
The pins themselves live in ../versions.env (one visible place for every pin).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VERSIONS_FILE = Path(__file__).resolve().parent.parent / "versions.env"

RKE2_VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+rke2r(\d+)$")
CERT_MANAGER_VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
RANCHER_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")

# Rancher chart minor -> first Kubernetes minor the chart refuses (its kubeVersion
# upper bound, "<1.N"). From the rancher/rancher chart sources; see
# shared/reference/rke2-facts.md. A Rancher minor missing here is refused: we cannot
# vouch for a combination nobody checked.
RANCHER_KUBE_UPPER_BOUND: dict[tuple[int, int], tuple[int, int]] = {
    (2, 8): (1, 29),
    (2, 9): (1, 31),
    (2, 10): (1, 32),
    (2, 11): (1, 33),
    (2, 12): (1, 34),
    (2, 13): (1, 35),
    (2, 14): (1, 36),
    (2, 15): (1, 37),
}

# cert-manager renamed its CRD switch in v1.15 (installCRDs -> crds.enabled).
CERT_MANAGER_CRDS_VALUES_CHANGE = (1, 15)


def load_pins(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Reads versions.env (KEY=value lines, # comments) into a dict."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: line {line!r} is not KEY=value")
        pins[key.strip()] = value.strip()
    return pins


@dataclass(frozen=True)
class Rke2Version:
    major: int
    minor: int
    patch: int
    release: int

    @classmethod
    def parse(cls, text: str) -> "Rke2Version":
        m = RKE2_VERSION_RE.match(text)
        if not m:
            raise ValueError(f"{text!r} is not an RKE2 release like v1.33.5+rke2r1")
        return cls(*(int(g) for g in m.groups()))

    @property
    def kube_minor(self) -> tuple[int, int]:
        return (self.major, self.minor)


def rancher_minor(version: str) -> tuple[int, int]:
    m = RANCHER_VERSION_RE.match(version)
    if not m:
        raise ValueError(f"{version!r} is not a Rancher chart version like 2.12.3")
    return (int(m.group(1)), int(m.group(2)))


def check_rancher_supports(rancher_version: str, rke2_version: str) -> str | None:
    """Returns None when the Rancher chart accepts the RKE2 Kubernetes minor, else why not."""
    r_minor = rancher_minor(rancher_version)
    k_minor = Rke2Version.parse(rke2_version).kube_minor
    bound = RANCHER_KUBE_UPPER_BOUND.get(r_minor)
    if bound is None:
        known = ", ".join(f"{a}.{b}" for a, b in sorted(RANCHER_KUBE_UPPER_BOUND))
        return (
            f"Rancher {rancher_version}: no Kubernetes bound is recorded for Rancher "
            f"{r_minor[0]}.{r_minor[1]} (known: {known}); pick a listed minor or extend "
            f"RANCHER_KUBE_UPPER_BOUND in components/versions.py after checking its chart"
        )
    if k_minor >= bound:
        return (
            f"Rancher {rancher_version} requires Kubernetes < {bound[0]}.{bound[1]}, but RKE2 "
            f"{rke2_version} is Kubernetes {k_minor[0]}.{k_minor[1]}; pin an older RKE2 "
            f"(cluster.version) or a newer Rancher (rancher.version)"
        )
    return None


def cert_manager_crd_values(version: str) -> dict:
    """The chart values that make cert-manager install its CRDs, for this version."""
    m = CERT_MANAGER_VERSION_RE.match(version)
    if not m:
        raise ValueError(f"{version!r} is not a cert-manager version like v1.16.5")
    if (int(m.group(1)), int(m.group(2))) < CERT_MANAGER_CRDS_VALUES_CHANGE:
        return {"installCRDs": True}
    return {"crds": {"enabled": True, "keep": True}}
