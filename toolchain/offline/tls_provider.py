"""Offline stand-in for the `pulumi-resource-tls` 5.5.1 plugin, in Python.

The official provider (a bridged build of hashicorp/terraform-provider-tls) cannot be
downloaded or built here, so this plugin serves the four resources the program uses with
the same tokens, property names, defaults and replacement rules:

    tls:index/privateKey:PrivateKey          tls:index/certRequest:CertRequest
    tls:index/selfSignedCert:SelfSignedCert  tls:index/locallySignedCert:LocallySignedCert

Keys and certificates are made with `cryptography`, following what the upstream provider
asks of Go's crypto/x509 (extension set and criticality, subject attribute order, signature
hash per key type, subject key identifier hashing). Everything is generated in Create only:
Read and Update return what the state holds, so a refresh never changes a key or a cert.
Secrets: the plugin accepts them, keeps the engine's secret markers on inputs, and returns
the private key outputs and the private key inputs marked secret.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from pulumi.runtime.proto import (engine_pb2, engine_pb2_grpc, plugin_pb2, provider_pb2,
                                  provider_pb2_grpc)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plugin_server  # noqa: E402  (lives next to this file)

VERSION = "5.5.1"

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"

# Markers of the Pulumi property wire format (sdk/go/common/resource/sig).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class ProviderError(Exception):
    """A failure reported to the engine as the RPC's error."""


# --------------------------------------------------------------------------------------
# Property values: secrets and unknowns
# --------------------------------------------------------------------------------------

def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def make_secret(value: Any) -> Any:
    return value if is_secret(value) else {SIG_KEY: SECRET_SIG, "value": value}


