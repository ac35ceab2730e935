"""ssh.bastion under the real engine with the rke2-guard pack: the components' bastion props
reach `ssh-host-key-verification`, which flags an unpinned bastion (advisory) and is quiet
once ssh.bastion.hostKey is set."""

import pytest

from tests.engine.test_policy_engine import POLICY, preview_with, project  # noqa: F401  (fixture)

pytestmark = pytest.mark.engine
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeBastionKeyForTests000000000000000000"


def _bastion(**extra):
    def change(cfg):
        cfg["rke2-rancher:ssh"]["bastion"] = {"address": "jump.example.internal", **extra}
    return change


def test_unpinned_bastion_is_reported_and_a_pinned_one_is_not(project):
    res = preview_with(project, "dev", _bastion())
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]  # advisory
    assert "ssh-host-key-verification" in out and "the bastion 'jump.example.internal'" in out, out[-4000:]
    assert "ssh.bastion.hostKey" in out
    res = preview_with(project, "dev", _bastion(hostKey=KEY))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "the bastion 'jump.example.internal'" not in out


def test_bastion_config_error_stops_the_preview(project):
    res = preview_with(project, "dev", _bastion(address="jjtestserver"))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "rke2-rancher:ssh.bastion.address" in out and "servers[0].address has it" in out, out[-3000:]
