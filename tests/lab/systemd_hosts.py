"""Real Debian hosts with systemd for the lab: a debootstrap base built once and cached,
one overlayfs per host, booted with systemd-nspawn inside the host's lab network namespace.

    from tests.lab.systemd_hosts import add_systemd_host
    host = add_systemd_host(lab, "srv1", "10.77.0.11")   # a netlab.Lab that is running
    host.ssh("systemctl is-system-running")               # real systemd, journald, sshd

Network plumbing (netns, veth into the lab bridge, address, default route, known_hosts,
hosts-file entry) is netlab's: `SystemdHost` subclasses `netlab.Host` and replaces only the
"hostinit + lab sshd" part with `systemd-nspawn --boot` of a real Debian whose ssh.service
runs sshd. Flags (see lab-facts.md): `--register=no --keep-unit` because this machine does
not run systemd itself; `--network-namespace-path` joins the netns netlab made.

Base cache: ${XDG_CACHE_HOME:-~/.cache}/rke2-rancher/lab-base/<key>/rootfs with COMPLETE,
<key> = hash of suite, mirror and package list.
"""
from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.lab import netlab
from tests.lab.netlab import LabError, _run

REPO = Path(__file__).resolve().parents[2]
# Minimal, plus what RKE2's install/killall/uninstall scripts call (tar, gzip, iptables,
# kmod for modprobe, util-linux is in minbase).
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "curl",
                 "ca-certificates", "procps", "tar", "gzip", "kmod", "iptables", "python3",
                 # A load balancer host's packages: HALoadBalancer installs them with apt-get
                 # when missing, and lab hosts cannot reach Debian's mirrors.
                 "haproxy", "keepalived")
