"""registries, cluster.systemDefaultRegistry, cluster.imagesArchives and cluster.profile (issue 15):
validation and rendering.

The registries.yaml format is RKE2's (docs.rke2.io install/containerd_registry_configuration),
read from its implementation: rancher/wharfie pkg/registries/types.go (Registry{Mirrors,
Configs}; Mirror{endpoint, rewrite}; RegistryConfig{auth, tls}; AuthConfig{username,
password, auth, identity_token}; TLSConfig{ca_file, cert_file, key_file,
insecure_skip_verify}), which k3s pkg/agent/containerd/config.go getHostConfigs turns into
containerd's hosts.toml. The expectations below are written out by hand in that format.
"""

from __future__ import annotations

import pytest
import yaml

from components import render
from components.config import ConfigError, parse_config
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("ha")
REG_SECRET = SECRETS | {"rke2-rancher:registries"}
PASSWORD = "Zq9-registry-password-secret"
TOKEN = "Zq9-identity-token-secret"

FULL = {
    "mirrors": {
        "docker.io": {"endpoints": ["https://registry.example.internal:5000", "http://10.20.0.9:5000/v2/hub"],
                      "rewrites": {"^rancher/(.*)": "mirrored/rancher/$1"}},
        "*": {"endpoints": ["https://registry.example.internal:5000"]},
    },
    "configs": {
        "registry.example.internal:5000": {
            "auth": {"username": "puller", "password": PASSWORD},
            "tls": {"caFile": "/etc/pki/registry-ca.pem", "certFile": "/etc/pki/client.pem",
                    "keyFile": "/etc/pki/client.key"},
        },
        "[fd00::9]:5000": {"auth": {"token": TOKEN}},
        "10.20.0.9:5000": {"tls": {"insecureSkipVerify": True}},
    },
}


def stack(secrets=REG_SECRET, **changes):
    return parse_config(with_changes(RAW, **changes), secrets)