def reveal(value: Any) -> Any:
    """The value with every secret marker removed (at any depth)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def has_secret(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(has_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(has_secret(v) for v in value)
    return False


def has_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return False


def from_struct(message: struct_pb2.Struct | None) -> dict:
    if message is None:
        return {}
    return json_format.MessageToDict(message)


def to_struct(props: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update({k: v for k, v in props.items() if v is not None})
    return out


# --------------------------------------------------------------------------------------
# Resource schemas (names as in the pulumi_tls SDK; defaults and ForceNew as upstream)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prop:
    kind: str                   # string | integer | boolean | strings | subject
    required: bool = False
    replace: bool = True        # a change forces a new resource (upstream RequiresReplace)
    default: Any = None
    secret: bool = False        # sensitive upstream: always returned secret
    description: str = ""


@dataclass(frozen=True)
class ResourceSpec:
    token: str
    inputs: dict[str, Prop]
    outputs: dict[str, Prop]
    subject_type: str | None = None
    is_cert: bool = False

    def secret_keys(self) -> set[str]:
        keys = {k for k, p in self.inputs.items() if p.secret}
        keys |= {k for k, p in self.outputs.items() if p.secret}
        return keys


ALGORITHMS = ("RSA", "ECDSA", "ED25519")
CURVES = {"P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}

KEY_USAGE_BITS = {  # RFC 5280 4.2.1.3 bit positions
    "digital_signature": 0, "content_commitment": 1, "key_encipherment": 2,
    "data_encipherment": 3, "key_agreement": 4, "cert_signing": 5, "crl_signing": 6,
    "encipher_only": 7, "decipher_only": 8,
}
EXT_KEY_USAGES = {
    "any_extended": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec_end_system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec_user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft_server_gated_crypto": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}
SUPPORTED_USES = tuple(sorted(set(KEY_USAGE_BITS) | set(EXT_KEY_USAGES)))

SUBJECT_FIELDS: dict[str, str] = {  # Pulumi name -> kind
    "commonName": "string", "country": "string", "emailAddress": "string",
    "locality": "string", "organization": "string", "organizationalUnit": "string",
    "postalCode": "string", "province": "string", "serialNumber": "string",
    "streetAddresses": "strings",
}

_SANS = {
    "dnsNames": Prop("strings", description="DNS names for which a certificate is being requested."),
    "ipAddresses": Prop("strings", description="IP addresses for which a certificate is being requested."),
    "uris": Prop("strings", description="URIs for which a certificate is being requested."),
}
_CERT_COMMON_INPUTS = {
    "validityPeriodHours": Prop("integer", required=True,
                                description="Hours, after issuing, that the certificate stays valid."),
    "allowedUses": Prop("strings", required=True, description="Key usages allowed for the certificate."),
    "earlyRenewalHours": Prop("integer", replace=False, default=0,
                              description="Hours before expiry from which the certificate is due for renewal."),
    "isCaCertificate": Prop("boolean", default=False, description="Whether the certificate is a CA."),
    "setSubjectKeyId": Prop("boolean", default=False, description="Include a subject key identifier."),
    "maxPathLength": Prop("integer", description="Maximum intermediates below this CA (ignored unless CA)."),
}
_CERT_OUTPUTS = {
    "certPem": Prop("string", description="Certificate data in PEM (RFC 1421) format."),
    "readyForRenewal": Prop("boolean", description="Expired, or within earlyRenewalHours of expiry?"),
    "validityStartTime": Prop("string", description="Start of validity, RFC 3339."),
    "validityEndTime": Prop("string", description="End of validity, RFC 3339."),
}

SPECS: dict[str, ResourceSpec] = {
    PRIVATE_KEY: ResourceSpec(
        PRIVATE_KEY,
        inputs={
            "algorithm": Prop("string", required=True, description="RSA, ECDSA or ED25519."),
            "ecdsaCurve": Prop("string", default="P224", description="P224, P256, P384 or P521 (default P224)."),
            "rsaBits": Prop("integer", default=2048, description="RSA key size in bits (default 2048)."),
        },
        outputs={
            "privateKeyPem": Prop("string", secret=True, description="Private key in PEM (RFC 1421) format."),
            "privateKeyPemPkcs8": Prop("string", secret=True, description="Private key in PKCS#8 PEM format."),
            "privateKeyOpenssh": Prop("string", secret=True, description="Private key in OpenSSH PEM format."),
            "publicKeyPem": Prop("string", description="Public key in PEM (RFC 1421) format."),
            "publicKeyOpenssh": Prop("string", description="Public key in authorized_keys format."),
            "publicKeyFingerprintMd5": Prop("string", description="OpenSSH MD5 fingerprint."),
            "publicKeyFingerprintSha256": Prop("string", description="OpenSSH SHA256 fingerprint."),
        },
    ),
    CERT_REQUEST: ResourceSpec(
        CERT_REQUEST,
        inputs={
            "privateKeyPem": Prop("string", required=True, secret=True,
                                  description="Private key in PEM format that the certificate will belong to."),
            **_SANS,
            "subject": Prop("subject", description="The subject of the request."),
        },
        outputs={
            "certRequestPem": Prop("string", description="The certificate request in PEM format."),
            "keyAlgorithm": Prop("string", description="Algorithm of the private key."),
        },
        subject_type="tls:index/CertRequestSubject:CertRequestSubject",
    ),
    SELF_SIGNED_CERT: ResourceSpec(
        SELF_SIGNED_CERT,
        inputs={
            "privateKeyPem": Prop("string", required=True, secret=True,
                                  description="Private key in PEM format that the certificate will belong to."),
            **_CERT_COMMON_INPUTS,
            "setAuthorityKeyId": Prop("boolean", default=False,
                                      description="Include an authority key identifier."),
            **_SANS,
            "subject": Prop("subject", description="The subject of the certificate."),
        },
        outputs={**_CERT_OUTPUTS,
                 "keyAlgorithm": Prop("string", description="Algorithm of the private key.")},
        subject_type="tls:index/SelfSignedCertSubject:SelfSignedCertSubject",
        is_cert=True,
    ),
    LOCALLY_SIGNED_CERT: ResourceSpec(
        LOCALLY_SIGNED_CERT,
        inputs={
            "certRequestPem": Prop("string", required=True, description="Certificate request in PEM format."),
            "caCertPem": Prop("string", required=True, description="CA certificate in PEM format."),
            "caPrivateKeyPem": Prop("string", required=True, secret=True,
                                    description="CA private key in PEM format."),
            **_CERT_COMMON_INPUTS,
        },
        outputs={**_CERT_OUTPUTS,
                 "caKeyAlgorithm": Prop("string", description="Algorithm of the CA private key.")},
        is_cert=True,
    ),
}


# --------------------------------------------------------------------------------------
# Schema (GetSchema): enough for the engine and tools, built from SPECS
# --------------------------------------------------------------------------------------

def _schema_type(prop: Prop, spec: ResourceSpec) -> dict:
    if prop.kind == "strings":
        out: dict = {"type": "array", "items": {"type": "string"}}
    elif prop.kind == "subject":
        out = {"$ref": f"#/types/{spec.subject_type}"}
    else:
        out = {"type": prop.kind}
    if prop.description:
        out["description"] = prop.description
    if prop.secret:
        out["secret"] = True
    if prop.default is not None:
        out["default"] = prop.default
    return out


def build_schema() -> dict:
    types: dict = {}
    resources: dict = {}
    for spec in SPECS.values():
        if spec.subject_type:
            types[spec.subject_type] = {
                "type": "object",
                "properties": {name: ({"type": "array", "items": {"type": "string"}} if kind == "strings"
                                      else {"type": "string"}) for name, kind in SUBJECT_FIELDS.items()},
            }
        ins = {k: _schema_type(p, spec) for k, p in spec.inputs.items()}
        outs = {**ins, **{k: _schema_type(p, spec) for k, p in spec.outputs.items()}}
        resources[spec.token] = {
            "inputProperties": ins,
            "requiredInputs": sorted(k for k, p in spec.inputs.items() if p.required),
            "properties": outs,
            "required": sorted(set(spec.outputs) | {k for k, p in spec.inputs.items()
                                                    if p.required or p.default is not None}),
        }
    proxy = "tls:index/ProviderProxy:ProviderProxy"
    types[proxy] = {"type": "object", "properties": {
        "fromEnv": {"type": "boolean"}, "password": {"type": "string", "secret": True},
        "url": {"type": "string"}, "username": {"type": "string"}}}
    proxy_ref = {"$ref": f"#/types/{proxy}"}
    return {
        "name": "tls",
        "version": VERSION,
        "displayName": "TLS",
        "description": "Offline stand-in for the Pulumi TLS provider (keys, CSRs, certificates).",
        "config": {"variables": {"proxy": proxy_ref}},
        "provider": {"inputProperties": {"proxy": proxy_ref}, "properties": {"proxy": proxy_ref}},
        "types": types,
        "resources": resources,
        "language": {"python": {"packageName": "pulumi_tls"}},
    }


# --------------------------------------------------------------------------------------
# Input handling: defaults, validation, comparison
# --------------------------------------------------------------------------------------

def _num(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalized(prop: Prop, value: Any) -> Any:
    """Canonical form for comparing an input's old and new values (plain, no secrets)."""
    value = reveal(value)
    if value is None:
        value = prop.default
    if prop.kind == "integer":
        return _num(value)
    if prop.kind == "strings":
        return list(value) if value else None
    if prop.kind == "subject":
        if not isinstance(value, dict):
            return value or None
        clean = {k: v for k, v in value.items() if v not in (None, "", [])}
        return clean or None
    return value


