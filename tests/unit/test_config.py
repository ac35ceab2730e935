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
    ({"certManager__repository": "https://charts.example/$(id)"}, "certManager.repository", "URL"),
    ({"certManager__repositoryCaFile": "ca.pem"}, "certManager.repositoryCaFile", "absolute path"),
    ({"rancher__repositoryCaFile": "/ca;reboot"}, "rancher.repositoryCaFile", "metacharacters"),
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


# -- issue 11: hostile config ------------------------------------------------------------

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForTests0000000000000000000000"
# A syntactically real RSA public key blob prefix: "\0\0\0\7ssh-rsa" + exponent.
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDw4o6gJy8UtmIbkcpnkO3Kwc4qsEnSctNMHrLBKF0EMKZ0sLqvl"


@pytest.mark.parametrize("changes, key, words", [
    # Zone ids: everything after % used to be accepted (quotes, $(), newlines).
    ({"servers": [{"name": "n1", "address": "fe80::1%eth0"}]}, "servers[0].address", "without a zone id"),
    ({"cluster__mobileNodeIp": "fd00::1%x'$(id)'"}, "cluster.mobileNodeIp", "without a zone id"),
    ({"cluster__clusterDns": "10.43.0.10%0"}, "cluster.clusterDns", "IPv4 or IPv6"),
    ({"cluster__clusterCidr": "fd00::%eth0/64"}, "cluster.clusterCidr", "no zone id"),
    ({"cluster__tlsSans": ["fe80::1%eth0"]}, "cluster.tlsSans[0]", "without a zone id"),
    # A trailing newline passed every re.match(...$) check.
    ({"ssh__user": "root\n"}, "ssh.user", "control characters"),
    ({"cluster__version": "v1.33.5+rke2r1\n"}, "cluster.version", "control characters"),
    ({"cluster__writeKubeconfigMode": "0600\n"}, "cluster.writeKubeconfigMode", "control characters"),
    ({"cluster__certificateRotation": "x\n"}, "cluster.certificateRotation", "control characters"),
    ({"rancher__letsEncryptEmail": "a@b.example\n"}, "rancher.letsEncryptEmail", "control characters"),
    ({"cluster__installScriptUrl": "https://get.rke2.io\n"}, "cluster.installScriptUrl", "control characters"),
    ({"cluster__hostname": "jjtestserver\x00"}, "cluster.hostname", "NUL"),
    # Unicode digits match \d: refused.
    ({"cluster__version": "v1.33.\u0665+rke2r1"}, "cluster.version", "vX.Y.Z+rke2rN"),
    # Installer: https (or file://) only, no glob syntax for curl.
    ({"cluster__installScriptUrl": "http://get.rke2.io"}, "cluster.installScriptUrl", "https://"),
    ({"cluster__installScriptUrl": "https://get.rke2.io/{a,b}"}, "cluster.installScriptUrl", "glob"),
    ({"cluster__installScriptUrl": "https://user:pw@get.rke2.io/"}, "cluster.installScriptUrl", "https://"),
    # Networks.
    ({"cluster__clusterCidr": "10.43.0.0/16"}, "cluster.clusterCidr", "does not overlap"),
    ({"cluster__clusterCidr": "10.40.0.0/14"}, "cluster.clusterCidr", "does not overlap"),
    ({"cluster__serviceCidr": "10.50.0.0/16", "cluster__clusterCidr": "10.50.0.0/16"}, "cluster.serviceCidr",
     "does not overlap"),
    ({"cluster__clusterDns": "10.44.0.10"}, "cluster.clusterDns", "RKE2's default service range 10.43.0.0/16"),
    ({"cluster__clusterDns": "10.43.0.0"}, "cluster.clusterDns", "host address"),
    ({"cluster__mobileNodeIp": "127.0.0.1"}, "cluster.mobileNodeIp", "non-loopback"),
    ({"cluster__mobileNodeIp": "::1"}, "cluster.mobileNodeIp", "non-loopback"),
    ({"cluster__mobileNodeIp": "0.0.0.0"}, "cluster.mobileNodeIp", "unicast"),
    ({"cluster__mobileNodeIp": "::ffff:10.0.0.1"}, "cluster.mobileNodeIp", "plain IPv4 form 10.0.0.1"),
    # extraConfig: keys the program owns and credentials, naming the key to use instead.
    ({"cluster__extraConfig": {"data-dir": "/x"}}, "cluster.extraConfig.data-dir", "manages it"),
    ({"cluster__extraConfig": {"write-kubeconfig": "/x"}}, "cluster.extraConfig.write-kubeconfig", "manages it"),
    ({"cluster__extraConfig": {"supervisor-port": 1}}, "cluster.extraConfig.supervisor-port", "manages it"),
    ({"cluster__extraConfig": {"https-listen-port": 1}}, "cluster.extraConfig.https-listen-port", "manages it"),
    ({"cluster__extraConfig": {"cluster-reset": True}}, "cluster.extraConfig.cluster-reset", "manages it"),
    ({"cluster__extraConfig": {"server": "https://x:9345"}}, "cluster.extraConfig.server", "use loadBalancer"),
    ({"cluster__extraConfig": {"agent-token": "s3cr3t"}}, "cluster.extraConfig.agent-token", "use token"),
    ({"cluster__extraConfig": {"etcd-s3-secret-key": "s3cr3t"}}, "cluster.extraConfig.etcd-s3-secret-key",
     "cluster.etcdS3.secretKey"),
    ({"cluster__extraConfig": {"etcd-s3-access-key": "AKIA"}}, "cluster.extraConfig.etcd-s3-access-key",
     "cluster.etcdS3.accessKey"),
    ({"cluster__extraConfig": {"etcd-s3-secret-keys": "s3cr3t"}}, "cluster.extraConfig.etcd-s3-secret-keys",
     "looks like a credential"),
    ({"cluster__extraConfig": {"kubelet-arg": {"a": 1}}}, "cluster.extraConfig.kubelet-arg", "no objects"),
    ({"cluster__extraConfig": {"Bad Key": 1}}, 'cluster.extraConfig."Bad Key"', "RKE2 config.yaml key"),
    ({"cluster__agentExtraConfig": {"token": "x"}}, "cluster.agentExtraConfig.token", "manages it"),
    ({"cluster__etcdS3": {"accessKey": "AKIA"}}, "cluster.etcdS3.secretKey", "required"),
    ({"cluster__etcdS3": {"accessKey": "a", "secretKey": "b", "bucket": "c"}}, "cluster.etcdS3.bucket",
     "not a known key"),
    # Mobile mode with agents: they would be told to reach the unroutable stable address.
    ({"agents": [{"name": "a1", "address": "10.0.0.21"}]}, "cluster.mobile", "without agents"),
    # Host keys.
    ({"ssh__hostKeys": {"jjtestserve": ED25519}}, "ssh.hostKeys.jjtestserve", "matches no host"),
    ({"ssh__hostKeys": {"jjtestserver": RSA}}, "ssh.hostKeys.jjtestserver", "OpenSSH >= 8.8"),
    ({"ssh__hostKeys": {"jjtestserver": "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB"}}, "ssh.hostKeys.jjtestserver",
     "whose data is a ssh-ed25519 key"),
    ({"ssh__hostKeys": {"jjtestserver": ED25519 + "\nssh-ed25519 AAAA"}}, "ssh.hostKeys.jjtestserver",
     "control characters"),
    ({"ssh__hostKeys": "jjtestserver"}, "ssh.hostKeys", "not a string"),
    # Sections that are not objects, huge lists.
    ({"rancher": "pw"}, "rancher", "an object"),
    ({"servers": "jjtestserver"}, "servers", "a list"),
    ({"servers": ["jjtestserver"]}, "servers[0]", "an object"),
    ({"cluster__tlsSans": ["a.example"] * 300}, "cluster.tlsSans", "at most 256"),
])
def test_hostile_values_are_refused(changes, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(RAW, **changes), SECRETS)
    message = str(err.value)
    assert err.value.key == key, message
    assert message.startswith(f"rke2-rancher:{key}: "), message
    assert words in message, message
    assert "\n" not in message, message


