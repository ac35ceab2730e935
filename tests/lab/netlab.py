"""Lab hosts on this machine: network namespaces on a private bridge, each with its own
hostname, a private filesystem view and a real Debian sshd.

Layout (everything exists only on this machine and is removed by `Lab.close()`):

- netns ``rk2lab-<id>``: the LAN. Bridge ``rk2lab0`` with the gateway address (10.77.0.1 by
  default). It doubles as the user's workstation: `Lab.run` executes commands (the pulumi
  CLI, ssh, TLS probes) there, with the lab's hosts file over /etc/hosts and a resolv.conf
  naming no reachable DNS server (names resolve through the hosts file only). The root
  network namespace of this machine is never changed, so several labs can run at once.
- netns ``rk2lab-<id>-<host>`` per host: ``eth0`` (veth into the bridge) with its address
  and a default route via the gateway; a holder process (hostinit.py) in private UTS and
  mount namespaces. /etc, /var, /usr and /opt are overlays whose upper layer is
  ``host.root/<dir>``; /root, /run and /tmp are fresh private directories (the lab's Python
  stays visible); /proc/sys (except net) and /sys are read-only; /etc/hosts and
  /etc/resolv.conf are the lab's. sshd accepts `LANG LC_*` only, like Debian's. Inside,
  /usr/bin/systemctl and journalctl are the lab's service-manager stand-in and
  /usr/sbin/modprobe a no-op (kernel modules are shared with this machine).

- private segments (`Lab.add_segment`): netns ``rk2lab-<id>-seg-<name>`` holding only a
  bridge, no address and no process. Hosts created on a segment (`add_host(...,
  segment=name)`) have their ``eth0`` there and no default route; `Lab.attach` gives a LAN
  host a second interface on it (a bastion). The workstation has no interface or route into
  a segment, so it reaches those hosts only through a host attached to both.

Teardown kills exactly the processes inside the namespaces it created (``ip netns pids``)
and deletes those namespaces by name.
"""
from __future__ import annotations

import atexit
import base64
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOSTTOOLS = HERE / "hosttools"
BRIDGE = "rk2lab0"
OVERLAY_DIRS = ("/etc", "/var", "/usr", "/opt")
# Fresh private directories, like a new machine's.
PRIVATE_DIRS = (("root", 0o700), ("run", 0o755), ("tmp", 0o1777))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Marks the lab's own ssh sessions (accepted by sshd's `AcceptEnv LC_*`, as on Debian), so
# command counts can leave them out.
LAB_SSH_MARK = "LC_RK2LAB"


class LabError(RuntimeError):
    pass


def _ip(*args: str) -> None:
    _run(["ip", *args])


def _run(argv, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise LabError(f"{shlex.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def _netns_pids(ns: str) -> list[int]:
    res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in res.stdout.split()] if res.returncode == 0 else []


def _netns_exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def _kill_netns(namespaces: list[str], spare: tuple[int, ...] = ()) -> None:
    """Kill every process in the given network namespaces (by pid), sparing `spare`:
    SIGTERM to all at once, then SIGKILL to what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [p for ns in namespaces for p in _netns_pids(ns) if p not in spare]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = [p for ns in namespaces for p in _netns_pids(ns) if p not in spare]
        if not pids:
            return


def _install_script(src: Path, dest: Path, python: str) -> None:
    """Copy a lab tool into a host, pointing its shebang at the lab's Python."""
    lines = src.read_text().splitlines(keepends=True)
    if lines and lines[0].startswith("#!"):
        lines[0] = f"#!{python}\n"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(lines))
    dest.chmod(0o755)


class Segment:
    """A private network only the hosts on it (and those attached to it) reach. Create with
    `Lab.add_segment`."""

    def __init__(self, lab: "Lab", name: str, subnet: str):
        self.lab = lab
        self.name = name
        self.network = ipaddress.ip_network(subnet)
        self.prefixlen = self.network.prefixlen
        self.netns = f"{lab.netns}-seg-{name}"
        self.bridge = "seg0"
        self.ports = 0

    def __repr__(self) -> str:
        return f"<Segment {self.name} {self.network}>"