def check_inputs(spec: ResourceSpec, props: dict) -> list[tuple[str, str]]:
    """Failures (property, reason) for the known values of `props` (secrets revealed)."""
    failures: list[tuple[str, str]] = []
    for name, prop in spec.inputs.items():
        raw = props.get(name)
        if raw is None:
            if prop.required:
                failures.append((name, f"Missing required property '{name}'"))
            continue
        value = reveal(raw)
        if has_unknown(value):
            continue
        expected = {"string": str, "integer": (int, float), "boolean": bool,
                    "strings": list, "subject": dict}[prop.kind]
        if not isinstance(value, expected) or (prop.kind == "integer" and isinstance(value, bool)):
            failures.append((name, f"'{name}' must be of type {prop.kind}"))
            continue
        if prop.kind == "integer" and not float(value).is_integer():
            failures.append((name, f"'{name}' must be a whole number"))
            continue
        if prop.kind == "strings" and not all(isinstance(v, str) for v in value):
            failures.append((name, f"'{name}' must be a list of strings"))
            continue
        if prop.kind == "subject":
            for key, v in value.items():
                if key not in SUBJECT_FIELDS:
                    failures.append((f"{name}.{key}", f"unknown subject field '{key}'"))
                elif v is not None and not has_unknown(v):
                    want = list if SUBJECT_FIELDS[key] == "strings" else str
                    if not isinstance(v, want):
                        failures.append((f"{name}.{key}", f"'{key}' must be of type {SUBJECT_FIELDS[key]}"))

    def known(name: str) -> Any:
        v = reveal(props.get(name))
        return None if v is None or has_unknown(v) else v

    if spec.token == PRIVATE_KEY:
        algorithm = known("algorithm")
        if isinstance(algorithm, str) and algorithm not in ALGORITHMS:
            failures.append(("algorithm", f"value must be one of: {', '.join(ALGORITHMS)}; got {algorithm!r}"))
        curve = known("ecdsaCurve")
        if isinstance(curve, str) and curve not in CURVES:
            failures.append(("ecdsaCurve", f"value must be one of: {', '.join(CURVES)}; got {curve!r}"))
    for name in ("validityPeriodHours", "earlyRenewalHours"):
        v = known(name) if name in spec.inputs else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            failures.append((name, f"'{name}' must be at least 0, got {_num(v)}"))
    uses = known("allowedUses") if "allowedUses" in spec.inputs else None
    if isinstance(uses, list):
        for i, use in enumerate(uses):
            if isinstance(use, str) and use != UNKNOWN and use not in SUPPORTED_USES:
                failures.append((f"allowedUses[{i}]",
                                 f"value must be one of: {', '.join(SUPPORTED_USES)}; got {use!r}"))
    ips = known("ipAddresses") if "ipAddresses" in spec.inputs else None
    if isinstance(ips, list):
        for i, ip in enumerate(ips):
            if isinstance(ip, str) and ip != UNKNOWN:
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    failures.append((f"ipAddresses[{i}]", f"Invalid IP address: failed to parse {ip!r}"))
    return failures


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PRIVATE_KEY_PEM_TYPES = ("RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY")
_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


