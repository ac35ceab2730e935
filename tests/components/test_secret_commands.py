"""No secret in any host step's command text, and the secret steps keep their output quiet.

pulumi-command v1.2.1 puts a failed step's whole command into its error text, secret or not
(remote/commandOutputs.go run: fmt.Errorf("%w: running %q:\\n%s", ...)), so secrets must
travel on stdin only; the scripts' failure paths are covered by tests/scripts/test_secret_steps.py.
"""

from __future__ import annotations

import pytest

from tests.harness import SECRET_SIG, evaluate, plaintext_outside_secrets
from tests.stacks import SAMPLE_SECRETS, load_stack, with_changes

COMMAND = "command:remote:Command"
SECRET_STEP_SUFFIXES = ("-kubeconfig", "-read-token", "-token", "-ca", "-etcd-s3")
ETCD_S3 = {"accessKey": "sample-etcd-s3-access-key-01", "secretKey": "sample-etcd-s3-secret-key-987"}


def _secret_strings(value, inside: bool = False):
    """Every string inside a secret-wrapped value."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            yield from _secret_strings(value.get("value"), True)
            return
        for v in value.values():
            yield from _secret_strings(v, inside)
    elif isinstance(value, list):
        for v in value:
            yield from _secret_strings(v, inside)
    elif inside and isinstance(value, str):
        yield value


def _secret_words(evaluation) -> set[str]:
    """Distinctive pieces of every secret input in the stack: whole words of 16+ characters
    (base64 keys, tokens, passwords); paths and PEM armour lines left out (public text)."""
    words = set()
    for reg in evaluation.registrations:
        for text in _secret_strings(reg.raw_inputs):
            words |= {w for w in text.split() if len(w) >= 16 and "/" not in w and "-----" not in w}
    # a word that also appears outside every secret (a host name in a connection) is public
    public = " ".join(plaintext_outside_secrets(r.raw_inputs) for r in evaluation.registrations
                      if r.type != COMMAND)
    return {w for w in words if w not in public} | set(SAMPLE_SECRETS.values()) | {"sample-private-"}


STACKS = {
    "dev": lambda: evaluate(*load_stack("dev")),
    "ha": lambda: evaluate(*load_stack("ha")),
    "ha-generated-token": lambda: (lambda raw, s: evaluate(with_changes(raw, token=None), s - {"rke2-rancher:token"}))(
        *load_stack("ha")),
    "ha-etcd-s3": lambda: (lambda raw, s: evaluate(with_changes(raw, cluster__etcdS3=ETCD_S3,
                                                                cluster__etcdSnapshots={"s3": {"bucket": "snapshots"}}),
                                                   s | {"rke2-rancher:cluster"}))(*load_stack("ha")),
}


@pytest.fixture(scope="module", params=sorted(STACKS))
def stack(request):
    return STACKS[request.param]()


def test_no_command_text_holds_a_secret(stack):
    words = _secret_words(stack)
    assert ETCD_S3["secretKey"] in words or not any(r.name.endswith("-etcd-s3") for r in stack.registrations)
    commands = [r for r in stack.registrations if r.type == COMMAND]
    assert commands
    for reg in commands:
        for key in ("create", "update", "delete"):
            raw = reg.raw_inputs.get(key)
            assert not (isinstance(raw, dict) and SECRET_SIG in raw), f"{reg.name}.{key} is a secret command"
            leaked = [w for w in words if isinstance(raw, str) and w in raw]
            assert not leaked, f"{reg.name}.{key} holds secret text {leaked}"


def test_steps_with_secret_data_log_nothing(stack):
    """The steps fed or printing tokens, keys and kubeconfigs run with logging none."""
    secret_steps = [r for r in stack.registrations if r.type == COMMAND and r.name.endswith(SECRET_STEP_SUFFIXES)]
    assert secret_steps
    for reg in secret_steps:
        assert reg.input("logging") == "none", reg.name
