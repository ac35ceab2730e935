"""dns-follow.sh (mobile mode) in a scratch root."""

from __future__ import annotations

import configparser

from tests.scripts.sandbox import Sandbox

PATH_UNIT = "/etc/systemd/system/rke2-dns-follow.path"
SERVICE = "/etc/systemd/system/rke2-dns-follow.service"
HELPER = "/usr/local/sbin/rke2-dns-follow"


def _unit(sandbox: Sandbox, path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(sandbox.read(path))
    return parser


def test_dns_follow_watches_the_resolvers_and_is_idempotent(sandbox: Sandbox):
    res = sandbox.run("dns-follow.sh")
    assert res.returncode == 0, res
    assert res.stdout.strip() == "watching"
    # systemd.path(5): PathChanged= activates the unit when the file is written and closed
    # (or replaced); the kubelet copies /run/systemd/resolve/resolv.conf when
    # /etc/resolv.conf names the 127.0.0.53 stub (k3s pkg/agent/config resolv.conf check).
    text = sandbox.read(PATH_UNIT)
    assert "PathChanged=/etc/resolv.conf" in text and "PathChanged=/run/systemd/resolve/resolv.conf" in text
    assert _unit(sandbox, PATH_UNIT)["Path"]["Unit"] == "rke2-dns-follow.service"
    assert _unit(sandbox, SERVICE)["Service"]["ExecStart"] == HELPER
    assert sandbox.exists("/stubstate/units/rke2-dns-follow.path.enabled")
    assert sandbox.exists("/stubstate/units/rke2-dns-follow.path.active")
    before = sandbox.snapshot()
    again = sandbox.run("dns-follow.sh")
    assert again.returncode == 0, again
    assert sandbox.snapshot() == before  # a rerun rewrites nothing


def test_dns_follow_helper_restarts_the_coredns_deployment(sandbox: Sandbox):
    # The CoreDNS Deployment RKE2's rke2-coredns chart creates is
    # kube-system/rke2-coredns-rke2-coredns (rancher/rke2 issue 2175 and others list it).
    assert sandbox.run("dns-follow.sh").returncode == 0
    sandbox.add_kubectl()
    sandbox.write("/etc/rancher/rke2/rke2.yaml", "apiVersion: v1\n", 0o600)
    sandbox.set_active("rke2-server")
    sandbox.write("/etc/resolv.conf", "nameserver 192.0.2.53\n")  # the host moved: new resolvers
    sandbox.clear_calls()
    res = sandbox.exec([HELPER])
    assert res.returncode == 0, res
    assert any(c.endswith("-n kube-system rollout restart deployment rke2-coredns-rke2-coredns")
               for c in sandbox.calls()), sandbox.calls()


def test_uninstall_removes_the_dns_follow_units(sandbox: Sandbox):
    assert sandbox.run("dns-follow.sh").returncode == 0
    sandbox.install_rke2()
    res = sandbox.run("uninstall.sh", ACTION="uninstall", RETAIN=0)
    assert res.returncode == 0, res
    assert not any(sandbox.exists(p) for p in (PATH_UNIT, SERVICE, HELPER))
    assert "systemctl disable --now rke2-dns-follow.path" in sandbox.calls()
