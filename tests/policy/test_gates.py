"""The gates: one compliant fixture each, one change per failing case, config handling."""

import pytest
from pulumi_policy.secret import Secret

from rke2_guard import common
from rke2_guard.gates import (validate_bootstrap_password, validate_cert_manager_for_rancher,
                              validate_chart_version_pinned, validate_host_key_verified, validate_kubeconfig_mode,
                              validate_odd_server_count, validate_rke2_version_pinned, validate_token_secret)
from tests.policy.support import (PASSWORD, UNKNOWN_STRING, agent, cert_manager_helm, dev_stack, ha_server, ha_stack,
                                  load_balancer, rancher, rancher_helm, resource_args, run, server, stack_args, urn,
                                  wire_secret)


def srv(props):
    return resource_args(common.SERVER, props["nodeName"], props)


# ---------------------------------------------------------------------------
# ha-odd-server-count
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3, 5])
def test_odd_server_counts_comply(count):
    assert run(validate_odd_server_count, srv(ha_server(0, serverCount=count))).calls == []


@pytest.mark.parametrize("count", [2, 4])
def test_even_server_count(count):
    message = run(validate_odd_server_count, srv(ha_server(0, serverCount=count))).only()
    assert f"RKE2Server 'rke2-server-1': the cluster has {count} servers" in message
    assert f"run {count - 1} or {count + 1} servers" in message


def test_even_server_count_reported_on_the_first_server_only():
    assert run(validate_odd_server_count, srv(ha_server(1, serverCount=4))).calls == []


def test_server_count_unknown_or_missing_is_skipped():
    props = ha_server(0, serverCount=None)
    assert run(validate_odd_server_count, srv(props)).calls == []
    assert run(validate_odd_server_count, resource_args(common.AGENT, "a", agent(serverCount=2))).calls == []


# ---------------------------------------------------------------------------
# rke2-version-pinned
# ---------------------------------------------------------------------------


def test_pinned_versions_comply():
    assert run(validate_rke2_version_pinned, srv(server())).calls == []
    assert run(validate_rke2_version_pinned, resource_args(common.AGENT, "a", agent())).calls == []


@pytest.mark.parametrize("version", ["stable", "latest", "v1.33", "v1.33.5", "1.33.5+rke2r1", "v1.33.5-rc1+rke2r1"])
def test_unpinned_server_version(version):
    message = run(validate_rke2_version_pinned, srv(server(version=version))).only()
    assert f"RKE2 version {version!r} is not a pinned release" in message
    assert "'v1.33.5+rke2r1'" in message


def test_unpinned_agent_version():
    args = resource_args(common.AGENT, "rke2-agent-1", agent(version="stable"))
    message = run(validate_rke2_version_pinned, args).only()
    assert "RKE2Agent 'rke2-agent-1'" in message


def test_unknown_version_is_skipped():
    assert run(validate_rke2_version_pinned, srv(server(version=UNKNOWN_STRING))).calls == []


# ---------------------------------------------------------------------------
# helm-chart-version-pinned
# ---------------------------------------------------------------------------


def helm(props, name="rancher-release"):
    return resource_args(common.HELM_RELEASE, name, props, parent_type=common.RANCHER, parent_name="rancher")


def test_pinned_charts_comply():
    assert run(validate_chart_version_pinned, helm(rancher_helm())).calls == []
    assert run(validate_chart_version_pinned, helm(cert_manager_helm(), "cert-manager-release")).calls == []


@pytest.mark.parametrize("version, shown", [(None, "no version"), ("", "no version"), ("~2.12", "'~2.12'"),
                                            (">=1.16.0", "'>=1.16.0'"), ("2.12", "'2.12'")])
def test_unpinned_chart(version, shown):
    props = {**rancher_helm(), "version": version}
    message = run(validate_chart_version_pinned, helm(props)).only()
    assert f"helm Release 'rancher-release': chart 'rancher' has {shown}" in message


def test_chart_archive_needs_no_version():
    props = {**rancher_helm(), "chart": "./charts/rancher-2.12.3.tgz", "version": None}
    assert run(validate_chart_version_pinned, helm(props)).calls == []


def test_unknown_chart_version_is_skipped():
    assert run(validate_chart_version_pinned, helm({**rancher_helm(), "version": UNKNOWN_STRING})).calls == []
    assert run(validate_chart_version_pinned, srv(server())).calls == []


# ---------------------------------------------------------------------------
# rancher-bootstrap-password (secrets arrive unwrapped or wire-wrapped; unknown is skipped)
# ---------------------------------------------------------------------------


def password_args(value, config=None, **kwargs):
    props = rancher_helm(bootstrapPassword=value)
    return resource_args(common.HELM_RELEASE, "rancher-release", props, config,
                         parent_type=common.RANCHER, parent_name="rancher", **kwargs)


@pytest.mark.parametrize("value", [wire_secret(PASSWORD), PASSWORD, wire_secret(wire_secret(PASSWORD))])
def test_strong_password_complies(value):
    assert run(validate_bootstrap_password, password_args(value)).calls == []