@pytest.mark.parametrize("changes, key, words", [
    ({"servers": [{"name": "a", "address": "10.20.0.11"}, {"name": "b", "address": "10.20.0.11"},
                  {"name": "c", "address": "10.20.0.13"}]}, "servers[1].address", "servers[0].address has it"),
    ({"servers": [{"name": "a", "address": "fd00::11"}, {"name": "b", "address": "fd00:0::11"},
                  {"name": "c", "address": "fd00::13"}]}, "servers[1].address", "servers[0].address has it"),
    ({"agents": [{"name": "a1", "address": "10.20.0.12"}]}, "agents[0].address", "servers[1].address has it"),
    ({"agents": [{"name": "a1", "address": "10.20.0.21", "nodeIp": "10.20.0.13"}]}, "agents[0].nodeIp",
     "servers[2].address has it"),
    ({"loadBalancer__address": "10.20.0.11"}, "loadBalancer.address", "servers[0].address has it"),
    ({"loadBalancer__address": "10.20.0.100"}, "loadBalancer.vip", "loadBalancer.address has it"),
    ({"loadBalancer__vip": "10.20.0.21"}, "loadBalancer.vip", "agents[0].address has it"),
    ({"loadBalancer__vip": "127.0.0.1"}, "loadBalancer.vip", "not loopback"),
    ({"loadBalancer__vip": "fd00::1%eth0"}, "loadBalancer.vip", "zone id"),
    ({"loadBalancer__vipInterface": "eth0\n"}, "loadBalancer.vipInterface", "control characters"),
    ({"loadBalancer__name": "rke2-server-1"}, "loadBalancer.name", "no node uses"),
    ({"cluster__mobile": True, "loadBalancer": DELETE, "servers": [{"name": "s", "address": "10.0.0.1"}]},
     "cluster.mobile", "without agents"),
    ({"ssh__hostKeys": {"10.20.0.11": ED25519, "10.20.0.011": ED25519}}, "ssh.hostKeys.10.20.0.011", "valid IP address"),
    ({"ssh__hostKeys": {"10.20.0.11": ED25519, "::ffff:10.20.0.11": ED25519}}, "ssh.hostKeys.::ffff:10.20.0.11",
     "plain IPv4 form"),
])
def test_duplicate_and_overlapping_addresses(changes, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(HA_RAW, **changes), HA_SECRETS - {"rke2-rancher:ssh"})
    assert err.value.key == key and words in str(err.value), str(err.value)


