"""Tests of the offline command provider (toolchain/offline/command_provider.py).

The provider runs as a subprocess (as the engine runs it) and is driven over gRPC; commands
run over SSH against a real OpenSSH server on loopback (own config, port and keys; logs in as
root). A fake engine records the Log calls. Skipped without /usr/sbin/sshd, ssh-keygen or root.
The last test runs a real `pulumi up` when the offline language host and the CLI exist.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2, provider_pb2_grpc

OFFLINE = Path(__file__).resolve().parents[3] / "toolchain" / "offline"
PROVIDER = OFFLINE / "command_provider.py"
from tests.toolchain.offline.cli import find_cli
from tests.toolchain.offline.wire import UNKNOWN, from_struct, is_secret, secret, to_struct

PULUMI_CLI = Path(find_cli() or "/nonexistent/pulumi")
LANGUAGE_HOST = OFFLINE / "language_host.py"
SSHD = "/usr/sbin/sshd"

TYPE = "command:remote:Command"
K = provider_pb2.PropertyDiff

pytestmark = pytest.mark.skipif(not (os.path.exists(SSHD) and shutil.which("ssh-keygen")),
                                reason="needs OpenSSH server (/usr/sbin/sshd) and ssh-keygen")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> tuple[str, str]:
    """(private key text, public key line without comment)."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    pub = " ".join(Path(f"{path}.pub").read_text().split()[:2])
    return path.read_text(), pub


# ---------------------------------------------------------------------------------
# Fixtures: sshd on loopback, fake engine, provider subprocess
# ---------------------------------------------------------------------------------

class Sshd:
    """sshd on loopback. host_keys: the host key types it has (the first is `host_pub`);
    extra: more sshd_config lines; log_level: sshd's LogLevel (its log is root/sshd.log)."""

    def __init__(self, root: Path, host_keys: tuple[str, ...] = ("ed25519",), extra: str = "",
                 log_level: str = "ERROR"):
        self.root = root
        self.port = free_port()
        self.client_key, self.client_pub = keygen(root / "id_client")
        self.host_pubs: dict[str, str] = {}
        for kind in host_keys:
            _, self.host_pubs[kind] = keygen(root / f"host_{kind}", kind=kind)
        self.host_key_file = root / f"host_{host_keys[0]}"
        self.host_pub = self.host_pubs[host_keys[0]]
        _, self.other_host_pub = keygen(root / "other_host_ed25519")
        self.enc_key, enc_pub = keygen(root / "id_encrypted", passphrase="s3cret-pass")
        self.rsa_key, rsa_pub = keygen(root / "id_rsa_client", kind="rsa")
        (root / "authorized_keys").write_text("\n".join([self.client_pub, enc_pub, rsa_pub]) + "\n")
        self.config = root / "sshd_config"
        self.config.write_text(textwrap.dedent(f"""\
            Port {self.port}
            ListenAddress 127.0.0.1
            AuthorizedKeysFile {root}/authorized_keys
            StrictModes no
            PidFile {root}/sshd.pid
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            AcceptEnv ALLOWED_* PULUMI_COMMAND_STDOUT
            LogLevel {log_level}
            """) + "".join(f"HostKey {root}/host_{kind}\n" for kind in host_keys) + extra)
        os.makedirs("/run/sshd", exist_ok=True)
        self.log = open(root / "sshd.log", "wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()}")

    def connection(self, **extra) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "user": "root", "privateKey": self.client_key, **extra}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class FakeEngine(engine_pb2_grpc.EngineServicer):
    def __init__(self):
        self.logs: list[engine_pb2.LogRequest] = []

    def Log(self, request, context):
        self.logs.append(request)
        return empty_pb2.Empty()

    def messages(self, urn: str | None = None) -> list[str]:
        return [r.message for r in self.logs if urn is None or r.urn == urn]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("sshd for these tests runs as root (logs in as root)")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def engine():
    fake = FakeEngine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    engine_pb2_grpc.add_EngineServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    fake.address = f"127.0.0.1:{port}"
    yield fake
    server.stop(0)


