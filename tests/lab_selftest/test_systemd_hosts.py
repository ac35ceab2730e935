"""Self-tests of real systemd lab hosts (tests/lab/systemd_hosts.py): real systemd as
PID 1, real systemctl/journalctl, sshd as ssh.service. Expectations come from systemd's
documented behaviour (systemd.service(5): Type=notify, TimeoutStartSec; systemd-notify(1)),
not from our code."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab.netlab import Lab
from tests.lab.systemd_hosts import add_systemd_host, ensure_base, nspawn_unavailable_reason

_reason = nspawn_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.skipif(_reason is not None, reason=_reason or "")]


@pytest.fixture(scope="module")
def base():
    return ensure_base()


def ok(host, cmd, timeout=60):
    rc, out, err = host.ssh(cmd, timeout=timeout)
    assert rc == 0, f"{cmd}: rc={rc}\n{out}\n{err}"
    return out


def test_boots_real_systemd_with_ssh_service(lab, base):
    host = add_systemd_host(lab, "sysd1", "10.77.0.21", base=base)
    assert ok(host, "systemctl is-system-running").strip() in ("running", "degraded")
    assert ok(host, "hostname").strip() == "sysd1"
    assert ok(host, "systemctl is-active ssh.service").strip() == "active"
    assert ok(host, "cat /proc/1/comm").strip() == "systemd"
    print(f"boot {host.boot_seconds:.1f}s, memory {host.memory_kib()}")


def test_notify_unit_start_blocks_until_ready_and_times_out_without(lab, base):
    host = add_systemd_host(lab, "sysd2", "10.77.0.22", base=base)
    ok(host, "cat > /etc/systemd/system/late.service <<'U'\n[Service]\nType=notify\nNotifyAccess=all\n"
             "ExecStart=/bin/sh -c 'echo late-starting; sleep 2; systemd-notify --ready; echo late-ready; exec sleep infinity'\nU\n"
             "cat > /etc/systemd/system/never.service <<'U'\n[Service]\nType=notify\nTimeoutStartSec=3\n"
             "ExecStart=/bin/sleep infinity\nU\nsystemctl daemon-reload")
    t0 = time.monotonic()
    ok(host, "systemctl start late.service")
    assert time.monotonic() - t0 >= 2, "systemctl start returned before READY=1"
    assert ok(host, "systemctl is-active late.service").strip() == "active"
    journal = ok(host, "journalctl --no-pager -u late.service")
    assert "late-starting" in journal and "late-ready" in journal
    rc, out, err = host.ssh("timeout 10 systemctl start never.service")
    assert rc != 0
    assert "timeout" in ok(host, "systemctl show -p Result --value never.service")


def test_moved_address_and_reboot(lab, base):
    host = add_systemd_host(lab, "sysd3", "10.77.0.23", base=base)
    ok(host, "touch /root/survives-reboot")
    subprocess.run(["ip", "-n", host.netns, "addr", "del", "10.77.0.23/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "-n", host.netns, "addr", "add", "10.77.0.33/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "-n", host.netns, "route", "replace", "default", "via", lab.gateway], check=True)
    host.address = "10.77.0.33"
    assert ok(host, "hostname").strip() == "sysd3"
    ok(host, "touch /run/gone-after-reboot")  # /run is a fresh tmpfs on every boot
    host.reboot()
    assert ok(host, "systemctl is-system-running").strip() in ("running", "degraded")
    assert ok(host, "test -e /root/survives-reboot && echo yes").strip() == "yes"
    assert host.ssh("test -e /run/gone-after-reboot")[0] == 1, "no new boot"


def test_lab_close_powers_systemd_hosts_off_in_order(base):
    """Lab.close asks every systemd host for an orderly power-off first (systemd-nspawn(1):
    SIGTERM = shut the container down; systemd stops units, running ExecStop=) instead of
    killing the container's processes after a grace period."""
    lab = Lab(keep=True)  # keep the directory to look at the host's files after close
    try:
        with lab:
            host = add_systemd_host(lab, "sysd4", "10.77.0.24", base=base)
            ok(host, "cat > /etc/systemd/system/marker.service <<'U'\n[Service]\nType=oneshot\n"
                     "RemainAfterExit=yes\nExecStart=/bin/true\n"
                     "ExecStop=/bin/sh -c 'echo stopped-in-order > /var/lib/marker-stopped'\nU\n"
                     "systemctl daemon-reload && systemctl start marker.service")
            t0 = time.monotonic()
        elapsed = time.monotonic() - t0
        assert (host.root / "var/lib/marker-stopped").read_text() == "stopped-in-order\n"
        assert not host.killed
        assert not os.path.ismount(host.merged)
        assert not os.path.exists(f"/run/netns/{host.netns}")
        print(f"Lab.close with one systemd host: {elapsed:.1f}s")
    finally:
        shutil.rmtree(lab.dir, ignore_errors=True)
