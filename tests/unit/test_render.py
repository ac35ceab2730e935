"""Rendering: config.yaml against golden files, SANs, kubeconfig, LB configs."""

import os
from pathlib import Path

import pytest
import yaml

from components import render
from components.config import parse_config
from tests.stacks import load_stack, with_changes

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
DEV = parse_config(*load_stack("dev"))
HA = parse_config(*load_stack("ha"))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 and review the file"
    assert text == path.read_text(), f"{name} differs from the golden file (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("golden, text", [
    ("dev-server-config.yaml", lambda: render.to_yaml(render.server_config(DEV, 0))),
    ("ha-server-1-config.yaml", lambda: render.to_yaml(render.server_config(HA, 0))),
    ("ha-server-2-config.yaml", lambda: render.to_yaml(render.server_config(HA, 1))),
    ("ha-agent-1-config.yaml", lambda: render.to_yaml(render.agent_config(HA, 0))),
    ("ha-haproxy.cfg", lambda: render.haproxy_cfg(HA)),
    ("ha-keepalived.conf", lambda: render.keepalived_conf(HA)),
])
def test_golden(golden, text):
    check_golden(golden, text())


def test_mobile_pins_node_ip_and_advertise_address():
    cfg = render.server_config(DEV, 0)
    assert cfg["node-ip"] == cfg["advertise-address"] == "10.255.255.1"
    assert "server" not in cfg and "token" not in cfg


def test_keys_only_when_set():
    cfg = render.server_config(DEV, 0)
    for key in ("cluster-cidr", "service-cidr", "cluster-dns", "disable", "node-label", "node-taint"):
        assert key not in cfg
    raw, secrets = load_stack("dev")
    cfg = render.server_config(parse_config(with_changes(raw, cluster__clusterCidr="10.50.0.0/16",
                                                         cluster__disable=["rke2-metrics-server"]), secrets), 0)
    assert cfg["cluster-cidr"] == "10.50.0.0/16" and cfg["disable"] == ["rke2-metrics-server"]


def test_joiners_use_the_registration_address():
    assert render.server_config(HA, 1)["server"] == "https://10.20.0.100:9345"
    assert render.agent_config(HA, 1)["server"] == "https://10.20.0.100:9345"
    assert "server" not in render.server_config(HA, 0)


def test_sans_include_hostname_lb_and_vip_without_duplicates():
    assert render.tls_sans(HA) == ["rke2.example.internal", "rke2-lb.example.internal", "10.20.0.100"]
    assert render.tls_sans(DEV) == ["jjtestserver", "localhost", "127.0.0.1"]
    raw, secrets = load_stack("dev")
    cfg = parse_config(with_changes(raw, cluster__tlsSans=["extra.example", "jjtestserver", "extra.example"]), secrets)
    assert render.tls_sans(cfg) == ["jjtestserver", "extra.example"]


def test_extra_config_is_merged():
    raw, secrets = load_stack("dev")
    cfg = parse_config(with_changes(raw, cluster__extraConfig={"profile": "cis"}), secrets)
    assert render.server_config(cfg, 0)["profile"] == "cis"


@pytest.mark.parametrize("name, form", [
    ("jjtestserver", "DNS:jjtestserver"),
    ("127.0.0.1", "IP Address:127.0.0.1"),
    ("::1", "IP Address:0:0:0:0:0:0:0:1"),
    ("fd00::a", "IP Address:FD00:0:0:0:0:0:0:A"),
])
def test_openssl_san_form(name, form):
    assert render.openssl_san_form(name) == form


def test_restart_fingerprint_ignores_sans_only():
    raw, secrets = load_stack("dev")
    base = render.restart_fingerprint(render.server_config(DEV, 0))
    more_sans = parse_config(with_changes(raw, cluster__tlsSans=["jjtestserver", "new.example"]), secrets)
    assert render.restart_fingerprint(render.server_config(more_sans, 0)) == base
    other_cni = parse_config(with_changes(raw, cluster__cni="calico"), secrets)
    assert render.restart_fingerprint(render.server_config(other_cni, 0)) != base


def test_kubeconfig_points_at_the_hostname():
    from tests.harness import FAKE_KUBECONFIG

    out = yaml.safe_load(render.rewrite_kubeconfig(FAKE_KUBECONFIG, "https://jjtestserver:6443", "jjtestserver"))
    assert out["clusters"][0]["cluster"]["server"] == "https://jjtestserver:6443"
    assert out["current-context"] == "jjtestserver"
    assert out["contexts"][0]["context"] == {"cluster": "jjtestserver", "user": "jjtestserver"}
    assert render.kubeconfig_ca_pem(FAKE_KUBECONFIG).startswith("-----BEGIN CERTIFICATE-----")


