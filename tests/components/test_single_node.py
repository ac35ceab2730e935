"""The dev stack (one mobile server) under Pulumi mocks."""

import json

import pytest
import yaml

from tests.harness import changed_inputs, evaluate, plaintext_outside_secrets
from tests.stacks import SAMPLE_SECRETS, load_stack, with_changes

RAW, SECRETS = load_stack("dev")
SERVER_STEPS = ["uninstall", "preflight", "stable-ip", "config", "canal-config", "token", "ca", "install",
                "service", "dns-follow", "san-refresh", "upgrade-guard", "upgrade-ready", "membership-guard"]
COMMAND = "command:remote:Command"


@pytest.fixture(scope="module")
def dev():
    return evaluate(RAW, SECRETS)


def test_dev_stack_resources(dev):
    assert dev.names("rke2:index:RKE2Server") == ["jjtestserver"]
    assert dev.names("rke2:index:CertManager") == ["cert-manager"]
    assert dev.names("rke2:index:RancherRelease") == ["rancher"]
    assert sorted(dev.names(COMMAND)) == sorted(f"jjtestserver-{s}" for s in SERVER_STEPS)
    assert sorted(dev.names("kubernetes:helm.sh/v3:Release")) == ["cert-manager-release", "rancher-release"]
    assert dev.names("rke2:index:RKE2Agent") == [] and dev.names("rke2:index:HALoadBalancer") == []


def test_steps_are_children_of_their_component(dev):
    server = dev.by_name("jjtestserver")
    for s in SERVER_STEPS:
        step = dev.by_name(f"jjtestserver-{s}")
        assert step.parent == server.urn, step.urn
    assert dev.by_name("cert-manager-release").parent == dev.by_name("cert-manager").urn
    assert dev.by_name("rancher-release").parent == dev.by_name("rancher").urn


@pytest.mark.parametrize("later, earlier", [
    ("jjtestserver-preflight", "jjtestserver-uninstall"),
    ("jjtestserver-config", "jjtestserver-preflight"),
    ("jjtestserver-stable-ip", "jjtestserver-preflight"),
    ("jjtestserver-install", "jjtestserver-config"),
    ("jjtestserver-service", "jjtestserver-config"),
    ("jjtestserver-service", "jjtestserver-install"),
    ("jjtestserver-service", "jjtestserver-stable-ip"),
    ("jjtestserver-san-refresh", "jjtestserver-service"),
    ("jjtestserver-ca", "jjtestserver-preflight"),
    ("jjtestserver-service", "jjtestserver-canal-config"),
    ("jjtestserver-dns-follow", "jjtestserver-service"),
    ("jjtestserver-service", "jjtestserver-ca"),
    ("jjtestserver-service", "jjtestserver-token"),
    ("cluster", "jjtestserver-san-refresh"),
    ("rancher", "cert-manager"),
    ("rancher-release", "cert-manager-release"),
])
def test_ordering(dev, later, earlier):
    assert dev.depends_on(later, earlier), f"{later} must wait for {earlier}"


def test_config_yaml_travels_on_stdin_and_is_written_0600(dev):
    step = dev.by_name("jjtestserver-config")
    assert "tls-san:\n- jjtestserver\n- localhost\n- 127.0.0.1" in step.input("stdin")
    assert "DEST=/etc/rancher/rke2/config.yaml" in step.input("create")
    assert "MODE=0600" in step.input("create")
    assert "token" not in step.input("stdin")


def test_remote_commands_never_use_ssh_environment(dev):
    for reg in dev.registrations:
        if reg.type == COMMAND:
            assert not reg.input("environment"), reg.urn
            assert reg.input("addPreviousOutputInEnv") is False, reg.urn


def test_secrets_never_in_plaintext(dev):
    secrets = [SAMPLE_SECRETS["rancher.bootstrapPassword"], "sample-key", "sample-client-key",
               "c2FtcGxlLWNsaWVudC1rZXk=", "sample-generated-token"]
    for reg in dev.registrations:
        visible = plaintext_outside_secrets(reg.raw_inputs)
        for s in secrets:
            assert s not in visible, f"{s!r} in plaintext in {reg.urn}"
    assert {"kubeconfig"} <= dev.secret_outputs
    assert SAMPLE_SECRETS["rancher.bootstrapPassword"] not in json.dumps(
        {k: v for k, v in dev.resolved.items() if k not in dev.secret_outputs})


