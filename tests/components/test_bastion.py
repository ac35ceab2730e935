"""ssh.bastion under Pulumi mocks: every host step's connection carries pulumi-command's `proxy`
(remote.ProxyConnectionArgs) and the components tell policies about the bastion."""

import pytest

from tests.harness import evaluate, plaintext_outside_secrets
from tests.stacks import SAMPLE_SECRETS, load_stack, with_changes

HA_RAW, HA_SECRETS = load_stack("ha")
COMMAND = "command:remote:Command"
NODE_TYPES = ("rke2:index:RKE2Server", "rke2:index:RKE2Agent", "rke2:index:HALoadBalancer")
BASTION_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeBastionKeyForTests000000000000000000"
OWN_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nbastion-own-key\n-----END OPENSSH PRIVATE KEY-----\n"


def _commands(ev):
    return [ev.by_name(n) for n in ev.names(COMMAND)]


def test_every_step_goes_through_the_bastion_with_the_hosts_key():
    ev = evaluate(with_changes(HA_RAW, ssh__bastion={"address": "10.9.0.1", "hostKey": BASTION_KEY}), HA_SECRETS)
    steps = _commands(ev)
    assert len(steps) > 20
    for step in steps:
        conn = step.input("connection")
        assert conn["proxy"] == {"host": "10.9.0.1", "port": 22, "user": HA_RAW["ssh"]["user"],
                                 "privateKey": SAMPLE_SECRETS["ssh.privateKey"], "hostKey": BASTION_KEY,
                                 "dialErrorLimit": 5, "perDialTimeout": 10}, step.name
        assert conn["host"] != "10.9.0.1"
        # The whole connection (so the proxy's key) is secret.
        assert "connection" in step.secret_paths() or "connection.proxy.privateKey" in step.secret_paths()
        assert "sample-key" not in plaintext_outside_secrets(step.raw_inputs)
    for typ in NODE_TYPES:
        for name in ev.names(typ):
            props = ev.by_name(name).raw_inputs
            assert (props["bastion"], props["bastionHostKeyVerified"]) == ("10.9.0.1", True), name


def test_bastion_with_its_own_key_user_and_port_unverified():
    ev = evaluate(with_changes(HA_RAW, ssh__bastion={"address": "jump.example.internal", "user": "jumper",
                                                      "port": 2222, "privateKey": OWN_KEY}), HA_SECRETS)
    for step in _commands(ev):
        proxy = step.input("connection")["proxy"]
        assert (proxy["host"], proxy["user"], proxy["port"], proxy["privateKey"]) == \
            ("jump.example.internal", "jumper", 2222, OWN_KEY)
        assert "hostKey" not in proxy
        assert step.input("connection")["privateKey"] == SAMPLE_SECRETS["ssh.privateKey"]
        assert "bastion-own-key" not in plaintext_outside_secrets(step.raw_inputs)
    for typ in NODE_TYPES:
        for name in ev.names(typ):
            assert ev.by_name(name).raw_inputs["bastionHostKeyVerified"] is False


def test_without_a_bastion_nothing_changes():
    ev = evaluate(HA_RAW, HA_SECRETS)
    for step in _commands(ev):
        assert "proxy" not in step.input("connection")
    for typ in NODE_TYPES:
        for name in ev.names(typ):
            props = ev.by_name(name).raw_inputs
            assert "bastion" not in props and "bastionHostKeyVerified" not in props
