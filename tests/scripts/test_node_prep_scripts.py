"""images.sh (cluster.imagesArchives) and cis.sh (cluster.profile: cis) in the scratch root.

Archives are served with file:// URLs from the scratch root (the real curl fetches them);
sysctl is a stub (tests/scripts/stubs/path/sysctl: the real one would change this machine's
kernel); useradd, groupadd and getent are the real ones, working on the scratch root's
/etc/passwd and /etc/group.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from components import render
from tests.scripts.sandbox import Sandbox

DIR = render.IMAGES_DIR
ARCHIVE = b"\x28\xb5\x2f\xfd" + b"pretend zstd image archive " * 100
EXTRA = b"docker.io/library/busybox:1.36\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve(sb: Sandbox, name: str, data: bytes) -> str:
    path = sb.path(f"/srv/mirror/{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"file:///srv/mirror/{name}"


def images(sb: Sandbox, *lines: tuple[str, str, str]):
    return sb.run("images.sh", stdin="".join(f"{s} {n} {u}\n" for s, n, u in lines))


def leftovers(sb: Sandbox) -> list[str]:
    d = sb.path(DIR)
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".")) if d.exists() else []


# -- images.sh ----------------------------------------------------------------------------

def test_images_fetched_verified_placed_then_left_alone(sandbox: Sandbox):
    a = serve(sandbox, "rke2-images.linux-amd64.tar.zst", ARCHIVE)
    b = serve(sandbox, "extra-images.txt", EXTRA)
    lines = [(sha(ARCHIVE), "rke2-images.linux-amd64.tar.zst", a), (sha(EXTRA), "extra-images.txt", b)]
    res = images(sandbox, *lines)
    assert res.returncode == 0 and res.stdout == "changed\n", res
    placed = sandbox.path(f"{DIR}/rke2-images.linux-amd64.tar.zst")
    assert placed.read_bytes() == ARCHIVE and sandbox.path(f"{DIR}/extra-images.txt").read_bytes() == EXTRA
    assert os.stat(placed).st_mode & 0o777 == 0o644
    assert leftovers(sandbox) == []

    before = sandbox.snapshot()
    res = images(sandbox, *lines)
    assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert "sha256 matches" in res.stderr and "fetching" not in res.stderr
    assert sandbox.snapshot() == before


def test_wrong_sha256_places_nothing_and_says_both_digests(sandbox: Sandbox):
    url = serve(sandbox, "rke2-images.linux-amd64.tar.zst", ARCHIVE)
    wanted = sha(b"something else")
    res = images(sandbox, (wanted, "rke2-images.linux-amd64.tar.zst", url))
    assert res.returncode == 1 and res.stdout == "", res
    assert f"sha256 is {sha(ARCHIVE)}" in res.stderr and wanted in res.stderr and "was not placed" in res.stderr
    assert not sandbox.exists(f"{DIR}/rke2-images.linux-amd64.tar.zst")
    assert leftovers(sandbox) == []


def test_a_file_with_the_wrong_content_is_replaced(sandbox: Sandbox):
    url = serve(sandbox, "extra.tar", ARCHIVE)
    sandbox.write(f"{DIR}/extra.tar", "truncated download")
    res = images(sandbox, (sha(ARCHIVE), "extra.tar", url))
    assert res.returncode == 0 and res.stdout == "changed\n", res
    assert sandbox.path(f"{DIR}/extra.tar").read_bytes() == ARCHIVE


@pytest.mark.parametrize("url, message", [
    ("file:///srv/mirror/missing.tar", "could not fetch file:///srv/mirror/missing.tar"),
    # --proto =https,file: a plain http URL is refused by curl itself, nothing is sent.
    ("http://127.0.0.1:9/x.tar", "could not fetch http://127.0.0.1:9/x.tar"),
])
def test_fetch_failures_fail_clearly(sandbox: Sandbox, url, message):
    res = images(sandbox, (sha(ARCHIVE), "x.tar", url))
    assert res.returncode == 1 and message in res.stderr, res
    assert not sandbox.exists(f"{DIR}/x.tar") and leftovers(sandbox) == []


@pytest.mark.parametrize("name, digest", [("../escape.tar", "a" * 64), (".hidden.tar", "a" * 64),
                                          ("x.tar", "A" * 64), ("x.tar", "a" * 63)])
def test_bad_lines_are_refused_before_any_fetch(sandbox: Sandbox, name, digest):
    url = serve(sandbox, "x.tar", ARCHIVE)
    res = images(sandbox, (digest, name, url))
    assert res.returncode == 1 and "fetching" not in res.stderr, res
    assert not sandbox.exists("/var/lib/rancher/rke2/agent/escape.tar")


# -- cis.sh -------------------------------------------------------------------------------

# rancher/rke2 bundle/share/rke2/rke2-cis-sysctl.conf at v1.33.5+rke2r1 (the tarball's
# share/rke2/), and the values RKE2 checks at start (pkg/cli/cmds/profile_linux.go
# kernelRuntimeParameters).
CIS_SYSCTL = "vm.panic_on_oom=0\nvm.overcommit_memory=1\nkernel.panic=10\nkernel.panic_on_oops=1\n"
WANTED = {"vm.panic_on_oom": "0", "vm.overcommit_memory": "1", "kernel.panic": "10", "kernel.panic_on_oops": "1"}
DISTRO_DEFAULTS = {"vm.panic_on_oom": "0", "vm.overcommit_memory": "0", "kernel.panic": "0", "kernel.panic_on_oops": "0"}


def kernel(sb: Sandbox, values: dict[str, str] = DISTRO_DEFAULTS) -> None:
    for key, value in values.items():
        sb.write(f"/stubstate/sysctl/{key}", value + "\n")


def kernel_values(sb: Sandbox) -> dict[str, str]:
    return {k: sb.read(f"/stubstate/sysctl/{k}").strip() for k in WANTED}


def cis(sb: Sandbox, **values):
    return sb.run("cis.sh", **values)


def test_cis_apply_on_a_server_creates_etcd_and_applies_the_kernel_parameters(sandbox: Sandbox):
    kernel(sandbox)
    sandbox.write("/usr/local/share/rke2/rke2-cis-sysctl.conf", CIS_SYSCTL)
    res = cis(sandbox)
    assert res.returncode == 0 and res.stdout == "changed\n", res
    assert sandbox.read("/etc/sysctl.d/60-rke2-cis.conf") == CIS_SYSCTL
    assert os.stat(sandbox.path("/etc/sysctl.d/60-rke2-cis.conf")).st_mode & 0o777 == 0o644
    assert kernel_values(sandbox) == WANTED
    group = [line for line in sandbox.read("/etc/group").splitlines() if line.startswith("etcd:")]
    user = [line for line in sandbox.read("/etc/passwd").splitlines() if line.startswith("etcd:")]
    assert len(group) == 1 and len(user) == 1, (group, user)
    fields = user[0].split(":")
    assert fields[3] == group[0].split(":")[2] and fields[6] == "/sbin/nologin"
    assert int(fields[2]) < 1000  # a system account

    before = sandbox.snapshot()
    res = cis(sandbox)
    assert res.returncode == 0 and res.stdout == "unchanged\n", res
    assert sandbox.snapshot() == before


def test_cis_on_an_agent_leaves_users_alone(sandbox: Sandbox):
    kernel(sandbox)
    sandbox.write("/opt/rke2/share/rke2/rke2-cis-sysctl.conf", CIS_SYSCTL)
    res = cis(sandbox, ROLE="agent")
    assert res.returncode == 0 and res.stdout == "changed\n", res
    assert "etcd" not in sandbox.read("/etc/passwd") and kernel_values(sandbox) == WANTED


def test_cis_check_changes_nothing_and_passes_on_a_capable_host(sandbox: Sandbox):
    kernel(sandbox)
    before = sandbox.snapshot()
    res = cis(sandbox, ACTION="check")
    assert res.returncode == 0 and res.stdout == "ok\n", res
    assert sandbox.snapshot() == before and kernel_values(sandbox) == DISTRO_DEFAULTS


def test_cis_check_fails_clearly_in_a_container(sandbox: Sandbox):
    kernel(sandbox)
    sandbox.write("/stubstate/sysctl-ro", "")
    res = cis(sandbox, ACTION="check")
    assert res.returncode == 1 and res.stdout == "", res
    assert "the CIS profile (cluster.profile: cis) cannot run on scratch-host" in res.stderr
    assert "vm.overcommit_memory: cannot be set here (read-only /proc/sys" in res.stderr


def test_cis_check_fails_without_sysctl_values(sandbox: Sandbox):
    kernel(sandbox, {k: v for k, v in DISTRO_DEFAULTS.items() if k != "kernel.panic"})
    res = cis(sandbox, ACTION="check", ROLE="agent")
    assert res.returncode == 1 and "kernel parameter kernel.panic: cannot be read" in res.stderr, res


def test_cis_apply_fails_without_the_release_file(sandbox: Sandbox):
    kernel(sandbox)
    res = cis(sandbox)
    assert res.returncode == 1 and "rke2-cis-sysctl.conf of RKE2 v1.33.5+rke2r1 not found" in res.stderr, res
    assert not sandbox.exists("/etc/sysctl.d/60-rke2-cis.conf") and "etcd" not in sandbox.read("/etc/passwd")


def test_cis_apply_fails_when_the_kernel_keeps_another_value(sandbox: Sandbox):
    kernel(sandbox)
    sandbox.write("/usr/local/share/rke2/rke2-cis-sysctl.conf", CIS_SYSCTL)
    sandbox.write("/stubstate/sysctl-sticky/vm.overcommit_memory", "")
    res = cis(sandbox)
    assert res.returncode == 1 and "did not take: vm.overcommit_memory=0 (wanted 1)" in res.stderr, res