def test_addresses_are_normalised_once_and_host_keys_follow():
    raw = with_changes(HA_RAW, servers=[{"name": "a", "address": "FD00:0::11"}, {"name": "b", "address": "fd00::12"},
                                         {"name": "c", "address": "fd00::13", "nodeIp": "FD00::0013"}],
                       loadBalancer__vip="fd00:0:0::100", ssh__hostKeys={"fd00:0::11": ED25519})
    cfg = parse_config(raw, HA_SECRETS)
    assert [s.address for s in cfg.servers] == ["fd00::11", "fd00::12", "fd00::13"]
    assert cfg.servers[2].node_ip == "fd00::13" and cfg.load_balancer.vip == "fd00::100"
    assert dict(cfg.ssh.host_keys) == {"fd00::11": ED25519}
    with pytest.raises(ConfigError, match="one entry per host"):
        parse_config(with_changes(raw, ssh__hostKeys={"fd00::11": ED25519, "FD00:0::11": ED25519}), HA_SECRETS)


SECRET = "hunter2-very-secret-value"


@pytest.mark.parametrize("changes", [
    {"ssh__privatekey": SECRET},                        # misspelt secret key
    {"rancher__bootstrapPasword": SECRET},
    {"rancher": SECRET},                                # section given as a plain string
    {"ssh": SECRET + "\n-----END-----"},
    {"tokn": SECRET},                                   # misspelt top-level secret
    {"cluster__etcdS3": SECRET},
    {"cluster__etcdS3": {"accessKey": "a", "secretKey": "b", "secretkey": SECRET}},
    {"cluster__extraConfig": {"etcd-s3-secret-key": SECRET}},
    {"cluster__extraConfig": {"datastore-endpoint": f"postgres://u:{SECRET}@db"}},
    # Credentials inside URLs: refused, and the error never shows them (review finding 3, 4).
    {"cluster__extraConfig": {"etcd-s3-proxy": f"http://u:{SECRET}@proxy.example:3128"}},
    {"cluster__extraConfig": {"etcd-s3-endpoint": f"https://s3.example/?X-Amz-Signature={SECRET}"}},
    {"cluster__installScriptUrl": f"https://ops:{SECRET}@mirror.example/install.sh"},
    {"cluster__installScriptUrl": f"https://mirror.example/install.sh?token={SECRET}"},
    {"registries": {"mirrors": {"docker.io": {"endpoints": [f"https://mirror.example/v2?access_token={SECRET}"]}}}},
    {"cluster__extraConfig": SECRET},
    {"token": SECRET + "\x00"},
    {"servers": [{"name": "jjtestserver", "address": "jjtestserver", "password": SECRET}]},
])
def test_errors_never_show_a_value_that_may_be_secret(changes):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(RAW, **changes), set())  # even when nothing is marked secret
    assert SECRET not in str(err.value), str(err.value)
    assert "hunter2" not in str(err.value)


