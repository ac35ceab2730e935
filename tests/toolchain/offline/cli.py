"""Where the offline-plugin tests find the Pulumi CLI: the toolchain `make test` built."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def find_cli() -> str | None:
    """The pinned toolchain's `pulumi`, or None (the real-CLI tests then skip)."""
    bin_dir = os.environ.get("RKE2_RANCHER_TOOLCHAIN_BIN")
    state = ROOT / ".state" / "toolchain-bin"
    if not bin_dir and state.exists():
        bin_dir = state.read_text().strip()
    cli = Path(bin_dir or "/nonexistent") / "pulumi"
    return str(cli) if os.access(cli, os.X_OK) else None
