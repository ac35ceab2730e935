"""place-ca.sh, rotate-certs.sh and the CA-mode preflight check in a scratch root."""

from __future__ import annotations

import shlex
import stat

from components import identity
from tests.scripts.sandbox import Sandbox

TLS = "/var/lib/rancher/rke2/server/tls"
FILES = {
    "server-ca.crt": ("0644", "-----BEGIN CERTIFICATE-----\nserver\n-----END CERTIFICATE-----\n"),
    "server-ca.key": ("0600", "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"),
    "etcd/peer-ca.crt": ("0644", "-----BEGIN CERTIFICATE-----\npeer\n-----END CERTIFICATE-----\n"),
    "etcd/peer-ca.key": ("0600", "-----BEGIN PRIVATE KEY-----\npeer\n-----END PRIVATE KEY-----\n"),
    "service.key": ("0600", "-----BEGIN PRIVATE KEY-----\nsvc\n-----END PRIVATE KEY-----\n"),
}


def mode(sandbox: Sandbox, path: str) -> int:
    return stat.S_IMODE(sandbox.path(path).stat().st_mode)


def test_place_ca_writes_the_set_with_modes_and_is_idempotent(sandbox: Sandbox):
    stdin = identity.encode_files(FILES)
    res = sandbox.run("place-ca.sh", stdin=stdin)
    assert res.returncode == 0 and res.stdout == "placed\n", res
    for path, (m, content) in FILES.items():
        assert sandbox.read(f"{TLS}/{path}") == content
        assert mode(sandbox, f"{TLS}/{path}") == int(m, 8), path
    before = sandbox.snapshot()
    res = sandbox.run("place-ca.sh", stdin=stdin)
    assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert sandbox.snapshot() == before


def test_place_ca_refuses_to_replace_a_different_ca(sandbox: Sandbox):
    assert sandbox.run("place-ca.sh", stdin=identity.encode_files(FILES)).returncode == 0
    other = {**FILES, "server-ca.key": ("0600", "another key\n")}
    res = sandbox.run("place-ca.sh", stdin=identity.encode_files(other))
    assert res.returncode != 0 and "server-ca.key differs" in res.stderr, res
    assert sandbox.read(f"{TLS}/server-ca.key") == FILES["server-ca.key"][1]


def test_place_ca_refuses_a_ca_that_rke2_created(sandbox: Sandbox):
    sandbox.write(f"{TLS}/server-ca.crt", "rke2's own CA\n", 0o644)
    res = sandbox.run("place-ca.sh", stdin=identity.encode_files(FILES))
    assert res.returncode != 0 and "created by RKE2" in res.stderr, res
    assert sandbox.read(f"{TLS}/server-ca.crt") == "rke2's own CA\n"


def test_preflight_refuses_switching_a_stack_owned_ca_to_rke2(sandbox: Sandbox):
    assert sandbox.run("place-ca.sh", stdin=identity.encode_files(FILES)).returncode == 0
    res = sandbox.run("preflight.sh", CA_MODE="rke2")
    assert res.returncode != 0 and "cluster.ca" in res.stderr and "orphan" in res.stderr, res
    assert sandbox.run("preflight.sh", CA_MODE="generated").returncode == 0


def _remote_script(command: str) -> str:
    """The script inside the remote command line `bash -c '<script>' rke2-rancher`."""
    argv = shlex.split(command)
    assert argv[-3] == "-c", argv[:3]
    return argv[-2]


def test_rotate_certs_update_only_rechecks(sandbox: Sandbox):
    # pulumi/pulumi-command v1.2.1 provider/pkg/provider/remote/commandController.go
    # (*Command).Update: an update runs `update` when it is set, else `create` again. A change
    # that is not a new rotation label (address, ssh user, timeout, a script edit) is an
    # update, so the rotate-certs step's update command must not stop the service or rotate.
    from tests.harness import evaluate
    from tests.stacks import load_stack, with_changes
    raw, secrets = load_stack("dev")
    ev = evaluate(with_changes(raw, cluster__certificateRotation="2026-11-22"), secrets)
    step = ev.by_name(next(n for n in ev.names() if n.endswith("-rotate-certs")))
    sandbox.install_rke2()
    sandbox.add_kubectl()
    sandbox.set_active("rke2-server")

    update = sandbox.exec(["bash", "-c", _remote_script(step.input("update")), "rke2-rancher"])
    assert update.returncode == 0, update
    assert update.stdout.strip() == "rotated 2026-11-22"
    assert not [c for c in sandbox.calls() if c.startswith(("systemctl stop", "rke2 certificate"))], sandbox.calls()

    create = sandbox.exec(["bash", "-c", _remote_script(step.input("create")), "rke2-rancher"])
    assert create.returncode == 0, create
    assert "systemctl stop rke2-server" in sandbox.calls()
    assert "rke2 certificate rotate" in sandbox.calls()
    assert create.stdout.strip() == update.stdout.strip()


TOKEN_DROP_IN = "/etc/rancher/rke2/config.yaml.d/50-rke2-rancher-token.yaml"


def _initialised(sandbox: Sandbox, stored_token: str) -> None:
    sandbox.write("/var/lib/rancher/rke2/server/token", stored_token + "\n", 0o600)
    sandbox.path("/var/lib/rancher/rke2/server/db/etcd").mkdir(parents=True)


def test_token_step_writes_the_drop_in_on_a_new_server(sandbox: Sandbox):
    res = sandbox.run("token.sh", stdin=identity.token_step_input("K10" + "a" * 64 + "::server:first-pw"))
    assert res.returncode == 0, res
    assert sandbox.read(TOKEN_DROP_IN) == f"token: K10{'a' * 64}::server:first-pw\n"


def test_token_step_accepts_a_new_ca_hash_with_the_same_password(sandbox: Sandbox):
    # k3s pkg/clientaccess/token.go parseToken: K10<hash>::<user>:<password>; the bootstrap
    # data is encrypted with the password only (k3s pkg/cluster/storage.go normalizeToken),
    # so a new CA-hash prefix (the hashCA fix changes it for existing stacks) is harmless.
    _initialised(sandbox, "K10" + "b" * 64 + "::server:same-pw")
    res = sandbox.run("token.sh", stdin=identity.token_step_input("K10" + "c" * 64 + "::server:same-pw"))
    assert res.returncode == 0, res
    res = sandbox.run("token.sh", stdin=identity.token_step_input("same-pw"))  # a bare password
    assert res.returncode == 0, res


def test_token_step_refuses_another_password_on_an_initialised_cluster(sandbox: Sandbox):
    # rke2-facts.md / k3s pkg/cluster/bootstrap.go: a server restarted with another token
    # fails "bootstrap data already found and encrypted with different token"; the supported
    # path is `rke2 token rotate`.
    _initialised(sandbox, "K10" + "b" * 64 + "::server:old-secret-pw")
    sandbox.write(TOKEN_DROP_IN, "token: K10" + "b" * 64 + "::server:old-secret-pw\n", 0o600)
    before = sandbox.read(TOKEN_DROP_IN)
    res = sandbox.run("token.sh", stdin=identity.token_step_input("K10" + "b" * 64 + "::server:new-secret-pw"))
    assert res.returncode != 0, res
    assert "rke2 token rotate" in res.stderr
    assert "old-secret-pw" not in str(res) and "new-secret-pw" not in str(res)
    assert sandbox.read(TOKEN_DROP_IN) == before