def test_secret_paths(dev):
    # pulumi-command marks the whole connection secret (it holds the key); the component's
    # `address` prop is what shows an address change in `preview --diff`.
    assert "connection" in dev.by_name("jjtestserver-install").secret_paths()
    assert "values.bootstrapPassword" in dev.by_name("rancher-release").secret_paths()
    assert "kubeconfig" in dev.by_name("cluster").secret_paths()


def test_secret_steps_hide_their_output(dev):
    for name in ("jjtestserver-token", "jjtestserver-ca"):
        assert dev.by_name(name).input("logging") == "none", name


def test_stack_outputs(dev):
    r = dev.resolved
    assert r["apiEndpoint"] == "https://jjtestserver:6443"
    assert r["registrationAddress"] == "https://jjtestserver:9345"
    assert r["rancherUrl"] == "https://jjtestserver"
    assert r["servers"] == ["jjtestserver"] and r["agents"] == []
    assert "server: https://jjtestserver:6443" in r["kubeconfig"]


def test_rancher_values(dev):
    values = dev.by_name("rancher-release").input("values")
    assert values["hostname"] == "jjtestserver" and values["replicas"] == 1
    assert values["ingress"] == {"tls": {"source": "rancher"}}
    cm = dev.by_name("cert-manager-release")
    assert cm.input("values")["crds"] == {"enabled": True, "keep": True}
    assert cm.input("namespace") == "cert-manager" and cm.input("version") == "v1.16.5"


def test_component_props_for_policies(dev):
    props = dev.by_name("jjtestserver").raw_inputs
    assert props["tlsSans"] == ["jjtestserver", "localhost", "127.0.0.1"]
    assert props["mobile"] is True and props["nodeIp"] == "10.255.255.1"
    assert props["tokenSource"] == "generated" and props["serverCount"] == 1 and props["ca"] == "generated"
    assert dev.by_name("rancher").raw_inputs["replicas"] == 1




def test_san_change_touches_only_config_and_san_refresh(dev):
    changed = evaluate(with_changes(RAW, cluster__tlsSans=["jjtestserver", "localhost", "127.0.0.1",
                                                           "jj.example.net"]), SECRETS)
    assert changed_inputs(dev, changed) == {
        "jjtestserver-config": ["stdin"],
        "jjtestserver-san-refresh": ["stdin"],
    }


def test_address_change_restarts_and_reinstalls_nothing(dev):
    moved = evaluate(with_changes(RAW, servers=[{"name": "jjtestserver", "address": "192.0.2.10"}]), SECRETS)
    diff = changed_inputs(dev, moved)
    host_steps = {f"jjtestserver-{s}" for s in SERVER_STEPS}
    assert set(diff) == host_steps
    for name, keys in diff.items():
        assert keys == ["connection"], f"{name} changes {keys}: only the SSH connection may change"
    # Updates of the service step only ensure it runs; they never restart it.
    service = moved.by_name("jjtestserver-service")
    assert "ACTION=ensure" in service.input("update") and "ACTION=restart" in service.input("create")


def test_version_change_reinstalls_and_restarts(dev):
    upgraded = evaluate(with_changes(RAW, cluster__version="v1.33.6+rke2r1"), SECRETS)
    diff = changed_inputs(dev, upgraded)
    assert "create" in diff["jjtestserver-install"]
    assert "triggers" in diff["jjtestserver-service"]  # a trigger change replaces = restarts


def test_other_config_change_restarts_the_service(dev):
    changed = evaluate(with_changes(RAW, cluster__disable=["rke2-metrics-server"]), SECRETS)
    diff = changed_inputs(dev, changed)
    assert diff["jjtestserver-config"] == ["stdin"]
    assert diff["jjtestserver-service"] == ["triggers"]
    assert "jjtestserver-san-refresh" not in diff


def test_retain_on_destroy_changes_only_the_uninstall_step(dev):
    kept = evaluate(with_changes(RAW, cluster__retainOnDestroy=True), SECRETS)
    assert set(changed_inputs(dev, kept)) == {"jjtestserver-uninstall"}
    assert "RETAIN=1" in kept.by_name("jjtestserver-uninstall").input("delete")
    assert "RETAIN=0" in dev.by_name("jjtestserver-uninstall").input("delete")


