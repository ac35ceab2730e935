"""Renders the host scripts in components/scripts/ into remote command text.

Pure module. Every value is assigned at the top of the script with shlex.quote, so
nothing from the stack config is ever pasted raw into shell; bulk data and secrets
travel on the command's stdin instead.
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
_VAR_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


def render(name: str, step: str, **values: str | int) -> str:
    """The full script: quoted assignments, the shared library, then the step's body."""
    lines = ["#!/bin/bash", f"# rke2-rancher: {name}", f"STEP={shlex.quote(step)}"]
    for key, value in values.items():
        if not _VAR_RE.match(key):
            raise ValueError(f"script variable {key!r} must be UPPER_SNAKE_CASE")
        lines.append(f"{key}={shlex.quote(str(value))}")
    return "\n".join(lines) + "\n" + _read("lib.sh") + _read(name)


def as_command(script: str, user: str) -> str:
    """The remote command line that runs `script` as root (sudo -n when the SSH user is not root)."""
    runner = "bash -c" if user == "root" else "sudo -n bash -c"
    return f"{runner} {shlex.quote(script)} rke2-rancher"