@pytest.mark.parametrize("value", ["admin", "Password", " rancher ", "changeme", wire_secret("Admin")])
def test_known_default(value):
    messages = run(validate_bootstrap_password, password_args(value)).messages
    assert any("is a well-known default" in m for m in messages), messages
    assert all("https://jjtestserver" in m or "fewer than" in m for m in messages)


def test_known_default_long_enough_reports_only_the_default():
    message = run(validate_bootstrap_password, password_args("defaultSecret12345")).only()
    assert "well-known default" in message and "not shown" in message


def test_too_short():
    message = run(validate_bootstrap_password, password_args(wire_secret("x7#Kp2!q"))).only()
    assert "has 8 characters, fewer than 12" in message
    assert "x7#Kp2!q" not in message


def test_messages_never_show_the_password():
    for value in ("letmein", "sh0rtpw", "changeme"):
        for message in run(validate_bootstrap_password, password_args(value)).messages:
            assert value not in message.replace("rancher.bootstrapPassword", "")


def test_min_length_config():
    assert run(validate_bootstrap_password, password_args(PASSWORD, {"minPasswordLength": 40})).calls != []
    # JSON numbers reach policies as floats.
    assert run(validate_bootstrap_password, password_args("x7#Kp2!q", {"minPasswordLength": 8.0})).calls == []
    # Nonsense config falls back to the default.
    assert "fewer than 12" in run(validate_bootstrap_password,
                                  password_args("x7#Kp2!q", {"minPasswordLength": "eight"})).only()


def test_forbidden_passwords_config():
    config = {"forbiddenPasswords": ["Acme-Corp-2024!"]}
    assert "well-known default" in run(validate_bootstrap_password, password_args("acme-corp-2024!", config)).only()


def test_secret_object_from_remediate_path_is_unwrapped():
    props = rancher_helm(bootstrapPassword="placeholder")
    args = resource_args(common.HELM_RELEASE, "rancher-release", props)
    args.props = {**props, "values": {**props["values"], "bootstrapPassword": Secret("admin")}}
    assert "well-known default" in run(validate_bootstrap_password, args).messages[0]


@pytest.mark.parametrize("value", [UNKNOWN_STRING, wire_secret(UNKNOWN_STRING), None, 12345])
def test_unknown_absent_or_odd_password_is_skipped(value):
    assert run(validate_bootstrap_password, password_args(value)).calls == []


def test_whole_values_unknown_is_skipped():
    props = {**rancher_helm(), "values": UNKNOWN_STRING}
    assert run(validate_bootstrap_password, helm(props)).calls == []


def test_rancher_chart_found_by_name_without_parent():
    props = {**rancher_helm(bootstrapPassword="admin"), "chart": "rancher-stable/rancher"}
    args = resource_args(common.HELM_RELEASE, "my-rancher", props)
    assert any("well-known default" in m for m in run(validate_bootstrap_password, args).messages)


def test_other_charts_are_ignored():
    props = {**cert_manager_helm(), "values": {"bootstrapPassword": "admin"}}
    args = resource_args(common.HELM_RELEASE, "cm", props, parent_type=common.CERT_MANAGER, parent_name="cm")
    assert run(validate_bootstrap_password, args).calls == []


# ---------------------------------------------------------------------------
# cluster-token-secret
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["secret", "generated", UNKNOWN_STRING])
def test_token_sources_that_comply(source):
    assert run(validate_token_secret, srv(server(tokenSource=source))).calls == []


def test_plaintext_token():
    message = run(validate_token_secret, srv(server(tokenSource="plaintext"))).only()
    assert "RKE2Server 'jjtestserver'" in message and "tokenSource 'plaintext'" in message
    assert "pulumi config set --secret token" in message


def test_plaintext_token_reported_on_the_first_server_only():
    assert run(validate_token_secret, srv(ha_server(2, tokenSource="plaintext"))).calls == []


# ---------------------------------------------------------------------------
# kubeconfig-file-mode (advisory)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["0600", "600", "0400", "0000", UNKNOWN_STRING, None])
def test_restrictive_modes_comply(mode):
    assert run(validate_kubeconfig_mode, srv(server(writeKubeconfigMode=mode))).calls == []


@pytest.mark.parametrize("mode", ["0644", "0640", "0700", "0666", "644", 644])
def test_wide_mode(mode):
    message = run(validate_kubeconfig_mode, srv(server(writeKubeconfigMode=mode))).only()
    assert "is wider than 0600" in message and 'cluster.writeKubeconfigMode to "0600"' in message


@pytest.mark.parametrize("mode", ["rw-------", "0x180", "06000"])
def test_unparseable_mode(mode):
    assert "is not an octal file mode" in run(validate_kubeconfig_mode, srv(server(writeKubeconfigMode=mode))).only()


# ---------------------------------------------------------------------------
# ssh-host-key-verification (advisory)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("typ, props", [(common.SERVER, server()), (common.AGENT, agent()),
                                        (common.LOAD_BALANCER, load_balancer())])
def test_verified_host_keys_comply(typ, props):
    assert run(validate_host_key_verified, resource_args(typ, "h", props)).calls == []


