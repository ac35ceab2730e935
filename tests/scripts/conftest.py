from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.scripts.sandbox import Sandbox, unavailable_reason


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A fresh scratch root (see sandbox.py), deleted afterwards; skipped where namespaces
    and chroot are unavailable."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    sb = Sandbox(tmp_path / "sandbox")
    yield sb
    # The bind mounts only ever exist inside each run's private mount namespace; refuse to
    # delete anything if one were visible here (rmtree would descend into the real /usr).
    mounted = [p for p in (sb.root / "usr", sb.root / "dev", sb.root / "proc", sb.root / "etc/alternatives") if os.path.ismount(p)]
    assert not mounted, f"mount points leaked out of the sandbox namespace: {mounted}"
    shutil.rmtree(sb.base)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A cluster CA, a server cert for 127.0.0.1 it signed, and an unrelated CA."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=rke2-server-ca",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=some-other-ca",
             "-keyout", str(d / "other.key"), "-out", str(d / "other.crt"))
    _openssl("req", *ec, "-subj", "/CN=rke2-supervisor", "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
             "-CAcreateserial", "-days", "2", "-extfile", str(d / "ext.cnf"), "-out", str(d / "server.crt"))
    return {"ca": d / "ca.crt", "other_ca": d / "other.crt", "cert": d / "server.crt", "key": d / "server.key"}


@pytest.fixture(scope="session")
def chained_tls_material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """server-ca.crt as `cluster.ca: generated` lays it out (server CA, intermediate, root),
    made by openssl, and a 127.0.0.1 server certificate the server CA signed."""
    from tests.upstream_rules import openssl_ca
    d = tmp_path_factory.mktemp("chain")
    root = openssl_ca(d, "root")
    inter = openssl_ca(d, "inter", signer="root")
    server_ca = openssl_ca(d, "server-ca", signer="inter")
    bundle = d / "bundle.crt"
    bundle.write_bytes(server_ca + inter + root)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", "/CN=rke2-supervisor", "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "server-ca.crt"),
             "-CAkey", str(d / "server-ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(d / "ext.cnf"),
             "-out", str(d / "server.crt"))
    return {"ca": bundle, "cert": d / "server.crt", "key": d / "server.key"}
