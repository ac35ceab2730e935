#!/usr/bin/env python3
"""Offline stand-in for the `pulumi-resource-command` plugin (pulumi-command 1.2.1).

Only what this project uses is implemented: the provider resource itself and
`command:remote:Command` (run a command over SSH on create/update/delete). Other
resource types are refused with a clear error.

Behaviour follows pulumi-command 1.2.1:
  * Check applies the schema defaults (`addPreviousOutputInEnv` true; connection
    `port` 22, `user` root, `dialErrorLimit` 10, `perDialTimeout` 15) and marks
    `connection` secret.
  * Diff: a change of `triggers` replaces, any other input change updates.
  * Create runs `create`; Update runs `update`, or `create` when `update` is unset;
    Delete runs `delete` (if set) with the connection of the stored state.
    Outputs are the inputs plus `stdout`/`stderr` with one trailing newline cut.
    Preview never connects; `stdout`/`stderr` are unknown then.
  * A failing command fails the step with no state recorded for a create (the
    engine keeps the old state for a failed update).
  * SSH dialing follows remote/connection.go (see Dialer): only the hostKey's type is
    offered as host-key algorithm (`ssh-rsa` for RSA keys), `perDialTimeout` bounds the TCP
    connect only, every dial error (host-key mismatch included) is retried
    `dialErrorLimit` times (-1: forever) with backoff, no keepalive, and an unreachable
    agent (agentSocketPath or a stale SSH_AUTH_SOCK) fails the step.
  * `environment` and PULUMI_COMMAND_STDOUT/STDERR are sent with SSH `env`
    requests: a refused `environment` variable fails the step, a refused previous
    output variable only warns.
  * Output lines are streamed to the engine as status messages per `logging`.
  * A failed command's error is "<exit error>: running <command, Go %q>:\n<stdout+stderr>",
    whatever `logging` says and even when the command or its output is secret
    (remote/commandOutputs.go run). Steps that handle secrets must never print them before
    a check that can fail, nor put them in the command text.

  * `proxy` (a bastion) follows remote/connection.go Dial: the proxy is dialed like a host
    (its own hostKey, key/password/agent, perDialTimeout, dialErrorLimit, status "Dial proxy"),
    then a `direct-tcpip` channel to host:port is opened on it (the target's dialErrorLimit,
    no time limit, status "Dial from proxy"), then the target's SSH handshake runs over that
    channel (status "Dial"); a failed handshake closes the channel, so its retries fail with
    "EOF". Every error on this path is prefixed "proxy: ".

Differences: stdout/stderr are marked secret when the data the command consumed
(create/update/stdin/environment) was secret. The bastion's SSH connection is closed with the
target's (upstream leaves it open until the plugin exits).

Usage (as the engine runs plugins): command_provider.py [flags] <engine-address>
"""

from __future__ import annotations

import base64
import io
import json
import os
import queue
import secrets as _random
import socket
import sys
import threading
from typing import Any, Callable, Iterable

import grpc
import paramiko
from google.protobuf import empty_pb2, json_format, struct_pb2
from paramiko.common import MSG_CHANNEL_REQUEST, cMSG_CHANNEL_REQUEST
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, plugin_pb2, provider_pb2, provider_pb2_grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plugin_server  # noqa: E402  (sibling module)

VERSION = "1.2.1"
COMMAND_TYPE = "command:remote:Command"

# ---------------------------------------------------------------------------------
# Property values on the wire
# ---------------------------------------------------------------------------------

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_MISSING = object()


