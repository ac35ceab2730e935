"""Loads the sample stack files as plain config for tests (no Pulumi engine needed)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "rke2-rancher"
# Stand-ins for the encrypted sample secrets: the mock tests look for these strings
# everywhere to prove secrets never leak in plaintext.
SAMPLE_SECRETS = {
    "rancher.bootstrapPassword": "sample-bootstrap-password-0123",
    "token": "sample-join-token-abcdef",
    "ssh.privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nsample-key\n-----END OPENSSH PRIVATE KEY-----\n",
}


def _replace_secure(node: Any, path: str, secret_top: set[str]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"secure"}:
            secret_top.add(f"{NAMESPACE}:{path.split('.')[0]}")
            return SAMPLE_SECRETS.get(path, f"sample-secret-{path}")
        return {k: _replace_secure(v, f"{path}.{k}" if path else k, secret_top) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_secure(v, path, secret_top) for v in node]
    return node


def load_stack(name: str) -> tuple[dict[str, Any], set[str]]:
    """(raw config without the namespace, secret top-level keys) of Pulumi.<name>.yaml."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())
    raw: dict[str, Any] = {}
    secret_top: set[str] = set()
    for key, value in doc["config"].items():
        ns, _, short = key.partition(":")
        if ns == NAMESPACE:
            raw[short] = _replace_secure(value, short, secret_top)
    # Tests never read the developer's own key file.
    raw["ssh"] = {**{k: v for k, v in raw.get("ssh", {}).items() if k != "privateKeyPath"},
                  "privateKey": SAMPLE_SECRETS["ssh.privateKey"]}
    secret_top.add(f"{NAMESPACE}:ssh")
    return raw, secret_top


def with_changes(raw: dict[str, Any], **dotted: Any) -> dict[str, Any]:
    """A deep copy of raw with `a__b=value` style changes (a.b), for one-change-per-test."""
    new = copy.deepcopy(raw)
    for key, value in dotted.items():
        parts = key.split("__")
        node = new
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if value is _DELETE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return new


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


_DELETE = DELETE = _Delete()
