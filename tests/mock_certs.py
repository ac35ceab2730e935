"""Real X.509 certificates for the Pulumi mocks: the program hashes and parses what
pulumi-tls returns (the join token's CA hash walks the chain), so fake PEM text is not
enough. Each certificate is issued by its signer as terraform-provider-tls does it (subject
key id on every certificate, authority key id from the signer's), with one ECDSA key per
resource name. A `# <resource name>` line before the PEM block lets tests see which
resource a PEM came from; PEM parsers skip text outside the block (RFC 7468)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOT_BEFORE = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2036, 11, 20, tzinfo=dt.timezone.utc)


class MockCertificateAuthority:
    def __init__(self):
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._by_pem: dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}

    def _key(self, name: str) -> ec.EllipticCurvePrivateKey:
        if name not in self._keys:
            self._keys[name] = ec.generate_private_key(ec.SECP256R1())
        return self._keys[name]

    def issue(self, name: str, *, is_ca: bool, signer_pem: str | None = None) -> str:
        key = self._key(name)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        if signer_pem is None:
            issuer_cert, issuer_key = None, key
        else:
            issuer_cert, issuer_key = self._by_pem[signer_pem]
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer_cert.subject if issuer_cert else subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if issuer_cert is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        cert = builder.sign(issuer_key, hashes.SHA256())
        pem = f"# {name}\n" + cert.public_bytes(serialization.Encoding.PEM).decode()
        self._by_pem[pem] = (cert, key)
        return pem