def error(secrets=REG_SECRET, **changes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        stack(secrets, **changes)
    return info.value


# ------------------------------------------------------------------ rendering

def test_registries_yaml_is_rke2s_format():
    text = render.registries_yaml(stack(registries=FULL).registries)
    assert text.startswith("# Managed by rke2-rancher")
    assert yaml.safe_load(text) == {
        "mirrors": {
            "docker.io": {"endpoint": ["https://registry.example.internal:5000", "http://10.20.0.9:5000/v2/hub"],
                          "rewrite": {"^rancher/(.*)": "mirrored/rancher/$1"}},
            "*": {"endpoint": ["https://registry.example.internal:5000"]},
        },
        "configs": {
            "registry.example.internal:5000": {
                "auth": {"username": "puller", "password": PASSWORD},
                "tls": {"ca_file": "/etc/pki/registry-ca.pem", "cert_file": "/etc/pki/client.pem",
                        "key_file": "/etc/pki/client.key"},
            },
            "[fd00::9]:5000": {"auth": {"identity_token": TOKEN}},
            "10.20.0.9:5000": {"tls": {"insecure_skip_verify": True}},
        },
    }


def test_empty_registries_writes_an_empty_file_that_switches_mirrors_off():
    reg = stack(SECRETS, registries={}).registries
    assert reg is not None and not reg.secret
    assert yaml.safe_load(render.registries_yaml(reg)) == {"mirrors": {}, "configs": {}}
    assert stack(SECRETS).registries is None


def test_credentials_make_the_file_a_secret_and_plain_mirrors_do_not():
    assert stack(registries=FULL).registries.secret
    plain = {"mirrors": FULL["mirrors"], "configs": {"10.20.0.9:5000": {"tls": {"insecureSkipVerify": True}}}}
    assert not stack(SECRETS, registries=plain).registries.secret
    # A `registries` key the user made secret stays secret even without credentials.
    assert stack(REG_SECRET, registries=plain).registries.secret


def test_repr_never_shows_credentials():
    text = repr(stack(registries=FULL))
    assert PASSWORD not in text and TOKEN not in text


def test_system_default_registry_and_profile_on_every_node():
    s = stack(cluster__systemDefaultRegistry="registry.example.internal:5000", cluster__profile="cis")
    configs = [render.server_config(s, i) for i in range(len(s.servers))] + \
              [render.agent_config(s, i) for i in range(len(s.agents))]
    assert len(configs) == len(s.servers) + len(s.agents) > 3
    for cfg in configs:
        assert cfg["system-default-registry"] == "registry.example.internal:5000"
        assert cfg["profile"] == "cis"
    plain = stack(SECRETS)
    for cfg in (render.server_config(plain, 0), render.agent_config(plain, 0)):
        assert "system-default-registry" not in cfg and "profile" not in cfg


def test_the_dedicated_key_gives_the_same_config_as_the_node_wide_extra_config_key():
    """helper A's node-wide copying (render.agent_config, NODE_WIDE_RKE2_KEYS) already puts
    cluster.extraConfig's system-default-registry on agents: the dedicated key writes the same."""
    via_extra = stack(SECRETS, cluster__extraConfig={"system-default-registry": "reg.example:5000"})
    dedicated = stack(SECRETS, cluster__systemDefaultRegistry="reg.example:5000")
    assert render.agent_config(via_extra, 0) == render.agent_config(dedicated, 0)
    assert render.server_config(via_extra, 1) == render.server_config(dedicated, 1)


@pytest.mark.parametrize("section", ["extraConfig", "agentExtraConfig"])
@pytest.mark.parametrize("key, rke2_key, value", [("systemDefaultRegistry", "system-default-registry", "r.example"),
                                                  ("profile", "profile", "cis")])
def test_dedicated_key_and_extra_config_key_together_are_refused(section, key, rke2_key, value):
    err = error(SECRETS, **{f"cluster__{key}": value, f"cluster__{section}": {rke2_key: value}})
    assert err.key == f"cluster.{key}" and f"cluster.{section}.{rke2_key}" in str(err)


def test_images_list_lines():
    s = stack(SECRETS, cluster__imagesArchives=[
        {"url": "https://mirror.example/rke2/v1.33.5/rke2-images.linux-amd64.tar.zst", "sha256": "AB" * 32},
        {"url": "file:///srv/images/extra.tar", "sha256": "cd" * 32}])
    assert render.images_list(s.cluster.images_archives) == (
        f"{'ab' * 32} rke2-images.linux-amd64.tar.zst https://mirror.example/rke2/v1.33.5/rke2-images.linux-amd64.tar.zst\n"
        f"{'cd' * 32} extra.tar file:///srv/images/extra.tar\n")


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("registries, key, fragment", [
    ({"mirrors": {"docker.io": {"endpoints": []}}}, "registries.mirrors.docker.io.endpoints", "at least one"),
    ({"mirrors": {"docker.io": {}}}, "registries.mirrors.docker.io.endpoints", "at least one"),
    ({"mirrors": {"docker.io": {"endpoints": ["ftp://x.example/"]}}}, "registries.mirrors.docker.io.endpoints[0]", "https://"),
    ({"mirrors": {"docker.io": {"endpoints": ["https://user:pw@x.example/"]}}}, "registries.mirrors.docker.io.endpoints[0]", "URL"),
    ({"mirrors": {"Docker.IO": {"endpoints": ["https://x.example"]}}}, "registries.mirrors.Docker.IO", "registry host"),
    ({"mirrors": {"x.example:0": {"endpoints": ["https://x.example"]}}}, "registries.mirrors.x.example:0", "registry host"),
    ({"mirrors": {"x.example:99999": {"endpoints": ["https://x.example"]}}}, "registries.mirrors.x.example:99999", "registry host"),
    ({"mirrors": {"fd00::9": {"endpoints": ["https://x.example"]}}}, "registries.mirrors.fd00::9", "[fd00::5]"),
    ({"mirrors": {"docker.io": {"endpoints": ["https://x.example"], "rewrites": {"(?=x)": "y"}}}},
     'registries.mirrors.docker.io.rewrites."(?=x)"', "RE2"),
    ({"mirrors": {"docker.io": {"endpoints": ["https://x.example"], "rewrites": {"(": "y"}}}},
     'registries.mirrors.docker.io.rewrites."("', "valid regular expression"),
    ({"mirrors": {"docker.io": {"endpoint": ["https://x.example"]}}}, "registries.mirrors.docker.io.endpoint", "known keys"),
    ({"configs": {"x.example": {"tls": {"certFile": "/etc/pki/c.pem"}}}}, "registries.configs.x.example.tls.keyFile",
     "certFile and keyFile together"),
    ({"configs": {"x.example": {"tls": {"caFile": "relative.pem"}}}}, "registries.configs.x.example.tls.caFile", "absolute"),
    ({"configs": {"x.example": {"tls": {"ca_file": "/etc/pki/ca.pem"}}}}, "registries.configs.x.example.tls.ca_file", "known keys"),
    ({"configs": {"x.example": {"auth": {"username": "u"}}}}, "registries.configs.x.example.auth", "together"),
    ({"configs": {"x.example": {"auth": {"username": "u", "password": PASSWORD, "token": TOKEN}}}},
     "registries.configs.x.example.auth", "not both"),
    ({"mirror": {}}, "registries.mirror", "known keys"),
])
def test_bad_registries_are_refused_naming_the_key(registries, key, fragment):
    err = error(registries=registries)
    assert err.key == key and fragment in str(err), str(err)
    assert PASSWORD not in str(err) and TOKEN not in str(err)


@pytest.mark.parametrize("auth", [{"username": "puller", "password": PASSWORD}, {"token": TOKEN}])
def test_credentials_in_plain_config_are_refused_without_showing_them(auth):
    err = error(SECRETS, registries={"configs": {"registry.example.internal:5000": {"auth": auth}}})
    assert err.key == "registries.configs.registry.example.internal:5000.auth"
    assert "--secret" in str(err) and PASSWORD not in str(err) and TOKEN not in str(err)


@pytest.mark.parametrize("value", ["*", "https://reg.example", "reg.example/path", "reg.example:", "10.0.0.011",
                                   "Reg.Example", "reg example", "[fd00::1]"])
def test_system_default_registry_refusals(value):
    if value == "[fd00::1]":
        assert stack(SECRETS, cluster__systemDefaultRegistry=value).cluster.system_default_registry == value
        return
    err = error(SECRETS, cluster__systemDefaultRegistry=value)
    assert err.key == "cluster.systemDefaultRegistry" and "registry host" in str(err)


@pytest.mark.parametrize("value", ["cis-1.23", "etcd", "CIS", "", True])
def test_profile_values(value):
    err = error(SECRETS, cluster__profile=value)
    assert err.key == "cluster.profile" and "one of cis" in str(err)


@pytest.mark.parametrize("archives, key, fragment", [
    ([{"url": "http://mirror.example/a.tar", "sha256": "a" * 64}], "cluster.imagesArchives[0].url", "https://"),
    ([{"url": "https://mirror.example/a.tar", "sha256": "a" * 63}], "cluster.imagesArchives[0].sha256", "64 hex"),
    ([{"url": "https://mirror.example/a.tar"}], "cluster.imagesArchives[0].sha256", "required"),
    ([{"url": "https://mirror.example/a.exe", "sha256": "a" * 64}], "cluster.imagesArchives[0].url", "archive file"),
    ([{"url": "https://mirror.example/", "sha256": "a" * 64}], "cluster.imagesArchives[0].url", "archive file"),
    ([{"url": "https://m.example/a.tar", "sha256": "a" * 64}, {"url": "file:///srv/a.tar", "sha256": "b" * 64}],
     "cluster.imagesArchives[1].url", "no other archive"),
    ([{"url": "https://m.example/a.tar", "sha256": "a" * 64, "name": "x"}], "cluster.imagesArchives[0].name", "known keys"),
    ({"url": "https://m.example/a.tar"}, "cluster.imagesArchives", "a list"),
])
def test_bad_image_archives(archives, key, fragment):
    err = error(SECRETS, cluster__imagesArchives=archives)
    assert err.key == key and fragment in str(err), str(err)


@pytest.mark.parametrize("section", ["extraConfig", "agentExtraConfig"])
def test_private_registry_path_is_refused_with_registries(section):
    err = error(SECRETS, registries={}, **{f"cluster__{section}": {"private-registry": "/etc/other.yaml"}})
    assert err.key == f"cluster.{section}.private-registry" and "registries.yaml" in str(err)
    # Without `registries` the user's own file stays possible (helper A's node-wide key).
    assert stack(SECRETS, **{f"cluster__{section}": {"private-registry": "/etc/other.yaml"}}).registries is None


# ------------------------------------------------------------------ CIS: Pod Security Admission

def test_cis_keeps_rke2s_restricted_defaults_and_exempts_the_stacks_charts():
    """rancher/rke2 pkg/rke2/psa.go (v1.33.5+rke2r1): with profile cis and no
    pod-security-admission-config-file, RKE2 writes restrictedPSAConfig (enforce/audit/warn
    restricted, latest; exempt kube-system, cis-operator-system, tigera-operator). Rancher and
    cert-manager do not run under it (Rancher docs psa-restricted-exemptions list cattle-system
    and cert-manager), so the stack writes the same defaults with their namespaces exempt."""
    s = stack(SECRETS, cluster__profile="cis")
    cfg = render.server_config(s, 0)
    assert cfg["pod-security-admission-config-file"] == "/etc/rancher/rke2/rke2-rancher-pss.yaml"
    assert "pod-security-admission-config-file" not in render.agent_config(s, 0)
    doc = yaml.safe_load(render.psa_config(s))
    (plugin,) = doc["plugins"]
    conf = plugin["configuration"]
    assert doc["kind"] == "AdmissionConfiguration" and plugin["name"] == "PodSecurity"
    assert conf["kind"] == "PodSecurityConfiguration"
    assert conf["defaults"] == {"enforce": "restricted", "enforce-version": "latest", "audit": "restricted",
                                "audit-version": "latest", "warn": "restricted", "warn-version": "latest"}
    exempt = conf["exemptions"]["namespaces"]
    assert {"kube-system", "cis-operator-system", "tigera-operator", "cert-manager", "cattle-system",
            "cattle-fleet-system", "cattle-fleet-local-system", "fleet-local"} <= set(exempt)
    assert not {"default", "cattle-monitoring-system"} & set(exempt)  # workloads and optional apps stay restricted


def test_no_psa_file_without_cis_or_without_charts_or_with_the_users_own():
    assert render.psa_config(stack(SECRETS)) is None
    bare = stack(SECRETS, cluster__profile="cis", rancher__enabled=False, certManager__enabled=False)
    assert render.psa_config(bare) is None and "pod-security-admission-config-file" not in render.server_config(bare, 0)
    own = stack(SECRETS, cluster__profile="cis", cluster__extraConfig={"pod-security-admission-config-file": "/etc/x.yaml"})
    assert render.psa_config(own) is None
    assert render.server_config(own, 0)["pod-security-admission-config-file"] == "/etc/x.yaml"
    only_cm = yaml.safe_load(render.psa_config(stack(SECRETS, cluster__profile="cis", rancher__enabled=False)))
    assert "cert-manager" in str(only_cm) and "cattle-system" not in str(only_cm)