@pytest.fixture(scope="module")
def provider(engine, tmp_path_factory):
    wrapper = tmp_path_factory.mktemp("bin") / "pulumi-resource-command"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {PROVIDER} \"$@\"\n")
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    proc = subprocess.Popen([str(wrapper), "--logtostderr", engine.address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    port = proc.stdout.readline().strip()
    assert port.isdigit(), proc.stderr.read()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = provider_pb2_grpc.ResourceProviderStub(channel)
    stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, acceptResources=True))
    yield stub
    channel.close()
    proc.terminate()
    proc.wait(5)


def urn(name: str) -> str:
    return f"urn:pulumi:test::proj::{TYPE}::{name}"


def check(stub, name: str, news: dict, olds: dict | None = None):
    resp = stub.Check(provider_pb2.CheckRequest(urn=urn(name), name=name, type=TYPE,
                                                olds=to_struct(olds or {}), news=to_struct(news)))
    return from_struct(resp.inputs), [(f.property, f.reason) for f in resp.failures]


def create(stub, name: str, inputs: dict, preview: bool = False):
    checked, failures = check(stub, name, inputs)
    assert not failures
    resp = stub.Create(provider_pb2.CreateRequest(urn=urn(name), name=name, type=TYPE,
                                                  properties=to_struct(checked), preview=preview))
    return resp.id, from_struct(resp.properties)


def update(stub, name: str, rid: str, olds: dict, news: dict, preview: bool = False):
    checked, failures = check(stub, name, news, olds)
    assert not failures
    resp = stub.Update(provider_pb2.UpdateRequest(urn=urn(name), name=name, type=TYPE, id=rid,
                                                  olds=to_struct(olds), news=to_struct(checked),
                                                  preview=preview))
    return from_struct(resp.properties)


def delete(stub, name: str, rid: str, state: dict):
    stub.Delete(provider_pb2.DeleteRequest(urn=urn(name), name=name, type=TYPE, id=rid,
                                           properties=to_struct(state)))


def diff(stub, name: str, olds: dict, news: dict):
    checked, _ = check(stub, name, news, olds)
    return stub.Diff(provider_pb2.DiffRequest(urn=urn(name), name=name, type=TYPE, id="x",
                                              olds=to_struct(olds), news=to_struct(checked)))


# ---------------------------------------------------------------------------------
# Plugin basics
# ---------------------------------------------------------------------------------

def test_plugin_info_handshake_configure_schema(provider, engine):
    assert provider.GetPluginInfo(empty_pb2.Empty()).version == "1.2.1"
    hs = provider.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address=engine.address))
    assert hs.accept_secrets
    conf = provider.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True))
    assert conf.acceptSecrets and conf.supportsPreview
    schema = json.loads(provider.GetSchema(provider_pb2.GetSchemaRequest()).schema)
    assert schema["name"] == "command" and schema["version"] == "1.2.1"
    res = schema["resources"][TYPE]
    assert res["inputProperties"]["triggers"]["replaceOnChanges"] is True
    assert {"stdout", "stderr", "connection"} <= set(res["properties"])
    assert "hostKey" in schema["types"]["command:remote:Connection"]["properties"]
    cfg = provider.CheckConfig(provider_pb2.CheckRequest(urn="urn:pulumi:test::proj::pulumi:providers:command::default",
                                                         news=to_struct({"version": "1.2.1"})))
    assert from_struct(cfg.inputs) == {"version": "1.2.1"}
    dc = provider.DiffConfig(provider_pb2.DiffRequest(olds=to_struct({}), news=to_struct({})))
    assert dc.changes == provider_pb2.DiffResponse.DIFF_NONE


