"""Issue 2: node scripts run in a scratch root with stubbed commands (see sandbox.py).

Each case checks the files written, the step's stdout and that a second run changes
nothing (same bytes, modes and mtimes; no new start/restart/install).
"""

from __future__ import annotations

import shlex
import stat
import time

import pytest

from components import render
from components.config import parse_config
from components.scripts import render as render_script
from tests.scripts.sandbox import HOSTNAME, VALUES, Sandbox, veth_available
from tests.stacks import load_stack

VERSION = VALUES["install.sh"]["RKE2_VERSION"]
MUTATING = ("systemctl start", "systemctl restart", "systemctl stop", "systemctl --no-block start",
            "systemctl --no-block restart", "installer", "rke2 server", "rke2-uninstall.sh")


def mutating(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith(MUTATING)]


def mode(sb: Sandbox, p: str) -> int:
    return stat.S_IMODE(sb.path(p).stat().st_mode)


# -- write-file.sh ----------------------------------------------------------------------

def test_write_file_config_and_token_dropin(sandbox: Sandbox):
    stack = parse_config(*load_stack("ha"))
    config = render.to_yaml(render.server_config(stack, 1))
    token = render.token_yaml("K10abc::server:sample-join-token-abcdef")
    files = {render.SERVER_CONFIG_PATH: config, render.TOKEN_CONFIG_PATH: token}

    for dest, text in files.items():
        res = sandbox.run("write-file.sh", stdin=text, DEST=dest, MODE="0600")
        assert res.returncode == 0 and res.stdout == "changed\n", res
        assert sandbox.read(dest) == text
        assert mode(sandbox, dest) == 0o600
    before = sandbox.snapshot()
    for dest, text in files.items():
        res = sandbox.run("write-file.sh", stdin=text, DEST=dest, MODE="0600")
        assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert sandbox.snapshot() == before
    # No temp files left next to the live ones.
    assert sorted(p.name for p in sandbox.path("/etc/rancher/rke2").iterdir()) == ["config.yaml", "config.yaml.d"]


def test_write_file_rewrites_changed_content_and_fixes_mode(sandbox: Sandbox):
    dest = render.SERVER_CONFIG_PATH
    sandbox.write(dest, "old: 1\n", 0o644)
    res = sandbox.run("write-file.sh", stdin="old: 1\n", DEST=dest, MODE="0600")
    assert res.stdout == "unchanged\n" and mode(sandbox, dest) == 0o600, res
    res = sandbox.run("write-file.sh", stdin="new: 2\n", DEST=dest, MODE="0600")
    assert res.stdout == "changed\n" and sandbox.read(dest) == "new: 2\n", res
    assert mode(sandbox, dest) == 0o600


# -- preflight.sh -----------------------------------------------------------------------

LISTEN_6443_NGINX = 'LISTEN 0      511          0.0.0.0:6443       0.0.0.0:*    users:(("nginx",pid=812,fd=6))\n'


def test_preflight_passes(sandbox: Sandbox):
    res = sandbox.run("preflight.sh", ROLE="server")
    assert res.returncode == 0 and res.stdout == "ok\n", res
    before = sandbox.snapshot()
    assert sandbox.run("preflight.sh", ROLE="agent").stdout == "ok\n"
    assert sandbox.snapshot() == before


def test_preflight_fails_on_busy_port_naming_check_and_host(sandbox: Sandbox):
    sandbox.write("/stubstate/listening", LISTEN_6443_NGINX)
    res = sandbox.run("preflight.sh", ROLE="server")
    assert res.returncode == 1 and res.stdout == "", res
    assert f"preflight on {HOSTNAME}:" in res.stderr
    assert "port 6443: in use by another program" in res.stderr and "nginx" in res.stderr
    assert "port 9345" not in res.stderr


def test_preflight_agent_ignores_server_ports(sandbox: Sandbox):
    sandbox.write("/stubstate/listening", LISTEN_6443_NGINX)
    res = sandbox.run("preflight.sh", ROLE="agent")
    assert res.returncode == 0, res


