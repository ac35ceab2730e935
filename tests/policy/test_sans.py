"""san-hygiene (structure) and san-hygiene-volatile-ip: one compliant server, one change per case."""

import pytest

from rke2_guard import common
from rke2_guard.sans import (validate_rancher_hostname, validate_required_sans, validate_san_syntax,
                             validate_volatile_ips)
from tests.policy.support import (UNKNOWN_ARRAY, UNKNOWN_STRING, ha_server, rancher, rancher_helm,
                                  resource_args, run, server)


def srv(props, config=None):
    return resource_args(common.SERVER, props["nodeName"], props, config)


# ---------------------------------------------------------------------------
# Required SANs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("props", [server(), ha_server(0), ha_server(2)])
def test_compliant_servers(props):
    for validate in (validate_required_sans, validate_san_syntax):
        assert run(validate, srv(props)).calls == []


def test_other_resource_types_are_ignored():
    args = resource_args(common.AGENT, "a", {"tlsSans": ["*.bad"]})
    for validate in (validate_required_sans, validate_san_syntax, validate_volatile_ips):
        assert run(validate, args).calls == []


def test_cluster_hostname_missing():
    message = run(validate_required_sans, srv(server(tlsSans=["localhost", "127.0.0.1"]))).only()
    # The kubeconfig and registration hosts are the same name: reported once.
    assert "RKE2Server 'jjtestserver'" in message
    assert "cluster hostname 'jjtestserver' is missing from tls-san" in message
    assert "add 'jjtestserver' to cluster.tlsSans" in message


def test_kubeconfig_server_host_missing():
    props = server(kubeconfigServer="https://api.example.internal:6443")
    assert "kubeconfig server host 'api.example.internal'" in run(validate_required_sans, srv(props)).only()


def test_registration_host_missing():
    props = ha_server(0, registrationAddress="https://10.20.0.99:9345")
    assert "registration address host '10.20.0.99'" in run(validate_required_sans, srv(props)).only()


def test_load_balancer_address_missing():
    props = ha_server(0, tlsSans=["rke2.example.internal", "10.20.0.100"])
    assert "load balancer address 'rke2-lb.example.internal'" in run(validate_required_sans, srv(props)).only()


def test_load_balancer_vip_missing():
    props = ha_server(0, tlsSans=["rke2.example.internal", "rke2-lb.example.internal"],
                      registrationAddress="https://rke2-lb.example.internal:9345")
    assert "load balancer VIP '10.20.0.100'" in run(validate_required_sans, srv(props)).only()


def test_required_names_match_case_insensitively_and_ipv6_canonically():
    props = ha_server(0, loadBalancerVip="fd00::0:100", registrationAddress="https://[fd00::100]:9345",
                      tlsSans=["RKE2.example.internal", "rke2-lb.example.internal", "fd00::100"])
    assert run(validate_required_sans, srv(props)).calls == []


def test_missing_tls_sans_prop_is_skipped():
    props = server()
    del props["tlsSans"]
    assert run(validate_required_sans, srv(props)).calls == []


def test_unknown_sans_are_skipped():
    assert run(validate_required_sans, srv(server(tlsSans=UNKNOWN_ARRAY))).calls == []
    assert run(validate_san_syntax, srv(server(tlsSans=UNKNOWN_ARRAY, configuredTlsSans=UNKNOWN_ARRAY))).calls == []


# ---------------------------------------------------------------------------
# SAN syntax
# ---------------------------------------------------------------------------


def test_wildcard():
    props = server(configuredTlsSans=["jjtestserver", "*.example.internal"])
    message = run(validate_san_syntax, srv(props)).only()
    assert "cluster.tlsSans entry '*.example.internal' is a wildcard" in message
    assert "list each name explicitly" in message


def test_invalid_name():
    props = server(tlsSans=["jjtestserver", "bad_name"])
    message = run(validate_san_syntax, srv(props)).only()
    assert "tls-san entry 'bad_name' is neither a DNS-1123 name" in message


def test_invalid_entry_in_both_lists_is_reported_once():
    props = server(tlsSans=["jjtestserver", "-bad"], configuredTlsSans=["jjtestserver", "-bad"])
    assert len(run(validate_san_syntax, srv(props)).calls) == 1


def test_duplicate_case_insensitive():
    props = server(configuredTlsSans=["jjtestserver", "JJTestServer"])
    message = run(validate_san_syntax, srv(props)).only()
    assert "cluster.tlsSans lists 'jjtestserver' and 'JJTestServer'" in message
    assert "name (case-insensitive) twice" in message


def test_duplicate_ip_in_another_spelling():
    props = server(tlsSans=["jjtestserver", "fd00::1", "fd00:0::1"])
    assert "the same address twice" in run(validate_san_syntax, srv(props)).only()


def test_uppercase_name():
    props = server(configuredTlsSans=["JJTestServer"])
    message = run(validate_san_syntax, srv(props)).only()
    assert "'JJTestServer' has uppercase letters" in message and "'jjtestserver'" in message