def test_values_under_a_secret_top_level_key_are_hidden():
    raw = with_changes(RAW, cluster__hostname="bad host hunter2-very-secret-value")
    with pytest.raises(ConfigError) as err:
        parse_config(raw, SECRETS | {"rke2-rancher:cluster"})
    assert err.value.key == "cluster.hostname" and "[secret]" in str(err.value)
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError) as err:  # not secret: the value is shown
        parse_config(raw, SECRETS - {"rke2-rancher:cluster"})
    assert "hunter2" in str(err.value)


def test_etcd_s3_credentials_and_agent_extra_config():
    raw = with_changes(HA_RAW, cluster__etcdS3={"accessKey": "AKIA", "secretKey": "s3cr3t"},
                       cluster__etcdSnapshots={"s3": {"bucket": "snapshots"}}, cluster__extraConfig={"profile": "cis"},
                       cluster__agentExtraConfig={"kubelet-arg": ["max-pods=200"]})
    cfg = parse_config(raw, HA_SECRETS | {"rke2-rancher:cluster"})
    assert cfg.cluster.etcd_s3.secret_key == "s3cr3t" and "s3cr3t" not in repr(cfg)
    with pytest.raises(ConfigError, match="cluster.etcdS3: \\[secret\\] .*--secret"):
        parse_config(raw, HA_SECRETS - {"rke2-rancher:cluster"})
    assert cfg.cluster.agent_extra_config == {"kubelet-arg": ["max-pods=200"]}


def _key_line(kind: str) -> str:
    import base64
    blob = len(kind).to_bytes(4, "big") + kind.encode() + b"\x00" * 40
    return f"{kind} {base64.b64encode(blob).decode()}"