def pem_type(text: str) -> str | None:
    match = _PEM_BEGIN.search(text or "")
    return match.group(1) if match else None


def key_algorithm(key: Any) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RSA"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ECDSA"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ED25519"
    raise ProviderError(f"unsupported key type: {type(key).__name__}")


def load_private_key(text: str, what: str = "private key") -> PrivateKey:
    kind = pem_type(text)
    if kind is None:
        raise ProviderError(f"Failed to parse {what} PEM: failed to decode PEM block")
    if kind not in PRIVATE_KEY_PEM_TYPES:
        raise ProviderError(f"Failed to parse {what} PEM: unable to determine parser for PEM preamble: {kind}")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ProviderError(f"Failed to parse {what} PEM given PEM preamble '{kind}': {exc}") from exc
    key_algorithm(key)
    return key


def generate_key(algorithm: str, curve: str, bits: int) -> PrivateKey:
    if algorithm == "RSA":
        try:
            return rsa.generate_private_key(public_exponent=65537, key_size=bits)
        except ValueError as exc:
            raise ProviderError(f"Unable to generate Key from configuration: {exc}") from exc
    if algorithm == "ECDSA":
        if curve not in CURVES:
            raise ProviderError(f"invalid ECDSA curve; supported values are: {list(CURVES)}")
        return ec.generate_private_key(CURVES[curve]())
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ProviderError(f"Invalid Key Algorithm: Key Algorithm {algorithm!r} is not supported")


def ssh_supported(key: Any) -> bool:
    """OpenSSH has no encoding for P-224 keys: upstream leaves those outputs empty."""
    return not (isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey))
                and key.curve.name == "secp224r1")


def private_key_outputs(key: PrivateKey) -> tuple[str, dict]:
    """(resource id, computed outputs) of a private key, as the upstream resource stores them."""
    none = serialization.NoEncryption()
    pem = serialization.Encoding.PEM
    if isinstance(key, ed25519.Ed25519PrivateKey):
        main = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, none)
    else:  # PKCS#1 "RSA PRIVATE KEY" / SEC 1 "EC PRIVATE KEY"
        main = key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, none)
    pkcs8 = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, none)
    pub = key.public_key()
    pub_der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pub_pem = pub.public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    openssh = pub_openssh = md5 = sha256 = ""
    if ssh_supported(key):
        openssh = key.private_bytes(pem, serialization.PrivateFormat.OpenSSH, none).decode()
        line = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        pub_openssh = line + "\n"
        blob = base64.b64decode(line.split()[1])
        md5 = ":".join(f"{b:02x}" for b in hashlib.md5(blob).digest())
        sha256 = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    outputs = {
        "privateKeyPem": main.decode(),
        "privateKeyPemPkcs8": pkcs8.decode(),
        "privateKeyOpenssh": openssh,
        "publicKeyPem": pub_pem.decode(),
        "publicKeyOpenssh": pub_openssh,
        "publicKeyFingerprintMd5": md5,
        "publicKeyFingerprintSha256": sha256,
    }
    return hashlib.sha1(pub_der).hexdigest(), outputs


def signature_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The hash Go's x509 picks for a signing key."""
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size, hashes.SHA256())
    return None  # Ed25519


def subject_key_id(pub: Any) -> bytes:
    """SHA-1 of the public key as upstream's generateSubjectKeyID marshals it."""
    if isinstance(pub, rsa.RSAPublicKey):
        data = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        data = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        data = bytes([0x04, len(raw)]) + raw  # asn1.Marshal of the key bytes: an OCTET STRING
    else:
        raise ProviderError(f"Failed to generate subject key identifier: unsupported key {type(pub).__name__}")
    return hashlib.sha1(data).digest()


# --------------------------------------------------------------------------------------
# Names, SANs, extensions
# --------------------------------------------------------------------------------------

_PRINTABLE = re.compile(r"^[A-Za-z0-9 '()+,\-./:=?]*$")
# Go's pkix.Name.ToRDNSequence order; email goes last as an extra name (IA5String).
_NAME_ORDER = (
    ("country", NameOID.COUNTRY_NAME), ("province", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME), ("streetAddresses", NameOID.STREET_ADDRESS),
    ("postalCode", NameOID.POSTAL_CODE), ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME), ("commonName", NameOID.COMMON_NAME),
    ("serialNumber", NameOID.SERIAL_NUMBER),
)


