"""The offline command provider against behaviour read from pulumi-command v1.2.1 (issue 10).

Each test cites the upstream file and function it models; expectations are computed here, from
that reading (and from the OpenSSH client or the Go toolchain where they can show it), never
from toolchain/offline/command_provider.py. Upstream sources read (tag v1.2.1 unless noted):
  pulumi/pulumi-command provider/pkg/provider/remote/connection.go      SSHConfig, Dial, dialWithRetry
  pulumi/pulumi-command provider/pkg/provider/remote/connection_unix.go tryGetDefaultAgentSocket, dialAgent
  pulumi/pulumi-command provider/pkg/provider/remote/commandOutputs.go  (*CommandOutputs).run
  pulumi/pulumi sdk/go/common/util/retry/until.go (v3.224.0)           Until: 100 ms, x1.5, max 5 s
  golang/x/crypto ssh (v0.48.0) client.go Dial, FixedHostKey; handshake.go sendKexInit;
    common.go findCommon/AlgorithmNegotiationError; client_auth.go clientAuthenticate;
    session.go wait, Waitmsg.String
Real OpenSSH servers on loopback, as in test_command_provider.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from tests.pulumi_command_rules import failed_command_error, go_quote
from tests.toolchain.offline.test_command_provider import (  # noqa: F401  (fixtures)
    PROVIDER, SSHD, TYPE, Sshd, check, engine, free_port, keygen, provider, sshd, urn)
from tests.toolchain.offline.wire import from_struct, secret, to_struct

pytestmark = pytest.mark.skipif(not (os.path.exists(SSHD) and shutil.which("ssh-keygen")),
                                reason="needs OpenSSH server (/usr/sbin/sshd) and ssh-keygen")


def fail_create(stub, name: str, inputs: dict) -> str:
    """Runs a create that must fail; its error text."""
    checked, failures = check(stub, name, inputs)
    assert not failures
    with pytest.raises(grpc.RpcError) as e:
        stub.Create(provider_pb2.CreateRequest(urn=urn(name), name=name, type=TYPE, properties=to_struct(checked)))
    return e.value.details()


def ok_create(stub, name: str, inputs: dict) -> dict:
    checked, failures = check(stub, name, inputs)
    assert not failures
    resp = stub.Create(provider_pb2.CreateRequest(urn=urn(name), name=name, type=TYPE, properties=to_struct(checked)))
    return from_struct(resp.properties)


def dial_statuses(engine, name: str) -> list[str]:
    return [m for m in engine.messages(urn(name)) if m.startswith("Dial ")]


def upstream_retry_waits(limit: int) -> list[float]:
    """retry.Until: the waits between attempts: 100 ms, then x1.5, capped at 5 s."""
    waits, delay = [], 0.1
    for _ in range(limit):
        waits.append(min(delay, 5.0))
        delay = min(delay, 5.0) * 1.5
    return waits


@pytest.fixture(scope="module")
def root_only():
    if os.geteuid() != 0:
        pytest.skip("sshd for these tests runs as root (logs in as root)")


def _sshd(tmp_path_factory, name: str, **kw):
    server = Sshd(tmp_path_factory.mktemp(name), **kw)
    return server


@pytest.fixture(scope="module")
def sshd_rsa(root_only, tmp_path_factory):
    """OpenSSH with RSA, ECDSA and Ed25519 host keys and its default (>= 8.8: no ssh-rsa) algorithms."""
    server = _sshd(tmp_path_factory, "sshd-rsa", host_keys=("rsa", "ecdsa", "ed25519"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sshd_legacy(root_only, tmp_path_factory):
    """OpenSSH that signs with its RSA host key only as `ssh-rsa` (SHA-1), like OpenSSH < 8.8."""
    server = _sshd(tmp_path_factory, "sshd-legacy", host_keys=("rsa",), extra="HostKeyAlgorithms ssh-rsa\n")
    yield server
    server.stop()


def openssh_peer_host_key_algorithms(server: Sshd, offer: str) -> tuple[bool, list[str]]:
    """(whether the OpenSSH client offering only `offer` gets past key exchange, the host-key
    algorithms the server proposed), read from `ssh -vv`: the independent witness."""
    proc = subprocess.run(
        ["ssh", "-vv", "-F", "/dev/null", "-o", f"HostKeyAlgorithms={offer}", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
         "-i", str(server.root / "id_client"), "-p", str(server.port), "root@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    lines = proc.stderr.splitlines()
    peer_at = next(i for i, line in enumerate(lines) if "peer server KEXINIT proposal" in line)
    peer = next(line.split("host key algorithms: ", 1)[1] for line in lines[peer_at:]
                if "host key algorithms: " in line)
    return "no matching host key type found" not in proc.stderr, peer.split(",")


# ---------------------------------------------------------------------------------
# 1. Host-key algorithm: exactly the hostKey's type (connection.go SSHConfig:
#    HostKeyAlgorithms = []string{publicKey.Type()}; x/crypto handshake.go sendKexInit sends
#    it as is; common.go findCommon: "ssh: no common algorithm for host key; we offered: %v,
#    peer offered: %v"; client.go NewClientConn: "ssh: handshake failed: %w").
# ---------------------------------------------------------------------------------

def test_rsa_host_key_offers_only_ssh_rsa_which_openssh_refuses(provider, engine, sshd_rsa):
    ok, peer = openssh_peer_host_key_algorithms(sshd_rsa, "ssh-rsa")
    assert not ok, "this OpenSSH server still accepts ssh-rsa: the case cannot be shown here"
    assert "ssh-rsa" not in peer and "rsa-sha2-512" in peer
    name = "rsa-refused"
    msg = fail_create(provider, name, {"connection": sshd_rsa.connection(hostKey=sshd_rsa.host_pubs["rsa"],
                                                                         dialErrorLimit=1),
                                       "create": "echo should-not-run"})
    assert msg == ("after 1 failed attempts: ssh: handshake failed: ssh: no common algorithm for host key; "
                   f"we offered: [ssh-rsa], peer offered: [{' '.join(peer)}]")
    assert dial_statuses(engine, name) == ["Dial 1/1 failed: retrying"]


def test_rsa_host_key_works_with_a_server_that_signs_ssh_rsa(provider, sshd_legacy):
    ok, peer = openssh_peer_host_key_algorithms(sshd_legacy, "ssh-rsa")
    assert ok and peer == ["ssh-rsa"]
    out = ok_create(provider, "rsa-legacy", {"connection": sshd_legacy.connection(
        hostKey=sshd_legacy.host_pubs["rsa"], dialErrorLimit=0), "create": "echo legacy"})
    assert out["stdout"] == "legacy"
    # the key is still checked
    other = " ".join((sshd_legacy.root / "id_rsa_client.pub").read_text().split()[:2])
    msg = fail_create(provider, "rsa-legacy-bad", {"connection": sshd_legacy.connection(
        hostKey=other, dialErrorLimit=0), "create": "true"})
    assert msg == "after 0 failed attempts: ssh: handshake failed: ssh: host key mismatch"


@pytest.mark.parametrize("kind,algorithm", [("ed25519", "ssh-ed25519"), ("ecdsa", "ecdsa-sha2-nistp256")])
def test_ed25519_and_ecdsa_host_keys_offer_their_own_type(provider, sshd_rsa, sshd, kind, algorithm):
    out = ok_create(provider, f"hk-{kind}", {"connection": sshd_rsa.connection(
        hostKey=sshd_rsa.host_pubs[kind], dialErrorLimit=0), "create": f"echo {kind}"})
    assert out["stdout"] == kind
    if kind == "ecdsa":  # the Ed25519-only server has no ECDSA key: only the key's own type was offered
        _, peer = openssh_peer_host_key_algorithms(sshd, algorithm)
        msg = fail_create(provider, "hk-ecdsa-missing", {"connection": sshd.connection(
            hostKey=sshd_rsa.host_pubs["ecdsa"], dialErrorLimit=0), "create": "true"})
        assert msg == ("after 0 failed attempts: ssh: handshake failed: ssh: no common algorithm for host key; "
                       f"we offered: [{algorithm}], peer offered: [{' '.join(peer)}]")


# ---------------------------------------------------------------------------------
# 2. perDialTimeout bounds the TCP connect only (connection.go SSHConfig: ClientConfig.Timeout;
#    x/crypto client.go Dial: net.DialTimeout(network, addr, config.Timeout), then
#    NewClientConn without deadline); retries per dialWithRetry and retry.Until.
# ---------------------------------------------------------------------------------

def test_per_dial_timeout_bounds_the_tcp_connect(provider, engine):
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))  # the accept queue (backlog 0) is now full
    try:
        name = "tcp-timeout"
        start = time.monotonic()
        msg = fail_create(provider, name, {"connection": {"host": "127.0.0.1", "port": port, "dialErrorLimit": 1,
                                                          "perDialTimeout": 1},
                                           "create": "true"})
        elapsed = time.monotonic() - start
    finally:
        filler.close()
        lst.close()
    # net.OpError for a dial timeout: "dial tcp <addr>: i/o timeout"
    assert msg == f"after 1 failed attempts: dial tcp 127.0.0.1:{port}: i/o timeout"
    assert 2 * 1 + upstream_retry_waits(1)[0] <= elapsed < 4.5
    assert dial_statuses(engine, name) == ["Dial 1/1 failed: retrying"]


class SlowProxy:
    """Accepts, waits `delay` seconds without a byte, then relays to `target`."""

    def __init__(self, target: int, delay: float):
        self.target, self.delay = target, delay
        self.lst = socket.socket()
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(8)
        self.port = self.lst.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.lst.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self.lst.close()


def test_per_dial_timeout_does_not_bound_the_handshake(provider, sshd):
    proxy = SlowProxy(sshd.port, delay=2.5)
    try:
        start = time.monotonic()
        out = ok_create(provider, "slow-banner", {"connection": sshd.connection(
            port=proxy.port, perDialTimeout=1, dialErrorLimit=0), "create": "echo through"})
        assert out["stdout"] == "through" and time.monotonic() - start >= 2.5
    finally:
        proxy.close()


def test_retries_wait_like_retry_until_and_say_so(provider, engine):
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    port = lst.getsockname()[1]
    accepted: list[float] = []

    def serve() -> None:  # accept and hang up at once: the SSH version exchange reads EOF
        while True:
            try:
                c, _ = lst.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    name, limit = "backoff", 4
    try:
        msg = fail_create(provider, name, {"connection": {"host": "127.0.0.1", "port": port,
                                                          "dialErrorLimit": limit}, "create": "true"})
    finally:
        lst.close()
    assert msg == f"after {limit} failed attempts: ssh: handshake failed: EOF"
    assert len(accepted) == limit + 1
    gaps = [b - a for a, b in zip(accepted, accepted[1:])]
    for gap, wait in zip(gaps, upstream_retry_waits(limit)):
        assert wait <= gap < wait + 0.25, (gaps, upstream_retry_waits(limit))
    assert dial_statuses(engine, name) == [f"Dial {i}/{limit} failed: retrying" for i in range(1, limit + 1)]


def test_unlimited_dial_errors_say_inf(engine):
    """dialErrorLimit -1 retries forever, the status saying "inf" (own provider process, ended)."""
    p = ProviderProcess(engine.address, _env())
    name = "inf"
    try:
        inputs, _ = check(p.stub, name, {"connection": {"host": "127.0.0.1", "port": free_port(),
                                                        "dialErrorLimit": -1}, "create": "true"})
        call = p.stub.Create.future(provider_pb2.CreateRequest(urn=urn(name), name=name, type=TYPE,
                                                               properties=to_struct(inputs)))
        deadline = time.monotonic() + 10
        while len(dial_statuses(engine, name)) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not call.done()
        assert dial_statuses(engine, name)[:6] == [f"Dial {i}/inf failed: retrying" for i in range(1, 7)]
    finally:
        p.close()


# ---------------------------------------------------------------------------------
# 3. No keepalive: connection.go sets none and x/crypto's client sends none by itself.
# ---------------------------------------------------------------------------------

def _provider_module():
    spec = importlib.util.spec_from_file_location("offline_command_provider", PROVIDER)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(PROVIDER.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(PROVIDER.parent))
    return module


def test_no_ssh_keepalive(sshd, monkeypatch):
    cp = _provider_module()
    import paramiko
    calls: list = []
    monkeypatch.setattr(paramiko.Transport, "set_keepalive", lambda self, interval: calls.append(interval))
    conn = cp.Connection(sshd.connection(hostKey=sshd.host_pub))
    transport = cp.Dialer(conn, lambda m: None, threading.Event()).dial()
    try:
        assert transport.is_authenticated()
        assert calls == [] and transport.packetizer._Packetizer__keepalive_interval == 0
    finally:
        transport.close()


# ---------------------------------------------------------------------------------
# 4. The agent: connection.go SSHConfig dials AgentSocketPath, else a non-empty SSH_AUTH_SOCK
#    (connection_unix.go tryGetDefaultAgentSocket), with net.Dial("unix", path) before any
#    host is dialed, and returns its error as is: not retried, even with a private key.
# ---------------------------------------------------------------------------------

class ProviderProcess:
    def __init__(self, engine_address: str, env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, str(PROVIDER), engine_address], stdout=subprocess.PIPE,
                                     text=True, env=env)
        port = self.proc.stdout.readline().strip()
        assert port.isdigit()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, acceptResources=True))

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(5)


def _env(**over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(over)
    return env


def test_stale_ssh_auth_sock_fails_every_step(engine, sshd, tmp_path):
    gone = tmp_path / "gone.sock"
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # the file stays, nobody listens: what a dead agent leaves behind
    # Go's syscall.Errno texts for ENOENT and ECONNREFUSED
    for path, reason in ((gone, "no such file or directory"), (stale, "connection refused")):
        p = ProviderProcess(engine.address, _env(SSH_AUTH_SOCK=str(path)))
        try:
            name = f"agent-{path.stem}"
            start = time.monotonic()
            msg = fail_create(p.stub, name, {"connection": sshd.connection(hostKey=sshd.host_pub),
                                             "create": "echo should-not-run"})
            assert msg == f"dial unix {path}: connect: {reason}"
            assert time.monotonic() - start < 1.0 and dial_statuses(engine, name) == []
            # agentSocketPath takes precedence over the environment
            msg = fail_create(p.stub, name + "-explicit", {"connection": sshd.connection(
                agentSocketPath=str(gone)), "create": "true"})
            assert msg == f"dial unix {gone}: connect: no such file or directory"
        finally:
            p.close()


@pytest.mark.skipif(not shutil.which("ssh-agent") or not shutil.which("ssh-add"), reason="needs ssh-agent")
def test_live_agent_and_empty_ssh_auth_sock(engine, sshd, tmp_path):
    p = ProviderProcess(engine.address, _env(SSH_AUTH_SOCK=""))  # empty: no agent at all
    try:
        assert ok_create(p.stub, "agent-empty", {"connection": sshd.connection(), "create": "echo e"})["stdout"] == "e"
    finally:
        p.close()
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        p = ProviderProcess(engine.address, _env(SSH_AUTH_SOCK=str(sock)))
        try:
            # an empty agent does not hurt a private-key connection
            out = ok_create(p.stub, "agent-empty-keyed", {"connection": sshd.connection(), "create": "echo k"})
            assert out["stdout"] == "k"
            # the agent's key is used when no private key is given
            key = sshd.root / "id_client"
            subprocess.run(["ssh-add", str(key)], check=True, env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                           capture_output=True)
            conn = {k: v for k, v in sshd.connection().items() if k != "privateKey"}
            assert ok_create(p.stub, "agent-key", {"connection": conn, "create": "echo a"})["stdout"] == "a"
        finally:
            p.close()
    finally:
        agent.terminate()
        agent.wait(5)


# ---------------------------------------------------------------------------------
# 5. A host-key mismatch is retried like any dial error: x/crypto FixedHostKey returns
#    "ssh: host key mismatch" from the handshake, and dialWithRetry retries every error.
# ---------------------------------------------------------------------------------

def test_host_key_mismatch_is_retried(provider, engine, sshd, tmp_path):
    marker = tmp_path / "ran"
    name, limit = "hk-retry", 2
    start = time.monotonic()
    msg = fail_create(provider, name, {"connection": sshd.connection(hostKey=sshd.other_host_pub,
                                                                     dialErrorLimit=limit),
                                       "create": f"touch {marker}"})
    assert msg == f"after {limit} failed attempts: ssh: handshake failed: ssh: host key mismatch"
    assert time.monotonic() - start >= sum(upstream_retry_waits(limit))
    assert dial_statuses(engine, name) == [f"Dial {i}/{limit} failed: retrying" for i in range(1, limit + 1)]
    assert not marker.exists()


# ---------------------------------------------------------------------------------
# 6. A failed command: commandOutputs.go run returns
#    fmt.Errorf("%w: running %q:\n%s", err, cmd, stdouterrbuf.String()) whatever `logging`
#    is; err is x/crypto's *ExitError (session.go Waitmsg.String: "Process exited with status
#    %v", " from signal %v" with status 128+signal when only exit-signal came).
# ---------------------------------------------------------------------------------

def go_errorf(err: str, cmd: str, out: str, tmp_path: Path) -> str | None:
    """The upstream format string evaluated by Go itself, when a Go toolchain is here."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
    if go is None:
        return None
    src = tmp_path / "main.go"
    src.write_text('package main\n\nimport (\n\t"errors"\n\t"fmt"\n\t"os"\n)\n\nfunc main() {\n'
                   '\tfmt.Print(fmt.Errorf("%w: running %q:\\n%s", errors.New(os.Args[1]), os.Args[2], os.Args[3]))\n}\n')
    proc = subprocess.run([go, "run", str(src), err, cmd, out], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": ""})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


ODD_COMMAND = "printf 'out \\tone\\n'; sleep 0.2; echo \"err \\\"é\\\" \u00a0x\" >&2; sleep 0.2; echo last; exit 7 # \x1b"


def test_failed_command_error_carries_command_and_output(provider, sshd, tmp_path):
    expected_out = 'out \tone\nerr "é" \u00a0x\nlast\n'
    expected = failed_command_error(7, ODD_COMMAND, expected_out)
    by_go = go_errorf("Process exited with status 7", ODD_COMMAND, expected_out, tmp_path)
    if by_go is not None:
        assert by_go == expected  # our reading of %q agrees with Go's
    for logging in (None, "stdout", "stderr", "stdoutAndStderr", "none"):
        inputs = {"connection": sshd.connection(), "create": ODD_COMMAND}
        if logging:
            inputs["logging"] = logging
        assert fail_create(provider, f"fail-{logging}", inputs) == expected


def test_failed_secret_command_is_shown_whole(provider, sshd):
    """Nothing hides a secret command or output: the product must keep secrets out of both."""
    cmd = "echo TOKEN-abc123; exit 1"
    msg = fail_create(provider, "fail-secret", {"connection": sshd.connection(), "logging": "none",
                                                "create": secret(cmd), "stdin": secret("x")})
    assert msg == failed_command_error(1, cmd, "TOKEN-abc123\n")


def test_killed_command_reports_the_signal(provider, sshd):
    cmd = "echo before; kill -TERM $$"
    msg = fail_create(provider, "fail-signal", {"connection": sshd.connection(), "create": cmd})
    assert msg == f"Process exited with status {128 + 15} from signal TERM: running {go_quote(cmd)}:\nbefore\n"


def test_go_quote_reference_itself():
    """The test's own %q reading on plain cases (Go spec examples)."""
    assert go_quote('a"b\\c') == r'"a\"b\\c"'
    assert go_quote("\x00\x7f\n") == r'"\x00\x7f\n"'
    assert go_quote("\u2028\U000e0001") == r'"\u2028\U000e0001"'
    assert re.fullmatch(r'"[^"]*"', go_quote("plain text"))