@pytest.mark.parametrize("kind", ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                                  "ecdsa-sha2-nistp521", "ssh-rsa"])
def test_rsa_host_keys_are_refused_naming_the_host(kind):
    """Upstream: pulumi/pulumi-command v1.2.1 provider/pkg/provider/remote/connection.go,
    connectionBase.SSHConfig: with hostKey set, HostKeyAlgorithms = []string{publicKey.Type()},
    and golang.org/x/crypto's Type() of an RSA key is "ssh-rsa" (the SHA-1 signature
    algorithm), which OpenSSH 8.8+ no longer accepts by default. So the connection can only
    work with a key whose wire type is not ssh-rsa."""
    raw = with_changes(HA_RAW, ssh__hostKeys={"10.20.0.12": _key_line(kind)})
    unusable = kind == "ssh-rsa"   # the only type for which Type() names a SHA-1 signature
    if not unusable:
        assert parse_config(raw, HA_SECRETS - {"rke2-rancher:ssh"}).ssh.host_keys["10.20.0.12"] == _key_line(kind)
        return
    with pytest.raises(ConfigError) as err:
        parse_config(raw, HA_SECRETS - {"rke2-rancher:ssh"})
    assert err.value.key == "ssh.hostKeys.10.20.0.12"
    assert "ed25519 or ECDSA host key for 10.20.0.12" in str(err.value)


# ---------------------------------------------------------------------------
# ssh.bastion: the jump host every step goes through (pulumi-command `proxy`)
# ---------------------------------------------------------------------------

BASTION_KEY = _key_line("ssh-ed25519")


def test_bastion_defaults_and_normalisation():
    cfg = parse_config(with_changes(HA_RAW, ssh__bastion={"address": "FD00:0::1"}), HA_SECRETS)
    b = cfg.ssh.bastion
    # Defaults: the hosts' user (ssh.user), port 22, the hosts' key (no key of its own), unverified.
    assert (b.address, b.user, b.port, b.private_key, b.private_key_path, b.host_key) == \
        ("fd00::1", HA_RAW["ssh"]["user"], 22, None, None, None)
    cfg = parse_config(with_changes(HA_RAW, ssh__bastion={
        "address": "jump.example.internal", "user": "jumper", "port": "2222", "hostKey": BASTION_KEY + " comment",
        "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nbastion-key\n-----END OPENSSH PRIVATE KEY-----\n"}),
        HA_SECRETS)
    b = cfg.ssh.bastion
    assert (b.address, b.user, b.port, b.host_key) == ("jump.example.internal", "jumper", 2222, BASTION_KEY)
    assert "bastion-key" in b.private_key and "bastion-key" not in repr(cfg)
    assert parse_config(HA_RAW, HA_SECRETS).ssh.bastion is None


@pytest.mark.parametrize("bastion, key, words", [
    ({}, "ssh.bastion.address", "required"),
    ("10.9.0.1", "ssh.bastion", "an object"),
    ({"address": "jump;reboot"}, "ssh.bastion.address", "metacharacters"),
    ({"address": "10.9.0.1%eth0"}, "ssh.bastion.address", "zone id"),
    ({"address": "10.9.0.1\n"}, "ssh.bastion.address", "control characters"),
    ({"address": "0.0.0.0"}, "ssh.bastion.address", "unicast"),
    ({"address": "10.9.0.1", "port": 0}, "ssh.bastion.port", "1 to 65535"),
    ({"address": "10.9.0.1", "port": "22 "}, "ssh.bastion.port", "1 to 65535"),
    ({"address": "10.9.0.1", "user": "Root"}, "ssh.bastion.user", "Unix user name"),
    ({"address": "10.9.0.1", "user": "jump\n"}, "ssh.bastion.user", "control characters"),
    ({"address": "10.9.0.1", "privateKeyPath": "keys/jump"}, "ssh.bastion.privateKeyPath", "absolute path"),
    ({"address": "10.9.0.1", "hostKey": "not a key"}, "ssh.bastion.hostKey", "OpenSSH public key"),
    ({"address": "10.9.0.1", "hostKey": BASTION_KEY + "\n"}, "ssh.bastion.hostKey", "control characters"),
    ({"address": "10.9.0.1", "hostKey": RSA}, "ssh.bastion.hostKey", "OpenSSH >= 8.8"),
    ({"address": "10.9.0.1", "hostKey": "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB"}, "ssh.bastion.hostKey",
     "whose data is a ssh-ed25519 key"),
    ({"address": "10.9.0.1", "hostkey": BASTION_KEY}, "ssh.bastion.hostkey", "not a known key"),
    ({"address": "10.9.0.1", "privateKey": "k", "privateKeyPath": "/k"}, "ssh.bastion.privateKey", "not both"),
    ({"address": "10.9.0.1", "privateKey": ""}, "ssh.bastion.privateKey", "non-empty"),
    # The bastion is not a cluster host (normalised addresses compared).
    ({"address": "10.20.0.012"}, "ssh.bastion.address", "valid IP address"),
    ({"address": "10.20.0.12"}, "ssh.bastion.address", "servers[1].address has it"),
    ({"address": "10.20.0.22"}, "ssh.bastion.address", "agents[1].address has it"),
    ({"address": "rke2-lb.example.internal"}, "ssh.bastion.address", "loadBalancer.address has it"),
    ({"address": "10.20.0.100"}, "ssh.bastion.address", "loadBalancer.vip has it"),
])
def test_bastion_errors(bastion, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(HA_RAW, ssh__bastion=bastion), HA_SECRETS - {"rke2-rancher:ssh"})
    message = str(err.value)
    assert err.value.key == key, message
    assert message.startswith(f"rke2-rancher:{key}: ") and words in message, message


