"""A deployed stack's state without deploying: `pulumi up` of the real program through the
real engine, with the command and kubernetes plugins behind tests/engine/record_provider.py
(every call but Create/Update/Delete reaches the real plugin; those three are recorded and
run nothing: no SSH connection, no Kubernetes API call). The TLS provider is the real one,
so the stack's CA and keys are real state too. A later `pulumi preview` with the plain
toolchain on PATH is then the real engine's plan of a change against that state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.engine.engine import Project, toolchain_bin

RECORDER = Path(__file__).resolve().parent / "record_provider.py"
RECORDED = ("command", "kubernetes")


def recorder_bin(dir: Path, mode: str, names=RECORDED) -> Path:
    """A directory whose pulumi-resource-<name> plugins start the proxy in `mode`."""
    real = toolchain_bin()
    dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        plugin = dir / f"pulumi-resource-{name}"
        plugin.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{RECORDER}" {mode} '
                          f'"{real / f"pulumi-resource-{name}"}" "$@"\n')
        plugin.chmod(0o755)
    return dir


def preview_env(project: Project, workdir: Path) -> dict[str, str]:
    """The environment for previews of a recorded stack: the real plugins, except that helm
    Release Check does not download the chart (record_provider.check_release: the chart
    repositories are unreachable from the test machine)."""
    env = dict(project.env)
    env["PATH"] = f"{recorder_bin(workdir / 'check-bin', 'check', ('kubernetes',))}:{env['PATH']}"
    return env


def deploy_recorded(project: Project, stack: str, workdir: Path) -> None:
    """`pulumi up` of `stack` as it is configured now, recorded (see the module doc)."""
    project.init(stack)
    key = Path(project.env["HOME"]) / ".ssh" / "id_ed25519"  # the sample stacks' privateKeyPath
    if not key.exists():  # a throwaway key: `up` reads it at config load (nothing dials)
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "plan-test", "-f", str(key)],
                       check=True)
    env = dict(project.env)
    env["PATH"] = f"{recorder_bin(workdir / 'recorder-bin', 'record')}:{env['PATH']}"
    saved, project.env = project.env, env
    try:
        project.run("up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack)
    finally:
        project.env = saved