def test_rke2_owned_ca_reads_the_generated_token_back():
    ev = evaluate(with_changes(RAW, cluster__ca="rke2"), SECRETS)
    assert "jjtestserver-read-token" in ev.names(COMMAND)
    assert "jjtestserver-token" not in ev.names(COMMAND) and "jjtestserver-ca" not in ev.names(COMMAND)
    assert ev.by_name("jjtestserver-read-token").input("logging") == "none"
    assert ev.depends_on("jjtestserver-read-token", "jjtestserver-service")
    assert ev.names("rke2:index:ClusterIdentity") == []


def test_configured_token_is_written_not_read(dev):
    ev = evaluate(with_changes(RAW, token="configured-token-value", cluster__ca="rke2"),
                  SECRETS | {"rke2-rancher:token"})
    assert "jjtestserver-token" in ev.names(COMMAND)
    assert "jjtestserver-read-token" not in ev.names(COMMAND)
    assert "stdin" in ev.by_name("jjtestserver-token").secret_paths()
    assert ev.depends_on("jjtestserver-service", "jjtestserver-token")


def test_host_keys_are_verified_when_given():
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForTests0000000000000000000000"
    ev = evaluate(with_changes(RAW, ssh__hostKeys={"jjtestserver": key}), SECRETS)
    assert ev.by_name("jjtestserver-config").input("connection")["hostKey"] == key
    assert ev.by_name("jjtestserver").raw_inputs["hostKeyVerified"] is True


def test_rancher_and_cert_manager_can_be_disabled():
    ev = evaluate(with_changes(RAW, rancher__enabled=False, certManager__enabled=False), SECRETS)
    assert ev.names("rke2:index:RancherRelease") == [] and ev.names("rke2:index:CertManager") == []
    assert ev.resolved["rancherUrl"] is None


def test_non_root_user_runs_steps_with_sudo():
    ev = evaluate(with_changes(RAW, ssh__user="deploy"), SECRETS)
    assert ev.by_name("jjtestserver-install").input("create").startswith("sudo -n bash -c ")


def test_rke2_owned_ca_rereads_rke2_yaml_each_quarter_and_exports_its_expiry():
    # rke2-facts.md: rke2.yaml's client certificate lives 365 days and is renewed on the host
    # at a start within 120 days of expiry (k3s pkg/daemons/control/deps.go), so the stack
    # re-reads it every quarter and exports when the copy it holds expires.
    import datetime as dt
    from tests.harness import FAKE_KUBECONFIG_EXPIRY
    ev = evaluate(with_changes(RAW, cluster__ca="rke2"), SECRETS)
    read = ev.by_name("jjtestserver-kubeconfig")
    assert read.input("logging") == "none"
    today = dt.date.today()
    assert read.input("triggers") == [f"{today.year}-Q{(today.month - 1) // 3 + 1}"]
    assert ev.resolved["kubeconfigExpiry"] == FAKE_KUBECONFIG_EXPIRY.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_mobile_server_pins_flannel_and_follows_dns():
    # docs.rke2.io networking/basic_network_options: flannel's interface is set through a
    # HelmChartConfig named rke2-canal in kube-system (valuesContent flannel.iface); flannel's
    # --iface takes an interface name or an address (flannel Documentation/configuration.md).
    ev = evaluate(RAW, SECRETS)
    canal = ev.by_name("jjtestserver-canal-config")
    assert "/var/lib/rancher/rke2/server/manifests/" in canal.input("create")
    doc = yaml.safe_load(canal.input("stdin"))
    assert (doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]) == \
        ("HelmChartConfig", "rke2-canal", "kube-system")
    stable_ip = RAW["cluster"].get("mobileNodeIp", "10.255.255.1")  # the documented default
    assert yaml.safe_load(doc["spec"]["valuesContent"]) == {"flannel": {"iface": stable_ip}}
    assert ev.depends_on("jjtestserver-service", "jjtestserver-canal-config")
    # Another CNI: no canal config; not mobile: neither step.
    other = evaluate(with_changes(RAW, cluster__cni="calico"), SECRETS)
    assert "jjtestserver-canal-config" not in other.names() and "jjtestserver-dns-follow" in other.names()
    fixed = evaluate(with_changes(RAW, cluster__mobile=False), SECRETS)
    assert not {"jjtestserver-canal-config", "jjtestserver-dns-follow"} & set(fixed.names())