def test_check_applies_defaults_and_marks_connection_secret(provider, sshd):
    inputs, failures = check(provider, "defaults", {"connection": {"host": "10.0.0.1"}, "create": "true"})
    assert failures == []
    assert is_secret(inputs["connection"])
    assert inputs["connection"]["value"] == {"host": "10.0.0.1", "port": 22, "user": "root",
                                             "dialErrorLimit": 10, "perDialTimeout": 15}
    assert inputs["addPreviousOutputInEnv"] is True
    # an explicit value is kept, and a secret connection stays secret (defaults applied inside)
    inputs, _ = check(provider, "d2", {"connection": secret({"host": "h", "port": 2222, "privateKey": "k"}),
                                       "addPreviousOutputInEnv": False})
    assert inputs["addPreviousOutputInEnv"] is False
    assert inputs["connection"]["value"]["port"] == 2222 and inputs["connection"]["value"]["user"] == "root"


def test_check_failures(provider):
    _, failures = check(provider, "bad", {"create": "x"})
    assert [p for p, _ in failures] == ["connection"]
    _, failures = check(provider, "bad2", {"connection": {"port": 22, "privateKey": "TOPSECRETKEY",
                                                          "extraField": "x"}, "logging": "loud"})
    props = {p for p, _ in failures}
    assert {"connection.host", "connection.extraField", "logging"} <= props
    assert not any("TOPSECRETKEY" in r for _, r in failures), "values must not leak into failures"


def test_unsupported_type_is_refused(provider):
    with pytest.raises(grpc.RpcError) as e:
        provider.Check(provider_pb2.CheckRequest(urn="urn:pulumi:t::p::command:local:Command::x",
                                                 type="command:local:Command", news=to_struct({})))
    assert "not supported" in e.value.details()


# ---------------------------------------------------------------------------------
# Create / update / delete over SSH
# ---------------------------------------------------------------------------------

def test_create_runs_and_cuts_one_trailing_newline(provider, sshd, tmp_path):
    marker = tmp_path / "created"
    rid, out = create(provider, "c1", {
        "connection": sshd.connection(),
        "create": f"echo created > {marker}; printf 'out\\n\\n'; printf 'err\\n' >&2",
        "delete": f"rm -f {marker}",
    })
    assert rid.startswith("c1") and len(rid) > 2
    assert marker.read_text() == "created\n"
    assert out["stdout"] == "out\n" and out["stderr"] == "err"
    assert out["create"].startswith("echo created")
    assert is_secret(out["connection"]) and out["addPreviousOutputInEnv"] is True


def test_create_without_command_does_not_connect(provider):
    rid, out = create(provider, "noop", {"connection": {"host": "192.0.2.1", "dialErrorLimit": 0}})
    assert rid and out["stdout"] == "" and out["stderr"] == ""


def test_stdin_reaches_the_command(provider, sshd):
    _, out = create(provider, "stdin", {"connection": sshd.connection(), "create": "cat",
                                        "stdin": "line one\nline two\n"})
    assert out["stdout"] == "line one\nline two"
    big = "x" * 2_000_000 + "\n"
    _, out = create(provider, "bigstdin", {"connection": sshd.connection(), "create": "tee /dev/stderr | wc -c",
                                           "stdin": big, "logging": "none"})
    assert out["stdout"].strip() == str(len(big))
    assert len(out["stderr"]) == len(big) - 1
    # no stdin: the command reads EOF instead of hanging
    _, out = create(provider, "nostdin", {"connection": sshd.connection(), "create": "cat; echo done"})
    assert out["stdout"] == "done"