def test_preflight_passes_when_rke2_server_holds_the_ports(sandbox: Sandbox):
    sandbox.write("/stubstate/listening",
                  'LISTEN 0      4096               *:6443             *:*    users:(("kube-apiserver",pid=9,fd=7))\n'
                  'LISTEN 0      4096               *:9345             *:*    users:(("rke2",pid=8,fd=7))\n')
    sandbox.set_active("rke2-server")
    res = sandbox.run("preflight.sh", ROLE="server")
    assert res.returncode == 0 and res.stdout == "ok\n", res
    assert "port 6443 in use by rke2-server (ours)" in res.stderr


LISTEN_RKE2 = ('LISTEN 0      4096               *:6443             *:*    users:(("kube-apiserver",pid={pid},fd=7))\n'
               'LISTEN 0      4096               *:9345             *:*    users:(("rke2",pid={pid},fd=7))\n')


def test_preflight_passes_when_rke2_server_is_activating(sandbox: Sandbox):
    """A server whose node IP changed keeps its listeners while the unit stays activating
    (k3s pkg/cluster/managed.go retries every 5 s, no READY=1): its ports are ours."""
    sandbox.write("/stubstate/listening", LISTEN_RKE2.format(pid=8))
    sandbox.write("/stubstate/units/rke2-server.service.activating", "")
    res = sandbox.run("preflight.sh", ROLE="server")
    assert res.returncode == 0 and res.stdout == "ok\n", res
    assert "port 9345 in use by rke2-server (ours)" in res.stderr


def _preflight_with_listener_in_cgroup(sb: Sandbox, cgroup: str):
    """Runs preflight with a real process listed as the listener of both ports, its
    /proc/<pid>/cgroup replaced (bind mount, private mount namespace) by `cgroup`."""
    sb.write("/tmp/cgroup", cgroup)
    script = render_script("preflight.sh", "test-step", **VALUES["preflight.sh"])
    wrapper = ('sleep 60 & pid=$!; '
               f"printf '%s' {shlex.quote(LISTEN_RKE2)} | sed \"s/{{pid}}/$pid/g\" > /stubstate/listening; "
               'mount --bind /tmp/cgroup /proc/$pid/cgroup; '
               'bash -c "$1" rke2-rancher; rc=$?; kill $pid; exit $rc')
    return sb.exec(["bash", "-c", wrapper, "wrapper", script])


def test_preflight_passes_when_the_listener_is_in_rke2_servers_cgroup(sandbox: Sandbox):
    res = _preflight_with_listener_in_cgroup(sandbox, "0::/system.slice/rke2-server.service\n")
    assert res.returncode == 0 and "port 6443 in use by rke2-server (ours)" in res.stderr, res


def test_preflight_static_pod_counts_as_rke2_only_when_rke2_is_installed(sandbox: Sandbox):
    pod = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-a.scope\n"
    res = _preflight_with_listener_in_cgroup(sandbox, pod)
    assert res.returncode == 1 and "port 6443: in use by another program" in res.stderr, res
    sandbox.install_rke2()
    res = _preflight_with_listener_in_cgroup(sandbox, pod)
    assert res.returncode == 0, res


def test_preflight_listener_in_another_cgroup_is_refused(sandbox: Sandbox):
    res = _preflight_with_listener_in_cgroup(sandbox, "0::/system.slice/nginx.service\n")
    assert res.returncode == 1 and "port 9345: in use by another program" in res.stderr, res


def test_preflight_fails_on_too_little_disk(sandbox: Sandbox):
    res = sandbox.run("preflight.sh", MIN_DISK_MB=10**12)
    assert res.returncode == 1, res
    assert "disk:" in res.stderr and "MB free under /var/lib" in res.stderr


def test_preflight_fails_with_swap_on(sandbox: Sandbox):
    sandbox.write("/stubstate/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1048572 0 -2\n")
    res = sandbox.run("preflight.sh")
    assert res.returncode == 1 and "swap:" in res.stderr, res