def _attribute(oid: ObjectIdentifier, value: str) -> x509.NameAttribute:
    """PrintableString when the value allows it, else UTF8String, as Go's asn1 marshals."""
    kind = _ASN1Type.PrintableString if _PRINTABLE.match(value) else _ASN1Type.UTF8String
    # Go does not hold `country` to two letters; `cryptography` would without _validate=False.
    return x509.NameAttribute(oid, value, _type=kind, _validate=oid != NameOID.COUNTRY_NAME)


def build_name(subject: dict | None) -> x509.Name:
    subject = subject or {}
    rdns: list[x509.RelativeDistinguishedName] = []
    for key, oid in _NAME_ORDER:
        value = subject.get(key)
        values = [v for v in (value if isinstance(value, list) else [value]) if v]
        if values:  # several values of one attribute share one RDN, as Go marshals them
            rdns.append(x509.RelativeDistinguishedName([_attribute(oid, v) for v in values]))
    email = subject.get("emailAddress")
    if email:
        rdns.append(x509.RelativeDistinguishedName(
            [x509.NameAttribute(NameOID.EMAIL_ADDRESS, email, _type=_ASN1Type.IA5String)]))
    return x509.Name(rdns)


def build_sans(dns_names: list | None, ip_addresses: list | None, uris: list | None) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in dns_names or []:
        try:
            names.append(x509.DNSName(name))
        except ValueError as exc:
            raise ProviderError(f"Invalid DNS name {name!r}: {exc}") from exc
    for ip in ip_addresses or []:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise ProviderError(f"Invalid IP address: failed to parse {ip!r}") from exc
    for uri in uris or []:
        try:
            names.append(x509.UniformResourceIdentifier(uri))
        except ValueError as exc:
            raise ProviderError(f"Invalid URI: failed to parse {uri!r}: {exc}") from exc
    return names


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def key_usage_extension(bits: set[int]) -> x509.ExtensionType:
    flags = {name: KEY_USAGE_BITS[name] in bits for name in KEY_USAGE_BITS}
    try:
        return x509.KeyUsage(
            digital_signature=flags["digital_signature"], content_commitment=flags["content_commitment"],
            key_encipherment=flags["key_encipherment"], data_encipherment=flags["data_encipherment"],
            key_agreement=flags["key_agreement"], key_cert_sign=flags["cert_signing"],
            crl_sign=flags["crl_signing"], encipher_only=flags["encipher_only"],
            decipher_only=flags["decipher_only"])
    except ValueError:
        # encipher/decipher_only without key_agreement: `cryptography` refuses it, Go writes
        # it. Encode the BIT STRING by hand (minimal length, as DER wants).
        top = max(bits)
        nbytes = top // 8 + 1
        value = 0
        for b in bits:
            value |= 1 << (nbytes * 8 - 1 - b)
        unused = nbytes * 8 - 1 - top
        content = bytes([unused]) + value.to_bytes(nbytes, "big")
        der = b"\x03" + _der_length(len(content)) + content
        return x509.UnrecognizedExtension(x509.oid.ExtensionOID.KEY_USAGE, der)


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    text = text.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match and match.group(2):  # nanosecond fractions (Go) are too long for fromisoformat
        text = match.group(1) + match.group(2)[:7] + match.group(3)
    return datetime.fromisoformat(text)


def ready_for_renewal(props: dict, now: datetime | None = None) -> bool | None:
    end = reveal(props.get("validityEndTime"))
    if not isinstance(end, str) or not end or end == UNKNOWN:
        return None
    early = _num(reveal(props.get("earlyRenewalHours")) or 0)
    if not isinstance(early, int):
        return None
    try:
        end_time = parse_rfc3339(end)
    except ValueError:
        return None
    return end_time - timedelta(hours=early) <= (now or datetime.now(timezone.utc))


