"""Every config error path: each test changes one key of the compliant dev stack."""

import pytest

from components.config import ConfigError, parse_config
from tests.stacks import DELETE, load_stack, with_changes

RAW, SECRETS = load_stack("dev")
HA_RAW, HA_SECRETS = load_stack("ha")


def test_dev_stack_is_valid():
    cfg = parse_config(RAW, SECRETS)
    assert cfg.cluster.hostname == "jjtestserver"
    assert cfg.cluster.mobile is True
    assert cfg.rancher.replicas == 1
    assert cfg.rancher.hostname == "jjtestserver"
    assert cfg.ssh.user == "root" and cfg.ssh.port == 22


def test_ha_stack_is_valid():
    cfg = parse_config(HA_RAW, HA_SECRETS)
    assert [s.name for s in cfg.servers] == ["rke2-server-1", "rke2-server-2", "rke2-server-3"]
    assert cfg.registration_host == "10.20.0.100"
    assert cfg.token_is_secret


def test_secrets_are_not_in_repr():
    cfg = parse_config(HA_RAW, HA_SECRETS)
    text = repr(cfg)
    assert "sample-join-token" not in text and "sample-bootstrap" not in text and "sample-key" not in text


@pytest.mark.parametrize("changes, key, words", [
    ({"cluster__hostname": "JJ_TestServer"}, "cluster.hostname", "DNS-1123"),
    ({"cluster__hostname": DELETE}, "cluster.hostname", "required"),
    ({"cluster__hostname": "jj;reboot"}, "cluster.hostname", "metacharacters"),
    ({"cluster__hostname": "a" * 64}, "cluster.hostname", "DNS-1123"),
    ({"cluster__version": "stable"}, "cluster.version", "vX.Y.Z+rke2rN"),
    ({"cluster__version": "v1.33.5"}, "cluster.version", "vX.Y.Z+rke2rN"),
    ({"cluster__tlsSans": ["ok.example", "bad name"]}, "cluster.tlsSans[1]", "metacharacters"),
    ({"cluster__tlsSans": ["$(id)"]}, "cluster.tlsSans[0]", "metacharacters"),
    ({"cluster__tlsSans": ["*.*.example"]}, "cluster.tlsSans[0]", "metacharacters"),
    ({"cluster__tlsSans": ["under_score"]}, "cluster.tlsSans[0]", "DNS-1123"),
    ({"cluster__tlsSans": "jjtestserver"}, "cluster.tlsSans", "a list"),
    ({"cluster__clusterCidr": "10.42.0.1/16"}, "cluster.clusterCidr", "CIDR"),
    ({"cluster__serviceCidr": "nonsense"}, "cluster.serviceCidr", "CIDR"),
    ({"cluster__clusterDns": "10.43.0.400"}, "cluster.clusterDns", "IPv4 or IPv6"),
    ({"cluster__serviceCidr": "10.43.0.0/16", "cluster__clusterDns": "10.44.0.10"}, "cluster.clusterDns",
     "inside cluster.serviceCidr"),
    ({"cluster__cni": "weave"}, "cluster.cni", "canal, calico, cilium, flannel, none"),
    ({"cluster__writeKubeconfigMode": "644x"}, "cluster.writeKubeconfigMode", "octal"),
    ({"cluster__mobile": "yes"}, "cluster.mobile", "true or false"),
    ({"cluster__mobileNodeIp": "10.255.255"}, "cluster.mobileNodeIp", "IPv4 or IPv6"),
    ({"cluster__mobileInterface": "bridge"}, "cluster.mobileInterface", "auto, dummy, loopback"),
    ({"cluster__extraConfig": {"token": "x"}}, "cluster.extraConfig.token", "manages it"),
    ({"cluster__extraConfig": {"tls-san+": ["x"]}}, "cluster.extraConfig.tls-san+", "manages it"),
    ({"cluster__extraConfig": ["a"]}, "cluster.extraConfig", "object"),
    ({"cluster__installScriptUrl": "https://x/$(id)"}, "cluster.installScriptUrl", "URL"),
    ({"cluster__artifactDir": "relative/dir"}, "cluster.artifactDir", "absolute path"),
    ({"cluster__readyTimeoutSeconds": 5}, "cluster.readyTimeoutSeconds", "from 30 to 7200"),
    ({"cluster__retainOnDestroy": 1}, "cluster.retainOnDestroy", "true or false"),
    ({"cluster__tlsSan": ["x"]}, "cluster.tlsSan", "not a known key"),
    ({"servers": []}, "servers", "at least one"),
    ({"servers": DELETE}, "servers", "at least one"),
    ({"servers": [{"name": "jjtestserver"}]}, "servers[0].address", "required"),
    ({"servers": [{"name": "Bad Name", "address": "h"}]}, "servers[0].name", "metacharacters"),
    ({"servers": [{"name": "n1", "address": "h;rm"}]}, "servers[0].address", "metacharacters"),
    ({"servers": [{"name": "n1", "address": "h", "labels": ["k"]}]}, "servers[0].labels[0]", "key=value"),
    ({"servers": [{"name": "n1", "address": "h", "labels": ["k=v|x"]}]}, "servers[0].labels[0]", "metacharacters"),
    ({"servers": [{"name": "n1", "address": "h", "taints": ["k=v:Sometimes"]}]}, "servers[0].taints[0]",
     "NoSchedule, PreferNoSchedule, NoExecute"),
    ({"servers": [{"name": "n1", "address": "h", "nodeIp": "1.2.3"}]}, "servers[0].nodeIp", "IPv4 or IPv6"),
    ({"servers": [{"name": "n1", "address": "h", "role": "x"}]}, "servers[0].role", "not a known key"),
    ({"agents": [{"name": "jjtestserver", "address": "a"}]}, "agents[0].name", "unique node name"),
    ({"agents": {"name": "a"}}, "agents", "a list"),
    ({"ssh__port": 70000}, "ssh.port", "from 1 to 65535"),
    ({"ssh__user": "root; id"}, "ssh.user", "Unix user"),
    ({"ssh__privateKeyPath": "relative"}, "ssh.privateKeyPath", "absolute path"),
    ({"ssh__privateKeyPath": "/k"}, "ssh.privateKey", "not both"),
    ({"ssh__hostKeys": {"jjtestserver": "not a key"}}, "ssh.hostKeys.jjtestserver", "OpenSSH public key"),
    ({"certManager__version": "1.16"}, "certManager.version", "cert-manager version"),
    ({"certManager__enabled": False}, "certManager.enabled", "needs cert-manager"),
    ({"rancher__version": "2.13"}, "rancher.version", "Rancher chart version"),
    ({"rancher__version": "2.7.9"}, "rancher.version", "no Kubernetes bound is recorded"),
    ({"rancher__version": "2.11.3"}, "rancher.version", "requires Kubernetes < 1.33"),
    ({"rancher__hostname": "10.0.0.1x!"}, "rancher.hostname", "metacharacters"),
    ({"rancher__replicas": 0}, "rancher.replicas", "from 1 to 100"),
    ({"rancher__replicas": "three"}, "rancher.replicas", "from 1 to 100"),
    ({"rancher__bootstrapPassword": DELETE}, "rancher.bootstrapPassword", "required"),
    ({"rancher__bootstrapPassword": ""}, "rancher.bootstrapPassword", "non-empty string"),
    ({"rancher__tlsSource": "vault"}, "rancher.tlsSource", "rancher, letsEncrypt, secret"),
    ({"rancher__tlsSource": "letsEncrypt"}, "rancher.letsEncryptEmail", "required when"),
    ({"rancher__letsEncryptEmail": "nope"}, "rancher.letsEncryptEmail", "e-mail"),
    ({"rancher__repository": "ftp://x"}, "rancher.repository", "URL"),
    ({"token": ""}, "token", "non-empty"),
    ({"bogus": 1}, "bogus", "not a known key"),
    ({"cluster": "jjtestserver"}, "cluster", "an object"),
])
def test_config_errors_name_key_value_and_allowed(changes, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(RAW, **changes), SECRETS)
    message = str(err.value)
    assert err.value.key == key, message
    assert message.startswith(f"rke2-rancher:{key}: "), message
    assert words in message, message