# -- install.sh -------------------------------------------------------------------------

def test_install_installs_then_leaves_it(sandbox: Sandbox):
    res = sandbox.run("install.sh")
    assert res.returncode == 0 and res.stdout == "installed\n", res
    assert mutating(sandbox.calls()) == [
        f"installer INSTALL_RKE2_VERSION={VERSION} INSTALL_RKE2_TYPE=server INSTALL_RKE2_ARTIFACT_PATH="]
    assert mode(sandbox, "/usr/local/bin/rke2") == 0o755
    assert sandbox.exists("/usr/local/bin/rke2-uninstall.sh")
    assert list(sandbox.path("/tmp").iterdir()) == []  # the installer's work dir is removed

    sandbox.clear_calls()
    before = sandbox.snapshot()
    res = sandbox.run("install.sh")
    assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert mutating(sandbox.calls()) == []
    assert sandbox.snapshot() == before


def test_install_upgrades_another_version(sandbox: Sandbox):
    sandbox.install_rke2("v1.32.9+rke2r1")
    res = sandbox.run("install.sh", RKE2_TYPE="agent")
    assert res.returncode == 0 and res.stdout == "installed\n", res
    assert any(c.startswith(f"installer INSTALL_RKE2_VERSION={VERSION} INSTALL_RKE2_TYPE=agent") for c in sandbox.calls())


def test_install_air_gapped_passes_artifact_path(sandbox: Sandbox):
    sandbox.write("/srv/artifacts/rke2.linux-amd64.tar.gz", "not really a tarball")
    res = sandbox.run("install.sh", ARTIFACT_DIR="/srv/artifacts")
    assert res.returncode == 0 and res.stdout == "installed\n", res
    assert f"installer INSTALL_RKE2_VERSION={VERSION} INSTALL_RKE2_TYPE=server INSTALL_RKE2_ARTIFACT_PATH=/srv/artifacts" \
        in sandbox.calls()


def test_install_fails_on_version_mismatch(sandbox: Sandbox):
    sandbox.write("/stubstate/installer-version", "v1.32.0+rke2r1\n")
    res = sandbox.run("install.sh")
    assert res.returncode == 1 and res.stdout == "", res
    assert f"installed v1.32.0+rke2r1, wanted {VERSION}" in res.stderr


def test_install_fails_when_installer_cannot_be_fetched(sandbox: Sandbox):
    res = sandbox.run("install.sh", INSTALL_SCRIPT_URL="file:///srv/nothing-here.sh")
    assert res.returncode == 1 and "could not fetch file:///srv/nothing-here.sh" in res.stderr, res


# -- service.sh -------------------------------------------------------------------------

def test_service_restart_on_stopped_unit_starts_and_waits_readyz(sandbox: Sandbox):
    sandbox.install_rke2()
    sandbox.add_kubectl()
    res = sandbox.run("service.sh", ACTION="restart")
    assert res.returncode == 0 and res.stdout == "ready\n", res
    assert sandbox.is_active("rke2-server") and sandbox.is_enabled("rke2-server")
    calls = sandbox.calls()
    assert mutating(calls) == ["systemctl --no-block start rke2-server"]
    assert calls[-1] == "kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml get --raw /readyz"
    assert "API server ready (/readyz ok)" in res.stderr

    # The update form (ACTION=ensure) on the running unit changes nothing.
    sandbox.clear_calls()
    before = sandbox.snapshot()
    res = sandbox.run("service.sh", ACTION="ensure")
    assert res.returncode == 0 and res.stdout == "ready\n", res
    assert mutating(sandbox.calls()) == []
    assert sandbox.snapshot() == before


def test_service_restart_on_running_unit_restarts(sandbox: Sandbox):
    sandbox.install_rke2()
    sandbox.add_kubectl()
    sandbox.set_active("rke2-server")
    res = sandbox.run("service.sh", ACTION="restart")
    assert res.returncode == 0 and res.stdout == "ready\n", res
    assert mutating(sandbox.calls()) == ["systemctl --no-block restart rke2-server"]