def test_bastion_address_may_not_be_a_node_ip():
    raw = with_changes(HA_RAW, ssh__bastion={"address": "10.30.0.11"})
    raw["servers"][0]["nodeIp"] = "10.30.0.11"
    with pytest.raises(ConfigError, match=r"ssh\.bastion\.address: .*servers\[0\]\.nodeIp has it"):
        parse_config(raw, HA_SECRETS)


def test_bastion_host_key_belongs_in_ssh_bastion():
    raw = with_changes(HA_RAW, ssh__bastion={"address": "10.9.0.1"}, ssh__hostKeys={"10.9.0.1": BASTION_KEY})
    with pytest.raises(ConfigError, match=r"ssh\.hostKeys\.10\.9\.0\.1: .*ssh\.bastion\.hostKey"):
        parse_config(raw, HA_SECRETS)


@pytest.mark.parametrize("bastion", [
    {"address": "10.9.0.1", "privateKey": 70000},                   # wrong type: value hidden
    {"address": "10.9.0.1", "privatekey": SECRET},                  # misspelt secret key
    {"address": "10.9.0.1", "privateKey": SECRET, "privateKeyPath": "/k"},
    {"address": "10.9.0.1", "privateKey": SECRET + "\x00"},
])
def test_bastion_secrets_are_never_echoed(bastion):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(HA_RAW, ssh__bastion=bastion), set())  # even when nothing is marked secret
    assert SECRET not in str(err.value) and "70000" not in str(err.value), str(err.value)


def test_bastion_key_file_is_read_and_a_preview_goes_on_without_it(tmp_path):
    from components.config import read_private_key
    key = tmp_path / "jump"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\njump\n-----END OPENSSH PRIVATE KEY-----\n")
    cfg = parse_config(with_changes(HA_RAW, ssh__bastion={"address": "10.9.0.1", "privateKeyPath": str(key)}),
                       HA_SECRETS)
    ssh, warning = read_private_key(cfg.ssh, dry_run=False)
    assert warning is None and ssh.bastion.private_key == key.read_text() and ssh.private_key == cfg.ssh.private_key
    missing = parse_config(with_changes(HA_RAW, ssh__bastion={"address": "10.9.0.1",
                                                              "privateKeyPath": str(tmp_path / "none")}), HA_SECRETS)
    ssh, warning = read_private_key(missing.ssh, dry_run=True)
    assert "ssh.bastion.privateKeyPath" in warning and ssh.bastion.private_key == ""
    with pytest.raises(ConfigError, match=r"ssh\.bastion\.privateKeyPath: .*readable private key file"):
        read_private_key(missing.ssh, dry_run=False)
