"""Lab hosts on this machine: network namespaces on a private bridge, each with its own
hostname, a private filesystem view and a real Debian sshd.

Layout (everything exists only on this machine and is removed by `Lab.close()`):

- netns ``rk2lab-<id>``: the LAN. Bridge ``rk2lab0`` with the gateway address (10.77.0.1 by
  default). It doubles as the user's workstation: `Lab.run` executes commands (the pulumi
  CLI, ssh, TLS probes) there, with the lab's hosts file over /etc/hosts and a resolv.conf
  naming no reachable DNS server (names resolve through the hosts file only). The root
  network namespace of this machine is never changed, so several labs can run at once.
- netns ``rk2lab-<id>-<host>`` per host: ``eth0`` (veth into the bridge) with its address
  and a default route via the gateway; in it, a real Debian booted with systemd
  (systemd-nspawn, tests/lab/systemd_hosts.py): real systemctl, journald, sshd as
  ssh.service (Debian's `AcceptEnv LANG LC_*`), /etc/hosts bound from the lab's hosts file.
  This module owns the network and the host API common to every host (ssh, files, address
  moves, the command log); systemd_hosts.py owns the container.

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
BRIDGE = "rk2lab0"
OVERLAY_DIRS = ("/etc", "/var", "/usr", "/opt")
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


def logged_command_script(log: str) -> str:
    """sshd ForceCommand: records each session's command (base64, one line) in `log` so tests
    can count and inspect remote commands, then runs it exactly as sshd would have."""
    return ("#!/bin/sh\n"
            f'printf "%s %s %s\\n" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "${{{LAB_SSH_MARK}:-ext}}" '
            f'"$(printf "%s" "${{SSH_ORIGINAL_COMMAND-}}" | base64 -w0)" >> {log}\n'
            'if [ -n "${SSH_ORIGINAL_COMMAND+x}" ]; then exec "${SHELL:-/bin/sh}" -c "$SSH_ORIGINAL_COMMAND"; fi\n'
            'exec "${SHELL:-/bin/sh}" -l\n')


def parse_commands(text: str, include_lab: bool) -> list[tuple[str, str]]:
    """(UTC timestamp, command) from a logged_command_script log, the lab's own sessions
    left out unless `include_lab`."""
    out = []
    for line in text.splitlines():
        ts, who, b64 = (line.split(" ") + ["", ""])[:3]
        if who == "lab" and not include_lab:
            continue
        out.append((ts, base64.b64decode(b64).decode(errors="replace")))
    return out


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
        #: Upper layer of the host's root filesystem (an overlay on the Debian base): every
        #: file the host created or changed outside /run and /tmp is under here at the same
        #: relative path (e.g. ``host.root / "etc/rancher/rke2/config.yaml"``).
        self.root = self.dir / "root"
        self.private_key_path: Path = lab.client_key
        self.host_public_key: str = ""
        #: The private segment eth0 is on (None: the lab LAN). Set by `Lab.add_host`.
        self.segment: Segment | None = None

    # Lifecycle, sshd control, reboot, journal and service events: systemd_hosts.SystemdHost.

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

    def forget_runtime_network(self) -> None:
        """What a reboot does to the network: interfaces and addresses added at runtime are
        gone (the primary address and loopback stay: they stand for the host's own network
        configuration), the default route is back."""
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

    # --- logs ---------------------------------------------------------------------------
    def commands(self, include_lab: bool = False) -> list[tuple[str, str]]:
        """(UTC timestamp, command) of every SSH session on this host, oldest first. The
        lab's own `Host.ssh` sessions are left out unless `include_lab`."""
        raise NotImplementedError  # systemd_hosts.SystemdHost

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
        #: (path here, path in the host) bound read-only into every host added from now on
        self.binds_ro: tuple[tuple[str, str], ...] = ()
        self.segments: dict[str, Segment] = {}
        self._entries: dict[str, str] = {}
        self._closed = False
        self._started = False
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
        # Whatever did not stop, in all hosts at once (fast), then host by host.
        _kill_netns([h.netns for h in hosts if _netns_exists(h.netns)])
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

    # --- hosts --------------------------------------------------------------------------
    def add_host(self, name: str, address: str, register_name: bool = True,
                 segment: str | None = None, **systemd) -> Host:
        """Create a host named `name` at `address` (in the lab subnet, or in `segment`'s): a
        real Debian booted with systemd, sshd running (systemd_hosts.add_systemd_host, which
        takes `systemd` keywords such as private_kernel_params). `register_name` adds
        "address name" to the lab's hosts file. A segment host is reachable only from the
        segment (see `Lab.attach`); `readdress` is for LAN hosts."""
        if not self._started or self._closed:
            raise LabError("lab is not running")
        if name in self.hosts:
            raise LabError(f"host {name} exists")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?", name):
            raise LabError(f"host name {name!r}: use a short DNS label (a-z, 0-9, -)")
        if segment is None and (ipaddress.ip_address(address) not in self.network or address == self.gateway):
            raise LabError(f"{address} is not a free address of {self.network}")
        from tests.lab.systemd_hosts import add_systemd_host  # (it builds on this module)
        return add_systemd_host(self, name, address, register_name, segment=segment, **systemd)

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
        # The hosts' root filesystems (overlays) of that lab, deepest first; nspawn exits
        # once its container's processes are gone.
        lab_dir = str(manifest.parent.resolve()) + "/"
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f if line.split()[1].startswith(lab_dir)]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
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