def test_service_agent(sandbox: Sandbox):
    sandbox.install_rke2()
    res = sandbox.run("service.sh", UNIT="rke2-agent", ACTION="restart", SINGLE_SERVER=0)
    assert res.returncode == 0 and res.stdout == "ready\n", res
    assert mutating(sandbox.calls()) == ["systemctl --no-block start rke2-agent"]
    assert sandbox.is_active("rke2-agent") and not any(c.startswith("kubectl") for c in sandbox.calls())


# k3s on a server whose node IP changed (pkg/cluster/managed.go `testClusterDB`: logrus.Infof
# "Failed to test data store connection: %v" with pkg/etcd/etcd.go `Test`'s error;
# shared/reference/rke2-facts.md): the process does not exit, it logs "not a member of the
# etcd cluster" and retries every 5 s, never sends READY=1, so the Type=notify unit stays
# "activating". The hook models one such start: a journal line, the unit left activating.
# Once `rke2 server --cluster-reset` ran (the stub rke2 leaves a marker) it starts normally.
NOT_MEMBER_LINE = ('level=info msg="Failed to test data store connection: this server is a not a member of the '
                   'etcd cluster. Found [s1-0a1b=https://10.20.0.57:2380], expect: s1-0a1b=https://10.20.0.58:2380"')
START_NOT_MEMBER = f"""#!/bin/bash
[ -f /stubstate/cluster-reset-done ] && exit 0
echo '{NOT_MEMBER_LINE}' >> /stubstate/journal/rke2-server.service
touch /stubstate/units/rke2-server.service.activating
"""
OLD_LINE = "level=info msg=\"an earlier run\"\n" + NOT_MEMBER_LINE + "\n"


def _etcd_ip_changed(sb: Sandbox) -> None:
    sb.install_rke2()
    sb.add_kubectl()
    # An earlier failed attempt already logged the message: only new lines count.
    sb.write("/stubstate/journal/rke2-server.service", OLD_LINE)
    sb.on_start("rke2-server", START_NOT_MEMBER)


def test_service_single_server_resets_etcd_after_ip_change(sandbox: Sandbox):
    _etcd_ip_changed(sandbox)
    res = sandbox.run("service.sh", ACTION="restart", SINGLE_SERVER=1, TIMEOUT=600)
    assert res.returncode == 0 and res.stdout == "ready\n", res
    assert mutating(sandbox.calls()) == [
        "systemctl --no-block start rke2-server",
        "systemctl stop rke2-server",
        "rke2 server --cluster-reset",
        "systemctl --no-block start rke2-server",
    ]
    assert sandbox.is_active("rke2-server")


def test_service_multi_server_fails_fast_with_the_log(sandbox: Sandbox):
    """Detected while waiting, long before TIMEOUT (600 s): the unit never fails by itself."""
    _etcd_ip_changed(sandbox)
    started = time.monotonic()
    res = sandbox.run("service.sh", ACTION="restart", SINGLE_SERVER=0, TIMEOUT=600)
    elapsed = time.monotonic() - started
    assert res.returncode == 1 and res.stdout == "", res
    assert elapsed < 15, elapsed
    assert mutating(sandbox.calls()) == ["systemctl --no-block start rke2-server"]
    assert "last lines of the rke2-server log" in res.stderr
    assert "not a member of the etcd cluster" in res.stderr
    assert "no automatic reset" in res.stderr


def test_service_old_not_member_lines_do_not_count(sandbox: Sandbox):
    """A journal that already holds the message from an earlier attempt does not make a
    healthy start look broken."""
    sandbox.install_rke2()
    sandbox.add_kubectl()
    sandbox.write("/stubstate/journal/rke2-server.service", OLD_LINE)
    res = sandbox.run("service.sh", ACTION="restart", SINGLE_SERVER=0, TIMEOUT=600)
    assert res.returncode == 0 and res.stdout == "ready\n", res
    assert "rke2 server --cluster-reset" not in sandbox.calls()