def test_secret_values_are_never_echoed_in_errors():
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(RAW, ssh__privateKeyPath="/k"), SECRETS)
    assert "sample-key" not in str(err.value)
    assert "[secret]" in str(err.value)


@pytest.mark.parametrize("changes, key, words", [
    ({"loadBalancer": DELETE}, "loadBalancer", "required with more than one server"),
    ({"cluster__mobile": True}, "cluster.mobile", "single server only"),
    ({"loadBalancer__vip": "10.20.0"}, "loadBalancer.vip", "IPv4 or IPv6"),
    ({"loadBalancer__address": "lb|x"}, "loadBalancer.address", "metacharacters"),
    ({"loadBalancer__vipInterface": "eth0;x"}, "loadBalancer.vipInterface", "interface name"),
])
def test_ha_config_errors(changes, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(HA_RAW, **changes), HA_SECRETS)
    assert err.value.key == key and words in str(err.value), str(err.value)


def test_mobile_rejects_pinned_node_ip():
    raw = with_changes(RAW, servers=[{"name": "jjtestserver", "address": "jjtestserver", "nodeIp": "10.0.0.5"}])
    with pytest.raises(ConfigError, match="servers\\[0\\].nodeIp"):
        parse_config(raw, SECRETS)


def test_defaults():
    raw = with_changes(RAW, cluster__tlsSans=DELETE, rancher__replicas=DELETE, rancher__hostname=DELETE,
                       certManager__version=DELETE, ssh__user=DELETE)
    cfg = parse_config(raw, SECRETS, pins={"CERT_MANAGER_VERSION": "v1.16.5", "RANCHER_VERSION": "2.12.3"})
    assert cfg.cluster.tls_sans == ("jjtestserver",)
    assert cfg.rancher.replicas == 1 and cfg.rancher.hostname == "jjtestserver"
    assert cfg.cert_manager.version == "v1.16.5"
    assert cfg.cluster.cni == "canal" and cfg.cluster.write_kubeconfig_mode == "0600"
    assert cfg.cluster.install_script_url == "https://get.rke2.io"
    assert cfg.ssh.user == "root"