def test_update_runs_update_else_create(provider, sshd, tmp_path):
    log = tmp_path / "steps"
    inputs = {"connection": sshd.connection(), "create": f"echo create >> {log}; echo c",
              "update": f"echo update >> {log}; echo u", "addPreviousOutputInEnv": False}
    rid, state = create(provider, "u1", inputs)
    state2 = update(provider, "u1", rid, state, {**inputs, "triggers": ["b"]})
    assert state2["stdout"] == "u"
    no_update = {k: v for k, v in inputs.items() if k != "update"}
    state3 = update(provider, "u1", rid, state2, no_update)
    assert state3["stdout"] == "c"
    assert log.read_text().split() == ["create", "update", "create"]
    # neither update nor create: nothing runs, previous output kept
    state4 = update(provider, "u1", rid, state3, {"connection": sshd.connection()})
    assert state4["stdout"] == "c"


def test_delete_runs_with_old_connection(provider, sshd, tmp_path):
    marker = tmp_path / "exists"
    rid, state = create(provider, "d1", {"connection": sshd.connection(), "create": f"touch {marker}",
                                         "delete": f"rm {marker}; echo deleted"})
    assert marker.exists()
    delete(provider, "d1", rid, state)
    assert not marker.exists()
    # no delete command: nothing happens, not even a connection attempt
    delete(provider, "d2", "d2x", {"connection": secret({"host": "192.0.2.1", "port": 22}), "create": "x"})


def test_nonzero_exit_fails_with_status_and_output(provider, sshd):
    inputs, _ = check(provider, "fail", {"connection": sshd.connection(),
                                         "create": "echo to-stdout; echo to-stderr >&2; exit 3"})
    with pytest.raises(grpc.RpcError) as e:
        provider.Create(provider_pb2.CreateRequest(urn=urn("fail"), type=TYPE, properties=to_struct(inputs)))
    msg = e.value.details()
    assert "Process exited with status 3" in msg
    assert "to-stdout" in msg and "to-stderr" in msg
    assert "exit 3" in msg  # the command, as the real provider shows it


def test_host_key_is_verified(provider, sshd):
    """A wrong key or a key type the server lacks fails the dial (see
    test_command_provider_upstream.py for the upstream references and the retries)."""
    _, out = create(provider, "hk-ok", {"connection": sshd.connection(hostKey=sshd.host_pub + " comment"),
                                        "create": "echo ok"})
    assert out["stdout"] == "ok"
    inputs, _ = check(provider, "hk-bad", {"connection": sshd.connection(hostKey=sshd.other_host_pub,
                                                                         dialErrorLimit=0),
                                           "create": "echo should-not-run"})
    with pytest.raises(grpc.RpcError) as e:
        provider.Create(provider_pb2.CreateRequest(urn=urn("hk-bad"), type=TYPE, properties=to_struct(inputs)))
    assert e.value.details() == "after 0 failed attempts: ssh: handshake failed: ssh: host key mismatch"
    # a key type the server does not have is refused as well
    inputs, _ = check(provider, "hk-type", {"connection": sshd.connection(
        hostKey=" ".join((sshd.root / "id_rsa_client.pub").read_text().split()[:2]), dialErrorLimit=0),
        "create": "true"})
    with pytest.raises(grpc.RpcError) as e:
        provider.Create(provider_pb2.CreateRequest(urn=urn("hk-type"), type=TYPE, properties=to_struct(inputs)))
    assert e.value.details() == ("after 0 failed attempts: ssh: handshake failed: ssh: no common algorithm for "
                                 "host key; we offered: [ssh-rsa], peer offered: [ssh-ed25519]")