def test_service_failed_unit_fails_at_once(sandbox: Sandbox):
    sandbox.install_rke2()
    sandbox.on_start("rke2-server", "#!/bin/bash\nexit 1\n")
    started = time.monotonic()
    res = sandbox.run("service.sh", ACTION="restart", SINGLE_SERVER=1, TIMEOUT=600)
    assert res.returncode == 1 and "rke2-server failed to start" in res.stderr, res
    assert time.monotonic() - started < 15


def test_service_times_out_on_a_unit_that_stays_activating(sandbox: Sandbox):
    sandbox.install_rke2()
    sandbox.on_start("rke2-server", "#!/bin/bash\ntouch /stubstate/units/rke2-server.service.activating\n")
    res = sandbox.run("service.sh", ACTION="restart", SINGLE_SERVER=1, TIMEOUT=3)
    assert res.returncode == 1 and "rke2-server did not start within 3s (state: activating)" in res.stderr, res


# -- stable-ip.sh -----------------------------------------------------------------------

STABLE_IP = VALUES["stable-ip.sh"]["STABLE_IP"]
HELPER = "/usr/local/sbin/rke2-stable-ip"
UNIT = "/etc/systemd/system/rke2-stable-ip.service"
DROPIN = "/etc/systemd/system/rke2-server.service.d/10-rke2-stable-ip.conf"


def test_stable_ip_writes_helper_unit_dropin_and_holds_the_address(sandbox: Sandbox):
    res = sandbox.run("stable-ip.sh")
    assert res.returncode == 0 and res.stdout == f"{STABLE_IP}\n", res
    assert mode(sandbox, HELPER) == 0o755 and mode(sandbox, UNIT) == 0o644 and mode(sandbox, DROPIN) == 0o644
    assert f"addr='{STABLE_IP}/32'" in sandbox.read(HELPER)
    unit = sandbox.read(UNIT)
    assert f"ExecStart={HELPER}" in unit and "Before=rke2-server.service" in unit
    assert "WantedBy=multi-user.target" in unit
    assert "Requires=rke2-stable-ip.service" in sandbox.read(DROPIN)
    assert sandbox.is_enabled("rke2-stable-ip") and sandbox.is_active("rke2-stable-ip")
    calls = sandbox.calls()
    assert calls.index("systemctl daemon-reload") < calls.index("systemctl start rke2-stable-ip.service")
    assert f"exec {HELPER}" in calls
    assert sandbox.read("/stubstate/ip/rke2-stable") == f"{STABLE_IP}/32\n"

    sandbox.clear_calls()
    before = sandbox.snapshot()
    res = sandbox.run("stable-ip.sh")
    assert res.returncode == 0 and res.stdout == f"{STABLE_IP}\n", res
    assert sandbox.snapshot() == before
    assert f"exec {HELPER}" not in sandbox.calls()  # the active oneshot is not run again
    assert sandbox.read("/stubstate/ip/rke2-stable") == f"{STABLE_IP}/32\n"


def test_stable_ip_helper_is_idempotent_at_boot(sandbox: Sandbox):
    assert sandbox.run("stable-ip.sh").returncode == 0
    for _ in range(2):  # every boot runs the helper again
        res = sandbox.exec([HELPER])
        assert res.returncode == 0, res
    assert sandbox.read("/stubstate/ip/rke2-stable") == f"{STABLE_IP}/32\n"