def test_kubeconfig_without_clusters_is_an_error():
    with pytest.raises(ValueError, match="no clusters"):
        render.rewrite_kubeconfig("apiVersion: v1\n", "https://x:6443", "x")


def test_token_yaml_quotes_the_token():
    assert yaml.safe_load(render.token_yaml("K10abc::server:p@ss: #x")) == {"token": "K10abc::server:p@ss: #x"}


def test_haproxy_backends_are_all_servers():
    cfg = render.haproxy_cfg(HA)
    for port in (6443, 9345):
        for i, ip in enumerate(("10.20.0.11", "10.20.0.12", "10.20.0.13"), 1):
            assert f"server rke2-server-{i} {ip}:{port} check" in cfg


def test_ipv6_registration_and_lb_addresses_are_bracketed():
    raw, secrets = load_stack("ha")
    cfg = parse_config(with_changes(raw, loadBalancer__vip="FD00:0::100",
                                    servers=[{"name": f"s{i}", "address": f"fd00::1{i}"} for i in range(3)],
                                    agents=[]), secrets)
    assert render.registration_url(cfg) == "https://[fd00::100]:9345"
    assert render.server_config(cfg, 1)["server"] == "https://[fd00::100]:9345"
    assert "    server s0 [fd00::10]:6443 check" in render.haproxy_cfg(cfg)
    assert "        fd00::100\n" in render.keepalived_conf(cfg)


def test_ingress_ports_follow_the_bundled_ingress():
    raw, secrets = load_stack("ha")
    tainted = [{**s, "taints": ["node-role.kubernetes.io/control-plane=true:NoSchedule"]} for s in raw["servers"]]
    cfg = parse_config(with_changes(raw, servers=tainted), secrets)
    assert [n.name for n in render.ingress_nodes(cfg)] == ["rke2-agent-1", "rke2-agent-2"]
    assert "    server rke2-server-1 10.20.0.11:443 check" not in render.haproxy_cfg(cfg)
    for disabled in ({"cluster__disable": ["rke2-ingress-nginx"]},
                     {"cluster__extraConfig": {"ingress-controller": "none"}}):
        cfg = parse_config(with_changes(raw, **disabled), secrets)
        assert render.ingress_nodes(cfg) == [] and "bind :443" not in render.haproxy_cfg(cfg)


def test_agent_config_node_wide_keys_and_agent_extra_config():
    raw, secrets = load_stack("ha")
    cfg = parse_config(with_changes(raw, cluster__extraConfig={"kubelet-arg+": ["a=1"], "selinux": True,
                                                              "etcd-snapshot-compress": True},
                                    cluster__agentExtraConfig={"kubelet-arg": ["b=2"]}), secrets)
    agent = render.agent_config(cfg, 0)
    assert agent["selinux"] is True and agent["kubelet-arg"] == ["b=2"]
    assert "kubelet-arg+" not in agent and "etcd-snapshot-compress" not in agent
    assert render.server_config(cfg, 0)["kubelet-arg+"] == ["a=1"]


def test_etcd_s3_drop_in_holds_only_credentials():
    from components.config import EtcdS3Credentials

    text = render.etcd_s3_yaml(EtcdS3Credentials("AK", "S'K: #x"))
    assert yaml.safe_load(text) == {"etcd-s3-access-key": "AK", "etcd-s3-secret-key": "S'K: #x"}


def test_haproxy_resolves_dns_name_backends_at_run_time():
    """HAProxy refuses to start when a server's name does not resolve at parse time
    (found by tests/unit/test_hostile_config.py); names go through the system resolvers."""
    raw, secrets = load_stack("ha")
    servers = [{**s} for s in raw["servers"]]
    servers[1]["address"] = "rke2-server-2.example.internal"
    cfg = render.haproxy_cfg(parse_config(with_changes(raw, servers=servers), secrets))
    assert "resolvers system\n    parse-resolv-conf\n" in cfg
    assert "    default-server inter 2s fall 3 rise 2 init-addr libc,none resolvers system" in cfg
    assert "resolvers" not in render.haproxy_cfg(HA)