@pytest.mark.parametrize("typ, props, who", [
    (common.SERVER, server(hostKeyVerified=False), "RKE2Server 'h'"),
    (common.AGENT, agent(hostKeyVerified=False), "RKE2Agent 'h'"),
    (common.LOAD_BALANCER, load_balancer(hostKeyVerified=False), "HALoadBalancer 'h'"),
])
def test_unverified_host_key(typ, props, who):
    message = run(validate_host_key_verified, resource_args(typ, "h", props)).only()
    assert who in message and f"SSH to {props['address']!r} does not verify" in message
    assert "ssh.hostKeys" in message


@pytest.mark.parametrize("typ, props, who", [
    (common.SERVER, server, "RKE2Server 'h'"),
    (common.AGENT, agent, "RKE2Agent 'h'"),
    (common.LOAD_BALANCER, load_balancer, "HALoadBalancer 'h'"),
])
def test_unverified_bastion_host_key(typ, props, who):
    # components/host.py bastion_props: the bastion's address and whether ssh.bastion.hostKey is set.
    p = props(bastion="10.9.0.1", bastionHostKeyVerified=False)
    message = run(validate_host_key_verified, resource_args(typ, "h", p)).only()
    assert who in message and "the bastion '10.9.0.1'" in message and "ssh.bastion.hostKey" in message
    assert f"SSH to {p['address']!r}" in message and "ssh.hostKeys" not in message
    # A pinned bastion and pinned host: nothing to say.
    assert run(validate_host_key_verified, resource_args(
        typ, "h", props(bastion="10.9.0.1", bastionHostKeyVerified=True))).calls == []
    # Neither pinned: one violation each.
    both = run(validate_host_key_verified, resource_args(
        typ, "h", props(hostKeyVerified=False, bastion="10.9.0.1", bastionHostKeyVerified=False))).calls
    assert len(both) == 2 and "ssh.hostKeys" in str(both[0]) and "ssh.bastion.hostKey" in str(both[1])


def test_bastion_prop_unknown_is_skipped():
    assert run(validate_host_key_verified, srv(server(bastion="10.9.0.1",
                                                      bastionHostKeyVerified=UNKNOWN_STRING))).calls == []


def test_host_key_prop_missing_or_unknown_is_skipped():
    props = server()
    del props["hostKeyVerified"]
    assert run(validate_host_key_verified, srv(props)).calls == []
    assert run(validate_host_key_verified, srv(server(hostKeyVerified=UNKNOWN_STRING))).calls == []


# ---------------------------------------------------------------------------
# cert-manager-for-rancher-tls (stack)
# ---------------------------------------------------------------------------


def no_cert_manager(resources):
    return [r for r in resources if r.name not in ("cert-manager", "cert-manager-release")]


def test_stacks_with_cert_manager_comply():
    assert run(validate_cert_manager_for_rancher, stack_args(dev_stack())).calls == []
    assert run(validate_cert_manager_for_rancher, stack_args(ha_stack())).calls == []


def test_cert_manager_helm_release_alone_counts():
    resources = [r for r in dev_stack() if r.name != "cert-manager"]
    resources[1].parent_type = None
    assert run(validate_cert_manager_for_rancher, stack_args(resources)).calls == []


def test_missing_cert_manager():
    message, where = run(validate_cert_manager_for_rancher, stack_args(no_cert_manager(dev_stack()))).calls[0]
    assert "RancherRelease 'rancher': Rancher's TLS source is 'rancher'" in message
    assert "set certManager.enabled to true" in message and where == urn(common.RANCHER, "rancher")


def test_missing_cert_manager_letsencrypt_from_component_props():
    resources = no_cert_manager(dev_stack(rancher=rancher(tlsSource="letsEncrypt", values={}),
                                          rancher_release={}))
    assert "'letsEncrypt' (tlsSource)" in run(validate_cert_manager_for_rancher, stack_args(resources)).only()


def test_chart_default_tls_source_needs_cert_manager():
    values = rancher_helm()["values"]
    del values["ingress"]
    resources = no_cert_manager(dev_stack(rancher_release={**rancher_helm(), "values": values}))
    message = run(validate_cert_manager_for_rancher, stack_args(resources)).only()
    assert "(the chart default for ingress.tls.source)" in message


def test_secret_tls_source_needs_no_cert_manager():
    resources = no_cert_manager(dev_stack(rancher=rancher(tlsSource="secret", values={}),
                                          rancher_release=rancher_helm(ingress={"tls": {"source": "secret"}})))
    assert run(validate_cert_manager_for_rancher, stack_args(resources)).calls == []


def test_external_cert_manager_config():
    args = stack_args(no_cert_manager(dev_stack()), {"externalCertManager": True})
    assert run(validate_cert_manager_for_rancher, args).calls == []


def test_tls_source_not_visible_is_skipped():
    resources = no_cert_manager(dev_stack(rancher={"url": "https://jjtestserver"}, rancher_release={}))
    assert run(validate_cert_manager_for_rancher, stack_args(resources)).calls == []
