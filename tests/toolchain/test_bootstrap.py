"""toolchain/bootstrap.sh: the warm path, and that a failed build never looks complete."""

from __future__ import annotations

import os
import shutil
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


def test_an_edited_offline_plugin_is_synced_without_a_rebuild(tmp_path):
    # The offline plugins are Python files run in place: editing one must reach the cached
    # toolchain on the next run, and must not change the key of the Go builds.
    bin_dir = os.environ.get("RKE2_RANCHER_TOOLCHAIN_BIN")
    if not bin_dir or not (Path(bin_dir).parent / "offline").is_dir():
        pytest.skip("no toolchain with offline plugins built in this run")
    dest = Path(bin_dir).parent
    cached = tmp_path / "cache" / "rke2-rancher" / "toolchain" / dest.name
    cached.parent.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(dest), str(cached)], check=True)  # hard links: no 400 MB copy
    shutil.rmtree(cached / "offline")
    shutil.copytree(dest / "offline", cached / "offline")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "toolchain", repo / "toolchain", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "versions.env", repo / "versions.env")
    edited = repo / "toolchain" / "offline" / "command_provider.py"
    edited.write_text(edited.read_text() + "\n# edited by the bootstrap test\n")
    res = subprocess.run(["bash", str(repo / "toolchain" / "bootstrap.sh")], capture_output=True, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "up to date" in res.stderr and "offline plugin source updated: command_provider.py" in res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(cached / "bin")
    assert (cached / "offline" / "command_provider.py").read_text() == edited.read_text()
    assert (dest / "offline" / "command_provider.py").read_text() != edited.read_text()