# rke2-standin (the lab's RKE2 stand-in, a Python program) needs these in the host; Debian
# bookworm's python3-cryptography (38) lacks APIs it uses, so they come from PyPI at the
# project's own pins (requirements.txt) into /opt/rk2lab/python-site, on python3's path.
STANDIN_PYTHON_PACKAGES = ("cryptography", "pyyaml")
STANDIN_SITE = "/opt/rk2lab/python-site"
# Kernel parameters a host may own privately (add_systemd_host(private_kernel_params=...)).
PRIVATE_PARAMS_SCRIPT = "/usr/local/lib/rk2lab/private-kernel-params.sh"
COMMAND_WRAPPER = "/usr/local/lib/rk2lab/logged-command"
COMMAND_LOG = "/var/log/rk2lab/commands.log"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def _pin(name: str) -> str:
    for line in (REPO / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise LabError(f"{name} is not set in versions.env")


def nspawn_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "systemd lab hosts need root"
    for tool in ("systemd-nspawn", "debootstrap"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed (make host-deps)"
    return None


def _python_pins() -> list[str]:
    """`name==version` for STANDIN_PYTHON_PACKAGES, as requirements.txt pins them."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.lower()] = f"{name}=={version}"
    missing = [p for p in STANDIN_PYTHON_PACKAGES if p not in pins]
    if missing:
        raise LabError(f"requirements.txt pins none of {missing}")
    return [pins[p] for p in STANDIN_PYTHON_PACKAGES]


def base_dir(suite: str | None = None, mirror: str | None = None) -> Path:
    suite = suite or _pin("DEBIAN_SUITE")
    mirror = mirror or os.environ.get("RK2LAB_DEBIAN_MIRROR", DEFAULT_MIRROR)
    key = hashlib.sha256("\n".join([suite, mirror, *BASE_PACKAGES, *_python_pins()]).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rke2-rancher" / "lab-base" / key


def ensure_base(suite: str | None = None, mirror: str | None = None,
                progress=lambda msg: print(msg, file=sys.stderr)) -> Path:
    """The cached Debian root filesystem (built on a miss, about 2 min). Returns rootfs."""
    suite = suite or _pin("DEBIAN_SUITE")
    mirror = mirror or os.environ.get("RK2LAB_DEBIAN_MIRROR", DEFAULT_MIRROR)
    dest = base_dir(suite, mirror)
    if (dest / "COMPLETE").exists():
        return dest / "rootfs"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / "COMPLETE").exists():
            return dest / "rootfs"
        stage = Path(tempfile.mkdtemp(prefix=f".building-{dest.name}.", dir=dest.parent))
        try:
            log = stage / "debootstrap.log"
            progress(f"lab-base: debootstrap {suite} into {dest} (cached afterwards)...")
            t0 = time.monotonic()
            with open(log, "w") as f:
                res = subprocess.run(
                    ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                     suite, str(stage / "rootfs"), mirror], stdout=f, stderr=subprocess.STDOUT)
            if res.returncode != 0:
                raise LabError(f"debootstrap failed: {log.read_text()[-2000:]}")
            root = stage / "rootfs"
            _install_standin_python(root, log)
            # Every host gets its own machine-id and ssh host key in its upper layer.
            (root / "etc/machine-id").write_text("")
            for key in root.glob("etc/ssh/ssh_host_*"):
                key.unlink()
            # Names resolve through the lab's hosts file only (no DNS on the lab network).
            (root / "etc/resolv.conf").unlink(missing_ok=True)
            (root / "etc/resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            seconds = time.monotonic() - t0
            (stage / "COMPLETE").write_text(f"suite={suite}\nmirror={mirror}\nseconds={seconds:.0f}\n")
            if dest.exists():
                shutil.rmtree(dest)
            stage.rename(dest)
            progress(f"lab-base: built in {seconds:.0f}s")
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)
    return dest / "rootfs"


def _install_standin_python(root: Path, log: Path) -> None:
    """Wheels for the host's python3 (bookworm: CPython 3.11, glibc 2.36) into STANDIN_SITE."""
    site = root / STANDIN_SITE.lstrip("/")
    with open(log, "a") as f:
        res = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-compile", "--target", str(site), "--only-binary=:all:", "--python-version", "3.11",
             "--implementation", "cp", "--platform", "manylinux_2_34_x86_64",
             "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
             *_python_pins()], stdout=f, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise LabError(f"pip install into the lab base failed: {log.read_text()[-2000:]}")
    (root / "usr/lib/python3/dist-packages/rk2lab-site.pth").write_text(STANDIN_SITE + "\n")


# A lab-only boot step, not part of the product: hosts share this machine's kernel, so
# /proc/sys is read-only in them. A host that must own some kernel parameters (the CIS
# profile sets four) gets private copies: plain files in /run (so a reboot resets them, as a
# kernel would) bound over /proc/sys/..., then systemd-sysctl applies /etc/sysctl.d as at a
# real boot (its own unit is skipped here: ConditionPathIsReadWrite=/proc/sys/).
_PRIVATE_PARAMS_UNIT = """[Unit]
Description=rk2lab: private copies of kernel parameters (lab only; hosts share one kernel)
DefaultDependencies=no
Before=sysinit.target systemd-sysctl.service
After=systemd-remount-fs.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={script} {params}
ExecStart=-/lib/systemd/systemd-sysctl

[Install]
WantedBy=sysinit.target
"""
_PRIVATE_PARAMS_SH = """#!/bin/sh
# rk2lab (lab only): bind a private, writable copy of each named kernel parameter over its
# /proc/sys file, starting from this machine's value.
set -eu
mkdir -p /run/rk2lab/kernel-params
for p in "$@"; do
  path=/proc/sys/$(printf '%s' "$p" | tr . /)
  copy=/run/rk2lab/kernel-params/$p
  cat "$path" > "$copy"
  mount --bind "$copy" "$path"
done
"""


# systemd's catalog ids of the messages PID 1 logs about units (systemd src/systemd/sd-messages.h,
# SD_MESSAGE_UNIT_*; the same ids are in the host's /usr/lib/systemd/catalog/systemd.catalog,
# checked by tests/lab_selftest/test_systemd_hosts.py).
UNIT_MESSAGE_IDS = {
    "7d4958e842da4a758f6c1cdc7b36dcc5": "spawn",         # UNIT_STARTING
    "39f53479d3a045ac8e11786248231fbf": "ready",         # UNIT_STARTED
    "de5b426a63be47a7b6ac3eaac82e2f6f": "stop",          # UNIT_STOPPING
    "9d1aaa27d60140bd96365438aad20286": "stopped",       # UNIT_STOPPED
    "98e322203f7a4ed290d09fe03c09fe15": "exit",          # UNIT_PROCESS_EXIT
    "d9b373ed55a64feb8242e02dbe79a49c": "failed",        # UNIT_RESULT
    "5eb03494b6584870a536b337290809b3": "auto-restart",  # UNIT_RESTART_SCHEDULED
}


class SystemdHost(netlab.Host):
    """A lab host running a real Debian with systemd as PID 1 (see the module docstring).
    `exec` runs commands inside the container (nsenter into PID 1's namespaces)."""

    def __init__(self, lab, name, address, index, base: Path,
                 binds_ro: tuple[tuple[str, str], ...] = (),
                 private_kernel_params: tuple[str, ...] = ()):
        super().__init__(lab, name, address, index)
        self.base = base
        #: kernel parameters this host owns (see _PRIVATE_PARAMS_UNIT); others are read-only
        self.private_kernel_params = tuple(private_kernel_params)
        #: (path on this machine, path in the host) bound read-only at every boot
        self.binds_ro = tuple((str(a), str(b)) for a, b in binds_ro)
        self.merged = self.dir / "merged"
        self._nspawn: subprocess.Popen | None = None
        self._term_sent = False
        #: True once a stop had to SIGKILL the container (no orderly shutdown in time).
        self.killed = False
        self.boot_seconds: float | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def _start(self) -> None:
        lab = self.lab
        # The network part exactly as netlab.Host._start does it (LAN or private segment).
        netlab._ip("netns", "add", self.netns)
        lab._manifest_add(self.netns)
        netlab._ip("-n", self.netns, "link", "set", "lo", "up")
        seg = self.segment
        link_ns, bridge = (seg.netns, seg.bridge) if seg else (lab.netns, netlab.BRIDGE)
        netlab._ip("-n", link_ns, "link", "add", self.veth, "type", "veth",
                   "peer", "name", "eth0", "netns", self.netns)
        netlab._ip("-n", link_ns, "link", "set", self.veth, "master", bridge, "up")
        netlab._ip("-n", self.netns, "addr", "add",
                   f"{self.address}/{seg.prefixlen if seg else lab.prefixlen}", "dev", "eth0")
        netlab._ip("-n", self.netns, "link", "set", "eth0", "up")
        if seg is None:  # a segment has no gateway: its hosts reach only the segment
            netlab._ip("-n", self.netns, "route", "add", "default", "via", lab.gateway)
        self._prepare_upper()
        self._boot()

    def _prepare_upper(self) -> None:
        """Upper layer = `self.root`: hostname, machine-id, ssh host key, root's key."""
        root = self.root
        for d in ("etc/ssh", "root/.ssh", "etc/systemd/system"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (self.dir / "work").mkdir(parents=True, exist_ok=True)
        self.merged.mkdir(parents=True, exist_ok=True)
        (root / "etc/hostname").write_text(self.name + "\n")
        (root / "etc/machine-id").write_text(os.urandom(16).hex() + "\n")
        key = root / "etc/ssh/ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(key)])
        self.host_public_key = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        with open(self.lab.known_hosts, "a") as f:  # needed by the boot wait over ssh
            f.write(f"{self.name} {self.host_public_key}\n")
        shutil.copy(f"{self.lab.client_key}.pub", root / "root/.ssh/authorized_keys")
        os.chmod(root / "root/.ssh", 0o700)
        os.chmod(root / "root", 0o700)
        # Only the ed25519 key: sshd would otherwise log errors for the removed RSA/ECDSA ones.
        (root / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
        # Every session's command is logged (as on netlab hosts: Host.commands), in /var so
        # that it survives reboots.
        wrapper = root / COMMAND_WRAPPER.lstrip("/")
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(netlab.logged_command_script(COMMAND_LOG))
        wrapper.chmod(0o755)
        (root / COMMAND_LOG.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / COMMAND_LOG.lstrip("/")).touch()
        (root / "etc/ssh/sshd_config.d/lab.conf").write_text(
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            f"LogLevel VERBOSE\nForceCommand {COMMAND_WRAPPER}\n")
        shutil.copy(self.lab.hosts_file, root / "etc/hosts")
        if self.private_kernel_params:
            script = root / PRIVATE_PARAMS_SCRIPT.lstrip("/")
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(_PRIVATE_PARAMS_SH)
            script.chmod(0o755)
            unit = root / "etc/systemd/system/rk2lab-private-kernel-params.service"
            unit.write_text(_PRIVATE_PARAMS_UNIT.format(
                script=PRIVATE_PARAMS_SCRIPT, params=" ".join(self.private_kernel_params)))
            wants = root / "etc/systemd/system/sysinit.target.wants"
            wants.mkdir(parents=True, exist_ok=True)
            (wants / unit.name).unlink(missing_ok=True)
            (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")

    def _boot(self, timeout: float = 60, settled: bool = True) -> None:
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={self.base},upperdir={self.root},workdir={self.dir / 'work'}",
              str(self.merged)])
        log = open(self.dir / "nspawn.log", "ab")
        t0 = time.monotonic()
        self._nspawn = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet", "-D", str(self.merged),
             f"--machine={self.lab.netns}-{self.name}", f"--hostname={self.name}",
             # --private-network: the netns is the host's own (CAP_NET_ADMIN, writable
             # /proc/sys/net), as on a machine; the path names that netns.
             "--private-network", f"--network-namespace-path=/run/netns/{self.netns}",
             f"--bind-ro={self.lab.hosts_file}:/etc/hosts",
             *(f"--bind-ro={src}:{dest}" for src, dest in self.binds_ro),
             "--console=read-only", "--boot"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.wait_running(timeout, settled)
        self.boot_seconds = time.monotonic() - t0

    def wait_running(self, timeout: float = 60, settled: bool = True) -> str:
        """Wait until `systemctl is-system-running --wait` over ssh says running/degraded
        (settled=False: also `starting`, as soon as ssh answers)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self._nspawn is None or self._nspawn.poll() is not None:
                raise LabError(f"host {self.name}: nspawn exited: "
                               f"{(self.dir / 'nspawn.log').read_text(errors='replace')[-2000:]}")
            command = "systemctl is-system-running" + (" --wait" if settled else "")
            # A segment host is out of the workstation's reach: ask inside, then check sshd.
            run = self.ssh if self.segment is None else self._exec_ssh_active
            try:
                rc, out, err = run(command, timeout=max(5, deadline - time.monotonic()))
            except (subprocess.TimeoutExpired, LabError):
                time.sleep(0.3)
                continue
            last = (out + err).strip()
            if out.strip() in ("running", "degraded") or (not settled and out.strip() == "starting"):
                return out.strip()
            time.sleep(0.3)
        raise LabError(f"host {self.name}: not running after {timeout}s ({last})")

    def _exec_ssh_active(self, command: str, timeout: float) -> tuple[int, str, str]:
        rc, out, err = self.exec(command, timeout=timeout)
        if self.exec("systemctl is-active --quiet ssh.service")[0] != 0:
            return 1, "", "ssh.service not active yet"
        return rc, out, err

    def shutdown_begin(self) -> None:
        """Ask for an orderly power-off without waiting (Lab.close does every host at once)."""
        if self._nspawn is not None and self._nspawn.poll() is None and not self._term_sent:
            # systemd-nspawn(1): SIGTERM to nspawn = orderly shutdown of the container
            # (it sends PID 1 SIGRTMIN+3, systemd's "halt"/poweroff request).
            self._nspawn.send_signal(signal.SIGTERM)
            self._term_sent = True

    def shutdown_wait(self, timeout: float = 30) -> None:
        self.stop(timeout)

    def stop(self, timeout: float = 60) -> None:
        """Orderly power-off (units stopped, ExecStop run), wait, unmount; SIGKILL only when
        the container has not finished after `timeout`."""
        if self._nspawn is not None:
            if self._nspawn.poll() is None:
                self.shutdown_begin()
                try:
                    self._nspawn.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.killed = True
                    self._nspawn.kill()
                    self._nspawn.wait(timeout=10)
            self._nspawn = None
            self._term_sent = False
        if os.path.ismount(self.merged):
            subprocess.run(["umount", str(self.merged)], capture_output=True)

    def reboot(self, timeout: float = 60) -> None:
        """Reboot = container stop + start (same upper layer, so files persist; /run and
        addresses added at runtime do not). Returns once sshd answers: units that keep
        activating (a server that cannot become ready) do not hold it up."""
        self.stop()
        self.forget_runtime_network()
        self._boot(timeout, settled=False)

    def close(self) -> None:
        self.stop(timeout=30)
        if netlab._netns_exists(self.netns):
            netlab._kill_netns([self.netns])
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    # --- inspection ---------------------------------------------------------------------
    @property
    def holder_pid(self) -> int:
        """PID (on this machine) of the container's systemd (PID 1 inside)."""
        if self._nspawn is None or self._nspawn.poll() is not None:
            raise LabError(f"host {self.name} is not running")
        res = subprocess.run(["pgrep", "-P", str(self._nspawn.pid)], capture_output=True, text=True)
        pids = res.stdout.split()
        if not pids:
            raise LabError(f"host {self.name}: no init process yet")
        return int(pids[0])

    def exec(self, command: str, input: str | None = None, timeout: float = 120,
             env: dict | None = None) -> tuple[int, str, str]:
        full_env = {"PATH": netlab.DEFAULT_PATH, "HOME": "/root", "LANG": "C.UTF-8",
                    "USER": "root", "SHELL": "/bin/sh", **(env or {})}
        res = subprocess.run(
            ["nsenter", "-t", str(self.holder_pid), "-a", "--", "/bin/sh", "-c", f"cd / && {command}"],
            input=input, capture_output=True, text=True, timeout=timeout, env=full_env)
        return res.returncode, res.stdout, res.stderr

    def memory_kib(self) -> dict:
        """RSS and PSS (KiB) summed over the container's processes (the netns's pids)."""
        rss = pss = 0
        for pid in netlab._netns_pids(self.netns):
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                pass
        return {"rss": rss, "pss": pss}

    # The netlab sshd stand-in controls do not apply: use systemctl over ssh/exec.
    def stop_sshd(self, timeout: float = 10) -> None:
        rc, out, err = self.exec("systemctl stop ssh.service ssh.socket", timeout=timeout)
        if rc != 0:
            raise LabError(f"host {self.name}: systemctl stop ssh: {err}")

    def start_sshd(self) -> None:
        rc, out, err = self.exec("systemctl start ssh.service")
        if rc != 0:
            raise LabError(f"host {self.name}: systemctl start ssh: {err}")

    @property
    def sshd_running(self) -> bool:
        return self.exec("systemctl is-active --quiet ssh.service")[0] == 0

    def journal(self, unit: str) -> str:
        return self.exec(f"journalctl --no-pager -o short-iso -u {unit}")[1]

    def commands(self, include_lab: bool = False) -> list[tuple[str, str]]:
        return netlab.parse_commands((self.root / COMMAND_LOG.lstrip("/")).read_text(), include_lab)

    def sshd_log(self) -> str:
        return self.journal("ssh.service")

    def service_events(self, unit: str | None = None) -> list[dict]:
        """Unit life as systemd (PID 1) logs it in the journal, in netlab.Host.service_events's
        form (time, event, unit, detail): spawn (Starting: a start, by a verb or Restart=),
        ready (Started: for Type=notify, after READY=1), stop (Stopping), stopped, exit (the
        main process exited), failed, auto-restart (Restart= scheduled). Only messages about a
        unit; journald keeps them across reboots of the host (persistent /var/log/journal)."""
        if unit and "." not in unit:
            unit += ".service"
        match = f"UNIT={unit}" if unit else ""
        rc, out, err = self.exec(f"journalctl --no-pager -o json _PID=1 {match}", timeout=60)
        if rc != 0 and "No entries" not in err:
            raise LabError(f"host {self.name}: journalctl: {err}")
        events: list[dict] = []
        last: dict[str, str] = {}
        for line in out.splitlines():
            rec = json.loads(line)
            event = UNIT_MESSAGE_IDS.get(rec.get("MESSAGE_ID", ""))
            if event is None or not rec.get("UNIT"):
                continue
            when = datetime.fromtimestamp(int(rec["__REALTIME_TIMESTAMP"]) / 1e6, timezone.utc)
            ev = {"time": when.isoformat().replace("+00:00", "Z"), "event": event,
                  "unit": rec["UNIT"], "detail": rec.get("MESSAGE", "")}
            # A start that completes at once (Type=simple, oneshot) is logged as "Started"
            # only, without "Starting": it is still a start.
            if event == "ready" and last.get(rec["UNIT"]) != "spawn":
                events.append({**ev, "event": "spawn"})
            last[rec["UNIT"]] = event
            events.append(ev)
        return events


# Each container's systemd takes inotify instances from root's shared limit (no user
# namespaces here): Debian's default of 128 is gone at about a dozen hosts ("Failed to
# allocate manager object: Too many open files"). The lab raises the limit, never lowers it
# (the same advice kind gives for many nodes).
INOTIFY_INSTANCES = 2048


def _ensure_inotify_instances() -> None:
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    try:
        if int(path.read_text()) < INOTIFY_INSTANCES:
            path.write_text(f"{INOTIFY_INSTANCES}\n")
            print(f"rk2lab: fs.inotify.max_user_instances raised to {INOTIFY_INSTANCES} "
                  "(systemd in every lab host needs some)", file=sys.stderr)
    except OSError as e:
        print(f"rk2lab: cannot raise fs.inotify.max_user_instances ({e}); "
              "more than about a dozen hosts may fail to boot", file=sys.stderr)


def add_systemd_host(lab, name: str, address: str, register_name: bool = True,
                     base: Path | None = None,
                     binds_ro: tuple[tuple[str, str], ...] = (),
                     private_kernel_params: tuple[str, ...] = (),
                     segment: str | None = None) -> SystemdHost:
    """Like `Lab.add_host`, but the host is a real Debian booted with systemd. `binds_ro`:
    (path here, path in the host) pairs bound read-only (e.g. the lab parts' bin dir).
    `private_kernel_params`: kernel parameters (sysctl names) this host may set for itself."""
    if not lab._started or lab._closed:
        raise LabError("lab is not running")
    if name in lab.hosts:
        raise LabError(f"host {name} exists")
    _ensure_inotify_instances()
    seg = lab.segments[segment] if segment is not None else None
    if seg is not None and ipaddress.ip_address(address) not in seg.network:
        raise LabError(f"{address} is not an address of segment {seg.name} ({seg.network})")
    host = SystemdHost(lab, name, address, len(lab.hosts) + 1, base or ensure_base(),
                       (*lab.binds_ro, *binds_ro), private_kernel_params)
    host.segment = seg
    lab.hosts[name] = host
    if register_name:
        lab.set_host_entry(name, address)
    host._start()
    return host