def test_default_replicas_follow_schedulable_nodes():
    cfg = parse_config(with_changes(HA_RAW, rancher__replicas=DELETE), HA_SECRETS)
    assert cfg.schedulable_nodes == 5 and cfg.rancher.replicas == 3
    tainted = [{**s, "taints": ["node-role.kubernetes.io/control-plane=true:NoSchedule"]}
               for s in HA_RAW["servers"]]
    cfg = parse_config(with_changes(HA_RAW, servers=tainted, rancher__replicas=DELETE), HA_SECRETS)
    assert cfg.schedulable_nodes == 2 and cfg.rancher.replicas == 2


def test_wildcard_san_is_left_to_the_policy():
    cfg = parse_config(with_changes(RAW, cluster__tlsSans=["*.example.com"]), SECRETS)
    assert cfg.cluster.tls_sans == ("*.example.com",)


def test_ip_literals_are_normalised():
    cfg = parse_config(with_changes(RAW, cluster__tlsSans=["::0001"]), SECRETS)
    assert cfg.cluster.tls_sans == ("::1",)


def test_token_in_plaintext_config_is_recorded_as_such():
    cfg = parse_config(with_changes(RAW, token="plain-token-value"), SECRETS)
    assert cfg.token == "plain-token-value" and not cfg.token_is_secret


def test_string_booleans_from_the_cli_are_accepted():
    cfg = parse_config(with_changes(RAW, cluster__mobile="true"), SECRETS)
    assert cfg.cluster.mobile is True