def test_non_string_entries_are_ignored():
    assert run(validate_san_syntax, srv(server(tlsSans=["jjtestserver", UNKNOWN_STRING, 7]))).calls == []


# ---------------------------------------------------------------------------
# Rancher hostname
# ---------------------------------------------------------------------------


def test_rancher_hostname_compliant():
    assert run(validate_rancher_hostname, resource_args(common.RANCHER, "rancher", rancher())).calls == []


def test_rancher_hostname_ip():
    args = resource_args(common.RANCHER, "rancher", rancher(hostname="192.168.1.100"))
    message = run(validate_rancher_hostname, args).only()
    assert "RancherRelease 'rancher'" in message and "'192.168.1.100' is an IP literal" in message
    assert "set rancher.hostname to a DNS name" in message


def test_rancher_hostname_not_dns():
    args = resource_args(common.RANCHER, "rancher", rancher(hostname="*.example.internal"))
    assert "is not a DNS-1123 name" in run(validate_rancher_hostname, args).only()


def test_standalone_rancher_helm_release_hostname():
    args = resource_args(common.HELM_RELEASE, "rancher", rancher_helm(hostname="10.0.0.5"))
    assert "helm Release 'rancher'" in run(validate_rancher_hostname, args).only()


def test_helm_release_under_rancher_release_is_left_to_the_component():
    args = resource_args(common.HELM_RELEASE, "rancher-release", rancher_helm(hostname="10.0.0.5"),
                         parent_type=common.RANCHER, parent_name="rancher")
    assert run(validate_rancher_hostname, args).calls == []


def test_other_charts_and_types_are_ignored():
    other = {**rancher_helm(hostname="10.0.0.5"), "chart": "nginx"}
    assert run(validate_rancher_hostname, resource_args(common.HELM_RELEASE, "x", other)).calls == []
    assert run(validate_rancher_hostname, resource_args(common.SERVER, "x", server())).calls == []
    unknown = rancher(hostname=UNKNOWN_STRING)
    assert run(validate_rancher_hostname, resource_args(common.RANCHER, "rancher", unknown)).calls == []


# ---------------------------------------------------------------------------
# Volatile IPs (advisory by default) and its config
# ---------------------------------------------------------------------------


def test_volatile_compliant_dev_and_ha():
    assert run(validate_volatile_ips, srv(server())).calls == []
    # The VIP is allowed by default.
    assert run(validate_volatile_ips, srv(ha_server(0))).calls == []


def test_seed_story_ip_is_reported():
    props = server(tlsSans=["jjtestserver", "localhost", "127.0.0.1", "192.168.1.100"])
    message = run(validate_volatile_ips, srv(props)).only()
    assert "RKE2Server 'jjtestserver': tls-san 192.168.1.100 is an IP literal" in message
    assert "reach the cluster by its name (jjtestserver)" in message
    assert '"allowedIps": ["192.168.1.100"]' in message


def test_ipv6_loopback_is_not_reported_but_other_ipv6_is():
    props = server(tlsSans=["jjtestserver", "::1", "fd00::10"])
    assert "fd00::10" in run(validate_volatile_ips, srv(props)).only()


@pytest.mark.parametrize("allowed", [["192.168.1.100"], ["192.168.1.0/24"], ["10.0.0.0/8", "192.168.0.0/16"]])
def test_allowed_ips_config(allowed):
    props = server(tlsSans=["jjtestserver", "192.168.1.100"])
    assert run(validate_volatile_ips, srv(props, {"allowedIps": allowed})).calls == []


def test_allowed_ips_of_the_other_family_do_not_match():
    props = server(tlsSans=["jjtestserver", "192.168.1.100"])
    assert len(run(validate_volatile_ips, srv(props, {"allowedIps": ["::/0"]})).calls) == 1


def test_invalid_allow_list_entry_is_reported_and_ignored():
    props = server(tlsSans=["jjtestserver", "192.168.1.100"])
    reporter = run(validate_volatile_ips, srv(props, {"allowedIps": ["not-an-ip", "192.168.1.100"]}))
    assert "allowedIps entry 'not-an-ip' is not an IP address or CIDR" in reporter.only()


def test_vip_reported_when_not_allowed_by_config():
    reporter = run(validate_volatile_ips, srv(ha_server(0), {"allowLoadBalancerVip": False}))
    assert "tls-san 10.20.0.100 is an IP literal" in reporter.only()


def test_config_of_the_wrong_type_falls_back_to_defaults():
    props = server(tlsSans=["jjtestserver", "192.168.1.100"])
    assert len(run(validate_volatile_ips, srv(props, {"allowedIps": 5})).calls) == 1
    assert run(validate_volatile_ips, srv(props, {"allowedIps": "192.168.1.100"})).calls == []
    assert run(validate_volatile_ips, srv(ha_server(0), {"allowLoadBalancerVip": "no"})).calls == []
