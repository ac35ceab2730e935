"""No secret reaches a step's error text on any failure path of the secret steps (issue 10).

pulumi-command puts the whole command and its combined stdout/stderr into a failed step's
error, even with `logging: none` (tests/pulumi_command_rules.py). The steps created with
secret_output=True (components/: servers' `-token` (token.sh) and `-ca` (place-ca.sh),
`-kubeconfig` and `-read-token` (read-file.sh), agents' `-token` (write-file.sh)) are run
here in the scratch root through each way they can fail, and the error text pulumi-command
would build from the very command the program sends is searched for every form of the
secret. Stubs in /stubs (first on PATH) stand in for failing reads and writes.
"""

from __future__ import annotations

import base64

import pytest
import yaml

from components import identity, render
from components.scripts import as_command
from components.scripts import render as render_script
from tests.pulumi_command_rules import failed_command_error
from tests.scripts.sandbox import VALUES, Result, Sandbox

KUBECONFIG_SECRET = "c2VjcmV0LWNsaWVudC1rZXktZGF0YS0wMTIz"
KUBECONFIG = f"""apiVersion: v1
kind: Config
users:
- name: default
  user:
    client-key-data: {KUBECONFIG_SECRET}
"""
TOKEN_PASSWORD = "p4ssw0rd-that-must-stay-secret"
TOKEN = "K10" + "ab" * 32 + "::server:" + TOKEN_PASSWORD
OLD_PASSWORD = "older-password-also-secret"
TLS = "/var/lib/rancher/rke2/server/tls"
CA_KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKEY-MATERIAL-SECRET\n-----END PRIVATE KEY-----\n"
CA_FILES = {
    "server-ca.crt": ("0644", "-----BEGIN CERTIFICATE-----\npublic\n-----END CERTIFICATE-----\n"),
    "server-ca.key": ("0600", CA_KEY),
}


def secret_forms(*secrets: str) -> list[str]:
    """Each secret, its base64, and each line of 8+ characters of a multi-line one."""
    forms = []
    for s in secrets:
        forms += [s, base64.b64encode(s.encode()).decode()]
        forms += [line for line in s.splitlines() if len(line) >= 8 and "-----" not in line]
    return forms


def run_step(sandbox: Sandbox, script: str, stdin: str = "", **values) -> tuple[Result, str]:
    """(result, the error text pulumi-command would show if it failed)."""
    values = {**VALUES[script], **values}
    command = as_command(render_script(script, "secret-step", **values), "root")
    res = sandbox.run(script, stdin=stdin, step="secret-step", **values)
    # The combined buffer holds both streams; their interleaving does not matter here.
    return res, failed_command_error(res.returncode, command, res.stdout + res.stderr)


# What each forced failure path says (so each case fails where it is meant to).
EXPECTED = {
    "missing": "is missing or empty", "empty": "is missing or empty", "directory": "cannot read",
    "read error midway": "cannot read", "parent is a file": "cannot create directory",
    "write error midway": "write error", "rename fails": "cannot move", "bad mode": "chmod",
    "another token on an initialised cluster": "rke2 token rotate", "no stdin": "no token on stdin",
    "stdin not base64": "not base64", "unreadable cluster token": "rke2 token rotate",
    "a CA made by RKE2": "created by RKE2", "another CA in place": "differs from the stack's CA",
    "bad path": "refusing path", "bad base64": "base64: invalid input",
}


def assert_failed_as(res: Result, case: str) -> None:
    assert res.returncode != 0 and EXPECTED[case] in res.stderr, (case, res)


def assert_no_secret(error: str, forms: list[str]) -> None:
    leaked = [f for f in forms if f in error]
    assert not leaked, f"secret forms in the error text: {leaked}\n{error[-2000:]}"


def stub(sandbox: Sandbox, name: str, body: str) -> None:
    sandbox.write(f"/stubs/{name}", "#!/bin/bash\n" + body, 0o755)


# -- read-file.sh (kubeconfig, generated token) -------------------------------------------

READ_FAILURES = {
    "missing": lambda sb: None,
    "empty": lambda sb: sb.write(render.KUBECONFIG_PATH, ""),
    "directory": lambda sb: sb.path(render.KUBECONFIG_PATH).mkdir(parents=True),
    # a read error after part of the file came through (an I/O error, a file cut short)
    "read error midway": lambda sb: (sb.write(render.KUBECONFIG_PATH, KUBECONFIG, 0o600), stub(
        sb, "cat", 'f=${@: -1}; head -c 80 "$f"; echo "cat: $f: Input/output error" >&2; exit 1\n')),
}


@pytest.mark.parametrize("case", sorted(READ_FAILURES))
def test_read_file_failures_never_show_the_content(sandbox: Sandbox, case: str):
    READ_FAILURES[case](sandbox)
    res, error = run_step(sandbox, "read-file.sh", SOURCE=render.KUBECONFIG_PATH)
    assert_failed_as(res, case)
    assert res.stdout == "", res
    assert_no_secret(error, secret_forms(KUBECONFIG, KUBECONFIG_SECRET))


@pytest.mark.parametrize("content", [KUBECONFIG, TOKEN + "\n", TOKEN, KUBECONFIG + "\n\n"])
def test_read_file_prints_the_file_exactly(sandbox: Sandbox, content: str):
    sandbox.write(render.TOKEN_PATH, content, 0o600)
    res, _ = run_step(sandbox, "read-file.sh", SOURCE=render.TOKEN_PATH)
    assert res.returncode == 0 and res.stdout == content, res


