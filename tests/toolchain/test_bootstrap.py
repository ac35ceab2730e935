"""toolchain/bootstrap.sh: the warm path, and that a failed build never looks complete."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "toolchain" / "bootstrap.sh"
PLUGINS = ["pulumi", "pulumi-language-python", "pulumi-resource-command", "pulumi-resource-kubernetes",
           "pulumi-resource-tls"]


def run(env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout)


def test_warm_run_prints_the_bin_dir_last():
    bin_dir = os.environ.get("RKE2_RANCHER_TOOLCHAIN_BIN")
    if not bin_dir:
        pytest.skip("no toolchain built in this run (make test builds it)")
    res = run({})
    assert res.returncode == 0, res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last == bin_dir
    for p in PLUGINS:
        assert os.access(Path(last) / p, os.X_OK), p
    assert "up to date" in res.stderr


def test_failed_build_leaves_no_complete_toolchain(tmp_path):
    pins = (ROOT / "versions.env").read_text().replace(
        "PULUMI_VERSION=", "PULUMI_VERSION=0.0.1-does-not-exist-", 1)
    versions = tmp_path / "versions.env"
    versions.write_text(pins)
    res = run({"TOOLCHAIN_VERSIONS_FILE": str(versions), "TOOLCHAIN_SOURCE": "go",
               "XDG_CACHE_HOME": str(tmp_path / "cache"), "GOFLAGS": ""}, timeout=300)
    assert res.returncode != 0
    assert "pulumi" in res.stderr and "FAILED" in res.stderr, res.stderr[-2000:]
    assert res.stdout.strip() == ""  # nothing that could be taken for a bin directory
    root = tmp_path / "cache" / "rke2-rancher" / "toolchain"
    complete = [p for p in root.glob("*/COMPLETE")] if root.exists() else []
    assert complete == []
    assert not any(p.name.startswith(".building") for p in root.iterdir()) if root.exists() else True