def test_dial_gives_up_naming_the_endpoint(provider, engine):
    port = free_port()
    inputs, _ = check(provider, "dial", {"connection": {"host": "127.0.0.1", "port": port, "privateKey": "x",
                                                        "dialErrorLimit": 2, "perDialTimeout": 1},
                                         "create": "true"})
    # an unparsable key fails before dialing
    with pytest.raises(grpc.RpcError) as e:
        provider.Create(provider_pb2.CreateRequest(urn=urn("dial"), type=TYPE, properties=to_struct(inputs)))
    assert "privateKey" in e.value.details()
    inputs["connection"]["value"].pop("privateKey")
    start = time.time()
    with pytest.raises(grpc.RpcError) as e:
        provider.Create(provider_pb2.CreateRequest(urn=urn("dial"), type=TYPE, properties=to_struct(inputs)))
    assert time.time() - start < 10
    msg = e.value.details()
    assert msg == f"after 2 failed attempts: dial tcp 127.0.0.1:{port}: connect: connection refused"
    assert [m for m in engine.messages(urn("dial")) if m.startswith("Dial")] == [
        "Dial 1/2 failed: retrying", "Dial 2/2 failed: retrying"]


def test_wrong_client_key_is_an_auth_error(provider, sshd, tmp_path):
    key, _ = keygen(tmp_path / "stranger")
    inputs, _ = check(provider, "auth", {"connection": sshd.connection(privateKey=key, dialErrorLimit=0),
                                         "create": "true"})
    with pytest.raises(grpc.RpcError) as e:
        provider.Create(provider_pb2.CreateRequest(urn=urn("auth"), type=TYPE, properties=to_struct(inputs)))
    # x/crypto ssh client_auth.go clientAuthenticate: "none" is always tried first.
    assert e.value.details() == ("after 0 failed attempts: ssh: handshake failed: ssh: unable to authenticate, "
                                 "attempted methods [none publickey], no supported methods remain")


def test_encrypted_and_rsa_private_keys(provider, sshd):
    _, out = create(provider, "enc", {"connection": sshd.connection(privateKey=sshd.enc_key,
                                                                    privateKeyPassword="s3cret-pass"),
                                      "create": "echo enc"})
    assert out["stdout"] == "enc"
    _, out = create(provider, "rsa", {"connection": sshd.connection(privateKey=sshd.rsa_key),
                                      "create": "echo rsa"})
    assert out["stdout"] == "rsa"


def test_environment_and_previous_output(provider, sshd, engine):
    _, out = create(provider, "env", {"connection": sshd.connection(), "environment": {"ALLOWED_A": "x y"},
                                      "create": "echo \"$ALLOWED_A\""})
    assert out["stdout"] == "x y"
    inputs, _ = check(provider, "env-refused", {"connection": sshd.connection(),
                                                "environment": {"NOT_ACCEPTED": "1"}, "create": "true"})
    with pytest.raises(grpc.RpcError) as e:
        provider.Create(provider_pb2.CreateRequest(urn=urn("env-refused"), type=TYPE,
                                                   properties=to_struct(inputs)))
    assert 'could not set environment variable "NOT_ACCEPTED"' in e.value.details()
    # previous stdout is offered (accepted here); previous stderr is refused: a warning, not a failure
    cmd = {"connection": sshd.connection(), "create": "echo first; echo err1 >&2",
           "update": "echo \"prev=$PULUMI_COMMAND_STDOUT\""}
    rid, state = create(provider, "prev", cmd)
    state2 = update(provider, "prev", rid, state, {**cmd, "triggers": [1]})
    assert state2["stdout"] == "prev=first"
    warnings = [r for r in engine.logs if r.urn == urn("prev") and r.severity == engine_pb2.WARNING]
    assert any("PULUMI_COMMAND_STDERR" in r.message for r in warnings)
    # turned off: not offered at all
    state3 = update(provider, "prev", rid, state2, {**cmd, "addPreviousOutputInEnv": False})
    assert state3["stdout"] == "prev="


