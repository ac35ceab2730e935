"""rke2-standin: RKE2's air-gap artifacts for the host lab, holding a behavioural stand-in
(rke2_standin.py) around the lab's real etcd and Kubernetes parts, not RKE2. See
rke2_standin.py for what it honours.

`build_artifacts(dest, version)` writes what RKE2's air-gap install uses:

    dest/install.sh                 stand-in of https://get.rke2.io
    dest/rke2.linux-amd64.tar.gz    bin/rke2, bin/rke2-killall.sh, bin/rke2-uninstall.sh,
                                    lib/systemd/system/rke2-{server,agent}.{service,env},
                                    share/rke2/rke2-cis-sysctl.conf,
                                    share/rke2-standin/rk2lab_realparts/ (argument builders)
    dest/sha256sum-amd64.txt        "<sha256>  rke2.linux-amd64.tar.gz"

Install on a host exactly as with RKE2:
    INSTALL_RKE2_ARTIFACT_PATH=<dir> INSTALL_RKE2_VERSION=<v> sh <dir>/install.sh

`build_mirror(root, version)` lays the same files out as a release mirror for
INSTALL_RKE2_ARTIFACT_URL (root/install.sh, root/<version>/<artifacts>); serve it with
`Lab.serve(root)`.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
REALPARTS = HERE.parent / "realparts"  # argument builders shipped in the tarball
CIS_SYSCTL = ("vm.panic_on_oom=0\nvm.overcommit_memory=1\nkernel.panic=10\n"
              "kernel.panic_on_oops=1\n")


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def build_artifacts(dest_dir: str | Path, version: str, python: str | None = None,
                    arch: str = "amd64") -> Path:
    """Write install.sh, rke2.linux-<arch>.tar.gz and sha256sum-<arch>.txt into `dest_dir`
    (created if needed) and return it. `python` is the interpreter the installed stand-in
    runs on (it needs `cryptography` and `pyyaml`; default: the lab host's /usr/bin/python3,
    which tests/lab/systemd_hosts.py provides with both). Same inputs give
    byte-identical artifacts, so content hashes are stable across runs.

    The installed stand-in runs the lab's real etcd, kube-apiserver, kube-controller-manager,
    kube-scheduler, kwok and kubectl (tests/lab/realparts): a host must have their bin dir
    bound read-only at /opt/rk2lab-parts (labs made after `ensure_parts()` do)."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    python = python or "/usr/bin/python3"
    program = (HERE / "rke2_standin.py").read_text()
    program = program.replace("#!/usr/bin/env python3", f"#!{python}", 1)
    program = program.replace("@RKE2_STANDIN_VERSION@", version)
    entries = [
        ("bin/rke2", program.encode(), 0o755),
        ("bin/rke2-killall.sh", (FILES / "rke2-killall.sh").read_bytes(), 0o755),
        ("bin/rke2-uninstall.sh", (FILES / "rke2-uninstall.sh").read_bytes(), 0o755),
        ("lib/systemd/system/rke2-server.service", (FILES / "rke2-server.service").read_bytes(), 0o644),
        ("lib/systemd/system/rke2-server.env", (FILES / "rke2-server.env").read_bytes(), 0o644),
        ("lib/systemd/system/rke2-agent.service", (FILES / "rke2-agent.service").read_bytes(), 0o644),
        ("lib/systemd/system/rke2-agent.env", (FILES / "rke2-agent.env").read_bytes(), 0o644),
        ("share/rke2/rke2-cis-sysctl.conf", CIS_SYSCTL.encode(), 0o644),
        *((f"share/rke2-standin/rk2lab_realparts/{f}", (REALPARTS / f).read_bytes(), 0o644)
          for f in ("__init__.py", "parts.py", "pki.py")),
        ("share/rke2-standin/NOTICE",
         b"rke2-standin: a behavioural stand-in for RKE2 used by the host lab. Not RKE2.\n", 0o644),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, mode in entries:
            _tar_add(tar, name, data, mode)
    tarball = dest / f"rke2.linux-{arch}.tar.gz"
    with open(tarball, "wb") as f, gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    (dest / f"sha256sum-{arch}.txt").write_text(f"{digest}  rke2.linux-{arch}.tar.gz\n")
    shutil.copy(FILES / "install.sh", dest / "install.sh")
    (dest / "install.sh").chmod(0o755)
    return dest


def build_mirror(root: str | Path, version: str, python: str | None = None,
                 arch: str = "amd64") -> Path:
    """A release mirror: root/install.sh and root/<version>/ with the artifacts (fetched as
    <url>/<version with + as %2B>/<file>, which an HTTP server maps back to this path)."""
    root = Path(root)
    build_artifacts(root / version, version, python, arch)
    shutil.copy(root / version / "install.sh", root / "install.sh")
    return root
