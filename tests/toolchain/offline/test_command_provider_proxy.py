"""The offline command provider's `proxy` (bastion) connection against pulumi-command v1.2.1.

Each test cites what it models; expectations are computed here from that reading and from
the real OpenSSH servers (the bastion's own log is the witness that the channel went through
it), never from toolchain/offline/command_provider.py. Upstream sources read (tag v1.2.1):
  pulumi/pulumi-command provider/pkg/provider/remote/connection.go       (*Connection).Dial,
      connectionBase.SSHConfig, dialWithRetry, getDialErrorLimit
  pulumi/pulumi-command provider/pkg/provider/remote/proxyConnection.go  ProxyConnection.Annotate
      (defaults: user root, port 22, dialErrorLimit 10, perDialTimeout 15)
  golang/x/crypto ssh (v0.48.0) tcpip.go (*Client).Dial, dial (direct-tcpip from 0.0.0.0:0);
      connection.go OpenChannelError.Error ("ssh: rejected: %s (%s)"); channel.go
      RejectionReason.String; client.go NewClientConn (closes the conn when the handshake fails:
      "ssh: handshake failed: %w"); channel.go writePacket (io.EOF once the close was sent)
Real OpenSSH servers on loopback, as in test_command_provider.py.
"""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from tests.toolchain.offline.test_command_provider import (  # noqa: F401  (fixtures)
    SSHD, Sshd, check, engine, free_port, provider, sshd)
from tests.toolchain.offline.test_command_provider_upstream import (
    dial_statuses, fail_create, ok_create, upstream_retry_waits)

pytestmark = pytest.mark.skipif(not (os.path.exists(SSHD) and shutil.which("ssh-keygen")),
                                reason="needs OpenSSH server (/usr/sbin/sshd) and ssh-keygen")

# OpenSSH logs each direct-tcpip request at debug1 (serverloop.c server_request_direct_tcpip).
DIRECT_TCPIP = re.compile(r"server_request_direct_tcpip: originator (\S+) port (\d+), target (\S+) port (\d+)")


@pytest.fixture(scope="module")
def root_only():
    if os.geteuid() != 0:
        pytest.skip("sshd for these tests runs as root (logs in as root)")


def _server(tmp_path_factory, name: str, **kw):
    server = Sshd(tmp_path_factory.mktemp(name), log_level="DEBUG1", **kw)
    return server


@pytest.fixture(scope="module")
def bastion(root_only, tmp_path_factory):
    server = _server(tmp_path_factory, "bastion")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def closed_bastion(root_only, tmp_path_factory):
    """A bastion that allows logins but no forwarding."""
    server = _server(tmp_path_factory, "bastion-noforward", extra="AllowTcpForwarding no\n")
    yield server
    server.stop()


def forwards(server: Sshd) -> list[tuple[str, int, str, int]]:
    """The direct-tcpip requests the server's log shows so far."""
    text = (server.root / "sshd.log").read_text(errors="replace")
    return [(m[0], int(m[1]), m[2], int(m[3])) for m in DIRECT_TCPIP.findall(text)]


def via(target: Sshd, bastion_server: Sshd, target_extra: dict | None = None, **proxy_extra) -> dict:
    return target.connection(**(target_extra or {}), proxy=bastion_server.connection(**proxy_extra))


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ---------------------------------------------------------------------------------
# Check: the proxy is a ProxyConnection with its own defaults (proxyConnection.go Annotate).
# ---------------------------------------------------------------------------------

def test_check_applies_the_proxy_defaults_and_refuses_a_nested_proxy(provider):
    inputs, failures = check(provider, "px-check", {
        "connection": {"host": "10.0.0.5", "proxy": {"host": "10.0.0.1"}}, "create": "true"})
    assert failures == []
    proxy = inputs["connection"]["value"]["proxy"] if "value" in inputs["connection"] else inputs["connection"]["proxy"]
    # proxyConnection.go: SetDefault user "root", port 22, dialErrorLimit 10, perDialTimeout 15.
    assert {k: proxy[k] for k in ("user", "port", "dialErrorLimit", "perDialTimeout")} == \
        {"user": "root", "port": 22, "dialErrorLimit": 10, "perDialTimeout": 15}
    _, failures = check(provider, "px-nested", {
        "connection": {"host": "10.0.0.5", "proxy": {"host": "10.0.0.1", "proxy": {"host": "10.0.0.2"}}},
        "create": "true"})
    assert [p for p, _ in failures] == ["connection.proxy.proxy"]
    _, failures = check(provider, "px-nohost", {"connection": {"host": "10.0.0.5", "proxy": {"user": "u"}},
                                                "create": "true"})
    assert [p for p, _ in failures] == ["connection.proxy.host"]


# ---------------------------------------------------------------------------------
# The path: Dial -> proxy ssh.Dial, then proxyClient.Dial("tcp", host:port) (one direct-tcpip
# channel from 0.0.0.0 port 0), then ssh.NewClientConn over it.
# ---------------------------------------------------------------------------------

def test_command_runs_on_the_target_through_the_bastion(provider, engine, sshd, bastion):
    before = forwards(bastion)
    out = ok_create(provider, "px-ok", {
        "connection": via(sshd, bastion, {"hostKey": sshd.host_pub}, hostKey=bastion.host_pub),
        "create": "echo $SSH_CONNECTION"})
    # The command ran on the target's sshd: SSH_CONNECTION's 4th field is the server port.
    assert out["stdout"].split()[3] == str(sshd.port)
    # ...reached through one direct-tcpip channel the bastion opened, from the zero address.
    assert wait_for(lambda: len(forwards(bastion)) == len(before) + 1)
    assert forwards(bastion)[len(before):] == [("0.0.0.0", 0, "127.0.0.1", sshd.port)]
    assert dial_statuses(engine, "px-ok") == []


