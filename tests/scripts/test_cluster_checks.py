"""Scripts that look at the cluster: node-ready.sh (stub kubectl), and registration-check.sh
and join-guard.sh against a REAL local TLS server on 127.0.0.1 (the scratch root shares this
machine's network) whose certificate a CA generated here signed."""

from __future__ import annotations

import hashlib
import http.server
import ssl
import threading
from pathlib import Path
from typing import Iterator

import pytest

from components import render
from tests.scripts.sandbox import Sandbox
from tests.upstream_rules import upstream_ca_hash

NODE = "rke2-agent-1"
JOIN_DROPIN = "/etc/rancher/rke2/config.yaml.d/40-rke2-rancher-join.yaml"


# -- node-ready.sh ----------------------------------------------------------------------

@pytest.fixture
def server(sandbox: Sandbox) -> Sandbox:
    sandbox.add_kubectl()
    return sandbox


def test_node_ready(server: Sandbox):
    server.write(f"/stubstate/nodes/{NODE}", "True")
    res = server.run("node-ready.sh", ACTION="wait", NODE=NODE)
    assert res.returncode == 0 and res.stdout == "ready\n", res
    before = server.snapshot()
    assert server.run("node-ready.sh", ACTION="wait", NODE=NODE).stdout == "ready\n"
    assert server.snapshot() == before
    assert not any(c.startswith(("kubectl delete", "kubectl drain", "kubectl cordon")) for c in server.calls())


@pytest.mark.parametrize("status,shown", [("False", "Ready=False"), (None, "Ready=unknown")])
def test_node_not_ready_times_out(server: Sandbox, status, shown):
    if status:
        server.write(f"/stubstate/nodes/{NODE}", status)
    res = server.run("node-ready.sh", ACTION="wait", NODE=NODE, TIMEOUT=0)
    assert res.returncode == 1 and res.stdout == "", res
    assert f"node {NODE} not Ready after 0s ({shown})" in res.stderr


def test_node_remove_drains_and_deletes(server: Sandbox):
    server.write(f"/stubstate/nodes/{NODE}", "True")
    res = server.run("node-ready.sh", ACTION="remove", NODE=NODE, TIMEOUT=300)
    assert res.returncode == 0, res
    k = "kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml"
    assert [c for c in server.calls() if not c.startswith(f"{k} get")] == [
        f"{k} cordon {NODE}",
        f"{k} drain {NODE} --ignore-daemonsets --delete-emptydir-data --force --timeout=300s",
        f"{k} delete node {NODE}",
        f"{k} -n kube-system delete secret {NODE}.node-password.rke2 --ignore-not-found",
    ]
    assert not server.exists(f"/stubstate/nodes/{NODE}")

    # Removing again (node already gone) only cleans the secret and succeeds.
    server.clear_calls()
    res = server.run("node-ready.sh", ACTION="remove", NODE=NODE, TIMEOUT=300)
    assert res.returncode == 0, res
    assert [c for c in server.calls() if "delete" in c or "drain" in c] == [
        f"{k} -n kube-system delete secret {NODE}.node-password.rke2 --ignore-not-found"]


# -- a supervisor-like TLS server -------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.routes.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def supervisor(tls_material: dict[str, Path]) -> Iterator[str]:
    """https://127.0.0.1:<port> answering /ping (pong) and /cacerts (the CA PEM), like RKE2's 9345."""
    yield from _serve(tls_material)


@pytest.fixture
def chained_supervisor(chained_tls_material: dict[str, Path]) -> Iterator[str]:
    """The same, serving a server-ca.crt that holds a chain (cluster.ca: generated)."""
    yield from _serve(chained_tls_material)


def _serve(tls_material: dict[str, Path]) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"routes": {
        "/ping": b"pong", "/cacerts": tls_material["ca"].read_bytes()}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_material["cert"], tls_material["key"])
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port_url() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{s.getsockname()[1]}"


# -- registration-check.sh --------------------------------------------------------------

def test_registration_check_verifies_with_the_cluster_ca(sandbox: Sandbox, supervisor: str, tls_material):
    before = sandbox.snapshot()
    res = sandbox.run("registration-check.sh", stdin=tls_material["ca"].read_text(),
                      REGISTRATION_URL=supervisor, TIMEOUT=10)
    assert res.returncode == 0 and res.stdout == "ok\n", res
    assert sandbox.snapshot() == before  # the CA temp file is removed


def test_registration_check_fails_with_a_wrong_ca(sandbox: Sandbox, supervisor: str, tls_material):
    res = sandbox.run("registration-check.sh", stdin=tls_material["other_ca"].read_text(),
                      REGISTRATION_URL=supervisor, TIMEOUT=0)
    assert res.returncode == 1 and res.stdout == "", res
    assert f"{supervisor}/ping did not answer within 0s" in res.stderr