@pytest.mark.skipif(not veth_available(), reason="no private network namespace with links here")
def test_stable_ip_helper_with_the_real_ip_command(sandbox: Sandbox):
    """The helper's and the script's greps against real `ip` output, in a private network
    namespace (a dummy link where the kernel has the module, else lo); twice, as at reboots."""
    assert sandbox.run("stable-ip.sh").returncode == 0
    check = f"{HELPER} && {HELPER} && ip -o addr show | grep ' {STABLE_IP}/32 '"
    res = sandbox.exec(["bash", "-c", check], env={"PATH": "/usr/sbin:/usr/bin"}, net_link="eth0")
    assert res.returncode == 0, res
    assert res.stdout.count(f" {STABLE_IP}/32 ") == 1, res


def test_stable_ip_falls_back_to_loopback_without_dummy(sandbox: Sandbox):
    sandbox.write("/stubstate/ip/no-dummy", "")
    res = sandbox.run("stable-ip.sh", METHOD="auto")
    assert res.returncode == 0, res
    assert f"{STABLE_IP}/32" in sandbox.read("/stubstate/ip/lo")


def test_stable_ip_dummy_method_fails_without_dummy(sandbox: Sandbox):
    sandbox.write("/stubstate/ip/no-dummy", "")
    res = sandbox.run("stable-ip.sh", METHOD="dummy")
    assert res.returncode == 1, res
    assert f"could not hold {STABLE_IP} (method dummy)" in res.stderr


# -- uninstall.sh -----------------------------------------------------------------------

def _installed_server(sb: Sandbox) -> None:
    sb.install_rke2()
    sb.write(render.SERVER_CONFIG_PATH, "node-name: x\n", 0o600)
    sb.write(render.TOKEN_PATH, "K10abc::server:pw\n", 0o600)
    assert sb.run("stable-ip.sh").returncode == 0
    sb.clear_calls()


MARKER = "/etc/rancher/rke2/rke2-rancher-node"


def test_uninstall_register_only_marks_the_host(sandbox: Sandbox):
    _installed_server(sandbox)
    before = sandbox.snapshot()
    res = sandbox.run("uninstall.sh", ACTION="register", RETAIN=0)
    assert res.returncode == 0, res
    after = sandbox.snapshot()
    assert after.pop(MARKER)[3] == b"rke2-server-1 server\n"
    after.pop("/etc/rancher/rke2")  # directory mtime is not compared, only its mode
    before.pop("/etc/rancher/rke2")
    assert after == before
    assert [c for c in sandbox.calls() if not c.startswith("systemctl is-enabled")] == []
    # Again (and with retain): unchanged.
    marked = sandbox.snapshot()
    for retain in (0, 1):
        assert sandbox.run("uninstall.sh", ACTION="register", RETAIN=retain).returncode == 0
    assert sandbox.snapshot() == marked


@pytest.mark.parametrize("new_node,new_role", [
    ("rke2-server-9", "server"),   # the node was renamed
    ("rke2-server-1", "agent"),    # the host moved from servers to agents (same name)
])
def test_uninstall_of_the_old_name_leaves_a_host_marked_for_another(sandbox: Sandbox, new_node, new_role):
    """Pulumi creates the new name's steps first and deletes the old name's uninstall step at
    the end of the same update: that delete must leave RKE2 on the host."""
    _installed_server(sandbox)
    assert sandbox.run("uninstall.sh", ACTION="register", NODE="rke2-server-1", ROLE="server").returncode == 0
    assert sandbox.run("uninstall.sh", ACTION="register", NODE=new_node, ROLE=new_role).returncode == 0
    sandbox.clear_calls()
    before = sandbox.snapshot()
    res = sandbox.run("uninstall.sh", ACTION="uninstall", RETAIN=0, NODE="rke2-server-1", ROLE="server")
    assert res.returncode == 0, res
    assert f"now managed as '{new_node} {new_role}'" in res.stderr and "leaving RKE2 installed" in res.stderr
    assert sandbox.snapshot() == before and mutating(sandbox.calls()) == []
    assert sandbox.exists("/usr/local/bin/rke2")

    # The node that manages it now still uninstalls it on destroy.
    res = sandbox.run("uninstall.sh", ACTION="uninstall", RETAIN=0, NODE=new_node, ROLE=new_role)
    assert res.returncode == 0 and "rke2-uninstall.sh " in sandbox.calls(), res
    assert not sandbox.exists("/usr/local/bin/rke2") and not sandbox.exists(MARKER)


