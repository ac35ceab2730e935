"""Upstream rules re-implemented for tests, independently of the product's code.

Each function names the upstream source it follows. They use openssl (a real program),
never components/, so a test that compares the product with them checks the product
against upstream, not against itself.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from pathlib import Path

PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", re.S)


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def openssl_ca(dir_: Path, name: str, signer: str | None = None) -> bytes:
    """A CA certificate made by openssl (`dir_/<name>.crt`), self-signed or signed by
    `dir_/<signer>.crt`/.key, with subject and authority key ids as openssl sets them."""
    key, crt = dir_ / f"{name}.key", dir_ / f"{name}.crt"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    if signer is None:
        _openssl("req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "30",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-out", str(crt))
    else:
        csr = dir_ / f"{name}.csr"
        ext = dir_ / f"{name}.ext"
        ext.write_text("basicConstraints=critical,CA:TRUE\nsubjectKeyIdentifier=hash\n"
                       "authorityKeyIdentifier=keyid\n")
        _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(dir_ / f"{signer}.crt"),
                 "-CAkey", str(dir_ / f"{signer}.key"), "-days", "30", "-extfile", str(ext), "-out", str(crt))
    return crt.read_bytes()


def openssl_der(path: Path) -> bytes:
    return _openssl("x509", "-in", str(path), "-outform", "DER")


def _key_id(pem: bytes, extension: str) -> str | None:
    """The key id of a subject/authority key identifier extension as openssl prints it."""
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", extension], input=pem,
                         capture_output=True).stdout.decode()
    for line in out.splitlines()[1:]:
        line = line.strip().removeprefix("keyid:")
        if re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*", line):
            return line.upper()
    return None


def upstream_ca_hash(bundle: bytes) -> str:
    """k3s-io/k3s pkg/clientaccess/token.go `hashCA`: one certificate: sha256 of the bytes;
    several: sha256 of the DER of the root the first certificate verifies to, using the other
    certificates (roots: no authority key id, or one equal to the subject key id; the rest
    intermediates); no chain: sha256 of the bytes. Chain building here is `openssl verify
    -partial_chain`'s."""
    blocks = PEM_BLOCK.findall(bundle)
    if len(blocks) <= 1:
        return hashlib.sha256(bundle).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        first = d / "first.pem"
        first.write_bytes(blocks[0])
        roots, inters = [], []
        for block in blocks[1:]:
            # k3s's rule: a root has no authority key id, or one equal to its subject key id.
            aki, ski = _key_id(block, "authorityKeyIdentifier"), _key_id(block, "subjectKeyIdentifier")
            (roots if aki is None or aki == ski else inters).append(block)
        (d / "inter.pem").write_bytes(b"".join(inters) or b"")
        for root in roots:
            (d / "root.pem").write_bytes(root)
            # Go's Verify anchors at any certificate in Roots, self-signed or not.
            argv = ["openssl", "verify", "-partial_chain", "-CAfile", str(d / "root.pem")]
            if inters:
                argv += ["-untrusted", str(d / "inter.pem")]
            if subprocess.run([*argv, str(first)], capture_output=True).returncode == 0:
                return hashlib.sha256(_openssl("x509", "-outform", "DER", data=root)).hexdigest()
    return hashlib.sha256(bundle).hexdigest()