def test_bastion_refusing_forwarding(provider, engine, sshd, closed_bastion):
    # x/crypto: OpenChannelError "ssh: rejected: administratively prohibited (<message>)";
    # OpenSSH sends "open failed" when it refuses a channel without a reason of its own.
    # Retried with the TARGET's dialErrorLimit (connection.go Dial: tries for "Dial from proxy").
    name, limit = "px-prohibited", 2
    msg = fail_create(provider, name, {"connection": via(sshd, closed_bastion, {"dialErrorLimit": limit},
                                                         dialErrorLimit=0),
                                       "create": "true"})
    assert msg == f"proxy: after {limit} failed attempts: ssh: rejected: administratively prohibited (open failed)"
    assert dial_statuses(engine, name) == [f"Dial from proxy {i}/{limit} failed: retrying"
                                           for i in range(1, limit + 1)]


def test_target_port_closed_behind_the_bastion(provider, engine, bastion, sshd):
    port = free_port()
    msg = fail_create(provider, "px-refused", {"connection": {
        "host": "127.0.0.1", "port": port, "privateKey": sshd.client_key, "dialErrorLimit": 0,
        "proxy": bastion.connection()}, "create": "true"})
    # The bastion's connect fails: OpenSSH answers SSH2_OPEN_CONNECT_FAILED with strerror(errno).
    assert msg == "proxy: after 0 failed attempts: ssh: rejected: connect failed (Connection refused)"
    assert ("0.0.0.0", 0, "127.0.0.1", port) in forwards(bastion)


def test_bastion_host_key_is_verified_with_the_bastions_own_limit(provider, engine, sshd, bastion, tmp_path):
    # SSHConfig of the proxy: FixedHostKey of proxy.hostKey; "Dial proxy" retried proxy.dialErrorLimit times.
    marker = tmp_path / "ran"
    name = "px-bastion-hk"
    before = forwards(bastion)
    start = time.monotonic()
    msg = fail_create(provider, name, {"connection": via(sshd, bastion, {"dialErrorLimit": 3},
                                                         hostKey=bastion.other_host_pub, dialErrorLimit=1),
                                       "create": f"touch {marker}"})
    assert msg == "proxy: after 1 failed attempts: ssh: handshake failed: ssh: host key mismatch"
    assert time.monotonic() - start >= sum(upstream_retry_waits(1))
    assert dial_statuses(engine, name) == ["Dial proxy 1/1 failed: retrying"]
    assert forwards(bastion) == before and not marker.exists()


def test_target_host_key_mismatch_retries_on_the_closed_channel(provider, engine, sshd, bastion, tmp_path):
    marker = tmp_path / "ran"
    # With no retry the first (real) error shows.
    msg = fail_create(provider, "px-target-hk0", {"connection": via(
        sshd, bastion, {"hostKey": sshd.other_host_pub, "dialErrorLimit": 0}), "create": f"touch {marker}"})
    assert msg == "proxy: after 0 failed attempts: ssh: handshake failed: ssh: host key mismatch"
    # With retries: NewClientConn closed the channel after the first failure, so every retry
    # writes to a closed channel (io.EOF): the final error is EOF, and no new channel is opened.
    name, limit = "px-target-hk", 2
    before = forwards(bastion)
    msg = fail_create(provider, name, {"connection": via(
        sshd, bastion, {"hostKey": sshd.other_host_pub, "dialErrorLimit": limit}), "create": f"touch {marker}"})
    assert msg == f"proxy: after {limit} failed attempts: ssh: handshake failed: EOF"
    assert dial_statuses(engine, name) == [f"Dial {i}/{limit} failed: retrying" for i in range(1, limit + 1)]
    assert wait_for(lambda: len(forwards(bastion)) >= len(before) + 1)
    time.sleep(0.3)
    assert len(forwards(bastion)) == len(before) + 1
    assert not marker.exists()


def test_config_errors_target_first_then_proxy_prefixed(provider, sshd, bastion):
    # Dial: c.SSHConfig() (error as is), then c.Proxy.SSHConfig() ("proxy: %w"), before any dial.
    before = forwards(bastion)
    msg = fail_create(provider, "px-cfg-proxy", {"connection": via(sshd, bastion, hostKey="not-a-key"),
                                                 "create": "true"})
    assert msg == "proxy: failed to parse host key: ssh: no key found"
    msg = fail_create(provider, "px-cfg-both", {"connection": via(sshd, bastion, {"hostKey": "nope"},
                                                                  hostKey="not-a-key"),
                                                "create": "true"})
    assert msg == "failed to parse host key: ssh: no key found"
    assert forwards(bastion) == before


def test_proxy_agent_socket_is_dialed_for_the_proxy(provider, sshd, bastion, tmp_path):
    # SSHConfig of the proxy dials proxy.agentSocketPath: unreachable -> "proxy: dial unix ...".
    path = tmp_path / "no-agent.sock"
    msg = fail_create(provider, "px-agent", {"connection": via(sshd, bastion, agentSocketPath=str(path)),
                                             "create": "true"})
    assert msg == f"proxy: dial unix {path}: connect: no such file or directory"