def create_certificate(*, subject: x509.Name, sans: list[x509.GeneralName], public_key: Any,
                       issuer_name: x509.Name, issuer_key_id: bytes | None, signing_key: PrivateKey,
                       inputs: dict, self_signed: bool) -> tuple[str, dict]:
    """Signs a certificate as upstream's createCertificate (+ Go's CreateCertificate) does."""
    hours = _num(inputs["validityPeriodHours"])
    not_before = now_utc()
    not_after = not_before + timedelta(hours=hours)
    serial = 0
    while serial == 0:
        serial = secrets.randbits(128)

    uses = inputs.get("allowedUses") or []
    ku_bits = {KEY_USAGE_BITS[u] for u in uses if u in KEY_USAGE_BITS}
    ekus = [EXT_KEY_USAGES[u] for u in uses if u in EXT_KEY_USAGES]
    is_ca = bool(inputs.get("isCaCertificate"))
    if is_ca and len(subject) == 0:
        raise ProviderError("Invalid Certificate Subject: Must contain at least one Distinguished Name "
                            "when creating Certificate Authority (CA)")
    max_path = _num(inputs.get("maxPathLength"))
    # Go writes pathLenConstraint only when MaxPathLen > 0 (upstream never sets MaxPathLenZero).
    path_length = max_path if is_ca and isinstance(max_path, int) and max_path > 0 else None

    ski = subject_key_id(public_key) if (is_ca or inputs.get("setSubjectKeyId")) else None
    aki = None
    if self_signed:
        if inputs.get("setAuthorityKeyId"):
            if ski is None:
                raise ProviderError("Invalid Certificate Authority: Could not determine Authority Key Identifier")
            aki = ski
    elif issuer_key_id and issuer_name.public_bytes() != subject.public_bytes():
        aki = issuer_key_id  # Go copies the parent's subject key id

    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer_name).public_key(public_key)
               .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after))
    if ku_bits:
        builder = builder.add_extension(key_usage_extension(ku_bits), critical=True)
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
    if ski is not None:
        builder = builder.add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
    if aki is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
    if sans:  # RFC 5280 4.2.1.6: critical when the subject is empty
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=len(subject) == 0)
    try:
        cert = builder.sign(signing_key, signature_hash(signing_key))
    except (ValueError, TypeError) as exc:
        raise ProviderError(f"Failed to create certificate: {exc}") from exc
    outputs = {
        "certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": rfc3339(not_before),
        "validityEndTime": rfc3339(not_after),
    }
    outputs["readyForRenewal"] = bool(ready_for_renewal({**inputs, **outputs}))
    return str(serial), outputs


# --------------------------------------------------------------------------------------
# Per-resource creation (inputs are plain: secrets revealed, defaults applied)
# --------------------------------------------------------------------------------------

def create_private_key(inputs: dict, warn: Callable[[str], None]) -> tuple[str, dict]:
    key = generate_key(inputs["algorithm"], inputs.get("ecdsaCurve") or "P224",
                       _num(inputs.get("rsaBits") or 2048))
    return private_key_outputs(key)


def create_cert_request(inputs: dict, warn: Callable[[str], None]) -> tuple[str, dict]:
    key = load_private_key(inputs["privateKeyPem"])
    builder = x509.CertificateSigningRequestBuilder().subject_name(build_name(inputs.get("subject")))
    sans = build_sans(inputs.get("dnsNames"), inputs.get("ipAddresses"), inputs.get("uris"))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    try:
        csr = builder.sign(key, signature_hash(key))
    except (ValueError, TypeError) as exc:
        raise ProviderError(f"Error creating certificate request: {exc}") from exc
    der = csr.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest(), {
        "certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "keyAlgorithm": key_algorithm(key),
    }


def create_self_signed_cert(inputs: dict, warn: Callable[[str], None]) -> tuple[str, dict]:
    key = load_private_key(inputs["privateKeyPem"])
    name = build_name(inputs.get("subject"))
    sans = build_sans(inputs.get("dnsNames"), inputs.get("ipAddresses"), inputs.get("uris"))
    serial, outputs = create_certificate(
        subject=name, sans=sans, public_key=key.public_key(), issuer_name=name, issuer_key_id=None,
        signing_key=key, inputs=inputs, self_signed=True)
    outputs["keyAlgorithm"] = key_algorithm(key)
    return serial, outputs


def _load_pem(text: str, expected: str, loader: Callable[[bytes], Any], what: str) -> Any:
    kind = pem_type(text)
    if kind is None:
        raise ProviderError(f"Failed to parse {what} PEM: failed to decode PEM of expected type {expected!r}")
    if kind != expected:
        raise ProviderError(f"Failed to parse {what} PEM: invalid PEM type - expected {expected!r}, got {kind!r}")
    try:
        return loader(text.encode())
    except ValueError as exc:
        raise ProviderError(f"Failed to parse {what} PEM: {exc}") from exc


