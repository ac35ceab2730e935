"""pytest fixtures for the host lab. Import them into a conftest.py:

    from tests.lab.fixtures import lab, module_lab, realparts_artifacts  # noqa: F401

Every fixture skips (with the reason) on a machine that cannot run the lab.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .netlab import Lab
from .standin import build_artifacts

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RKE2_VERSION = "v1.33.5+rke2r1"


@functools.lru_cache(maxsize=None)
def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here (None when it can)."""
    if sys.platform != "linux":
        return "the host lab needs Linux namespaces"
    if os.geteuid() != 0:
        return "the host lab needs root (network and mount namespaces)"
    for tool in ("ip", "unshare", "nsenter", "ssh", "ssh-keygen", "mount"):
        if shutil.which(tool) is None:
            return f"the host lab needs `{tool}` on PATH"
    if not os.path.exists("/usr/sbin/sshd"):
        return "the host lab needs Debian's openssh-server (/usr/sbin/sshd)"
    if not os.path.exists("/usr/lib/openssh/sftp-server"):
        return "the host lab needs /usr/lib/openssh/sftp-server (openssh-server)"
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            return "the host lab needs overlayfs in the kernel"
    try:
        import cryptography  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        return f"the host lab needs Python package {e.name}"
    probe = f"rk2lab-probe-{os.getpid()}"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if res.returncode != 0:
        return f"cannot create network namespaces here: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _skip_unless_available() -> None:
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)


def requires_lab():
    """Module mark: `pytestmark = requires_lab()` skips the module, with the reason, where
    the lab cannot run."""
    reason = lab_unavailable_reason()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def new_lab() -> Lab:
    """A Lab whose hosts see the real parts (when this process has built them)."""
    the_lab = Lab()
    # The real parts, when this process has them (realparts_artifacts), in every host.
    from .realparts.parts import PARTS_IN_HOST, ensured_parts_bin
    if ensured_parts_bin() is not None:
        the_lab.binds_ro = ((str(ensured_parts_bin()), PARTS_IN_HOST),)
    return the_lab


@pytest.fixture
def lab():
    """A fresh lab per test (torn down even when the test fails)."""
    _skip_unless_available()
    with new_lab() as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def module_lab():
    """One lab shared by a module's tests (each test adds its own hosts)."""
    _skip_unless_available()
    with new_lab() as the_lab:
        yield the_lab


def rke2_version() -> str:
    env = ROOT / "versions.env"
    if env.exists():
        for line in env.read_text().splitlines():
            if line.startswith("RKE2_VERSION="):
                return line.split("=", 1)[1].strip()
    return DEFAULT_RKE2_VERSION


@pytest.fixture(scope="session")
def realparts_artifacts(tmp_path_factory) -> Path:
    """RKE2's air-gap artifacts holding rke2-standin for the pinned version (versions.env
    RKE2_VERSION); its servers and agents run the lab's real etcd, kube-apiserver,
    controller-manager, scheduler, kwok and kubectl (built on first use; labs made after this
    fixture bind them into every host). Skips where they cannot be built."""
    _skip_unless_available()
    from .realparts.parts import ensure_parts, parts_unavailable_reason
    reason = parts_unavailable_reason()
    if reason:
        pytest.skip(reason)
    ensure_parts()
    return build_artifacts(tmp_path_factory.mktemp("rke2-artifacts"), rke2_version())


def install_rke2_standin(host, artifacts: Path, install_type: str = "server",
                         version: str | None = None) -> tuple[int, str, str]:
    """Install the stand-in on `host` the way an air-gapped RKE2 install is done (for lab
    self-tests; product tests let the product do this)."""
    host.copy_in(artifacts, "/root/rke2-artifacts")
    env = (f"INSTALL_RKE2_ARTIFACT_PATH=/root/rke2-artifacts INSTALL_RKE2_TYPE={install_type} "
           f"INSTALL_RKE2_VERSION={version or rke2_version()}")
    return host.ssh(f"{env} sh /root/rke2-artifacts/install.sh")
