"""Load balancer scripts: haproxy.sh (packages) and lb-config.sh with the REAL `haproxy -c`
and `keepalived -t` validating the configs components/render.py writes for the ha stack."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components import render
from components.config import parse_config
from tests.scripts.sandbox import Sandbox, unavailable_reason, veth_available
from tests.stacks import load_stack

HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
HA = parse_config(*load_stack("ha"))

needs_haproxy = pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed")


def _keepalived_skip_reason() -> str | None:
    if not shutil.which("keepalived"):
        return "keepalived not installed"
    out = subprocess.run(["keepalived", "--help"], capture_output=True, text=True)
    if "--config-test" not in out.stdout + out.stderr:
        return "this keepalived has no --config-test (-t)"
    if unavailable_reason():
        return unavailable_reason()
    # keepalived -t wants the VIP interface to exist and not be loopback: those runs get a
    # private network namespace holding a veth link of that name.
    if not veth_available():
        return "cannot create a veth link in a network namespace"
    return None


_KEEPALIVED_SKIP = _keepalived_skip_reason()
needs_keepalived_t = pytest.mark.skipif(_KEEPALIVED_SKIP is not None, reason=str(_KEEPALIVED_SKIP))



def lb_leftovers(sb: Sandbox, d: str) -> list[str]:
    return [p.name for p in sb.path(d).iterdir() if p.name.startswith(".rke2-rancher.")]


# -- haproxy.sh -------------------------------------------------------------------------

def test_packages_present_is_unchanged(sandbox: Sandbox):
    sandbox.write("/usr/local/sbin/haproxy", "#!/bin/sh\n", 0o755)
    res = sandbox.run("haproxy.sh", PACKAGES="haproxy")
    assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert sandbox.calls() == []


def test_packages_missing_are_installed_once(sandbox: Sandbox):
    res = sandbox.run("haproxy.sh", PACKAGES="rke2lbtest-a rke2lbtest-b")
    assert res.returncode == 0 and res.stdout == "installed\n", res
    assert sandbox.calls() == ["apt-get install -y -q rke2lbtest-a rke2lbtest-b"]
    sandbox.clear_calls()
    before = sandbox.snapshot()
    res = sandbox.run("haproxy.sh", PACKAGES="rke2lbtest-a rke2lbtest-b")
    assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert sandbox.calls() == [] and sandbox.snapshot() == before


# -- lb-config.sh: haproxy --------------------------------------------------------------

@needs_haproxy
def test_haproxy_config_validated_installed_and_started(sandbox: Sandbox):
    cfg = render.haproxy_cfg(HA)
    res = sandbox.run("lb-config.sh", stdin=cfg)
    assert res.returncode == 0 and res.stdout == "applied\n", res
    assert sandbox.read(HAPROXY_CFG) == cfg
    assert oct(sandbox.path(HAPROXY_CFG).stat().st_mode & 0o777) == oct(0o644)
    assert sandbox.is_active("haproxy") and sandbox.is_enabled("haproxy")
    assert [c for c in sandbox.calls() if c.startswith(("systemctl start", "systemctl reload"))] == \
        ["systemctl start haproxy"]
    assert lb_leftovers(sandbox, "/etc/haproxy") == []

    sandbox.clear_calls()
    before = sandbox.snapshot()
    res = sandbox.run("lb-config.sh", stdin=cfg)
    assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert sandbox.snapshot() == before
    assert not any(c.startswith(("systemctl start", "systemctl reload", "systemctl restart")) for c in sandbox.calls())


@needs_haproxy
def test_haproxy_changed_config_reloads_running_unit(sandbox: Sandbox):
    sandbox.write(HAPROXY_CFG, "# old\n" + render.haproxy_cfg(HA))
    sandbox.set_active("haproxy")
    res = sandbox.run("lb-config.sh", stdin=render.haproxy_cfg(HA))
    assert res.returncode == 0 and res.stdout == "applied\n", res
    assert "systemctl reload haproxy" in sandbox.calls()
    assert not any(c.startswith(("systemctl start", "systemctl restart")) for c in sandbox.calls())
    assert sandbox.read(HAPROXY_CFG) == render.haproxy_cfg(HA)


@needs_haproxy
def test_haproxy_invalid_config_rejected_live_file_kept(sandbox: Sandbox):
    live = render.haproxy_cfg(HA)
    sandbox.write(HAPROXY_CFG, live)
    sandbox.set_active("haproxy")
    before = sandbox.snapshot()
    res = sandbox.run("lb-config.sh", stdin=live.replace("balance roundrobin", "balance nonsense-algorithm"))
    assert res.returncode == 1 and res.stdout == "", res
    assert "haproxy -c rejected the new config; the live one is unchanged" in res.stderr
    assert sandbox.snapshot() == before  # live file untouched, temp file removed
    assert not any(c.startswith("systemctl") for c in sandbox.calls())


# -- lb-config.sh: keepalived -----------------------------------------------------------

@needs_keepalived_t
def test_keepalived_rendered_config_applied(sandbox: Sandbox):
    conf = render.keepalived_conf(HA)
    res = sandbox.run("lb-config.sh", stdin=conf, DEST=KEEPALIVED_CONF, UNIT="keepalived", CHECK="keepalived",
                      net_link=HA.load_balancer.vip_interface)
    assert res.returncode == 0 and res.stdout == "applied\n", res


@needs_keepalived_t
def test_keepalived_valid_config_applied_then_unchanged(sandbox: Sandbox):
    """lb-config.sh itself, with the rendered config plus the global_defs it lacks."""
    conf = "global_defs {\n    script_user root\n    enable_script_security\n}\n\n" + render.keepalived_conf(HA)
    kw = dict(DEST=KEEPALIVED_CONF, UNIT="keepalived", CHECK="keepalived", net_link=HA.load_balancer.vip_interface)
    res = sandbox.run("lb-config.sh", stdin=conf, **kw)
    assert res.returncode == 0 and res.stdout == "applied\n", res
    assert sandbox.read(KEEPALIVED_CONF) == conf and sandbox.is_active("keepalived")
    before = sandbox.snapshot()
    res = sandbox.run("lb-config.sh", stdin=conf, **kw)
    assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert sandbox.snapshot() == before


@needs_keepalived_t
def test_keepalived_invalid_config_rejected(sandbox: Sandbox):
    before = sandbox.snapshot()
    res = sandbox.run("lb-config.sh", stdin="vrrp_instance broken {\n", DEST=KEEPALIVED_CONF,
                      UNIT="keepalived", CHECK="keepalived", net_link=HA.load_balancer.vip_interface)
    assert res.returncode == 1 and "keepalived -t rejected the new config" in res.stderr, res
    assert sandbox.snapshot() == before and not sandbox.exists(KEEPALIVED_CONF)