def test_output_is_streamed_to_the_engine_per_logging(provider, sshd, engine):
    script = "for i in 1 2 3; do echo progress-$i >&2; echo data-$i; done"
    create(provider, "log-default", {"connection": sshd.connection(), "create": script})
    msgs = engine.messages(urn("log-default"))
    assert {"progress-1", "progress-3", "data-1", "data-3"} <= set(msgs)
    assert all(r.ephemeral and r.severity == engine_pb2.INFO for r in engine.logs
               if r.urn == urn("log-default") and r.message.startswith(("progress", "data")))
    create(provider, "log-stderr", {"connection": sshd.connection(), "create": script, "logging": "stderr"})
    msgs = engine.messages(urn("log-stderr"))
    assert "progress-2" in msgs and not any(m.startswith("data") for m in msgs)
    create(provider, "log-none", {"connection": sshd.connection(), "create": script, "logging": "none"})
    assert not any(m.startswith(("progress", "data")) for m in engine.messages(urn("log-none")))


def test_long_step_streams_while_running(provider, sshd, engine):
    """Progress lines reach the engine before the command ends."""
    import threading
    name = "slow"
    inputs, _ = check(provider, name, {"connection": sshd.connection(), "logging": "stderr",
                                       "create": "echo step-1 >&2; sleep 2; echo step-2 >&2"})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", provider.Create(provider_pb2.CreateRequest(
        urn=urn(name), type=TYPE, properties=to_struct(inputs)))))
    t.start()
    deadline = time.time() + 1.8
    while time.time() < deadline and "step-1" not in engine.messages(urn(name)):
        time.sleep(0.05)
    assert "step-1" in engine.messages(urn(name)) and "step-2" not in engine.messages(urn(name))
    t.join()
    assert from_struct(result["r"].properties)["stderr"] == "step-1\nstep-2"


# ---------------------------------------------------------------------------------
# Preview, diff, secrets, read, cancel
# ---------------------------------------------------------------------------------

def test_preview_create_returns_unknowns_and_runs_nothing(provider, sshd, tmp_path):
    marker = tmp_path / "preview"
    rid, out = create(provider, "pv", {"connection": sshd.connection(), "create": f"touch {marker}"},
                      preview=True)
    assert out["stdout"] == UNKNOWN and out["stderr"] == UNKNOWN
    assert out["create"] == f"touch {marker}"
    assert not marker.exists()
    # unknown inputs pass through
    rid, out = create(provider, "pv2", {"connection": sshd.connection(host=UNKNOWN), "create": UNKNOWN},
                      preview=True)
    assert out["create"] == UNKNOWN and out["stdout"] == UNKNOWN
    # preview update
    _, state = create(provider, "pv3", {"connection": sshd.connection(), "create": "echo a"})
    out = update(provider, "pv3", "id", state, {"connection": sshd.connection(), "create": f"touch {marker}"},
                 preview=True)
    assert out["stdout"] == UNKNOWN and not marker.exists()


def _state(sshd, **over) -> dict:
    base = {"connection": secret({"host": "127.0.0.1", "port": sshd.port, "user": "root",
                                  "privateKey": "k", "dialErrorLimit": 10, "perDialTimeout": 15}),
            "create": "echo hi", "addPreviousOutputInEnv": True, "triggers": ["v1", 2],
            "stdout": "hi", "stderr": ""}
    base.update(over)
    return base


def _inputs(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in ("stdout", "stderr")}


def test_diff_triggers_replace(provider, sshd):
    olds = _state(sshd)
    d = diff(provider, "t", olds, {**_inputs(olds), "triggers": ["v2", 2]})
    assert d.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(d.replaces) == ["triggers"] and list(d.diffs) == ["triggers"]
    assert {k: v.kind for k, v in d.detailedDiff.items()} == {"triggers[0]": K.UPDATE_REPLACE}
    d = diff(provider, "t", olds, {**_inputs(olds), "triggers": ["v1", 2, "new"]})
    assert d.detailedDiff["triggers[2]"].kind == K.ADD_REPLACE and list(d.replaces) == ["triggers"]
    d = diff(provider, "t", olds, {k: v for k, v in _inputs(olds).items() if k != "triggers"})
    assert d.detailedDiff["triggers"].kind == K.DELETE_REPLACE
    # unknown trigger during preview: a replace too
    d = diff(provider, "t", olds, {**_inputs(olds), "triggers": [UNKNOWN, 2]})
    assert list(d.replaces) == ["triggers"]