class Secret:
    """A secret property value (the wrapped value may itself hold secrets/unknowns)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:  # never show the value
        return "Secret(...)"


def from_wire(v: Any) -> Any:
    """A JSON-ish value decoded from a Struct into Python, with Secret wrappers."""
    if isinstance(v, dict):
        sig = v.get(SIG_KEY)
        if sig == SECRET_SIG:
            return Secret(from_wire(v.get("value")))
        if sig == OUTPUT_SIG:  # only sent to providers that accept outputs; handled anyway
            inner = from_wire(v["value"]) if "value" in v else UNKNOWN
            return Secret(inner) if v.get("secret") else inner
        return {k: from_wire(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_wire(x) for x in v]
    return v


def to_wire(v: Any) -> Any:
    if isinstance(v, Secret):
        return {SIG_KEY: SECRET_SIG, "value": to_wire(v.value)}
    if isinstance(v, dict):
        return {k: to_wire(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_wire(x) for x in v]
    return v


def struct_to_map(s: struct_pb2.Struct | None) -> dict:
    if s is None:
        return {}
    return from_wire(json_format.MessageToDict(s))


def map_to_struct(m: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(to_wire(m))
    return s


def plain(v: Any) -> Any:
    """The value with every Secret wrapper removed."""
    if isinstance(v, Secret):
        return plain(v.value)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def has_secret(v: Any) -> bool:
    if isinstance(v, Secret):
        return True
    if isinstance(v, dict):
        return any(has_secret(x) for x in v.values())
    if isinstance(v, list):
        return any(has_secret(x) for x in v)
    return False


def has_unknown(v: Any) -> bool:
    if isinstance(v, Secret):
        return has_unknown(v.value)
    if isinstance(v, dict):
        return any(has_unknown(x) for x in v.values())
    if isinstance(v, list):
        return any(has_unknown(x) for x in v)
    return v == UNKNOWN


def unwrap(v: Any) -> tuple[Any, bool]:
    """(value without a top-level Secret wrapper, whether it had one)."""
    secret = False
    while isinstance(v, Secret):
        v, secret = v.value, True
    return v, secret


def rewrap(v: Any, secret: bool) -> Any:
    return Secret(v) if secret else v


# ---------------------------------------------------------------------------------
# Schema, defaults and validation
# ---------------------------------------------------------------------------------

INPUT_KEYS = ("connection", "create", "update", "delete", "stdin", "logging", "environment",
              "addPreviousOutputInEnv", "triggers")
CONNECTION_KEYS = ("host", "port", "user", "password", "privateKey", "privateKeyPassword",
                   "agentSocketPath", "dialErrorLimit", "perDialTimeout", "hostKey", "proxy")
CONNECTION_DEFAULTS = {"port": 22.0, "user": "root", "dialErrorLimit": 10.0, "perDialTimeout": 15.0}
LOGGING_VALUES = ("stdout", "stderr", "stdoutAndStderr", "none")


def _conn_props(host_doc: str) -> dict:
    return {
        "host": {"type": "string", "description": host_doc},
        "port": {"type": "number", "default": 22, "description": "The port to connect to. Defaults to 22."},
        "user": {"type": "string", "default": "root", "description": "The user for the connection."},
        "password": {"type": "string", "secret": True, "description": "The password for the connection."},
        "privateKey": {"type": "string", "secret": True,
                       "description": "The contents of an SSH key to use for the connection."},
        "privateKeyPassword": {"type": "string", "secret": True,
                               "description": "The password to use in case the private key is encrypted."},
        "agentSocketPath": {"type": "string", "description": "SSH Agent socket path (default SSH_AUTH_SOCK)."},
        "dialErrorLimit": {"type": "integer", "default": 10,
                           "description": "Max allowed errors on trying to dial the remote host (-1: unlimited)."},
        "perDialTimeout": {"type": "integer", "default": 15,
                           "description": "Max number of seconds for each dial attempt (0: no maximum)."},
        "hostKey": {"type": "string",
                    "description": "The expected host key to verify the server's identity. "
                                   "If not provided, the host key will be ignored."},
    }


def schema() -> dict:
    """A minimal, valid schema covering what this plugin implements."""
    command_inputs = {
        "connection": {"$ref": "#/types/command:remote:Connection", "secret": True,
                       "description": "The parameters with which to connect to the remote host."},
        "create": {"type": "string", "description": "The command to run on create."},
        "update": {"type": "string", "description": "The command to run on update, if empty, create will run again."},
        "delete": {"type": "string", "description": "The command to run on delete."},
        "stdin": {"type": "string", "description": "Pass a string to the command's process as standard in."},
        "logging": {"$ref": "#/types/command:remote:Logging",
                    "description": "If the command's stdout and stderr should be logged."},
        "environment": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Additional environment variables (need AcceptEnv on the server)."},
        "addPreviousOutputInEnv": {"type": "boolean", "default": True,
                                   "description": "Pass the previous stdout/stderr as PULUMI_COMMAND_STDOUT/STDERR."},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": True,
                     "description": "Trigger a resource replacement on changes to any of these values."},
    }
    outputs = dict(command_inputs)
    outputs["stdout"] = {"type": "string", "description": "The standard output of the command's process"}
    outputs["stderr"] = {"type": "string", "description": "The standard error of the command's process"}
    proxy = _conn_props("The address of the bastion host to connect to.")
    conn = _conn_props("The address of the resource to connect to.")
    conn["proxy"] = {"$ref": "#/types/command:remote:ProxyConnection",
                     "description": "The connection settings for the bastion/proxy host."}
    return {
        "name": "command",
        "version": VERSION,
        "displayName": "Command",
        "description": "Offline stand-in of the Pulumi Command provider (remote.Command only).",
        "config": {},
        "provider": {"type": "object"},
        "types": {
            "command:remote:Connection": {"type": "object", "properties": conn, "required": ["host"],
                                          "description": "Instructions for how to connect to a remote endpoint."},
            "command:remote:ProxyConnection": {"type": "object", "properties": proxy, "required": ["host"],
                                               "description": "How to connect via a bastion host."},
            "command:remote:Logging": {"type": "string", "enum": [{"value": v} for v in LOGGING_VALUES]},
        },
        "resources": {
            COMMAND_TYPE: {
                "description": "A command to run on a remote host. The connection is established via ssh.",
                "inputProperties": command_inputs,
                "requiredInputs": ["connection"],
                "properties": outputs,
                "required": ["connection", "stdout", "stderr"],
            },
        },
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_connection(conn: Any, path: str, failures: list[tuple[str, str]], *, proxy: bool = False) -> Any:
    """Validates one connection object (or its `proxy`) and applies its defaults (keeping
    secret markers); ProxyConnection has the same fields and defaults, without `proxy`."""
    inner, secret = unwrap(conn)
    if inner == UNKNOWN:
        return conn
    if not isinstance(inner, dict):
        failures.append((path, "must be an object"))
        return conn
    out = dict(inner)
    type_name = "remote.ProxyConnection" if proxy else "remote.Connection"
    for k in out:
        if k not in CONNECTION_KEYS or (proxy and k == "proxy"):
            failures.append((f"{path}.{k}", f"Unrecognized field '{k}' on '{type_name}'"))
    host = out.get("host")
    if host is None:
        failures.append((f"{path}.host", f"Missing required field 'host' on '{type_name}'"))
    for key, default in CONNECTION_DEFAULTS.items():
        if out.get(key) is None:
            out[key] = default
    for key in ("host", "user", "password", "privateKey", "privateKeyPassword", "agentSocketPath", "hostKey"):
        v, _ = unwrap(out.get(key))
        if v is not None and v != UNKNOWN and not isinstance(v, str):
            failures.append((f"{path}.{key}", "must be a string"))
    for key in ("port", "dialErrorLimit", "perDialTimeout"):
        v, _ = unwrap(out.get(key))
        if v is not None and v != UNKNOWN and not _is_number(v):
            failures.append((f"{path}.{key}", "must be a number"))
    if not proxy and out.get("proxy") is not None:
        out["proxy"] = _check_connection(out["proxy"], f"{path}.proxy", failures, proxy=True)
    return rewrap(out, secret)


def check_inputs(news: dict) -> tuple[dict, list[tuple[str, str]]]:
    failures: list[tuple[str, str]] = []
    inputs = dict(news)
    for k in inputs:
        if k not in INPUT_KEYS:
            failures.append((k, f"Unrecognized field '{k}' on 'remote.CommandInputs'"))
    if inputs.get("connection") is None:
        failures.append(("connection", "Missing required field 'connection' on 'remote.CommandInputs'"))
    else:
        conn = _check_connection(inputs["connection"], "connection", failures)
        # `connection` is always secret, as the schema says.
        inputs["connection"] = conn if isinstance(conn, Secret) else Secret(conn)
    if inputs.get("addPreviousOutputInEnv") is None:
        inputs["addPreviousOutputInEnv"] = True
    for key in ("create", "update", "delete", "stdin"):
        v, _ = unwrap(inputs.get(key))
        if v is not None and v != UNKNOWN and not isinstance(v, str):
            failures.append((key, "must be a string"))
    logging, _ = unwrap(inputs.get("logging"))
    if logging is not None and logging != UNKNOWN and logging not in LOGGING_VALUES:
        failures.append(("logging", f"must be one of {', '.join(LOGGING_VALUES)}"))
    env, _ = unwrap(inputs.get("environment"))
    if env is not None and env != UNKNOWN:
        if not isinstance(env, dict):
            failures.append(("environment", "must be a map of strings"))
        else:
            for k, v in env.items():
                v, _ = unwrap(v)
                if v != UNKNOWN and not isinstance(v, str):
                    failures.append((f"environment.{k}", "must be a string"))
    trig, _ = unwrap(inputs.get("triggers"))
    if trig is not None and trig != UNKNOWN and not isinstance(trig, list):
        failures.append(("triggers", "must be an array"))
    add, _ = unwrap(inputs.get("addPreviousOutputInEnv"))
    if add != UNKNOWN and not isinstance(add, bool):
        failures.append(("addPreviousOutputInEnv", "must be a boolean"))
    return inputs, failures


# ---------------------------------------------------------------------------------
# Diff
# ---------------------------------------------------------------------------------

K = provider_pb2.PropertyDiff
REPLACE_KIND = {K.ADD: K.ADD_REPLACE, K.DELETE: K.DELETE_REPLACE, K.UPDATE: K.UPDATE_REPLACE}
REPLACE_KEYS = ("triggers",)


def _sub_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.replace("_", "a").isalnum() and not key[:1].isdigit():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _diff_value(path: str, old: Any, new: Any, out: dict[str, int]) -> None:
    if old is None:
        old = _MISSING
    if new is None:
        new = _MISSING
    if old is _MISSING and new is _MISSING:
        return
    if old is _MISSING:
        out[path] = K.ADD
        return
    if new is _MISSING:
        out[path] = K.DELETE
        return
    if has_unknown(new):
        o, n = unwrap(old)[0], unwrap(new)[0]
        if n != UNKNOWN and isinstance(o, dict) and isinstance(n, dict) and not isinstance(new, Secret):
            for k in sorted(set(o) | set(n)):
                _diff_value(_sub_path(path, k), o.get(k, _MISSING), n.get(k, _MISSING), out)
            return
        if n != UNKNOWN and isinstance(o, list) and isinstance(n, list) and not isinstance(new, Secret):
            for i in range(max(len(o), len(n))):
                _diff_value(_sub_path(path, i), o[i] if i < len(o) else _MISSING,
                            n[i] if i < len(n) else _MISSING, out)
            return
        out[path] = K.UPDATE
        return
    o, o_secret = unwrap(old)
    n, n_secret = unwrap(new)
    if o_secret or n_secret:
        # Secret values are compared as a whole: the paths inside them stay hidden.
        if plain(o) != plain(n):
            out[path] = K.UPDATE
        return
    if isinstance(o, dict) and isinstance(n, dict):
        for k in sorted(set(o) | set(n)):
            _diff_value(_sub_path(path, k), o.get(k, _MISSING), n.get(k, _MISSING), out)
        return
    if isinstance(o, list) and isinstance(n, list):
        for i in range(max(len(o), len(n))):
            _diff_value(_sub_path(path, i), o[i] if i < len(o) else _MISSING,
                        n[i] if i < len(n) else _MISSING, out)
        return
    if type(o) is not type(n) and not (_is_number(o) and _is_number(n)):
        out[path] = K.UPDATE
    elif o != n:
        out[path] = K.UPDATE


def diff(olds: dict, news: dict, ignore: Iterable[str] = ()) -> provider_pb2.DiffResponse:
    ignored = {p.split(".")[0].split("[")[0] for p in ignore}
    detailed: dict[str, int] = {}
    changed: list[str] = []
    replaces: list[str] = []
    keys = sorted(set(news) | (set(olds) & set(INPUT_KEYS)))
    for key in keys:
        if key in ignored:
            continue
        found: dict[str, int] = {}
        _diff_value(key, olds.get(key, _MISSING), news.get(key, _MISSING), found)
        if not found:
            continue
        changed.append(key)
        if key in REPLACE_KEYS:
            replaces.append(key)
            found = {p: REPLACE_KIND.get(kind, kind) for p, kind in found.items()}
        detailed.update(found)
    return provider_pb2.DiffResponse(
        changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
        diffs=changed,
        replaces=replaces,
        detailedDiff={p: provider_pb2.PropertyDiff(kind=kind, inputDiff=True) for p, kind in detailed.items()},
        hasDetailedDiff=True,
        deleteBeforeReplace=False,
    )


# ---------------------------------------------------------------------------------
# Engine log
# ---------------------------------------------------------------------------------

class EngineLog:
    """Sends log messages to the engine's Log service from a background thread."""

    def __init__(self, address: str | None = None):
        self._lock = threading.Lock()
        self._stub = None
        self._address = None
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, name="engine-log", daemon=True).start()
        if address:
            self.set_address(address)

    def set_address(self, address: str) -> None:
        with self._lock:
            if address and address != self._address:
                self._address = address
                channel = grpc.insecure_channel(address, options=[
                    ("grpc.max_send_message_length", plugin_server.MAX_MESSAGE)])
                self._stub = engine_pb2_grpc.EngineStub(channel)

    def log(self, severity: int, message: str, urn: str = "", ephemeral: bool = False) -> None:
        self._queue.put(engine_pb2.LogRequest(severity=severity, message=message, urn=urn, ephemeral=ephemeral))

    def status(self, message: str, urn: str = "") -> None:
        """An Info status message (what the real provider uses for command output)."""
        self.log(engine_pb2.INFO, message, urn, ephemeral=True)

    def flush(self, timeout: float = 10.0) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _pump(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            with self._lock:
                stub = self._stub
            if stub is None:
                continue
            try:
                stub.Log(item, timeout=15)
            except grpc.RpcError:
                pass


# ---------------------------------------------------------------------------------
# SSH
# ---------------------------------------------------------------------------------

class StepError(Exception):
    """A failure reported to the engine as the step's error message."""


class _RetryableDialError(Exception):
    pass


def _fmt_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _errno_text(e: OSError) -> str:
    """An OS error as Go's syscall.Errno prints it (lower case, e.g. "connection refused")."""
    if e.errno:
        text = os.strerror(e.errno)
        return text[:1].lower() + text[1:]
    return str(e) or type(e).__name__


def _go_list(items: Iterable[str]) -> str:
    """A []string as Go's %v prints it."""
    return "[" + " ".join(items) + "]"


def _go_quote(s: str) -> str:
    """`s` as Go's strconv.Quote (fmt %q) writes it."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():  # Python's printable set is Go's unicode.IsPrint (L, M, N, P, S, ' ')
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _load_private_key(text: str, password: str | None, path: str = "connection") -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=password)
        except paramiko.PasswordRequiredException:
            raise StepError(f"{path}.privateKey is encrypted: set {path}.privateKeyPassword") from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue  # not this key type (or a wrong password: reported below without details)
    raise StepError(f"{path}.privateKey: not a usable SSH private key (ed25519, ecdsa or rsa, "
                    "OpenSSH or PEM format)")


def _parse_host_key(text: str) -> tuple[str, bytes]:
    parts = text.strip().split()
    if len(parts) < 2:
        raise StepError("failed to parse host key: ssh: no key found")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise StepError("failed to parse host key: ssh: no key found") from None
    try:
        key_type = paramiko.Message(blob).get_text()
    except Exception:
        raise StepError("failed to parse host key: ssh: no key found") from None
    if key_type != parts[0]:
        raise StepError(f"failed to parse host key: ssh: key type '{parts[0]}' does not match the key "
                        f"data ({key_type})")
    return key_type, blob


# Go x/crypto ssh: a signal without exit-status counts as status 128 + its number (session.go wait).
_SIGNALS = {"ABRT": 6, "ALRM": 14, "FPE": 8, "HUP": 1, "ILL": 4, "INT": 2, "KILL": 9, "PIPE": 13,
            "QUIT": 3, "SEGV": 11, "TERM": 15}
# x/crypto ssh channel.go RejectionReason.String.
_REJECTION_REASONS = {1: "administratively prohibited", 2: "connect failed", 3: "unknown channel type",
                      4: "resource shortage"}
# Wide enough to never end a handshake (upstream bounds only the TCP connect), small enough
# for threading's timeouts.
_NO_TIMEOUT = 10.0 ** 8


class _Transport(paramiko.Transport):
    """paramiko's client transport offering exactly the host-key algorithms it is given
    (pulumi-command offers only the type of `connection.hostKey`, `ssh-rsa` included, which
    paramiko no longer offers by itself), remembering what the server offered."""

    _key_info = {**paramiko.Transport._key_info, "ssh-rsa": paramiko.RSAKey}

    def __init__(self, sock, offer: list[str] | None):
        super().__init__(sock)
        self.offer = offer
        self.peer_host_key_algorithms: list[str] | None = None
        self.last_open_failure: tuple[int, str] | None = None
        self.via: paramiko.Transport | None = None  # the bastion this transport runs through

    def close(self) -> None:
        super().close()
        if self.via is not None:
            self.via.close()

    def _parse_channel_open_failure(self, m):
        # paramiko keeps only the reason code; x/crypto's OpenChannelError shows the server's text.
        start = m.packet.tell()
        m.get_int()
        reason = m.get_int()
        self.last_open_failure = (reason, m.get_text())
        m.packet.seek(start)
        super()._parse_channel_open_failure(m)

    @property
    def preferred_keys(self):
        return tuple(self.offer) if self.offer else super().preferred_keys

    def _really_parse_kex_init(self, m, ignore_first_byte=False):
        parsed = super()._really_parse_kex_init(m, ignore_first_byte)
        if self.peer_host_key_algorithms is None:
            self.peer_host_key_algorithms = list(parsed["server_key_algo_list"])
        return parsed

    def _verify_key(self, host_key, sig):
        if self.host_key_type != "ssh-rsa":
            return super()._verify_key(host_key, sig)
        # ssh-rsa signs with SHA-1, which paramiko refuses to verify by itself.
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        key = paramiko.RSAKey(msg=paramiko.Message(host_key))
        m = paramiko.Message(sig)
        if m.get_text() != "ssh-rsa":
            raise paramiko.SSHException("Signature verification (ssh-rsa) failed.")
        try:
            key.key.verify(m.get_binary(), self.H, padding.PKCS1v15(), hashes.SHA1())
        except InvalidSignature:
            raise paramiko.SSHException("Signature verification (ssh-rsa) failed.") from None
        self.host_key = key


def _handle_channel_request(channel: paramiko.Channel, m: paramiko.Message):
    """paramiko ignores `exit-signal`; keep it, as Go's session does, for the error text."""
    start = m.packet.tell()
    if m.get_text() == "exit-signal":
        m.get_boolean()  # want reply: never for exit-signal
        signal = m.get_text()
        m.get_boolean()  # core dumped
        channel.exit_signal = (signal, m.get_text())
        return
    m.packet.seek(start)
    _paramiko_channel_request(channel, m)


_paramiko_channel_request = paramiko.Transport._channel_handler_table[MSG_CHANNEL_REQUEST]
_Transport._channel_handler_table = {**paramiko.Transport._channel_handler_table,
                                     MSG_CHANNEL_REQUEST: _handle_channel_request}


class Connection:
    """A parsed `connection` input (or its `proxy`, with `is_proxy`)."""

    def __init__(self, value: Any, *, is_proxy: bool = False):
        c = plain(value)
        self.path = "connection.proxy" if is_proxy else "connection"
        if not isinstance(c, dict) or not c.get("host"):
            raise StepError(f"{self.path}.host is required")
        self.host: str = c["host"]
        self.port = int(c.get("port") if c.get("port") is not None else 22)
        self.user: str = c.get("user") or "root"
        self.password: str | None = c.get("password")
        self.private_key: str | None = c.get("privateKey")
        self.private_key_password: str | None = c.get("privateKeyPassword")
        self.agent_socket_path: str | None = c.get("agentSocketPath")
        limit = c.get("dialErrorLimit")
        self.dial_error_limit = int(limit) if limit is not None else 10
        timeout = c.get("perDialTimeout")
        self.per_dial_timeout = float(timeout) if timeout is not None else 15.0
        self.host_key: str | None = c.get("hostKey") or None
        self.proxy: Connection | None = None
        if not is_proxy and c.get("proxy"):
            self.proxy = Connection(c["proxy"], is_proxy=True)

    @property
    def endpoint(self) -> str:
        return _fmt_endpoint(self.host, self.port)


class Dialer:
    """Opens an authenticated SSH transport the way pulumi-command 1.2.1 does
    (provider/pkg/provider/remote/connection.go: SSHConfig, Dial, dialWithRetry):

      * the agent (`agentSocketPath`, else a non-empty SSH_AUTH_SOCK) is dialed once before
        anything else; failing to reach it fails the step at once, without retries;
      * with `hostKey`, only that key's type is offered as host-key algorithm (`ssh-rsa` for
        RSA keys, which OpenSSH >= 8.8 refuses) and the key must match exactly;
      * `perDialTimeout` bounds the TCP connect only (x/crypto ssh.Dial: net.DialTimeout);
        the SSH handshake and authentication have no time limit;
      * every failed attempt (TCP, handshake, host key, authentication) is retried up to
        `dialErrorLimit` times (-1: forever), waiting 100 ms, then 1.5 times longer each
        time, at most 5 s (pulumi sdk retry.Until), with the status "Dial n/limit failed:
        retrying"; then "after <limit> failed attempts: <last error>";
      * no SSH keepalive is sent;
      * with `proxy`: both configs are built first (the target's, then the proxy's, whose
        errors read "proxy: ..."), then three retried stages: "Dial proxy" (the bastion, with
        its own dialErrorLimit and perDialTimeout), "Dial from proxy" (a direct-tcpip channel
        to host:port; a refusal reads "ssh: rejected: <reason> (<bastion's message>)"),
        "Dial" (the target's handshake over that one channel, which a failure closes: later
        attempts read "ssh: handshake failed: EOF"); the last two use the target's
        dialErrorLimit and no time limit; every final error is "proxy: after n failed
        attempts: ...".
    """

    INITIAL_DELAY = 0.1
    BACKOFF = 1.5
    MAX_DELAY = 5.0

    def __init__(self, conn: Connection, log: Callable[[str], None], cancelled: threading.Event,
                 track: Callable[[paramiko.Transport], None] = lambda t: None,
                 untrack: Callable[[paramiko.Transport], None] = lambda t: None):
        self.conn = conn
        self.log = log
        self.cancelled = cancelled
        self.track = track
        self.untrack = untrack

    def dial(self) -> paramiko.Transport:
        conn = self.conn
        agents: list[paramiko.agent.AgentSSH] = []
        try:
            target = self._ssh_config(conn, agents)
            if conn.proxy is None:
                return self._dial_with_retry(
                    "Dial", conn.dial_error_limit,
                    lambda: self._attempt(self._connect_tcp(conn), conn, *target))
            return self._dial_via_proxy(conn, conn.proxy, target, agents)
        finally:
            for agent in agents:
                agent._close()

    def _ssh_config(self, conn: Connection, agents: list) -> tuple:
        """connection.go SSHConfig: the host key, the private key, then the agent, in that order."""
        expected = _parse_host_key(conn.host_key) if conn.host_key else None
        pkey = _load_private_key(conn.private_key, conn.private_key_password, conn.path) \
            if conn.private_key else None
        agent = self._agent(conn)
        if agent is not None:
            agents.append(agent)
        return pkey, expected, agent

    def _dial_via_proxy(self, conn: Connection, proxy: Connection, target: tuple,
                        agents: list) -> paramiko.Transport:
        """connection.go Dial with a proxy: every error here is "proxy: <error>"."""
        try:
            proxy_config = self._ssh_config(proxy, agents)
        except StepError as e:
            raise StepError(f"proxy: {e}") from None
        # 1. The bastion, like a host: its own limit, timeout, host key and credentials.
        bastion = self._dial_with_retry(
            "Dial proxy", proxy.dial_error_limit,
            lambda: self._attempt(self._connect_tcp(proxy), proxy, *proxy_config), prefix="proxy: ")
        ok = False
        try:
            # 2. x/crypto Client.Dial("tcp", host:port): a direct-tcpip channel from 0.0.0.0:0, no
            #    time limit, retried with the target's dialErrorLimit.
            channel = self._dial_with_retry(
                "Dial from proxy", conn.dial_error_limit,
                lambda: self._open_direct_tcpip(bastion, conn), prefix="proxy: ")
            # 3. ssh.NewClientConn over the channel, retried on the same channel; a failed attempt
            #    closes it (NewClientConn: c.Close()), so later attempts fail at once with EOF.
            closed = threading.Event()

            def over_channel() -> paramiko.Transport:
                if closed.is_set():
                    raise _RetryableDialError("ssh: handshake failed: EOF")
                try:
                    return self._attempt(channel, conn, *target)
                except _RetryableDialError:
                    closed.set()
                    raise

            transport = self._dial_with_retry("Dial", conn.dial_error_limit, over_channel, prefix="proxy: ")
            transport.via = bastion
            ok = True
            return transport
        finally:
            if not ok:
                self.untrack(bastion)
                bastion.close()

    @staticmethod
    def _open_direct_tcpip(bastion: "_Transport", conn: Connection) -> paramiko.Channel:
        bastion.last_open_failure = None
        try:
            return bastion.open_channel("direct-tcpip", dest_addr=(conn.host, conn.port),
                                        src_addr=("0.0.0.0", 0), timeout=_NO_TIMEOUT)
        except paramiko.ChannelException as e:
            # x/crypto OpenChannelError.Error: "ssh: rejected: <reason> (<server's message>)".
            code, message = bastion.last_open_failure or (e.code, "")
            reason = _REJECTION_REASONS.get(code, f"unknown reason {code}")
            raise _RetryableDialError(f"ssh: rejected: {reason} ({message})") from None
        except (paramiko.SSHException, OSError, EOFError):
            raise _RetryableDialError("EOF") from None  # the bastion's connection is gone

    def _dial_with_retry(self, what: str, limit: int, attempt: Callable[[], Any], prefix: str = "") -> Any:
        delay = self.INITIAL_DELAY
        dials = 0
        while True:
            if self.cancelled.is_set():
                raise StepError("operation cancelled")
            try:
                return attempt()
            except _RetryableDialError as e:
                if self.cancelled.is_set():
                    raise StepError("operation cancelled") from None
                dials += 1
                if limit > -1 and dials > limit:
                    raise StepError(f"{prefix}after {dials - 1} failed attempts: {e}") from None
                self.log(f"{what} {dials}/{'inf' if limit == -1 else limit} failed: retrying")
            if self.cancelled.wait(delay):
                raise StepError("operation cancelled")
            delay = min(delay * self.BACKOFF, self.MAX_DELAY)

    @staticmethod
    def _connect_tcp(conn: Connection) -> socket.socket:
        timeout = conn.per_dial_timeout if conn.per_dial_timeout > 0 else None
        try:
            infos = socket.getaddrinfo(conn.host, conn.port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise _RetryableDialError(f"dial tcp: lookup {conn.host}: no such host") from None
        last: str = f"dial tcp {conn.endpoint}: no address"
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            sock.settimeout(timeout)
            try:
                sock.connect(addr)
                return sock
            except TimeoutError:
                last = f"dial tcp {conn.endpoint}: i/o timeout"
            except OSError as e:
                last = f"dial tcp {conn.endpoint}: connect: {_errno_text(e)}"
            sock.close()
        raise _RetryableDialError(last)

    def _attempt(self, sock, conn: Connection, pkey, expected, agent) -> "_Transport":
        offer = [expected[0]] if expected is not None else None
        transport = _Transport(sock, offer)
        self.track(transport)
        ok = False
        try:
            transport.banner_timeout = _NO_TIMEOUT
            transport.handshake_timeout = _NO_TIMEOUT
            transport.auth_timeout = None
            try:
                transport.start_client(timeout=None)
            except paramiko.ssh_exception.IncompatiblePeer as e:
                peer = transport.peer_host_key_algorithms
                if "host key" in str(e) and offer is not None and peer is not None:
                    raise _RetryableDialError(
                        f"ssh: handshake failed: ssh: no common algorithm for host key; we offered: "
                        f"{_go_list(offer)}, peer offered: {_go_list(peer)}") from None
                raise _RetryableDialError(f"ssh: handshake failed: {e}") from None
            except (paramiko.SSHException, OSError, EOFError) as e:
                raise _RetryableDialError(f"ssh: handshake failed: {self._handshake_error(e)}") from None
            if expected is not None and transport.get_remote_server_key().asbytes() != expected[1]:
                raise _RetryableDialError("ssh: handshake failed: ssh: host key mismatch")
            self._authenticate(transport, conn, pkey, agent)
            ok = True
            return transport
        finally:
            if not ok:
                self.untrack(transport)
                transport.close()
                transport.packetizer.complete_handshake()  # ends paramiko's handshake timer thread

    @staticmethod
    def _handshake_error(e: BaseException) -> str:
        cause = e.__cause__ or e.__context__
        if isinstance(e, EOFError) or isinstance(cause, EOFError) or (
                "Error reading SSH protocol banner" in str(e) and not str(e).endswith("banner")):
            return "EOF"
        if isinstance(e, OSError) and e.errno:
            return f"read tcp: {_errno_text(e)}"
        return str(e) or "EOF"

    def _authenticate(self, t: paramiko.Transport, conn: Connection, pkey: paramiko.PKey | None,
                      agent: paramiko.agent.AgentSSH | None) -> None:
        """x/crypto clientAuthenticate: "none" first, then each configured method (private key,
        password, keyboard-interactive, agent) the server allows and not tried yet by name."""
        methods: list[tuple[str, Callable[[], None]]] = []
        if pkey is not None:
            methods.append(("publickey", lambda: t.auth_publickey(conn.user, pkey)))
        if conn.password is not None:
            password = conn.password
            methods.append(("password", lambda: t.auth_password(conn.user, password, fallback=False)))
            methods.append(("keyboard-interactive", lambda: t.auth_interactive(
                conn.user, lambda _t, _i, prompts: [password] * len(prompts))))
        if agent is not None:
            def with_agent() -> None:
                for key in agent.get_keys():
                    try:
                        t.auth_publickey(conn.user, key)
                        return
                    except paramiko.AuthenticationException:
                        continue
                raise paramiko.AuthenticationException("no agent key accepted")
            methods.append(("publickey", with_agent))

        tried: list[str] = []
        allowed: list[str] = []
        try:
            t.auth_none(conn.user)
        except paramiko.BadAuthenticationType as e:
            allowed = list(e.allowed_types)
        except paramiko.AuthenticationException:
            pass
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise _RetryableDialError(f"ssh: handshake failed: {self._handshake_error(e)}") from None
        if t.is_authenticated():
            return
        tried.append("none")
        for name, attempt in methods:
            if name in tried or name not in allowed:
                continue
            try:
                attempt()
            except paramiko.BadAuthenticationType as e:
                allowed = list(e.allowed_types) or allowed
            except paramiko.AuthenticationException:
                pass
            except (paramiko.SSHException, OSError, EOFError) as e:
                raise _RetryableDialError(f"ssh: handshake failed: {self._handshake_error(e)}") from None
            if t.is_authenticated():
                return
            tried.append(name)
        raise _RetryableDialError(f"ssh: handshake failed: ssh: unable to authenticate, attempted methods "
                                  f"{_go_list(tried)}, no supported methods remain")

    @staticmethod
    def _agent(conn: Connection) -> paramiko.agent.AgentSSH | None:
        """connection_unix.go: agentSocketPath, else SSH_AUTH_SOCK when non-empty; dialed once,
        before the host; an unreachable agent is the step's error (no retry)."""
        path = conn.agent_socket_path
        if path is None:
            path = os.environ.get("SSH_AUTH_SOCK") or None
        if path is None:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            raise StepError(f"dial unix {path}: connect: {_errno_text(e)}") from None
        agent = paramiko.agent.AgentSSH()
        agent._connect(sock)
        return agent


def _send_env(channel: paramiko.Channel, name: str, value: str) -> bool:
    """Sends an `env` request that wants a reply (paramiko's own one does not): True if accepted.
    A refused request closes the channel (paramiko's behaviour on a failed channel request)."""
    m = paramiko.Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(channel.remote_chanid)
    m.add_string("env")
    m.add_boolean(True)
    m.add_string(name)
    m.add_string(value)
    channel._event_pending()
    channel.transport._send_user_message(m)
    try:
        channel._wait_for_event()
        return True
    except paramiko.SSHException:
        return False


SETENV_ADVICE = ("Unable to set '{key}'. This only works if your SSH server is configured to accept "
                 "these variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the "
                 "remote host, you could prefix the command itself with the variables in the form "
                 "'VAR=value command'")


class _LineLogger:
    """Splits a byte stream into lines and hands each decoded line to `emit`."""

    def __init__(self, emit: Callable[[str], None] | None):
        self.emit = emit
        self.pending = b""

    def feed(self, data: bytes) -> None:
        if self.emit is None:
            return
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            self.emit(line.decode("utf-8", "replace").rstrip("\r"))

    def close(self) -> None:
        if self.emit is not None and self.pending:
            self.emit(self.pending.decode("utf-8", "replace").rstrip("\r"))
        self.pending = b""


class RunResult:
    def __init__(self, status: int, stdout: bytes, stderr: bytes, combined: bytes,
                 signal: tuple[str, str] | None = None):
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.combined = combined
        self.signal = signal


def _exit_error(result: RunResult) -> str:
    """The error x/crypto's Session.Wait returns (session.go wait, Waitmsg.String)."""
    status = result.status
    signal, msg = result.signal or ("", "")
    if status == -1:
        if not signal:
            return "wait: remote command exited without exit status or exit signal"
        status = 128 + _SIGNALS.get(signal, 0)
    text = f"Process exited with status {status}"
    if signal:
        text += f" from signal {signal}"
    if msg:
        text += f". Reason was: {msg}"
    return text


def run_remote(transport: paramiko.Transport, command: str, env: dict[str, str], prev_env: dict[str, str],
               stdin: str | None, on_stdout: Callable[[str], None] | None,
               on_stderr: Callable[[str], None] | None, warn: Callable[[str], None],
               error: Callable[[str], None], open_timeout: float | None) -> RunResult:
    """Runs `command` in a new session: env requests first, then exec, stdin, output capture."""
    skipped: set[str] = set()
    while True:
        channel = transport.open_session(timeout=open_timeout)
        for k, v in env.items():
            if not _send_env(channel, k, v):
                error(SETENV_ADVICE.format(key=k))
                raise StepError(f"could not set environment variable \"{k}\": ssh: setenv failed")
        refused = None
        for k, v in prev_env.items():
            if k in skipped:
                continue
            if not _send_env(channel, k, v):
                refused = k
                break
        if refused is None:
            break
        # Previous output is passed optimistically: warn, then start over without it.
        warn(SETENV_ADVICE.format(key=refused))
        skipped.add(refused)

    out, err, combined = bytearray(), bytearray(), bytearray()
    lock = threading.Lock()
    out_lines, err_lines = _LineLogger(on_stdout), _LineLogger(on_stderr)

    def reader(recv: Callable[[int], bytes], buf: bytearray, lines: _LineLogger) -> None:
        while True:
            try:
                data = recv(32768)
            except (OSError, EOFError, paramiko.SSHException):
                data = b""
            if not data:
                break
            with lock:
                buf.extend(data)
                combined.extend(data)
            lines.feed(data)
        lines.close()

    def writer() -> None:
        try:
            if stdin:
                channel.sendall(stdin.encode("utf-8"))
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the command exited without reading all of it
        finally:
            try:
                channel.shutdown_write()
            except (OSError, EOFError, paramiko.SSHException):
                pass

    channel.exec_command(command)
    threads = [threading.Thread(target=reader, args=(channel.recv, out, out_lines), daemon=True),
               threading.Thread(target=reader, args=(channel.recv_stderr, err, err_lines), daemon=True),
               threading.Thread(target=writer, daemon=True)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join()
    status = channel.recv_exit_status()
    threads[2].join(timeout=5)
    channel.close()
    return RunResult(status, bytes(out), bytes(err), bytes(combined), getattr(channel, "exit_signal", None))


# ---------------------------------------------------------------------------------
# The command resource
# ---------------------------------------------------------------------------------

def _str(v: Any) -> str | None:
    v = plain(v)
    return v if isinstance(v, str) else None


def _logging(state: dict) -> str | None:
    return _str(state.get("logging"))


def _log_stdout(logging: str | None) -> bool:
    return logging in (None, "stdout", "stdoutAndStderr")


def _log_stderr(logging: str | None) -> bool:
    return logging in (None, "stderr", "stdoutAndStderr")


class Runner:
    """Runs one step's command for a resource state (inputs + previous outputs)."""

    def __init__(self, provider: "CommandProvider", urn: str):
        self.provider = provider
        self.urn = urn

    def status(self, msg: str) -> None:
        self.provider.engine_log.status(msg, self.urn)

    def run(self, state: dict, command_key: str) -> tuple[str, str]:
        command_value = state.get(command_key)
        command = _str(command_value)
        conn = Connection(state.get("connection"))
        logging = _logging(state)
        env = {k: _str(v) or "" for k, v in (plain(state.get("environment")) or {}).items()}
        prev_env: dict[str, str] = {}
        add_prev = plain(state.get("addPreviousOutputInEnv"))
        if add_prev is None or add_prev is True:
            for key, name in (("stdout", "PULUMI_COMMAND_STDOUT"), ("stderr", "PULUMI_COMMAND_STDERR")):
                prev = _str(state.get(key))
                if prev:
                    prev_env[name] = prev
        stdin = _str(state.get("stdin"))
        urn = self.urn
        log = self.provider.engine_log

        cancelled = self.provider.cancelled
        transport = Dialer(conn, self.status, cancelled, self.provider.register,
                           self.provider.unregister).dial()
        try:
            result = run_remote(
                transport, command, env, prev_env, stdin,
                on_stdout=self.status if _log_stdout(logging) else None,
                on_stderr=self.status if _log_stderr(logging) else None,
                warn=lambda m: log.log(engine_pb2.WARNING, m, urn),
                error=lambda m: log.log(engine_pb2.ERROR, m, urn),
                open_timeout=None)
        except (paramiko.SSHException, OSError, EOFError) as e:
            if cancelled.is_set():
                raise StepError("operation cancelled") from None
            raise StepError(f"ssh: {e or type(e).__name__}") from None
        finally:
            self.provider.unregister(transport)
            if transport.via is not None:
                self.provider.unregister(transport.via)
            transport.close()
        if cancelled.is_set():
            raise StepError("operation cancelled")

        if result.status != 0 or result.signal is not None:
            # commandOutputs.go run: fmt.Errorf("%w: running %q:\n%s", err, cmd, stdouterrbuf):
            # the whole command and the combined output, whatever `logging` says.
            output = result.combined.decode("utf-8", "replace")
            raise StepError(f"{_exit_error(result)}: running {_go_quote(command)}:\n{output}")
        stdout = result.stdout.decode("utf-8", "replace").removesuffix("\n")
        stderr = result.stderr.decode("utf-8", "replace").removesuffix("\n")
        return stdout, stderr


def _streams_secret(inputs: dict) -> bool:
    """stdout/stderr are secret when the data the command consumed was secret."""
    return any(has_secret(inputs.get(k)) for k in ("create", "update", "stdin", "environment"))


def _outputs(inputs: dict, stdout: Any, stderr: Any) -> dict:
    out = dict(inputs)
    if out.get("connection") is not None and not isinstance(out["connection"], Secret):
        out["connection"] = Secret(out["connection"])
    secret = _streams_secret(inputs)
    out["stdout"] = rewrap(stdout, secret)
    out["stderr"] = rewrap(stderr, secret)
    return out


def _type_of(urn: str, given: str) -> str:
    if given:
        return given
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) >= 4 else ""


def _name_of(urn: str, given: str) -> str:
    return given or urn.split("::")[-1]


class CommandProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, engine_address: str | None):
        self.engine_log = EngineLog(engine_address)
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._transports: set[paramiko.Transport] = set()

    # --- cancellation ------------------------------------------------------------

    @property
    def cancelled(self) -> threading.Event:
        return self._cancelled

    def register(self, t: paramiko.Transport) -> None:
        with self._lock:
            self._transports.add(t)
        if self._cancelled.is_set():
            t.close()

    def unregister(self, t: paramiko.Transport) -> None:
        with self._lock:
            self._transports.discard(t)

    def Cancel(self, request, context):
        self._cancelled.set()
        with self._lock:
            transports = list(self._transports)
        for t in transports:
            t.close()
        return empty_pb2.Empty()

    # --- plugin / provider resource ---------------------------------------------

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=VERSION)

    def Handshake(self, request, context):
        if request.engine_address:
            self.engine_log.set_address(request.engine_address)
        return provider_pb2.ProviderHandshakeResponse(
            accept_secrets=True, accept_resources=False, accept_outputs=False,
            supports_autonaming_configuration=False)

    def GetSchema(self, request, context):
        if request.subpackage_name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the command provider has no subpackages")
        return provider_pb2.GetSchemaResponse(schema=json.dumps(schema()))

    def CheckConfig(self, request, context):
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request, context):
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE, hasDetailedDiff=True)

    def Configure(self, request, context):
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True,
                                              acceptResources=False, acceptOutputs=False)

    # --- resources ---------------------------------------------------------------

    def _require_type(self, context, urn: str, given: str) -> None:
        typ = _type_of(urn, given)
        if typ != COMMAND_TYPE:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"resource type '{typ}' is not supported by the offline command provider "
                          f"(only {COMMAND_TYPE})")

    def Check(self, request, context):
        self._require_type(context, request.urn, request.type)
        inputs, failures = check_inputs(struct_to_map(request.news))
        return provider_pb2.CheckResponse(
            inputs=map_to_struct(inputs),
            failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures])

    def Diff(self, request, context):
        self._require_type(context, request.urn, request.type)
        return diff(struct_to_map(request.olds), struct_to_map(request.news), request.ignoreChanges)

    def Create(self, request, context):
        self._require_type(context, request.urn, request.type)
        inputs = struct_to_map(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(properties=map_to_struct(_outputs(inputs, UNKNOWN, UNKNOWN)))
        rid = _name_of(request.urn, request.name) + _random.token_hex(4)
        stdout, stderr = "", ""
        if _str(inputs.get("create")) is not None:
            stdout, stderr = self._run(context, request.urn, {**inputs, "stdout": "", "stderr": ""}, "create")
        return provider_pb2.CreateResponse(id=rid, properties=map_to_struct(_outputs(inputs, stdout, stderr)))

    def Update(self, request, context):
        self._require_type(context, request.urn, request.type)
        olds = struct_to_map(request.olds)
        news = struct_to_map(request.news)
        for key in request.ignoreChanges:
            top = key.split(".")[0].split("[")[0]
            if top in olds:
                news[top] = olds[top]
        if request.preview:
            return provider_pb2.UpdateResponse(properties=map_to_struct(_outputs(news, UNKNOWN, UNKNOWN)))
        stdout, stderr = olds.get("stdout", ""), olds.get("stderr", "")
        key = "update" if _str(news.get("update")) is not None else (
            "create" if _str(news.get("create")) is not None else None)
        if key is not None:
            state = {**news, "stdout": stdout, "stderr": stderr}
            stdout, stderr = self._run(context, request.urn, state, key)
        else:
            stdout, stderr = plain(stdout), plain(stderr)
        return provider_pb2.UpdateResponse(properties=map_to_struct(_outputs(news, stdout, stderr)))

    def Delete(self, request, context):
        self._require_type(context, request.urn, request.type)
        state = struct_to_map(request.properties)
        if _str(state.get("delete")) is not None:
            self._run(context, request.urn, state, "delete")
        return empty_pb2.Empty()

    def Read(self, request, context):
        self._require_type(context, request.urn, request.type)
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)

    def _run(self, context, urn: str, state: dict, key: str) -> tuple[str, str]:
        try:
            return Runner(self, urn).run(state, key)
        except StepError as e:
            error = str(e)
        except Exception as e:  # unexpected: report it as the step's error rather than a bare RPC failure
            error = f"command provider internal error: {type(e).__name__}: {e}"
        finally:
            self.engine_log.flush()  # the step's output reaches the engine before its result
        context.abort(grpc.StatusCode.UNKNOWN, error)


def main() -> None:
    provider = CommandProvider(plugin_server.engine_address(sys.argv))
    plugin_server.serve(lambda server: provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server))


if __name__ == "__main__":
    main()
