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


def test_python_for_the_standin_at_the_project_pins(lab, base):
    # rke2-standin runs on the host's python3 with cryptography and PyYAML at requirements.txt's pins.
    host = add_systemd_host(lab, "sysd5", "10.77.0.25", base=base)
    pins = dict(line.split("==") for line in open("requirements.txt").read().split()
                if line.split("==")[0] in ("cryptography", "pyyaml"))
    out = ok(host, "python3 -c 'import cryptography, yaml; print(cryptography.__version__, yaml.__version__)'")
    assert out.split() == [pins["cryptography"], pins["pyyaml"]], out


def test_private_kernel_parameters_are_writable_and_reset_at_reboot(lab, base):
    # Kernel parameters as procps sysctl(8) and RKE2 read them (rancher/rke2
    # pkg/cli/cmds/profile_linux.go sysctl(): /proc/sys/<path>, newline-terminated integer).
    machine = open("/proc/sys/kernel/panic").read()
    host = add_systemd_host(lab, "sysd6", "10.77.0.26", base=base,
                            private_kernel_params=("kernel.panic", "vm.overcommit_memory"))
    assert ok(host, "cat /proc/sys/kernel/panic") == machine
    ok(host, "sysctl -w kernel.panic=10")
    assert ok(host, "sysctl -n kernel.panic").strip() == "10"
    assert ok(host, "cat /proc/sys/kernel/panic") == "10\n"
    assert open("/proc/sys/kernel/panic").read() == machine, "the machine's own kernel must not change"
    rc, _, err = host.ssh("sysctl -w kernel.panic_on_oops=1")  # not private: read-only as before
    assert rc != 0, err
    # A file in /etc/sysctl.d is applied at boot, as systemd-sysctl does on a real host.
    ok(host, "echo 'vm.overcommit_memory = 1' > /etc/sysctl.d/90-lab.conf")
    host.reboot()
    assert ok(host, "cat /proc/sys/kernel/panic") == machine  # a reboot resets the kernel
    assert ok(host, "sysctl -n vm.overcommit_memory").strip() == "1"


def test_service_events_from_the_journal(lab, base):
    host = add_systemd_host(lab, "sysd7", "10.77.0.27", base=base)
    # The catalog ids we map are systemd's own (the host's catalog names each one).
    from tests.lab.systemd_hosts import UNIT_MESSAGE_IDS
    catalog = ok(host, "cat /usr/lib/systemd/catalog/systemd.catalog")
    for mid in UNIT_MESSAGE_IDS:
        assert f"-- {mid}" in catalog, mid
    ok(host, "cat > /etc/systemd/system/evt.service <<'U'\n[Service]\nType=notify\nNotifyAccess=all\n"
             "Restart=on-failure\nRestartSec=1\n"
             "ExecStart=/bin/sh -c 'systemd-notify --ready; if [ -f /run/evt-fail ]; then rm /run/evt-fail; exit 3; fi; exec sleep infinity'\nU\n"
             "systemctl daemon-reload && systemctl start evt")
    ok(host, "systemctl restart evt")
    ok(host, "touch /run/evt-fail && systemctl restart evt; sleep 3")
    events = [e["event"] for e in host.service_events("evt")]
    assert events[:2] == ["spawn", "ready"], events
    assert events[2:6] == ["stop", "stopped", "spawn", "ready"], events  # systemctl restart
    assert "exit" in events and "auto-restart" in events, events          # Restart=on-failure
    assert events[-2:] == ["spawn", "ready"], events
    assert {e["unit"] for e in host.service_events("evt")} == {"evt.service"}
    assert all(e["time"].endswith("Z") for e in host.service_events())


def test_every_ssh_session_command_is_logged_and_survives_a_reboot(lab, base):
    host = add_systemd_host(lab, "sysd8", "10.77.0.28", base=base)
    ok(host, "true lab-own")  # the lab's own sessions are marked and left out by default
    res = lab.run(host.ssh_argv("echo from-a-client", lab_mark=False))
    assert res.returncode == 0 and res.stdout == "from-a-client\n", res
    assert [c for _, c in host.commands()] == ["echo from-a-client"]
    assert "true lab-own" in [c for _, c in host.commands(include_lab=True)]
    host.reboot()
    assert [c for _, c in host.commands()] == ["echo from-a-client"]