def test_diff_connection_or_command_change_is_update(provider, sshd):
    olds = _state(sshd)
    news = _inputs(olds)
    news["connection"] = secret({**news["connection"]["value"], "host": "127.0.0.2"})
    d = diff(provider, "u", olds, news)
    assert d.changes == provider_pb2.DiffResponse.DIFF_SOME and list(d.replaces) == []
    assert list(d.diffs) == ["connection"]
    assert d.detailedDiff["connection"].kind == K.UPDATE
    d = diff(provider, "u", olds, {**_inputs(olds), "create": "echo bye", "stdin": "in"})
    assert set(d.diffs) == {"create", "stdin"} and not d.replaces
    assert d.detailedDiff["stdin"].kind == K.ADD and d.detailedDiff["create"].kind == K.UPDATE
    d = diff(provider, "u", {**olds, "environment": {"A": "1"}}, {**_inputs(olds), "environment": {"A": "2"}})
    assert list(d.detailedDiff) == ["environment.A"]


def test_diff_no_change(provider, sshd):
    olds = _state(sshd)
    d = diff(provider, "n", olds, _inputs(olds))
    assert d.changes == provider_pb2.DiffResponse.DIFF_NONE and not d.diffs and not d.detailedDiff
    # the same value, now secret (or a connection given without its defaults): still no change
    news = {**_inputs(olds), "create": secret("echo hi")}
    news["connection"] = {k: v for k, v in olds["connection"]["value"].items()
                          if k not in ("dialErrorLimit", "perDialTimeout", "user")}
    d = diff(provider, "n", olds, news)
    assert d.changes == provider_pb2.DiffResponse.DIFF_NONE


def test_secrets_stay_secret(provider, sshd):
    key_secret = sshd.connection(privateKey=secret(sshd.client_key))
    rid, out = create(provider, "sec", {"connection": key_secret, "create": "cat; echo done",
                                        "stdin": secret("hunter2\n"), "environment": {"ALLOWED_T": "t"}})
    assert is_secret(out["connection"])
    assert is_secret(out["stdin"]) and out["stdin"]["value"] == "hunter2\n"
    assert out["create"] == "cat; echo done" and out["environment"] == {"ALLOWED_T": "t"}
    # the command consumed secret data: its output is secret too
    assert is_secret(out["stdout"]) and out["stdout"]["value"] == "hunter2\ndone"
    # plain inputs: plain output
    rid, out = create(provider, "plain", {"connection": sshd.connection(), "create": "echo p"})
    assert out["stdout"] == "p" and is_secret(out["connection"])
    # nested secret inside a map keeps its place
    _, out = create(provider, "nested", {"connection": sshd.connection(), "create": "echo \"$ALLOWED_N\"",
                                         "environment": {"ALLOWED_N": secret("n1"), "ALLOWED_M": "m"}})
    assert is_secret(out["environment"]["ALLOWED_N"]) and out["environment"]["ALLOWED_M"] == "m"
    assert is_secret(out["stdout"]) and out["stdout"]["value"] == "n1"
    # update keeps secrets, too
    state = update(provider, "sec", rid, out, {"connection": key_secret, "create": "echo again",
                                              "stdin": secret("other")})
    assert is_secret(state["stdin"]) and is_secret(state["connection"])


def test_read_returns_state(provider, sshd):
    state = _state(sshd)
    resp = provider.Read(provider_pb2.ReadRequest(id="r1", urn=urn("r"), type=TYPE, properties=to_struct(state),
                                                  inputs=to_struct(_inputs(state))))
    assert resp.id == "r1" and from_struct(resp.properties) == from_struct(to_struct(state))
    assert from_struct(resp.inputs) == from_struct(to_struct(_inputs(state)))