def test_registration_check_fails_when_nothing_answers(sandbox: Sandbox, tls_material):
    url = closed_port_url()
    res = sandbox.run("registration-check.sh", stdin=tls_material["ca"].read_text(), REGISTRATION_URL=url, TIMEOUT=0)
    assert res.returncode == 1 and f"{url}/ping did not answer" in res.stderr, res


# -- join-guard.sh ----------------------------------------------------------------------

def _token(tls_material, ca_hash: str | None = None) -> str:
    ca_hash = ca_hash or hashlib.sha256(tls_material["ca"].read_bytes()).hexdigest()
    return render.token_yaml(f"K10{ca_hash}::server:sample-join-token-abcdef")


def test_join_guard_member_when_etcd_data_exists(sandbox: Sandbox):
    sandbox.path("/var/lib/rancher/rke2/server/db/etcd").mkdir(parents=True)
    before = sandbox.snapshot()
    res = sandbox.run("join-guard.sh", REGISTRATION_URL=closed_port_url())
    assert res.returncode == 0 and res.stdout == "member\n", res
    assert sandbox.snapshot() == before


def test_join_guard_initialises_when_nothing_answers(sandbox: Sandbox):
    sandbox.write(JOIN_DROPIN, "server: https://stale:9345\n", 0o600)
    res = sandbox.run("join-guard.sh", REGISTRATION_URL=closed_port_url())
    assert res.returncode == 0 and res.stdout == "initialise\n", res
    assert not sandbox.exists(JOIN_DROPIN)


def test_join_guard_joins_a_cluster_with_the_pinned_ca(sandbox: Sandbox, supervisor: str, tls_material):
    sandbox.write(render.TOKEN_CONFIG_PATH, _token(tls_material), 0o600)
    res = sandbox.run("join-guard.sh", REGISTRATION_URL=supervisor)
    assert res.returncode == 0 and res.stdout == "join\n", res
    assert sandbox.read(JOIN_DROPIN) == f"server: {supervisor}\n"
    assert sandbox.path(JOIN_DROPIN).stat().st_mode & 0o777 == 0o600
    before = sandbox.snapshot()
    res = sandbox.run("join-guard.sh", REGISTRATION_URL=supervisor)
    assert res.returncode == 0 and res.stdout == "join\n", res
    assert sandbox.snapshot() == before


def test_join_guard_refuses_a_cluster_with_another_ca(sandbox: Sandbox, supervisor: str, tls_material):
    sandbox.write(render.TOKEN_CONFIG_PATH, _token(tls_material, "0" * 64), 0o600)
    res = sandbox.run("join-guard.sh", REGISTRATION_URL=supervisor)
    assert res.returncode == 1 and "has a different CA" in res.stderr, res
    assert not sandbox.exists(JOIN_DROPIN)


def test_join_guard_pins_a_chained_ca_by_its_root(sandbox: Sandbox, chained_supervisor: str,
                                                 chained_tls_material):
    # k3s pkg/clientaccess/token.go hashCA: for a bundle of several certificates the token
    # pins sha256 of the root's DER, computed here by tests/upstream_rules.py with openssl.
    bundle = chained_tls_material["ca"].read_bytes()
    sandbox.write(render.TOKEN_CONFIG_PATH, _token(chained_tls_material, upstream_ca_hash(bundle)), 0o600)
    res = sandbox.run("join-guard.sh", REGISTRATION_URL=chained_supervisor)
    assert res.returncode == 0 and res.stdout == "join\n", res


def test_join_guard_refuses_a_chain_pinned_by_the_file_hash(sandbox: Sandbox, chained_supervisor: str,
                                                            chained_tls_material):
    # The whole-file hash is not what RKE2 puts in a token for a chain: a joiner refuses it.
    file_hash = hashlib.sha256(chained_tls_material["ca"].read_bytes()).hexdigest()
    sandbox.write(render.TOKEN_CONFIG_PATH, _token(chained_tls_material, file_hash), 0o600)
    res = sandbox.run("join-guard.sh", REGISTRATION_URL=chained_supervisor)
    assert res.returncode == 1 and "has a different CA" in res.stderr, res


def test_join_guard_refuses_without_a_token(sandbox: Sandbox, supervisor: str):
    res = sandbox.run("join-guard.sh", REGISTRATION_URL=supervisor)
    assert res.returncode == 1 and "would create a second cluster" in res.stderr, res
    assert not sandbox.exists(JOIN_DROPIN)
