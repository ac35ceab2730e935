"""Issue 2, part 1: every rendered host script parses (bash -n) and is shellcheck clean.

The scripts are checked as they run on the host: rendered by components.scripts.render
(header of quoted assignments + lib.sh + body), at shellcheck's strictest default
severity (style), with only these exclusions:
  - SC2209 everywhere: the render header assigns literal words that happen to be command
    names (`ACTION=wait`, `CHECK=haproxy`); shlex.quote leaves them bare and shellcheck
    mistakes them for a forgotten $(...). They are data, not commands.
  - SC2086 in haproxy.sh: `$PACKAGES` / `$missing` are space-separated package lists that
    must split into one argument per package.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components.scripts import render
from tests.scripts.sandbox import STUBS, VALUES, script_names

GLOBAL_EXCLUDES = ["SC2209"]
PER_SCRIPT_EXCLUDES = {"haproxy.sh": ["SC2086"]}


def test_every_script_has_representative_values():
    assert sorted(VALUES) == script_names()


@pytest.mark.parametrize("name", script_names())
def test_rendered_script_parses(name):
    proc = subprocess.run(["bash", "-n"], input=render(name, "rke2-server-1-step", **VALUES[name]),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
@pytest.mark.parametrize("name", script_names())
def test_rendered_script_is_shellcheck_clean(name):
    excludes = ",".join(GLOBAL_EXCLUDES + PER_SCRIPT_EXCLUDES.get(name, []))
    proc = subprocess.run(["shellcheck", "-s", "bash", "-S", "style", "-f", "gcc", "-e", excludes, "-"],
                          input=render(name, "rke2-server-1-step", **VALUES[name]),
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"shellcheck findings in rendered {name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_stubs_are_shellcheck_clean():
    """The test doubles are shell too; keep them honest (warnings and errors)."""
    bash = [str(p) for p in sorted((STUBS / "path").iterdir())] + [str(STUBS / "kubectl"), str(STUBS / "rke2-server-start")]
    for shell, files in (("bash", bash), ("sh", [str(STUBS / "get-rke2.sh")])):
        proc = subprocess.run(["shellcheck", "-s", shell, "-S", "warning", *files], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