# -- write-file.sh (agents' token drop-in) ---------------------------------------------------

TOKEN_YAML = render.token_yaml(TOKEN)
DEST = render.TOKEN_CONFIG_PATH
WRITE_FAILURES = {
    "parent is a file": lambda sb: sb.write("/etc/rancher/rke2/config.yaml.d", "a file\n"),
    "write error midway": lambda sb: stub(sb, "cat", 'head -c 40; echo "cat: write error: No space left on device" >&2; exit 1\n'),
    "rename fails": lambda sb: stub(sb, "mv", 'echo "mv: cannot move: Read-only file system" >&2; exit 1\n'),
    "bad mode": None,
}


@pytest.mark.parametrize("case", sorted(WRITE_FAILURES))
def test_write_file_failures_never_show_the_content(sandbox: Sandbox, case: str):
    values = {"DEST": DEST, "MODE": "0600"}
    if case == "bad mode":
        values["MODE"] = "0999"
    else:
        WRITE_FAILURES[case](sandbox)
    res, error = run_step(sandbox, "write-file.sh", stdin=TOKEN_YAML, **values)
    assert_failed_as(res, case)
    assert_no_secret(error, secret_forms(TOKEN, TOKEN_PASSWORD, TOKEN_YAML))


def test_agent_token_yaml_holds_the_token():
    """The forms searched for above are the ones the agent's token step sends."""
    assert yaml.safe_load(TOKEN_YAML) == {"token": TOKEN}


# -- token.sh (servers' token drop-in) -------------------------------------------------------

def _initialised(sb: Sandbox, password: str = OLD_PASSWORD) -> None:
    sb.write("/var/lib/rancher/rke2/server/token", "K10" + "cd" * 32 + "::server:" + password + "\n", 0o600)
    sb.path("/var/lib/rancher/rke2/server/db/etcd").mkdir(parents=True)


TOKEN_FAILURES = {
    "no stdin": (lambda sb: None, ""),
    "another token on an initialised cluster": (_initialised, identity.token_step_input(TOKEN)),
    "stdin not base64": (_initialised, "!!not-base64!!\n" + identity.token_step_input(TOKEN).split("\n", 1)[1]),
    "parent is a file": (lambda sb: sb.write("/etc/rancher/rke2/config.yaml.d", "a file\n"),
                         identity.token_step_input(TOKEN)),
    "write error midway": (lambda sb: stub(sb, "cat", 'head -c 40; echo "cat: write error" >&2; exit 1\n'),
                           identity.token_step_input(TOKEN)),
    "unreadable cluster token": (lambda sb: (_initialised(sb), stub(
        sb, "tr", '/bin/cat; echo "tr: read error: Input/output error" >&2; exit 1\n')),
        identity.token_step_input(TOKEN)),
}


@pytest.mark.parametrize("case", sorted(TOKEN_FAILURES))
def test_token_step_failures_never_show_a_token(sandbox: Sandbox, case: str):
    prepare, stdin = TOKEN_FAILURES[case]
    prepare(sandbox)
    res, error = run_step(sandbox, "token.sh", stdin=stdin)
    assert_failed_as(res, case)
    assert_no_secret(error, secret_forms(TOKEN, TOKEN_PASSWORD, OLD_PASSWORD))


# -- place-ca.sh (CA keys) -------------------------------------------------------------------

def _other_key(sb: Sandbox) -> None:
    sb.write(f"{TLS}/.rke2-rancher-ca", "generated\n")
    sb.write(f"{TLS}/server-ca.key", "-----BEGIN PRIVATE KEY-----\nOTHER-KEY-ON-HOST-SECRET\n-----END PRIVATE KEY-----\n",
             0o600)


CA_FAILURES = {
    "a CA made by RKE2": (lambda sb: sb.write(f"{TLS}/server-ca.crt", "rke2's own\n"), identity.encode_files(CA_FILES)),
    "another CA in place": (_other_key, identity.encode_files(CA_FILES)),
    "bad path": (lambda sb: None, identity.encode_files({**CA_FILES, "../escape.key": ("0600", CA_KEY)})),
    "bad base64": (lambda sb: None, "server-ca.key 0600 " + CA_KEY.replace("\n", "!") + "\n"),
    "rename fails": (lambda sb: stub(sb, "mv", 'echo "mv: cannot move: Read-only file system" >&2; exit 1\n'),
                     identity.encode_files(CA_FILES)),
    "bad mode": (lambda sb: None, identity.encode_files({"server-ca.key": ("0999", CA_KEY)})),
}


@pytest.mark.parametrize("case", sorted(CA_FAILURES))
def test_place_ca_failures_never_show_a_key(sandbox: Sandbox, case: str):
    prepare, stdin = CA_FAILURES[case]
    prepare(sandbox)
    res, error = run_step(sandbox, "place-ca.sh", stdin=stdin)
    assert_failed_as(res, case)
    assert_no_secret(error, secret_forms(CA_KEY, "OTHER-KEY-ON-HOST-SECRET", "MC4CAQAwBQYDK2VwBCIEIKEY-MATERIAL-SECRET"))
