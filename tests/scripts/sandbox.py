"""A scratch root in which a rendered host script runs as root, with its commands stubbed.

Each run is `unshare --mount --uts --pid --fork` + `chroot`: inside a private mount
namespace the real /usr and /etc/alternatives are bind-mounted read-only into a temp
directory (Debian merged-usr: bin, sbin, lib, lib64 are symlinks into usr), a private
writable directory is bound over its /usr/local, /dev is bound and a fresh /proc mounted
(with a canned /proc/swaps). Everything else the scripts may
write (/etc, /var, /run, /tmp, /root) is plain directories of the temp dir. All mounts die
with the namespace, so nothing on the machine outside the temp dir changes and cleanup is
deleting the directory. The commands RKE2 hosts have but this machine must not really run
(systemctl, journalctl, ss, ip, apt-get, kubectl, the RKE2 installer) are stubs from
tests/scripts/stubs that append their argv to /stubstate/calls.log.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from components.scripts import SCRIPTS_DIR, render

STUBS = Path(__file__).resolve().parent / "stubs"
HOSTNAME = "scratch-host"
PATH = "/stubs:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_SCRIPT_URL = "file:///srv/get.rke2.io/install.sh"
KUBECTL = "/var/lib/rancher/rke2/bin/kubectl"

# Representative values for each script, as the components pass them.
VALUES: dict[str, dict[str, str | int]] = {
    "dns-follow.sh": {},
    "membership-guard.sh": {"SERVERS": "rke2-server-1 rke2-server-2 rke2-server-3", "ACTION": "guard"},
    "rejoin-check.sh": {},
    "stale-member.sh": {"NODE": "rke2-server-2", "TIMEOUT": 30, "ACTION": "remove"},
    "etcd-snapshot.sh": {"NAME": "before-upgrade", "SNAPSHOT_DIR": "/var/lib/rancher/rke2/server/db/snapshots",
                         "ACTION": "save"},
    "etcd-restore.sh": {"ACTION": "check", "SNAPSHOT": "before-upgrade-scratch-host-1764670000",
                        "SNAPSHOT_DIR": "/var/lib/rancher/rke2/server/db/snapshots", "TIMEOUT": 60},
    "haproxy.sh": {"PACKAGES": "haproxy keepalived"},
    "images.sh": {"DIR": "/var/lib/rancher/rke2/agent/images"},
    "cis.sh": {"ACTION": "apply", "ROLE": "server", "SYSCTL_DEST": "/etc/sysctl.d/60-rke2-cis.conf",
               "RKE2_VERSION": "v1.33.5+rke2r1"},
    "install.sh": {"RKE2_VERSION": "v1.33.5+rke2r1", "RKE2_TYPE": "server",
                   "INSTALL_SCRIPT_URL": INSTALL_SCRIPT_URL, "ARTIFACT_DIR": ""},
    "join-guard.sh": {"REGISTRATION_URL": "https://10.20.0.100:9345"},
    "lb-config.sh": {"DEST": "/etc/haproxy/haproxy.cfg", "UNIT": "haproxy", "CHECK": "haproxy"},
    "node-ready.sh": {"NODE": "rke2-agent-1", "ACTION": "wait", "TIMEOUT": 600},
    "place-ca.sh": {},
    "preflight.sh": {"ROLE": "server", "MIN_DISK_MB": 1, "CA_MODE": "generated"},
    "rotate-certs.sh": {"TIMEOUT": 600, "LABEL": "2026-11-22", "ACTION": "rotate"},
    "read-file.sh": {"SOURCE": "/etc/rancher/rke2/rke2.yaml"},
    "registration-check.sh": {"REGISTRATION_URL": "https://10.20.0.100:9345", "TIMEOUT": 600},
    "san-refresh.sh": {"TIMEOUT": 600, "HA": 0,
                       "BUILTIN_SANS": "IP Address:127.0.0.1\nDNS:localhost\nDNS:rke2-server-1"},
    "service.sh": {"UNIT": "rke2-server", "ACTION": "restart", "TIMEOUT": 600, "SINGLE_SERVER": 1},
    "stable-ip.sh": {"STABLE_IP": "10.254.254.1", "METHOD": "auto"},
    "token.sh": {"DEST": "/etc/rancher/rke2/config.yaml.d/50-rke2-rancher-token.yaml", "MODE": "0600"},
    "uninstall.sh": {"ACTION": "register", "RETAIN": 0, "NODE": "rke2-server-1", "ROLE": "server"},
    "upgrade-guard.sh": {"TARGET": "v1.33.5+rke2r1", "ACTION": "guard"},
    "upgrade-node.sh": {"NODE": "rke2-agent-1", "TARGET": "v1.33.5+rke2r1", "ACTION": "drain", "TIMEOUT": 300,
                        "GRACE": -1, "REQUIRE_READY": 1},
    "write-file.sh": {"DEST": "/etc/rancher/rke2/config.yaml", "MODE": "0600"},
}

# Runs in the new mount namespace, before the chroot: $1 root, $2 private /usr/local.
_SETUP = r"""
set -eu
root=$1 usr_local=$2; shift 2
mount --bind /usr "$root/usr"
mount -o remount,bind,ro "$root/usr"
mount --bind "$usr_local" "$root/usr/local"
mount --bind /etc/alternatives "$root/etc/alternatives"   # Debian's awk etc. are symlinks there
mount -o remount,bind,ro "$root/etc/alternatives"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --bind "$root/stubstate/swaps" "$root/proc/swaps"
if [ -n "$NET_LINK" ]; then ip link add "$NET_LINK" type veth peer name "$NET_LINK-peer"; fi
hostname "$HOST_NAME"
exec chroot "$root" /usr/bin/env -i PATH="$SANDBOX_PATH" HOME=/root LANG=C.UTF-8 "$@"
"""


@functools.lru_cache(maxsize=None)
def unavailable_reason() -> str | None:
    """Why scratch-root runs cannot work here, or None."""
    if os.geteuid() != 0:
        return "scratch-root script runs need root (mount namespaces, chroot)"
    if not shutil.which("unshare") or not shutil.which("chroot"):
        return "unshare/chroot not installed"
    probe = subprocess.run(["unshare", "--mount", "--uts", "--pid", "--fork", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare --mount --uts --pid does not work here: {probe.stderr.strip()}"
    return None


@functools.lru_cache(maxsize=None)
def veth_available() -> bool:
    """Whether a private network namespace can get a veth link (for keepalived -t)."""
    probe = subprocess.run(["unshare", "--net", "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"],
                           capture_output=True)
    return probe.returncode == 0


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"rc={self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


class Sandbox:
    def __init__(self, base: Path):
        self.base = base
        self.root = base / "root"
        self.usr_local = base / "usr-local"
        self._build()

    # -- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        r = self.root
        for d in ("usr", "dev", "proc", "etc/rancher", "etc/systemd/system", "etc/haproxy",
                  "etc/keepalived", "etc/ssl", "var/lib/rancher", "var/tmp", "run", "root",
                  "srv/get.rke2.io", "stubs", "stubstate/on-start", "stubstate/journal",
                  "stubstate/nodes"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "tmp").mkdir(mode=0o1777)
        os.chmod(r / "tmp", 0o1777)
        for name in ("bin", "sbin", "lib", "lib64"):
            (r / name).symlink_to(f"usr/{name}")
        for d in ("bin", "sbin", "lib", "etc"):
            (self.usr_local / d).mkdir(parents=True)
        etc = r / "etc"
        (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
        shutil.copy2("/etc/ld.so.cache", etc / "ld.so.cache")
        shutil.copy2("/etc/ssl/openssl.cnf", etc / "ssl" / "openssl.cnf")
        (etc / "alternatives").mkdir()  # bound read-only at run time
        for stub in (STUBS / "path").iterdir():
            shutil.copy2(stub, r / "stubs" / stub.name)
        shutil.copy2(STUBS / "get-rke2.sh", r / "srv/get.rke2.io/install.sh")
        self.write("/stubstate/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
        self.write("/stubstate/calls.log", "")

    def path(self, p: str) -> Path:
        """Where the sandbox's absolute path p is on this machine."""
        assert p.startswith("/"), p
        if p == "/usr/local" or p.startswith("/usr/local/"):
            return self.usr_local / p[len("/usr/local/"):]
        return self.root / p.lstrip("/")

    def write(self, p: str, text: str, mode: int = 0o644) -> Path:
        dest = self.path(p)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        os.chmod(dest, mode)
        return dest

    def read(self, p: str) -> str:
        return self.path(p).read_text()

    def exists(self, p: str) -> bool:
        return self.path(p).exists()

    # -- stubs ------------------------------------------------------------------------
    def add_kubectl(self) -> None:
        """The kubectl RKE2 puts under /var/lib/rancher/rke2/bin (a stub)."""
        self.write(KUBECTL, (STUBS / "kubectl").read_text(), 0o755)

    def install_rke2(self, version: str = VALUES["install.sh"]["RKE2_VERSION"]) -> None:
        """A host where RKE2 `version` is already installed (by the stub installer)."""
        res = self.exec(["sh", "/srv/get.rke2.io/install.sh"], env={"INSTALL_RKE2_VERSION": version})
        assert res.returncode == 0, res
        self.clear_calls()

    def set_active(self, unit: str, active: bool = True) -> None:
        f = self.path(f"/stubstate/units/{unit}.service.active")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch() if active else f.unlink(missing_ok=True)

    def is_active(self, unit: str) -> bool:
        return self.exists(f"/stubstate/units/{unit}.service.active")

    def is_enabled(self, unit: str) -> bool:
        return self.exists(f"/stubstate/units/{unit}.service.enabled")

    def on_start(self, unit: str, script: str) -> None:
        """Run `script` (bash) when the stub systemctl (re)starts unit; failing fails the start."""
        self.write(f"/stubstate/on-start/{unit}.service", script, 0o755)

    def calls(self) -> list[str]:
        return self.read("/stubstate/calls.log").splitlines()

    def clear_calls(self) -> None:
        self.write("/stubstate/calls.log", "")

    # -- running ----------------------------------------------------------------------
    def exec(self, argv: list[str], stdin: str = "", env: dict[str, str] | None = None,
             net_link: str | None = None, timeout: float = 30) -> Result:
        """Runs argv as root inside the scratch root. It shares this machine's network
        unless net_link is given: then it gets a private network with only lo and net_link."""
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        cmd = ["unshare", "--mount", "--propagation", "private", "--uts", "--pid", *(["--net"] if net_link else []),
               "--fork", "--kill-child", "--",
               "/bin/bash", "-c", _SETUP, "setup", str(self.root), str(self.usr_local),
               *(["/usr/bin/env", *extra] if extra else []), *argv]
        env_outer = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOST_NAME": HOSTNAME, "SANDBOX_PATH": PATH,
                     "NET_LINK": net_link or ""}
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env_outer)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def run(self, script: str, stdin: str = "", step: str = "test-step", net_link: str | None = None,
            **values: str | int) -> Result:
        """Renders components/scripts/<script> with VALUES[script] updated by values and runs
        it the way the remote command does (`bash -c <script> rke2-rancher`)."""
        text = render(script, step, **{**VALUES[script], **values})
        return self.exec(["bash", "-c", text, "rke2-rancher"], stdin=stdin, net_link=net_link)

    # -- state ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, tuple]:
        """Every file and link the scripts could have written: content, mode and mtime for
        files; mode only for directories (creating and renaming a temp file bumps theirs)."""
        state: dict[str, tuple] = {}
        trees = [(self.root, ""), (self.usr_local, "/usr/local")]
        skip = {"usr", "dev", "proc", "stubstate"}
        for top, prefix in trees:
            for dirpath, dirnames, filenames in os.walk(top):
                rel = os.path.relpath(dirpath, top)
                if top == self.root and rel == ".":
                    dirnames[:] = [d for d in dirnames if d not in skip]
                for name in dirnames + filenames:
                    full = Path(dirpath) / name
                    key = prefix + "/" + os.path.normpath(os.path.join(rel, name))
                    st = full.lstat()
                    if full.is_symlink():
                        state[key] = ("link", os.readlink(full))
                    elif full.is_dir():
                        state[key] = ("dir", st.st_mode)
                    else:
                        state[key] = ("file", st.st_mode, st.st_mtime_ns, full.read_bytes())
        return state


def script_names() -> list[str]:
    return sorted(p.name for p in SCRIPTS_DIR.glob("*.sh") if p.name != "lib.sh")
