"""san-refresh.sh against the REAL openssl and a systemctl whose (re)start of rke2-server
regenerates the API serving cert the way RKE2 does (stubs/rke2-server-start): only when
a wanted tls-san is missing, keeping the names it has; from scratch when it was deleted."""

from __future__ import annotations

import subprocess

import pytest

from components import render
from tests.scripts.sandbox import STUBS, Sandbox

CERT = "/var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt"
DYNAMIC = "/var/lib/rancher/rke2/server/tls/dynamic-cert.json"
STATE = "/var/lib/rancher/rke2/server/rke2-rancher-tls-san.list"
HOSTNAME = "rke2.example.internal"
SERVICE_CALLS = ("systemctl start", "systemctl restart", "systemctl stop")



def cert_sans(sb: Sandbox) -> list[str]:
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(sb.path(CERT))],
                         capture_output=True, text=True, check=True).stdout
    return [n.strip() for n in out.splitlines()[1].split(",")]


def set_sans(sb: Sandbox, sans: list[str]) -> str:
    """Writes config.yaml with these tls-san (as the config step would) and returns the
    san-refresh stdin for them."""
    sb.write(render.SERVER_CONFIG_PATH, render.to_yaml({"node-name": "rke2-server-1", "tls-san": sans}), 0o600)
    return "".join(render.openssl_san_form(s) + "\n" for s in sans)


def service_calls(sb: Sandbox) -> list[str]:
    return [c for c in sb.calls() if c.startswith(SERVICE_CALLS)]


@pytest.fixture
def server(sandbox: Sandbox) -> Sandbox:
    """A running server whose first start generated the serving cert for HOSTNAME."""
    sandbox.install_rke2()
    sandbox.add_kubectl()
    sandbox.on_start("rke2-server", (STUBS / "rke2-server-start").read_text())
    set_sans(sandbox, [HOSTNAME])
    res = sandbox.exec(["systemctl", "start", "rke2-server"])
    assert res.returncode == 0, res
    assert f"DNS:{HOSTNAME}" in cert_sans(sandbox)
    sandbox.clear_calls()
    return sandbox


def test_unchanged_sans_do_nothing(server: Sandbox):
    before = server.path(CERT).stat().st_mtime_ns
    res = server.run("san-refresh.sh", stdin=set_sans(server, [HOSTNAME]))
    assert res.returncode == 0 and res.stdout == "none\n", res
    assert service_calls(server) == [] and server.path(CERT).stat().st_mtime_ns == before
    assert server.read(STATE) == f"DNS:{HOSTNAME}\n"
    assert oct(server.path(STATE).stat().st_mode & 0o777) == oct(0o600)


@pytest.mark.parametrize("extra", [
    "extra.example.internal",
    "10.20.0.100",
])
def test_add_then_keep_then_remove_a_san(server: Sandbox, extra: str):
    extra_form = render.openssl_san_form(extra)
    assert server.run("san-refresh.sh", stdin=set_sans(server, [HOSTNAME])).stdout == "none\n"

    # Added: one restart, and the cert carries it.
    res = server.run("san-refresh.sh", stdin=set_sans(server, [HOSTNAME, extra]))
    assert res.returncode == 0 and res.stdout == "restarted\n", res
    assert service_calls(server) == ["systemctl restart rke2-server"]
    assert extra_form in cert_sans(server) and f"DNS:{HOSTNAME}" in cert_sans(server)

    # Same again: nothing.
    server.clear_calls()
    before = server.snapshot()
    res = server.run("san-refresh.sh", stdin=set_sans(server, [HOSTNAME, extra]))
    assert res.returncode == 0 and res.stdout == "none\n", res
    assert service_calls(server) == []
    after = server.snapshot()
    before.pop("/etc/rancher/rke2/config.yaml"), after.pop("/etc/rancher/rke2/config.yaml")  # rewritten by set_sans
    assert after == before

    # Removed: stop, certs deleted, start; the new cert lacks it.
    server.clear_calls()
    res = server.run("san-refresh.sh", stdin=set_sans(server, [HOSTNAME]))
    assert res.returncode == 0 and res.stdout == "regenerated\n", res
    assert service_calls(server) == ["systemctl stop rke2-server", "systemctl start rke2-server"]
    assert "kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml -n kube-system delete secret rke2-serving " \
           "--ignore-not-found" in server.calls()
    assert extra_form not in cert_sans(server) and f"DNS:{HOSTNAME}" in cert_sans(server)
    assert server.read(STATE) == f"DNS:{HOSTNAME}\n"

    # And settled.
    server.clear_calls()
    assert server.run("san-refresh.sh", stdin=set_sans(server, [HOSTNAME])).stdout == "none\n"
    assert service_calls(server) == []


def test_ha_stack_sans(server: Sandbox):
    """The sample HA stack's SANs (hostname, LB name, VIP) settle after one restart."""
    sans = [HOSTNAME, "rke2-lb.example.internal", "10.20.0.100"]
    assert server.run("san-refresh.sh", stdin=set_sans(server, sans)).stdout == "restarted\n"
    assert server.run("san-refresh.sh", stdin=set_sans(server, sans)).stdout == "none\n"


def test_missing_cert_fails(sandbox: Sandbox):
    res = sandbox.run("san-refresh.sh", stdin=f"DNS:{HOSTNAME}\n")
    assert res.returncode == 1 and f"{CERT} not found" in res.stderr, res