class Host:
    """One lab host. Create with `Lab.add_host`."""

    def __init__(self, lab: "Lab", name: str, address: str, index: int):
        self.lab = lab
        self.name = name
        self.address = address
        self.netns = f"{lab.netns}-{name}"
        self.veth = f"v{index}"
        self.dir = lab.dir / "host" / name
        #: Upper layers of the host's overlays plus its /run and /tmp, on this machine's
        #: filesystem: every file the host created or changed is under here at the same
        #: relative path (e.g. ``host.root / "etc/rancher/rke2/config.yaml"``).
        self.root = self.dir / "root"
        self.private_key_path: Path = lab.client_key
        self.host_public_key: str = ""
        self._holder: subprocess.Popen | None = None
        #: The private segment eth0 is on (None: the lab LAN). Set by `Lab.add_host`.
        self.segment: Segment | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def _prepare(self) -> None:
        root, work = self.root, self.dir / "work"
        for d in OVERLAY_DIRS:
            (root / d[1:]).mkdir(parents=True)
            (work / d[1:]).mkdir(parents=True)
            # The upper directory's mode is what the host sees for the mount point.
            os.chmod(root / d[1:], stat.S_IMODE(os.stat(d).st_mode))
        for d, mode in PRIVATE_DIRS:
            (root / d).mkdir()
            os.chmod(root / d, mode)
        # The host's /root starts as a fresh Debian root home, not this machine's.
        for name, skel in ((".bashrc", "dot.bashrc"), (".profile", "dot.profile")):
            src = Path("/usr/share/base-files") / skel
            if src.exists():
                shutil.copy(src, root / "root" / name)
        lab_run = root / "run/rk2lab"
        for d in ("run/rk2lab", "run/sshd", "run/systemd/system", "usr/bin", "usr/sbin"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "etc/hostname").write_text(self.name + "\n")
        (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        py = self.lab.python
        _install_script(HOSTTOOLS / "systemctl.py", root / "usr/bin/systemctl", py)
        _install_script(HOSTTOOLS / "systemctl.py", root / "usr/bin/journalctl", py)
        modprobe = root / "usr/sbin/modprobe"
        modprobe.write_text(
            "#!/bin/sh\n# Lab stub: kernel modules are shared with the machine running the lab.\n"
            'echo "modprobe (lab stub): not loading $*" >&2\nexit 0\n')
        modprobe.chmod(0o755)
        key = lab_run / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(key)])
        self.host_public_key = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        shutil.copy(f"{self.lab.client_key}.pub", lab_run / "authorized_keys")
        wrapper = lab_run / "logged-command"
        # Records each session's command (base64, one line) so tests can count and inspect
        # remote commands, then runs it exactly as sshd would have.
        wrapper.write_text(
            "#!/bin/sh\n"
            f'printf "%s %s %s\\n" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "${{{LAB_SSH_MARK}:-ext}}" '
            '"$(printf "%s" "${SSH_ORIGINAL_COMMAND-}" | base64 -w0)" >> /run/rk2lab/commands.log\n'
            'if [ -n "${SSH_ORIGINAL_COMMAND+x}" ]; then exec "${SHELL:-/bin/sh}" -c "$SSH_ORIGINAL_COMMAND"; fi\n'
            'exec "${SHELL:-/bin/sh}" -l\n')
        wrapper.chmod(0o755)
        (lab_run / "sshd_config").write_text(
            "# Debian defaults where they matter to clients (AcceptEnv, sftp), plus lab paths.\n"
            "Port 22\nListenAddress 0.0.0.0\n"
            "HostKey /run/rk2lab/ssh_host_ed25519_key\nPidFile /run/rk2lab/sshd.pid\n"
            "AuthorizedKeysFile /run/rk2lab/authorized_keys\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPrintMotd no\n"
            "AcceptEnv LANG LC_*\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
            "LogLevel VERBOSE\nForceCommand /run/rk2lab/logged-command\n")
        for f in ("commands.log", "sshd.log"):
            (lab_run / f).touch()

    def _start(self) -> None:
        lab = self.lab
        _ip("netns", "add", self.netns)
        lab._manifest_add(self.netns)
        _ip("-n", self.netns, "link", "set", "lo", "up")
        seg = self.segment
        link_ns, bridge = (seg.netns, seg.bridge) if seg else (lab.netns, BRIDGE)
        _ip("-n", link_ns, "link", "add", self.veth, "type", "veth",
            "peer", "name", "eth0", "netns", self.netns)
        _ip("-n", link_ns, "link", "set", self.veth, "master", bridge, "up")
        _ip("-n", self.netns, "addr", "add", f"{self.address}/{seg.prefixlen if seg else lab.prefixlen}",
            "dev", "eth0")
        _ip("-n", self.netns, "link", "set", "eth0", "up")
        if seg is None:  # a segment has no gateway: its hosts reach only the segment
            _ip("-n", self.netns, "route", "add", "default", "via", lab.gateway)
        self._prepare()
        cfg = {
            "name": self.name, "root": str(self.root), "work": str(self.dir / "work"),
            "overlay_dirs": list(OVERLAY_DIRS), "hosts_file": str(lab.hosts_file),
            "resolv_conf": str(lab.resolv_conf),
            "python_dirs": lab._python_dirs(), "stage": str(self.dir / "stage"),
        }
        errlog = open(self.dir / "hostinit.log", "ab")
        self._holder = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--uts", "--mount",
             "--propagation", "private", "--", lab.python, str(HERE / "hostinit.py"),
             json.dumps(cfg)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog,
            start_new_session=True)
        errlog.close()
        line = self._holder.stdout.readline()
        if line.strip() != b"ready":
            self._holder.wait(timeout=10)
            raise LabError(f"host {self.name}: init failed: "
                           f"{(self.dir / 'hostinit.log').read_text()[-2000:]}")
        self._wait_sshd_listening(0)

    def close(self) -> None:
        """Kill everything in the host, then delete its namespace. Idempotent."""
        holder = self._holder.pid if self._holder else None
        if _netns_exists(self.netns):
            # Children first, so the holder (their subreaper) reaps them; then the holder.
            _kill_netns([self.netns], spare=(holder,) if holder else ())
        if self._holder is not None:
            if self._holder.poll() is None:
                self._holder.terminate()
                try:
                    self._holder.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._holder.kill()
                    self._holder.wait(timeout=5)
            if self._holder.stdout:
                self._holder.stdout.close()
            self._holder = None
        if _netns_exists(self.netns):
            _kill_netns([self.netns])
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    @property
    def holder_pid(self) -> int:
        if self._holder is None:
            raise LabError(f"host {self.name} is not running")
        return self._holder.pid

    # --- sshd ---------------------------------------------------------------------------
    def _listening_count(self) -> int:
        log = (self.root / "run/rk2lab/sshd.log").read_text(errors="replace")
        return log.count("Server listening on 0.0.0.0 port 22")

    def _wait_sshd_listening(self, before: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self._listening_count() <= before:
            if time.monotonic() > deadline:
                raise LabError(f"host {self.name}: sshd did not start: "
                               f"{(self.root / 'run/rk2lab/sshd.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def _sshd_state(self) -> str:
        p = self.root / "run/rk2lab/sshd.state"
        return p.read_text().split()[0] if p.exists() else "unknown"

    @property
    def sshd_running(self) -> bool:
        return self._sshd_state() == "running"

    def stop_sshd(self, timeout: float = 10) -> None:
        """Stop the listening sshd (open sessions continue, as with `systemctl stop ssh`)."""
        os.kill(self.holder_pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while self._sshd_state() != "stopped":
            if time.monotonic() > deadline:
                raise LabError(f"host {self.name}: sshd did not stop")
            time.sleep(0.05)

    def start_sshd(self) -> None:
        if self.sshd_running:
            return
        before = self._listening_count()
        os.kill(self.holder_pid, signal.SIGUSR1)
        self._wait_sshd_listening(before)

    # --- running things -----------------------------------------------------------------
    def ssh_argv(self, command: str | None = None, user: str = "root",
                 lab_mark: bool = True) -> list[str]:
        """The ssh client command line the lab uses (run it through `Lab.run`). With
        `lab_mark` the session is recorded as the lab's own (see `commands`)."""
        argv = ["ssh", "-F", "/dev/null", "-i", str(self.private_key_path),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.lab.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"HostKeyAlias={self.name}",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                "-o", f"SetEnv={LAB_SSH_MARK}={'lab' if lab_mark else 'ext'}",
                f"{user}@{self.address}"]
        if command is not None:
            argv += ["--", command]
        return argv

    def ssh(self, command: str, input: str | None = None,
            timeout: float = 120) -> tuple[int, str, str]:
        """Run `command` on the host over real SSH from the lab network."""
        res = self.lab.run(self.ssh_argv(command), input=input, timeout=timeout)
        return res.returncode, res.stdout, res.stderr

    def exec(self, command: str, input: str | None = None, timeout: float = 120,
             env: dict | None = None) -> tuple[int, str, str]:
        """Run `command` (sh) inside the host's namespaces without SSH (setup, inspection,
        or when sshd is stopped). Environment is a minimal login-like one."""
        full_env = {"PATH": DEFAULT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root",
                    "SHELL": "/bin/sh", **(env or {})}
        res = subprocess.run(
            ["nsenter", "-t", str(self.holder_pid), "-n", "-m", "-u", "--",
             "/bin/sh", "-c", f"cd / && {command}"],
            input=input, capture_output=True, text=True, timeout=timeout, env=full_env)
        return res.returncode, res.stdout, res.stderr

    def path(self, path: str) -> Path:
        """`path` as the host sees it (through its mount namespace). Absolute symlinks met
        on the way resolve on this machine, so use canonical paths (/run, not /var/run)."""
        return Path(f"/proc/{self.holder_pid}/root") / path.lstrip("/")

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        p = self.path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        p.write_bytes(data)
        p.chmod(mode)

    def copy_in(self, src: str | os.PathLike, dest_dir: str) -> None:
        """Copy a local file or directory's files into `dest_dir` on the host."""
        src = Path(src)
        target = self.path(dest_dir)
        target.mkdir(parents=True, exist_ok=True)
        for f in ([src] if src.is_file() else sorted(p for p in src.iterdir() if p.is_file())):
            shutil.copy2(f, target / f.name)

    # --- network ------------------------------------------------------------------------
    def readdress(self, new_address: str) -> None:
        """Move the host to `new_address` (same lab subnet): "the server moved". Processes
        and sshd keep running. The hosts file is NOT changed (use `Lab.set_host_entry`)."""
        if ipaddress.ip_address(new_address) not in self.lab.network:
            raise LabError(f"{new_address} is outside the lab subnet {self.lab.network}")
        _ip("-n", self.netns, "addr", "del", f"{self.address}/{self.lab.prefixlen}", "dev", "eth0")
        _ip("-n", self.netns, "addr", "add", f"{new_address}/{self.lab.prefixlen}", "dev", "eth0")
        _ip("-n", self.netns, "route", "replace", "default", "via", self.lab.gateway)
        self.address = new_address

    def addresses(self) -> list[str]:
        """All IPv4 addresses inside the host ("ip -4 addr")."""
        res = _run(["ip", "-n", self.netns, "-j", "-4", "addr"])
        return [a["local"] for link in json.loads(res.stdout) for a in link.get("addr_info", [])]

    def reboot(self, timeout: float = 180) -> None:
        """Simulated reboot: stop the services, clear /run (but the lab's files), drop
        every address but the primary one and loopback, start the units that were enabled
        with the host's systemctl, in order. sshd keeps running."""
        rc, out, err = self.exec("systemctl lab-shutdown", timeout=timeout)
        if rc != 0:
            raise LabError(f"{self.name}: lab-shutdown failed: {out}{err}")
        run = self.root / "run"
        for p in run.iterdir():
            if p.name not in ("rk2lab", "sshd"):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        (run / "systemd/system").mkdir(parents=True, exist_ok=True)
        links = json.loads(_run(["ip", "-n", self.netns, "-j", "addr"]).stdout)
        for link in links:
            ifname = link["ifname"]
            if ifname not in ("lo", "eth0"):
                _ip("-n", self.netns, "link", "del", ifname)
                continue
            for a in link.get("addr_info", []):
                keep = {"lo": ("127.0.0.1", "::1"), "eth0": (self.address,)}[ifname]
                if a["local"] in keep or a["local"].startswith("fe80:"):
                    continue
                _ip("-n", self.netns, "addr", "del", f"{a['local']}/{a['prefixlen']}", "dev", ifname)
        _ip("-n", self.netns, "route", "replace", "default", "via", self.lab.gateway)
        rc, out, err = (self.ssh("systemctl lab-boot", timeout=timeout) if self.sshd_running
                        else self.exec("systemctl lab-boot", timeout=timeout))
        if rc != 0:
            raise LabError(f"{self.name}: lab-boot failed: {out}{err}")

    # --- logs ---------------------------------------------------------------------------
    def commands(self, include_lab: bool = False) -> list[tuple[str, str]]:
        """(UTC timestamp, command) of every SSH session on this host, oldest first. The
        lab's own `Host.ssh` sessions are left out unless `include_lab`."""
        out = []
        for line in (self.root / "run/rk2lab/commands.log").read_text().splitlines():
            ts, who, b64 = (line.split(" ") + ["", ""])[:3]
            if who == "lab" and not include_lab:
                continue
            out.append((ts, base64.b64decode(b64).decode(errors="replace")))
        return out

    def sshd_log(self) -> str:
        return (self.root / "run/rk2lab/sshd.log").read_text(errors="replace")

    def journal(self, unit: str) -> str:
        """Output of a unit as captured by the host's systemctl stand-in (ISO timestamps)."""
        if "." not in unit:
            unit += ".service"
        p = self.root / "var/log/lab-journal" / f"{unit}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def service_events(self, unit: str | None = None) -> list[dict]:
        """systemctl stand-in events: dicts with time, event, unit, detail. Verbs: start,
        stop, restart, reload, enable, disable, kill, daemon-reload (unit "-"), boot-start,
        shutdown-stop. Service life: spawn (a process started; count these for restarts),
        ready, exit, stopped, failed, auto-restart (Restart= after a failure)."""
        p = self.root / "var/log/lab-journal/systemctl-events.log"
        if not p.exists():
            return []
        if unit and "." not in unit:
            unit += ".service"
        events = []
        for line in p.read_text().splitlines():
            parts = line.split(" ", 3)
            ev = {"time": parts[0], "event": parts[1], "unit": parts[2],
                  "detail": parts[3] if len(parts) > 3 else ""}
            if unit is None or ev["unit"] == unit:
                events.append(ev)
        return events

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.address}>"


class Lab:
    """Context manager owning a private LAN and its hosts. See the module docstring."""

    def __init__(self, subnet: str = "10.77.0.0/24", base_dir: str | None = None,
                 python: str | None = None, keep: bool | None = None):
        self.network = ipaddress.ip_network(subnet)
        self.prefixlen = self.network.prefixlen
        self.gateway = str(next(self.network.hosts()))
        self.python = python or sys.executable
        self.keep = keep if keep is not None else os.environ.get("RK2LAB_KEEP") == "1"
        self.id = secrets.token_hex(3)
        self.netns = f"rk2lab-{self.id}"
        base = Path(base_dir or os.environ.get("RK2LAB_DIR") or tempfile.gettempdir()).resolve()
        for d in OVERLAY_DIRS:
            if base == Path(d) or Path(d) in base.parents:
                raise LabError(f"lab directory {base} must not be under {d} (overlay layers "
                               "may not overlap)")
        self.dir = Path(tempfile.mkdtemp(prefix=f"rk2lab-{self.id}-", dir=base))
        self.hosts: dict[str, Host] = {}
        self.segments: dict[str, Segment] = {}
        self._entries: dict[str, str] = {}
        self._closed = False
        self._started = False
        self._pydirs: list[str] | None = None
        self._servers: list[subprocess.Popen] = []
        self.hosts_file = self.dir / "hosts"
        self.resolv_conf = self.dir / "resolv.conf"
        self.known_hosts = self.dir / "known_hosts"
        self.client_key = self.dir / "id_ed25519"
        self.manifest = self.dir / "manifest.json"

    # --- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        atexit.register(self.close)
        self._write_manifest([])
        self._render_hosts()
        # No DNS server on the lab network: names come from the hosts file, and lookups
        # of anything else fail at once instead of waiting for an unreachable server.
        self.resolv_conf.write_text("# rk2lab: no DNS on the lab network; see the hosts file\n"
                                    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self.known_hosts.write_text("")
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rk2lab-client",
              "-f", str(self.client_key)])
        try:
            _ip("netns", "add", self.netns)
            self._manifest_add(self.netns)
            _ip("-n", self.netns, "link", "set", "lo", "up")
            _ip("-n", self.netns, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", self.netns, "addr", "add", f"{self.gateway}/{self.prefixlen}", "dev", BRIDGE)
            _ip("-n", self.netns, "link", "set", BRIDGE, "up")
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Tear everything down; safe to call repeatedly and after partial setup."""
        if self._closed:
            return
        self._closed = True
        errors = []
        hosts = list(self.hosts.values())
        # Hosts with an init of their own (systemd_hosts.SystemdHost) power off in order
        # first, all at once; whatever is left is killed below.
        for step in ("shutdown_begin", "shutdown_wait"):
            for host in hosts:
                getattr(host, step, lambda: None)()
        holders = tuple(h._holder.pid for h in hosts if h._holder is not None)
        # Everything but the holders of all hosts at once (fast), then host by host.
        _kill_netns([h.netns for h in hosts if _netns_exists(h.netns)], spare=holders)
        for host in reversed(hosts):
            try:
                host.close()
            except Exception as e:  # keep tearing down the rest
                errors.append(f"{host.name}: {e}")
        for seg in self.segments.values():  # bridges only: no processes
            if _netns_exists(seg.netns):
                subprocess.run(["ip", "netns", "del", seg.netns], capture_output=True)
        if _netns_exists(self.netns):
            _kill_netns([self.netns])
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        for proc in self._servers:
            proc.wait(timeout=10)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self.close)
        if errors:
            raise LabError("teardown problems: " + "; ".join(errors))

    def _write_manifest(self, netns: list[str]) -> None:
        self.manifest.write_text(json.dumps({"owner_pid": os.getpid(), "keep": self.keep,
                                             "netns": netns}))

    def _manifest_add(self, ns: str) -> None:
        data = json.loads(self.manifest.read_text())
        data["netns"].append(ns)
        self._write_manifest(data["netns"])

    def _python_dirs(self) -> list[str]:
        """Directories of the lab's Python that a host would not see (under /root, which
        hosts get fresh, or /tmp, which is private)."""
        if self._pydirs is None:
            out = _run([self.python, "-c", "import os, sys; print(sys.prefix); "
                        "print(sys.base_prefix); print(os.path.realpath(sys.executable))"]).stdout
            dirs = set()
            for p in out.split():
                rp = Path(p).resolve()
                for top in (Path("/root"), Path("/tmp")):
                    if top in rp.parents:
                        rel = rp.relative_to(top).parts
                        # a venv or a pyenv version directory, not the whole tree
                        keep = 3 if rel[:2] == (".pyenv", "versions") else 1
                        dirs.add(str(top.joinpath(*rel[:keep])))
            self._pydirs = sorted(dirs)
        return self._pydirs

    # --- hosts --------------------------------------------------------------------------
    def add_host(self, name: str, address: str, register_name: bool = True,
                 segment: str | None = None) -> Host:
        """Create a host named `name` at `address` (in the lab subnet, or in `segment`'s)
        with sshd running. `register_name` adds "address name" to the lab's hosts file.
        A segment host is reachable only from the segment (see `Lab.attach`); `readdress`
        and `reboot` are for LAN hosts."""
        if not self._started or self._closed:
            raise LabError("lab is not running")
        if name in self.hosts:
            raise LabError(f"host {name} exists")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?", name):
            raise LabError(f"host name {name!r}: use a short DNS label (a-z, 0-9, -)")
        seg = self.segments[segment] if segment is not None else None
        if seg is not None:
            if ipaddress.ip_address(address) not in seg.network:
                raise LabError(f"{address} is not an address of segment {seg.name} ({seg.network})")
        elif ipaddress.ip_address(address) not in self.network or address == self.gateway:
            raise LabError(f"{address} is not a free address of {self.network}")
        host = Host(self, name, address, len(self.hosts) + 1)
        host.segment = seg
        self.hosts[name] = host
        host._start()
        with open(self.known_hosts, "a") as f:
            f.write(f"{name} {host.host_public_key}\n")
        if register_name:
            self.set_host_entry(name, address)
        return host

    # --- private segments ---------------------------------------------------------------
    def add_segment(self, name: str, subnet: str) -> Segment:
        """A private network (its own netns holding a bridge) that the workstation cannot
        reach: no interface or route of the workstation leads there."""
        if not self._started or self._closed:
            raise LabError("lab is not running")
        if name in self.segments or not re.fullmatch(r"[a-z0-9]{1,8}", name):
            raise LabError(f"segment name {name!r}: a new short name (a-z, 0-9)")
        seg = Segment(self, name, subnet)
        if seg.network.overlaps(self.network) or any(seg.network.overlaps(s.network)
                                                     for s in self.segments.values()):
            raise LabError(f"segment {subnet} overlaps the lab LAN or another segment")
        _ip("netns", "add", seg.netns)
        self._manifest_add(seg.netns)
        self.segments[name] = seg
        _ip("-n", seg.netns, "link", "add", seg.bridge, "type", "bridge")
        _ip("-n", seg.netns, "link", "set", seg.bridge, "up")
        return seg

    def attach(self, host: Host, segment: str, address: str) -> str:
        """Give `host` a second interface on `segment` at `address` (a bastion, a router
        without forwarding). Returns the interface name inside the host."""
        seg = self.segments[segment]
        if ipaddress.ip_address(address) not in seg.network:
            raise LabError(f"{address} is not an address of segment {seg.name} ({seg.network})")
        seg.ports += 1
        existing = {link["ifname"] for link in json.loads(_run(["ip", "-n", host.netns, "-j", "link"]).stdout)}
        n = 1
        while f"eth{n}" in existing:
            n += 1
        ifname = f"eth{n}"
        port = f"p{seg.ports}"
        _ip("-n", seg.netns, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", host.netns)
        _ip("-n", seg.netns, "link", "set", port, "master", seg.bridge, "up")
        _ip("-n", host.netns, "addr", "add", f"{address}/{seg.prefixlen}", "dev", ifname)
        _ip("-n", host.netns, "link", "set", ifname, "up")
        return ifname

    # --- name resolution ----------------------------------------------------------------
    def set_host_entry(self, name: str, address: str | None) -> None:
        """Point `name` at `address` in the lab's hosts file (None removes it). Seen at
        once by `Lab.run` commands and by every host."""
        if address is None:
            self._entries.pop(name, None)
        else:
            self._entries[name] = address
        self._render_hosts()

    def _render_hosts(self) -> None:
        text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        text += "".join(f"{addr}\t{name}\n" for name, addr in self._entries.items())
        # Rewritten in place (not replaced): bind mounts of this file follow the inode.
        mode = "r+" if self.hosts_file.exists() else "w"
        with open(self.hosts_file, mode) as f:
            f.seek(0)
            f.write(text)
            f.truncate()

    # --- the workstation ----------------------------------------------------------------
    def _wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation",
                "private", "--", "/bin/sh", "-c",
                'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"',
                str(self.hosts_file), str(self.resolv_conf), *argv]

    def run(self, argv: list[str], env: dict | None = None, input: str | None = None,
            timeout: float | None = None, cwd: str | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        """Run `argv` on the lab network (the workstation at the gateway address), with the
        lab's hosts file as /etc/hosts. `env` is merged over this process's environment.
        Returns a CompletedProcess with text stdout/stderr."""
        res = subprocess.run(self._wrap(list(argv)), env={**os.environ, **(env or {})},
                             input=input, capture_output=True, text=True, timeout=timeout,
                             cwd=cwd)
        if check and res.returncode != 0:
            raise LabError(f"{shlex.join(argv)} failed ({res.returncode}):\n"
                           f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        return res

    def popen(self, argv: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
        """Like `run`, but returns the Popen (for commands that run while a test acts)."""
        return subprocess.Popen(self._wrap(list(argv)), env={**os.environ, **(env or {})}, **kw)

    def serve(self, directory: str | os.PathLike, port: int = 8080) -> str:
        """Serve `directory` over plain HTTP from the workstation (the gateway address), as
        an internal mirror would. Returns the base URL, e.g. http://10.77.0.1:8080."""
        log_path = self.dir / f"http-{port}.log"
        log = open(log_path, "ab")
        proc = self.popen([self.python, "-u", "-m", "http.server", "--bind", self.gateway,
                           "--directory", str(directory), str(port)],
                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self._servers.append(proc)
        deadline = time.monotonic() + 10
        while b"Serving HTTP" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"HTTP server failed: {log_path.read_text()[-1000:]}")
            time.sleep(0.05)
        return f"http://{self.gateway}:{port}"

    def https_get(self, url: str, ca_pem: str | None = None, cert_pem: str | None = None,
                  key_pem: str | None = None, kubeconfig: str | None = None,
                  timeout: float = 10) -> dict:
        """Verifying HTTPS GET from the workstation (names resolve through the lab's hosts
        file). Trust and client credentials come from PEM strings or a kubeconfig file's
        first cluster/user. Returns {"ok", "status", "body", "error", "peer_sans"}."""
        args = {"url": url, "ca": ca_pem, "cert": cert_pem, "key": key_pem,
                "kubeconfig": kubeconfig, "timeout": timeout, "verify": True}
        return self._probe(args, timeout)

    def served_sans(self, host: str, port: int, server_name: str | None = None) -> list[str]:
        """SANs of the certificate served at host:port (no verification), as
        "DNS:name" / "IP:addr" strings."""
        args = {"url": f"https://{host}:{port}/", "verify": False,
                "server_name": server_name, "timeout": 10}
        res = self._probe(args, 10)
        if res.get("peer_sans") is None:
            raise LabError(f"no certificate from {host}:{port}: {res.get('error')}")
        return res["peer_sans"]

    def _probe(self, args: dict, timeout: float) -> dict:
        res = self.run([self.python, str(HERE / "tlsprobe.py")], input=json.dumps(args),
                       timeout=timeout + 20)
        try:
            return json.loads(res.stdout)
        except json.JSONDecodeError:
            raise LabError(f"tlsprobe failed: {res.stdout}{res.stderr}") from None


def cleanup_stale(base_dir: str | None = None) -> list[str]:
    """Remove namespaces of earlier labs whose owning process is gone (a killed pytest).
    Only names recorded in those labs' manifests are touched. Returns the names removed."""
    removed = []
    base = Path(base_dir or os.environ.get("RK2LAB_DIR") or tempfile.gettempdir())
    for manifest in base.glob("rk2lab-*/manifest.json"):
        try:
            data = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if Path(f"/proc/{data.get('owner_pid')}").exists():
            continue
        for ns in reversed(data.get("netns", [])):
            if _netns_exists(ns):
                _kill_netns([ns])
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
                removed.append(ns)
        if data.get("keep"):
            data["netns"] = []
            manifest.write_text(json.dumps(data))
        else:
            shutil.rmtree(manifest.parent, ignore_errors=True)
    return removed


if __name__ == "__main__":
    if sys.argv[1:] == ["--cleanup-stale"]:
        print("\n".join(cleanup_stale()) or "nothing to clean")
    else:
        print("usage: python -m tests.lab.netlab --cleanup-stale", file=sys.stderr)
        sys.exit(2)