def create_locally_signed_cert(inputs: dict, warn: Callable[[str], None]) -> tuple[str, dict]:
    csr = _load_pem(inputs["certRequestPem"], "CERTIFICATE REQUEST", x509.load_pem_x509_csr,
                    "certificate request")
    ca_key = load_private_key(inputs["caPrivateKeyPem"], "CA private key")
    ca_cert = _load_pem(inputs["caCertPem"], "CERTIFICATE", x509.load_pem_x509_certificate, "CA certificate")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if ca_cert.public_key().public_bytes(*spki) != ca_key.public_key().public_bytes(*spki):
        raise ProviderError("Failed to create certificate: x509: provided PrivateKey doesn't match "
                            "parent's PublicKey")
    try:
        ca_is_ca = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca_is_ca = False
    if not ca_is_ca:
        warn("Potentially Invalid Certificate Authority: Certificate provided as Authority does not appear "
             "to be a valid Certificate Authority. The resulting certificate might fail certificate validation.")
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ca_ski = None
    try:
        requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        requested = []
    # As upstream: the CSR's subject, DNS names, IP addresses and URIs; nothing else of it.
    sans = [n for n in requested if isinstance(n, (x509.DNSName, x509.IPAddress, x509.UniformResourceIdentifier))]
    serial, outputs = create_certificate(
        subject=csr.subject, sans=sans, public_key=csr.public_key(), issuer_name=ca_cert.subject,
        issuer_key_id=ca_ski, signing_key=ca_key, inputs=inputs, self_signed=False)
    outputs["caKeyAlgorithm"] = key_algorithm(ca_key)
    return serial, outputs


CREATORS: dict[str, Callable[[dict, Callable[[str], None]], tuple[str, dict]]] = {
    PRIVATE_KEY: create_private_key,
    CERT_REQUEST: create_cert_request,
    SELF_SIGNED_CERT: create_self_signed_cert,
    LOCALLY_SIGNED_CERT: create_locally_signed_cert,
}


# --------------------------------------------------------------------------------------
# gRPC service
# --------------------------------------------------------------------------------------

def resource_type(request: Any) -> str:
    token = getattr(request, "type", "") or ""
    if not token:
        parts = (request.urn or "").split("::")
        token = parts[2].split("$")[-1] if len(parts) >= 4 else ""
    return token


class TlsProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, engine_address: str | None = None):
        self._engine_address = engine_address
        self._secrets = False   # set by Configure: may results carry secret markers?

    # -- helpers ------------------------------------------------------------------------

    def _spec(self, request: Any, context: grpc.ServicerContext) -> ResourceSpec:
        token = resource_type(request)
        spec = SPECS.get(token)
        if spec is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"tls (offline): unknown resource type {token!r}; supported: {', '.join(SPECS)}")
        return spec

    def _warn(self, urn: str, message: str) -> None:
        sys.stderr.write(f"warning: {urn}: {message}\n")
        if not self._engine_address:
            return
        try:
            with grpc.insecure_channel(self._engine_address) as channel:
                engine_pb2_grpc.EngineStub(channel).Log(
                    engine_pb2.LogRequest(severity=engine_pb2.WARNING, message=message, urn=urn), timeout=5)
        except grpc.RpcError:
            pass

    def _finish(self, spec: ResourceSpec, props: dict) -> dict:
        """Marks the sensitive properties secret (when the engine takes secrets)."""
        if not self._secrets:
            return {k: reveal(v) for k, v in props.items()}
        out = dict(props)
        for key in spec.secret_keys():
            if out.get(key) is not None and out[key] != UNKNOWN:
                out[key] = make_secret(out[key])
        return out

    def _refresh_renewal(self, spec: ResourceSpec, props: dict) -> dict:
        if spec.is_cert:
            ready = ready_for_renewal(props)
            if ready is not None:
                props["readyForRenewal"] = ready
        return props

    # -- plugin / provider level ---------------------------------------------------------

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=VERSION)

    def Handshake(self, request, context):
        if request.engine_address:
            self._engine_address = request.engine_address
        return provider_pb2.ProviderHandshakeResponse(
            accept_secrets=True, accept_resources=False, accept_outputs=False)

    def GetSchema(self, request, context):
        return provider_pb2.GetSchemaResponse(schema=json.dumps(build_schema()))

    def CheckConfig(self, request, context):
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request, context):
        olds = {k: v for k, v in from_struct(request.olds).items() if k != "version"}
        news = {k: v for k, v in from_struct(request.news).items() if k != "version"}
        changed = sorted(k for k in set(olds) | set(news)
                         if has_unknown(news.get(k)) or reveal(olds.get(k)) != reveal(news.get(k)))
        if not changed:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_SOME, diffs=changed)

    def Configure(self, request, context):
        self._secrets = bool(request.acceptSecrets)
        return provider_pb2.ConfigureResponse(
            acceptSecrets=True, supportsPreview=True, acceptResources=False, acceptOutputs=False)

    def Cancel(self, request, context):
        return empty_pb2.Empty()

    def Invoke(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"tls (offline): function {request.tok!r} is not implemented by the offline provider")

    # -- resources -----------------------------------------------------------------------

    def Check(self, request, context):
        spec = self._spec(request, context)
        news = from_struct(request.news)
        failures = check_inputs(spec, news)
        inputs = dict(news)
        for name, prop in spec.inputs.items():
            if inputs.get(name) is None and prop.default is not None:
                inputs[name] = prop.default
        return provider_pb2.CheckResponse(
            inputs=to_struct(inputs),
            failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures])

    def Diff(self, request, context):
        spec = self._spec(request, context)
        olds = from_struct(request.olds)
        old_inputs = from_struct(request.old_inputs) if request.HasField("old_inputs") else {}
        if not old_inputs:
            old_inputs = {k: v for k, v in olds.items() if k in spec.inputs}
        news = from_struct(request.news)
        ignored = set(request.ignoreChanges)
        Kind = provider_pb2.PropertyDiff
        diffs: list[str] = []
        replaces: list[str] = []
        detailed: dict[str, provider_pb2.PropertyDiff] = {}
        for name, prop in spec.inputs.items():
            if name in ignored:
                continue
            old, new = old_inputs.get(name), news.get(name)
            if has_unknown(new):
                changed = True
            else:
                changed = normalized(prop, old) != normalized(prop, new)
            if not changed:
                continue
            diffs.append(name)
            if old is None:
                kind = Kind.ADD_REPLACE if prop.replace else Kind.ADD
            elif new is None:
                kind = Kind.DELETE_REPLACE if prop.replace else Kind.DELETE
            else:
                kind = Kind.UPDATE_REPLACE if prop.replace else Kind.UPDATE
            if prop.replace:
                replaces.append(name)
            detailed[name] = provider_pb2.PropertyDiff(kind=kind, inputDiff=True)
        if spec.is_cert and "readyForRenewal" not in ignored:
            early = reveal(news.get("earlyRenewalHours"))
            if not has_unknown(early):
                ready = ready_for_renewal({"validityEndTime": olds.get("validityEndTime"),
                                           "earlyRenewalHours": early})
                if ready:  # upstream's ModifyPlan: due for renewal -> replace
                    diffs.append("readyForRenewal")
                    replaces.append("readyForRenewal")
                    detailed["readyForRenewal"] = provider_pb2.PropertyDiff(kind=Kind.UPDATE_REPLACE)
        changes = provider_pb2.DiffResponse.DIFF_SOME if diffs else provider_pb2.DiffResponse.DIFF_NONE
        return provider_pb2.DiffResponse(
            changes=changes, diffs=diffs, replaces=replaces, detailedDiff=detailed,
            hasDetailedDiff=True, deleteBeforeReplace=False)

    def Create(self, request, context):
        spec = self._spec(request, context)
        props = from_struct(request.properties)
        if request.preview:
            outputs = dict(props)
            for name in spec.outputs:
                outputs[name] = UNKNOWN
            return provider_pb2.CreateResponse(id="", properties=to_struct(self._finish(spec, outputs)))
        plain = reveal(props)
        if has_unknown(plain):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "tls (offline): cannot create a resource from unknown inputs")
        for name, prop in spec.inputs.items():
            if plain.get(name) is None and prop.default is not None:
                plain[name] = prop.default
                props[name] = prop.default
        missing = [n for n, p in spec.inputs.items() if p.required and plain.get(n) is None]
        if missing:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"tls (offline): missing required properties: {', '.join(missing)}")
        try:
            resource_id, computed = CREATORS[spec.token](plain, lambda msg: self._warn(request.urn, msg))
        except ProviderError as exc:
            context.abort(grpc.StatusCode.UNKNOWN, str(exc))
        outputs = {**props, **computed}
        return provider_pb2.CreateResponse(id=resource_id, properties=to_struct(self._finish(spec, outputs)))

    def Read(self, request, context):
        spec = self._spec(request, context)
        state = from_struct(request.properties)
        if not state:  # nothing to read: import is not supported, as upstream
            return provider_pb2.ReadResponse()
        state = self._refresh_renewal(spec, state)
        inputs = from_struct(request.inputs) if request.HasField("inputs") else {}
        if not inputs:
            inputs = {k: v for k, v in state.items() if k in spec.inputs}
        return provider_pb2.ReadResponse(
            id=request.id, properties=to_struct(self._finish(spec, state)), inputs=to_struct(inputs))

    def Update(self, request, context):
        spec = self._spec(request, context)
        olds = from_struct(request.olds)
        news = from_struct(request.news)
        outputs = dict(olds)
        for name in spec.inputs:  # only non-ForceNew inputs can differ here (earlyRenewalHours)
            if news.get(name) is None:
                outputs.pop(name, None)
            else:
                outputs[name] = news[name]
        outputs = self._refresh_renewal(spec, outputs)
        return provider_pb2.UpdateResponse(properties=to_struct(self._finish(spec, outputs)))

    def Delete(self, request, context):
        return empty_pb2.Empty()


def main(argv: list[str]) -> None:
    provider = TlsProvider(plugin_server.engine_address(argv))
    plugin_server.serve(lambda server: provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server))


if __name__ == "__main__":
    main(sys.argv)