def test_cancel(engine, sshd, tmp_path):
    """Cancel ends a running command (own provider process: cancel is final)."""
    proc = subprocess.Popen([sys.executable, str(PROVIDER), engine.address], stdout=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        stub = provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        inputs, _ = check(stub, "cancel", {"connection": sshd.connection(), "create": "sleep 30"})
        call = stub.Create.future(provider_pb2.CreateRequest(urn=urn("cancel"), type=TYPE,
                                                             properties=to_struct(inputs)))
        time.sleep(1)
        start = time.time()
        stub.Cancel(empty_pb2.Empty())
        with pytest.raises(grpc.RpcError) as e:
            call.result(timeout=10)
        assert "cancel" in e.value.details() and time.time() - start < 5
    finally:
        proc.terminate()
        proc.wait(5)


# ---------------------------------------------------------------------------------
# A real `pulumi up` (needs the offline language host and the partial CLI)
# ---------------------------------------------------------------------------------

def _language_host_usable() -> bool:
    return PULUMI_CLI.exists() and LANGUAGE_HOST.exists()


@pytest.mark.skipif(not _language_host_usable(), reason="offline language host or pulumi CLI not available")
def test_pulumi_up_with_remote_command(sshd, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pulumi").symlink_to(PULUMI_CLI)
    venv_python = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "python"
    for name, target in (("pulumi-resource-command", PROVIDER), ("pulumi-language-python", LANGUAGE_HOST)):
        w = bindir / name
        w.write_text(f"#!/bin/sh\nexec {venv_python} {target} \"$@\"\n")
        w.chmod(0o755)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(textwrap.dedent(f"""\
        name: cmdtest
        runtime:
          name: python
          options:
            virtualenv: {venv_python.parent.parent}
        """))
    marker = tmp_path / "marker"
    (project / "__main__.py").write_text(textwrap.dedent(f"""\
        import pulumi
        from pulumi_command import remote
        cfg = pulumi.Config()
        conn = remote.ConnectionArgs(host="127.0.0.1", port={sshd.port}, user="root",
                                     private_key=pulumi.Output.secret(open({str(sshd.root / 'id_client')!r}).read()),
                                     host_key={sshd.host_pub!r})
        cmd = remote.Command("hello", connection=conn,
                             create="echo step >&2; echo hello-$(cat) | tee {marker}",
                             delete="rm -f {marker}", stdin=cfg.get("word") or "world",
                             add_previous_output_in_env=False, logging=remote.Logging.STDERR)
        pulumi.export("out", cmd.stdout)
        """))
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "PULUMI_CONFIG_PASSPHRASE": "test",
           "PULUMI_BACKEND_URL": f"file://{tmp_path}", "PULUMI_SKIP_UPDATE_CHECK": "true",
           "PULUMI_HOME": str(tmp_path / "home"), "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"}
    env.pop("SSH_AUTH_SOCK", None)

    def pulumi(*args, check=True):
        r = subprocess.run([str(bindir / "pulumi"), *args, "--non-interactive"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=300)
        if check:
            assert r.returncode == 0, r.stdout + r.stderr
        return r

    pulumi("stack", "init", "dev")
    pulumi("up", "--yes")
    assert marker.read_text() == "hello-world\n"
    assert pulumi("stack", "output", "out").stdout.strip() == "hello-world"
    pulumi("config", "set", "word", "there")
    prev = pulumi("preview", "--diff")
    assert "stdin" in prev.stdout
    pulumi("up", "--yes")
    assert marker.read_text() == "hello-there\n"
    state = json.loads(pulumi("stack", "export").stdout)
    cmd = next(r for r in state["deployment"]["resources"] if r["type"] == TYPE)
    assert "ciphertext" in json.dumps(cmd["outputs"]["connection"])  # stored encrypted
    pulumi("destroy", "--yes")
    assert not marker.exists()
