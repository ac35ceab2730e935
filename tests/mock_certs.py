"""Real X.509 certificates for the Pulumi mocks: the program hashes and parses what
pulumi-tls returns (the join token's CA hash walks the chain), so fake PEM text is not
enough. Each certificate is issued by its signer as terraform-provider-tls does it (subject
key id on every certificate, authority key id from the signer's), with one ECDSA key per
resource name. A `# <resource name>` line before the PEM block lets tests see which
resource a PEM came from; PEM parsers skip text outside the block (RFC 7468).
Keys are Ed25519 derived from the resource name and Ed25519 signatures are deterministic,
so two evaluations of the same stack give the same PEMs (tests compare evaluations)."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

NOT_BEFORE = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2036, 11, 20, tzinfo=dt.timezone.utc)


class MockCertificateAuthority:
    def __init__(self):
        self._keys: dict[str, ed25519.Ed25519PrivateKey] = {}
        self._by_pem: dict[str, tuple[x509.Certificate, ed25519.Ed25519PrivateKey]] = {}

    def _key(self, name: str) -> ed25519.Ed25519PrivateKey:
        if name not in self._keys:
            seed = hashlib.sha256(f"mock key {name}".encode()).digest()
            self._keys[name] = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        return self._keys[name]

    def issue(self, name: str, *, is_ca: bool, signer_pem: str | None = None,
              not_after: dt.datetime = NOT_AFTER, subject: dict | None = None) -> str:
        """`subject`: pulumi-tls subject inputs (commonName, organization) of the request;
        the resource name is the common name without one."""
        key = self._key(name)
        subject = subject or {}
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject.get("commonName") or name)]
        if subject.get("organization"):
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
        subject = x509.Name(attrs)
        if signer_pem is None:
            issuer_cert, issuer_key = None, key
        else:
            issuer_cert, issuer_key = self._by_pem[signer_pem]
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer_cert.subject if issuer_cert else subject)
                   .public_key(key.public_key())
                   .serial_number(int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "big") >> 1)
                   .not_valid_before(NOT_BEFORE).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if issuer_cert is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        cert = builder.sign(issuer_key, None)
        pem = f"# {name}\n" + cert.public_bytes(serialization.Encoding.PEM).decode()
        self._by_pem[pem] = (cert, key)
        return pem