def test_uninstall_register_does_not_claim_a_host_running_the_other_role(sandbox: Sandbox):
    _installed_server(sandbox)
    assert sandbox.run("uninstall.sh", ACTION="register", NODE="rke2-server-1", ROLE="server").returncode == 0
    sandbox.write("/stubstate/units/rke2-server.service.enabled", "")
    res = sandbox.run("uninstall.sh", ACTION="register", NODE="rke2-agent-1", ROLE="agent")
    assert res.returncode == 0 and "rke2-server is enabled here" in res.stderr, res
    assert sandbox.read(MARKER) == "rke2-server-1 server\n"


def test_preflight_refuses_a_host_of_the_other_role(sandbox: Sandbox):
    sandbox.write("/stubstate/units/rke2-server.service.enabled", "")
    res = sandbox.run("preflight.sh", ROLE="agent")
    assert res.returncode == 1, res
    assert "role: rke2-server is enabled or running on this host" in res.stderr
    assert "remove it from servers first" in res.stderr
    sandbox.write("/stubstate/units/rke2-agent.service.activating", "")
    sandbox.path("/stubstate/units/rke2-server.service.enabled").unlink()
    res = sandbox.run("preflight.sh", ROLE="server")
    assert res.returncode == 1 and "role: rke2-agent is enabled or running" in res.stderr, res
    assert "remove it from agents first" in res.stderr


def test_uninstall_runs_rke2_uninstall_and_removes_stable_ip(sandbox: Sandbox):
    _installed_server(sandbox)
    res = sandbox.run("uninstall.sh", ACTION="uninstall", RETAIN=0)
    assert res.returncode == 0, res
    calls = sandbox.calls()
    assert "rke2-uninstall.sh " in calls
    assert "systemctl disable --now rke2-stable-ip.service" in calls
    for gone in ("/usr/local/bin/rke2", "/etc/rancher/rke2", "/var/lib/rancher/rke2", HELPER, UNIT, DROPIN):
        assert not sandbox.exists(gone), gone
    assert not sandbox.is_active("rke2-stable-ip")

    # A second delete (e.g. a retried destroy) finds nothing to do and still succeeds.
    sandbox.clear_calls()
    before = sandbox.snapshot()
    res = sandbox.run("uninstall.sh", ACTION="uninstall", RETAIN=0)
    assert res.returncode == 0 and "nothing to uninstall" in res.stderr, res
    assert sandbox.snapshot() == before and sandbox.calls() == []


def test_uninstall_retain_leaves_everything(sandbox: Sandbox):
    _installed_server(sandbox)
    before = sandbox.snapshot()
    res = sandbox.run("uninstall.sh", ACTION="uninstall", RETAIN=1)
    assert res.returncode == 0 and "retainOnDestroy" in res.stderr, res
    assert sandbox.snapshot() == before and sandbox.calls() == []


# -- read-file.sh -----------------------------------------------------------------------

def test_read_file_prints_the_file(sandbox: Sandbox):
    sandbox.write(render.KUBECONFIG_PATH, "apiVersion: v1\nkind: Config\n", 0o600)
    res = sandbox.run("read-file.sh", SOURCE=render.KUBECONFIG_PATH)
    assert res.returncode == 0 and res.stdout == "apiVersion: v1\nkind: Config\n", res


def test_read_file_fails_on_missing_or_empty(sandbox: Sandbox):
    res = sandbox.run("read-file.sh", SOURCE=render.TOKEN_PATH)
    assert res.returncode == 1 and res.stdout == "", res
    assert f"{render.TOKEN_PATH} is missing or empty" in res.stderr
    sandbox.write(render.TOKEN_PATH, "")
    assert sandbox.run("read-file.sh", SOURCE=render.TOKEN_PATH).returncode == 1
