"""san-refresh.sh against the REAL openssl and a systemctl whose (re)start of rke2-server
regenerates the API serving cert the way RKE2 does (stubs/rke2-server-start): only when
a wanted tls-san is missing, keeping the names it has; from scratch when it was deleted."""

from __future__ import annotations

import subprocess

import pytest

from components import render
from components.builtin_sans import builtin_sans
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
    # The order that drops a name from the supervisor certificate too (rancher/dynamiclistener
    # storage/kubernetes/controller.go: a running supervisor re-creates the deleted secret
    # kube-system/rke2-serving from its cache, and merges the secret's names at start): the
    # secret goes while the unit is stopped, between the stop and the start.
    ordered = [c for c in server.calls() if c.startswith(SERVICE_CALLS) or " delete secret " in c]
    assert ordered == ["systemctl stop rke2-server",
                       "kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml -n kube-system delete secret "
                       "rke2-serving --ignore-not-found --request-timeout=20s",
                       "systemctl start rke2-server"], ordered
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


# -- names RKE2 adds by itself (issue 10, item 4) -----------------------------------------
# Upstream's rule, written out here independently of components/builtin_sans.py: k3s
# pkg/cli/server/server.go run() appends to ControlConfig.SANs the advertise address (else
# the first node IP), the first address of the service CIDR (RKE2 default 10.43.0.0/16 ->
# 10.43.0.1), then "127.0.0.1", "::1", "localhost", the node name and every node IP;
# pkg/daemons/control/deps/deps.go (and pkg/cluster/https.go for 9345) add "kubernetes",
# "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc."+ClusterDomain
# (default cluster.local). None of them can be removed through tls-san.
NODE_NAME, NODE_IP = "rke2-server-1", "10.20.0.11"
UPSTREAM_BUILTIN = ["127.0.0.1", "::1", "localhost", NODE_NAME, NODE_IP, "10.43.0.1",
                    "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local"]


def node_config(sans: list[str]) -> dict:
    return {"node-name": NODE_NAME, "node-ip": NODE_IP, "tls-san": sans}


def set_node_sans(sb: Sandbox, sans: list[str]) -> str:
    sb.write(render.SERVER_CONFIG_PATH, render.to_yaml(node_config(sans)), 0o600)
    return "".join(render.openssl_san_form(s) + "\n" for s in sans)


def builtin_value(sans: list[str]) -> str:
    """BUILTIN_SANS as the program passes it (components/rke2_server.py)."""
    return "\n".join(builtin_sans(node_config(sans)))


@pytest.fixture
def node(sandbox: Sandbox) -> Sandbox:
    """A running server with node-name and node-ip set, first started for HOSTNAME."""
    sandbox.install_rke2()
    sandbox.add_kubectl()
    sandbox.on_start("rke2-server", (STUBS / "rke2-server-start").read_text())
    set_node_sans(sandbox, [HOSTNAME])
    assert sandbox.exec(["systemctl", "start", "rke2-server"]).returncode == 0
    sandbox.clear_calls()
    return sandbox


@pytest.mark.parametrize("name", UPSTREAM_BUILTIN)
def test_removing_a_name_rke2_adds_itself_is_a_no_op(node: Sandbox, name: str):
    sans = [HOSTNAME, name]
    res = node.run("san-refresh.sh", stdin=set_node_sans(node, sans), BUILTIN_SANS=builtin_value(sans))
    assert res.returncode == 0 and res.stdout in ("none\n", "restarted\n"), res
    form = render.openssl_san_form(name)
    assert form in cert_sans(node)

    # Removed from tls-san: nothing to do, and it settles (no retry loop on the next up).
    for _ in range(2):
        node.clear_calls()
        res = node.run("san-refresh.sh", stdin=set_node_sans(node, [HOSTNAME]),
                       BUILTIN_SANS=builtin_value([HOSTNAME]))
        assert res.returncode == 0 and res.stdout == "none\n", res
        assert service_calls(node) == [], node.calls()
        assert form in cert_sans(node)
    assert node.read(STATE) == f"DNS:{HOSTNAME}\n"


def test_dev_stack_drops_localhost_and_loopback_without_a_loop(node: Sandbox):
    """Pulumi.dev.yaml lists localhost and 127.0.0.1 as tlsSans; dropping them is a no-op."""
    dev = ["jjtestserver", "localhost", "127.0.0.1"]
    assert node.run("san-refresh.sh", stdin=set_node_sans(node, dev),
                    BUILTIN_SANS=builtin_value(dev)).returncode == 0
    node.clear_calls()
    res = node.run("san-refresh.sh", stdin=set_node_sans(node, ["jjtestserver"]),
                   BUILTIN_SANS=builtin_value(["jjtestserver"]))
    assert res.returncode == 0 and res.stdout == "none\n", res
    assert service_calls(node) == []
    assert "localhost is no longer a tls-san, but RKE2 adds it" in res.stderr


def test_a_real_stale_name_next_to_builtin_ones_is_removed(node: Sandbox):
    sans = [HOSTNAME, "localhost", "old.example.internal"]
    node.run("san-refresh.sh", stdin=set_node_sans(node, sans), BUILTIN_SANS=builtin_value(sans))
    node.clear_calls()
    res = node.run("san-refresh.sh", stdin=set_node_sans(node, [HOSTNAME]), BUILTIN_SANS=builtin_value([HOSTNAME]))
    assert res.returncode == 0 and res.stdout == "regenerated\n", res
    names = cert_sans(node)
    assert "DNS:old.example.internal" not in names
    assert {"DNS:localhost", f"DNS:{NODE_NAME}", f"IP Address:{NODE_IP}"} <= set(names)


def test_wildcard_san_is_not_globbed(node: Sandbox):
    """A wildcard tls-san must reach the comparison as written, even when a file in the
    script's working directory (/) matches it as a glob."""
    node.write("/DNS:zz.example.internal", "")
    sans = [HOSTNAME, "*.example.internal"]
    res = node.run("san-refresh.sh", stdin=set_node_sans(node, sans), BUILTIN_SANS=builtin_value(sans))
    assert res.returncode == 0 and res.stdout == "restarted\n", res
    assert "DNS:*.example.internal" in cert_sans(node)
    assert node.read(STATE) == f"DNS:{HOSTNAME}\nDNS:*.example.internal\n"
