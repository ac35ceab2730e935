"""Runs the real Pulumi engine (CLI, language host, provider plugins) on a copy of the
project with a throwaway file backend. Preview never connects to any host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
PASSPHRASE = "rke2-rancher-sample"  # the documented sample passphrase (README)
# The CLI as the Makefile runs it: with a private TMPDIR removed afterwards, where the
# kubernetes provider's kubeconfig copy goes (toolchain/private-tmp.sh says why).
PRIVATE_TMP = ("bash", str(ROOT / "toolchain" / "private-tmp.sh"))
PULUMI = (*PRIVATE_TMP, "pulumi")


def toolchain_bin() -> Path:
    bin_dir = os.environ.get("RKE2_RANCHER_TOOLCHAIN_BIN")
    if not bin_dir:
        state = ROOT / ".state" / "toolchain-bin"
        bin_dir = state.read_text().strip() if state.exists() else ""
    if not bin_dir or not (Path(bin_dir) / "pulumi").exists():
        pytest.skip("the Pulumi toolchain is not built: run `make toolchain` (make test does)")
    return Path(bin_dir)


@dataclass
class Project:
    """A copy of the project in a temp dir whose stack files the test may change."""

    dir: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run([*PULUMI, *args], cwd=self.dir, env=self.env, text=True,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
        return proc

    def stack_config(self, stack: str) -> dict[str, Any]:
        return yaml.safe_load((self.dir / f"Pulumi.{stack}.yaml").read_text())

    def write_stack_config(self, stack: str, doc: dict[str, Any]) -> None:
        (self.dir / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def init(self, stack: str) -> None:
        if self.run("stack", "select", stack, check=False).returncode != 0:
            self.run("stack", "init", stack)

    def preview_json(self, stack: str, *extra: str, check: bool = True) -> tuple[dict, subprocess.CompletedProcess]:
        self.init(stack)
        proc = self.run("preview", "--json", "--stack", stack, "--non-interactive", *extra, check=check)
        return json.loads(proc.stdout or "{}"), proc


def make_project(tmp_path: Path) -> Project:
    bin_dir = toolchain_bin()
    work = tmp_path / "project"
    work.mkdir()
    for name in ("components", "__main__.py", ".venv", "policy", "versions.env"):
        (work / name).symlink_to(ROOT / name)
    for f in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(f, work / f.name)
    (tmp_path / "backend").mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}",
        "PULUMI_HOME": str(tmp_path / "pulumi-home"),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # The sample stacks name a key file the test machine may not have; preview only warns.
        "HOME": str(tmp_path / "home"),
    }
    return Project(dir=work, env=env)


def steps_by_name(preview: dict) -> dict[str, dict]:
    """{resource name: step} from `pulumi preview --json`."""
    out = {}
    for step in preview.get("steps", []):
        urn = step["urn"]
        if urn.endswith("pulumi:pulumi:Stack") or "::pulumi:pulumi:Stack::" in urn:
            continue
        out[urn.split("::")[-1]] = step
    return out


def step_type(step: dict) -> str:
    state = step.get("newState") or step.get("oldState") or {}
    return state.get("type", "")
