"""toolchain/private-tmp.sh: every pulumi run gets a private TMPDIR that is gone afterwards,
because the kubernetes provider leaves its kubeconfig (the admin's client key) in TMPDIR
(pulumi-kubernetes provider/pkg/provider/util.go writeKubeconfigToFile, called from
Configure in provider.go, never removed)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "toolchain" / "private-tmp.sh"


def run(tmp_path: Path, script: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "RKE2_RANCHER_TMP_BASE": str(tmp_path)}
    return subprocess.run(["bash", str(WRAPPER), "bash", "-c", script], env=env, text=True,
                          capture_output=True, timeout=30, **kw)


def test_the_command_gets_a_new_private_tmpdir_removed_after(tmp_path):
    # What the provider does: a file made with the default temp dir (Go's os.CreateTemp("", ...)
    # reads TMPDIR, as mktemp does).
    res = run(tmp_path, 'f=$(mktemp -t kubeconfigXXXX); echo "$TMPDIR $f"; stat -c %a "$TMPDIR"')
    assert res.returncode == 0, res.stderr
    tmpdir, made = res.stdout.split("\n")[0].split()
    assert Path(tmpdir).parent == tmp_path and Path(made).parent == Path(tmpdir)
    assert res.stdout.split("\n")[1] == "700"
    assert list(tmp_path.iterdir()) == []


def test_a_failure_keeps_its_status_and_still_cleans_up(tmp_path):
    res = run(tmp_path, 'touch "$TMPDIR/kubeconfig1"; exit 3')
    assert res.returncode == 3
    assert list(tmp_path.iterdir()) == []


def test_stdin_reaches_the_command(tmp_path):
    assert run(tmp_path, "cat", input="yes\n").stdout == "yes\n"


def test_a_term_to_the_wrapper_stops_the_command_and_cleans_up(tmp_path):
    env = {**os.environ, "RKE2_RANCHER_TMP_BASE": str(tmp_path)}
    proc = subprocess.Popen(["bash", str(WRAPPER), "bash", "-c", 'touch "$TMPDIR/kubeconfig1"; sleep 60'],
                            env=env)
    deadline = time.monotonic() + 10
    while not list(tmp_path.glob("*/kubeconfig1")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob("*/kubeconfig1")), "the command never ran"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) != 0
    assert list(tmp_path.iterdir()) == []
