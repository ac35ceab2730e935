"""The scratch root itself: what a script sees, and that it cannot touch this machine."""

from __future__ import annotations

from pathlib import Path

from tests.scripts.sandbox import HOSTNAME, Sandbox


def test_sandbox_is_isolated(sandbox: Sandbox):
    probe = ("hostname; id -u; "
             "touch /usr/bin/rke2-sandbox-probe 2>/dev/null && echo usr-writable; "
             "touch /etc/alternatives/rke2-sandbox-probe 2>/dev/null && echo alternatives-writable; "
             "touch /usr/local/bin/rke2-sandbox-probe /etc/systemd/system/probe /var/lib/rancher/probe /run/probe; "
             "command -v systemctl ss ip journalctl awk")
    res = sandbox.exec(["bash", "-c", probe])
    assert res.returncode == 0, res
    assert res.stdout.splitlines() == [HOSTNAME, "0", "/stubs/systemctl", "/stubs/ss", "/stubs/ip",
                                       "/stubs/journalctl", "/usr/bin/awk"]
    assert sandbox.usr_local.joinpath("bin/rke2-sandbox-probe").exists()
    for p in ("/etc/systemd/system/probe", "/var/lib/rancher/probe", "/run/probe"):
        assert sandbox.exists(p)
    # This machine's own /usr/local is not where that write went.
    assert not Path("/usr/local/bin/rke2-sandbox-probe").exists()
