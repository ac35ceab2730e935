"""Tests of the offline TLS provider plugin (toolchain/offline/tls_provider.py).

The plugin runs as the engine runs it: a subprocess started through a
`pulumi-resource-tls` wrapper script, its port read from the first stdout line, driven
over gRPC with the SDK's ResourceProviderStub. Certificates are checked with
`cryptography`: a root CA, an intermediate (CSR + LocallySignedCert) and a leaf must form
a chain that cryptography's verifier accepts. A last test runs a real `pulumi up` of a
small pulumi_tls program when the CLI and the offline language host are usable, and
skips (with the reason) otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

HERE = Path(__file__).resolve().parent
OFFLINE = HERE.parents[2] / "toolchain" / "offline"
PLUGIN = OFFLINE / "tls_provider.py"
PYTHON = Path(sys.executable)
CLI_TIMEOUT = 300

from tests.toolchain.offline.wire import UNKNOWN, is_secret, plain, secret, to_struct  # noqa: E402
from tests.toolchain.offline.wire import from_struct as to_dict  # noqa: E402

PK = "tls:index/privateKey:PrivateKey"
CSR = "tls:index/certRequest:CertRequest"
SSC = "tls:index/selfSignedCert:SelfSignedCert"
LSC = "tls:index/locallySignedCert:LocallySignedCert"
CA_USES = ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"]


# ----------------------------------------------------------------------------------------
# Plugin process and client
# ----------------------------------------------------------------------------------------


def _write_wrapper(directory: Path) -> Path:
    wrapper = directory / "pulumi-resource-tls"
    wrapper.write_text(f'#!/bin/sh\nexec {PYTHON} {PLUGIN} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper



class Client:
    def __init__(self, stub: provider_pb2_grpc.ResourceProviderStub):
        self.stub = stub
        self.count = 0

    def urn(self, token: str, name: str) -> str:
        return f"urn:pulumi:test::tls-offline::{token}::{name}"

    def check(self, token: str, news: dict, name: str = "r") -> tuple[dict, list]:
        resp = self.stub.Check(provider_pb2.CheckRequest(
            urn=self.urn(token, name), type=token, name=name, news=to_struct(news), olds=to_struct({})))
        return to_dict(resp.inputs), [(f.property, f.reason) for f in resp.failures]

    def create(self, token: str, news: dict, name: str = "r", preview: bool = False) -> tuple[str, dict, dict]:
        inputs, failures = self.check(token, news, name)
        assert not failures, failures
        resp = self.stub.Create(provider_pb2.CreateRequest(
            urn=self.urn(token, name), type=token, name=name, properties=to_struct(inputs), preview=preview))
        return resp.id, to_dict(resp.properties), inputs

    def diff(self, token: str, olds: dict, old_inputs: dict, news: dict, name: str = "r",
             ignore: list[str] | None = None) -> provider_pb2.DiffResponse:
        checked, failures = self.check(token, news, name)
        assert not failures, failures
        return self.stub.Diff(provider_pb2.DiffRequest(
            id="x", urn=self.urn(token, name), type=token, name=name, olds=to_struct(olds),
            old_inputs=to_struct(old_inputs), news=to_struct(checked), ignoreChanges=ignore or []))


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    bindir = tmp_path_factory.mktemp("bin")
    wrapper = _write_wrapper(bindir)
    proc = subprocess.Popen([str(wrapper), "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.isdigit(), f"no port on stdout: {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(channel).result(timeout=20)
        stub = provider_pb2_grpc.ResourceProviderStub(channel)
        stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, acceptResources=True,
                                                     args=to_struct({})))
        yield Client(stub)
        channel.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def pem_of(props: dict, key: str) -> bytes:
    return plain(props[key]).encode()


def load_cert(props: dict) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem_of(props, "certPem"))


# ----------------------------------------------------------------------------------------
# A CA hierarchy shared by several tests
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(plugin: Client) -> dict:
    out: dict = {}
    _, root_key, _ = plugin.create(PK, {"algorithm": "ECDSA", "ecdsaCurve": "P256"}, "root-key")
    root_in = {"privateKeyPem": secret(plain(root_key["privateKeyPem"])),
               "subject": {"commonName": "offline root CA", "organization": "rke2-rancher"},
               "isCaCertificate": True, "validityPeriodHours": 87600, "allowedUses": CA_USES}
    root_id, root, root_checked = plugin.create(SSC, root_in, "root")

    _, inter_key, _ = plugin.create(PK, {"algorithm": "ECDSA", "ecdsaCurve": "P384"}, "inter-key")
    _, inter_csr, _ = plugin.create(CSR, {
        "privateKeyPem": secret(plain(inter_key["privateKeyPem"])),
        "subject": {"commonName": "offline intermediate CA", "organization": "rke2-rancher"}}, "inter-csr")
    inter_in = {"certRequestPem": inter_csr["certRequestPem"], "caCertPem": root["certPem"],
                "caPrivateKeyPem": secret(plain(root_key["privateKeyPem"])), "isCaCertificate": True,
                "validityPeriodHours": 87600, "allowedUses": CA_USES}
    inter_id, inter, inter_checked = plugin.create(LSC, inter_in, "inter")

    _, leaf_key, _ = plugin.create(PK, {"algorithm": "RSA"}, "leaf-key")
    _, leaf_csr, _ = plugin.create(CSR, {
        "privateKeyPem": secret(plain(leaf_key["privateKeyPem"])),
        "subject": {"commonName": "rancher.example.test", "organization": "rke2-rancher"},
        "dnsNames": ["rancher.example.test", "*.apps.example.test"],
        "ipAddresses": ["10.0.0.5", "fd00::5"],
        "uris": ["spiffe://cluster.local/ns/x/sa/y"]}, "leaf-csr")
    leaf_in = {"certRequestPem": leaf_csr["certRequestPem"], "caCertPem": inter["certPem"],
               "caPrivateKeyPem": secret(plain(inter_key["privateKeyPem"])),
               "validityPeriodHours": 8760, "earlyRenewalHours": 720,
               "allowedUses": ["digital_signature", "key_encipherment", "server_auth", "client_auth"]}
    leaf_id, leaf, leaf_checked = plugin.create(LSC, leaf_in, "leaf")
    out.update(root_key=root_key, root=root, root_id=root_id, root_checked=root_checked,
               inter_key=inter_key, inter_csr=inter_csr, inter=inter, inter_id=inter_id,
               inter_checked=inter_checked, leaf_key=leaf_key, leaf_csr=leaf_csr, leaf=leaf,
               leaf_id=leaf_id, leaf_checked=leaf_checked)
    return out


# ----------------------------------------------------------------------------------------
# Provider-level RPCs
# ----------------------------------------------------------------------------------------


def test_plugin_info_schema_and_config(plugin: Client):
    info = plugin.stub.GetPluginInfo(empty_pb2.Empty())
    assert info.version == "5.5.1"
    schema = json.loads(plugin.stub.GetSchema(provider_pb2.GetSchemaRequest(version=0)).schema)
    assert schema["name"] == "tls" and schema["version"] == "5.5.1"
    assert set(schema["resources"]) == {PK, CSR, SSC, LSC}
    pk = schema["resources"][PK]
    assert pk["properties"]["privateKeyPem"]["secret"] is True
    assert pk["inputProperties"]["ecdsaCurve"]["default"] == "P224"
    assert schema["resources"][SSC]["requiredInputs"] == ["allowedUses", "privateKeyPem", "validityPeriodHours"]
    hs = plugin.stub.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address="127.0.0.1:1"))
    assert hs.accept_secrets
    conf = plugin.stub.CheckConfig(provider_pb2.CheckRequest(news=to_struct({"version": "5.5.1"})))
    assert to_dict(conf.inputs) == {"version": "5.5.1"}
    same = plugin.stub.DiffConfig(provider_pb2.DiffRequest(olds=to_struct({"version": "5.5.1"}),
                                                           news=to_struct({"version": "5.5.1"})))
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE
    resp = plugin.stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, args=to_struct({})))
    assert resp.acceptSecrets and resp.supportsPreview
    plugin.stub.Cancel(empty_pb2.Empty())


def test_check_defaults_and_failures(plugin: Client):
    inputs, failures = plugin.check(PK, {"algorithm": "RSA"})
    assert not failures
    assert inputs == {"algorithm": "RSA", "rsaBits": 2048, "ecdsaCurve": "P224"}
    inputs, _ = plugin.check(SSC, {"privateKeyPem": secret("x"), "validityPeriodHours": 1, "allowedUses": []})
    assert inputs["earlyRenewalHours"] == 0 and inputs["isCaCertificate"] is False
    assert inputs["setSubjectKeyId"] is False and inputs["setAuthorityKeyId"] is False
    assert is_secret(inputs["privateKeyPem"]), "Check must keep the engine's secret markers"
    inputs, _ = plugin.check(LSC, {"certRequestPem": "c", "caCertPem": "c", "caPrivateKeyPem": "k",
                                   "validityPeriodHours": 1, "allowedUses": ["server_auth"]})
    assert "setAuthorityKeyId" not in inputs  # not an input of LocallySignedCert

    _, failures = plugin.check(PK, {"algorithm": "DSA", "ecdsaCurve": "P999"})
    assert {p for p, _ in failures} == {"algorithm", "ecdsaCurve"}
    _, failures = plugin.check(SSC, {"validityPeriodHours": -1, "allowedUses": ["server_auth", "bogus"],
                                     "ipAddresses": ["not-an-ip"], "earlyRenewalHours": -2})
    props = {p for p, _ in failures}
    assert props == {"privateKeyPem", "validityPeriodHours", "allowedUses[1]", "ipAddresses[0]",
                     "earlyRenewalHours"}
    # Unknown values (preview) are not validated.
    _, failures = plugin.check(SSC, {"privateKeyPem": UNKNOWN, "validityPeriodHours": UNKNOWN,
                                     "allowedUses": [UNKNOWN], "ipAddresses": UNKNOWN})
    assert not failures


# ----------------------------------------------------------------------------------------
# PrivateKey
# ----------------------------------------------------------------------------------------


def _ssh_fingerprints(line: str) -> tuple[str, str]:
    blob = base64.b64decode(line.split()[1])
    md5 = ":".join(f"{b:02x}" for b in hashlib.md5(blob).digest())
    sha = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return md5, sha


@pytest.mark.parametrize("args, header, key_type", [
    ({"algorithm": "RSA", "rsaBits": 3072}, "RSA PRIVATE KEY", rsa.RSAPrivateKey),
    ({"algorithm": "ECDSA", "ecdsaCurve": "P384"}, "EC PRIVATE KEY", ec.EllipticCurvePrivateKey),
    ({"algorithm": "ED25519"}, "PRIVATE KEY", ed25519.Ed25519PrivateKey),
])
def test_private_key_formats(plugin: Client, args, header, key_type):
    rid, props, _ = plugin.create(PK, args)
    for name in ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"):
        assert is_secret(props[name]), f"{name} must come back secret"
    for name in ("publicKeyPem", "publicKeyOpenssh", "publicKeyFingerprintMd5", "publicKeyFingerprintSha256"):
        assert not is_secret(props[name])
    pem = plain(props["privateKeyPem"])
    assert pem.startswith(f"-----BEGIN {header}-----\n") and pem.endswith("-----\n")
    key = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(key, key_type)
    pkcs8 = plain(props["privateKeyPemPkcs8"])
    assert pkcs8.startswith("-----BEGIN PRIVATE KEY-----\n")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pub_der = key.public_key().public_bytes(*spki)
    assert serialization.load_pem_private_key(pkcs8.encode(), None).public_key().public_bytes(*spki) == pub_der
    ssh_key = serialization.load_ssh_private_key(plain(props["privateKeyOpenssh"]).encode(), None)
    assert ssh_key.public_key().public_bytes(*spki) == pub_der
    assert serialization.load_pem_public_key(props["publicKeyPem"].encode()).public_bytes(*spki) == pub_der
    line = props["publicKeyOpenssh"]
    assert line.endswith("\n") and line.count("\n") == 1
    assert serialization.load_ssh_public_key(line.encode()).public_bytes(*spki) == pub_der
    md5, sha = _ssh_fingerprints(line)
    assert props["publicKeyFingerprintMd5"] == md5 and props["publicKeyFingerprintSha256"] == sha
    assert rid == hashlib.sha1(pub_der).hexdigest()
    if args["algorithm"] == "RSA":
        assert key.key_size == 3072
    if args["algorithm"] == "ECDSA":
        assert key.curve.name == "secp384r1"


def test_private_key_defaults_p224_has_no_openssh(plugin: Client):
    _, props, _ = plugin.create(PK, {"algorithm": "ECDSA"})
    assert props["ecdsaCurve"] == "P224" and props["rsaBits"] == 2048
    key = serialization.load_pem_private_key(pem_of(props, "privateKeyPem"), None)
    assert key.curve.name == "secp224r1"
    assert plain(props["privateKeyOpenssh"]) == "" and props["publicKeyOpenssh"] == ""
    assert props["publicKeyFingerprintMd5"] == "" and props["publicKeyFingerprintSha256"] == ""
    _, props, _ = plugin.create(PK, {"algorithm": "RSA"})
    assert serialization.load_pem_private_key(pem_of(props, "privateKeyPem"), None).key_size == 2048


def test_private_key_read_diff_and_preview(plugin: Client):
    rid, props, inputs = plugin.create(PK, {"algorithm": "ED25519"})
    read = plugin.stub.Read(provider_pb2.ReadRequest(id=rid, urn=plugin.urn(PK, "r"), type=PK,
                                                     properties=to_struct(props), inputs=to_struct(inputs)))
    assert read.id == rid and to_dict(read.properties) == props, "Read must return the state unchanged"
    assert to_dict(read.inputs) == inputs
    same = plugin.diff(PK, props, inputs, {"algorithm": "ED25519"})
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE and not same.replaces
    changed = plugin.diff(PK, props, inputs, {"algorithm": "RSA"})
    assert changed.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(changed.replaces) == ["algorithm"]
    assert changed.detailedDiff["algorithm"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE
    curve = plugin.diff(PK, props, inputs, {"algorithm": "ED25519", "ecdsaCurve": "P256"})
    assert list(curve.replaces) == ["ecdsaCurve"]
    ignored = plugin.diff(PK, props, inputs, {"algorithm": "RSA"}, ignore=["algorithm"])
    assert ignored.changes == provider_pb2.DiffResponse.DIFF_NONE

    pid, pprops, _ = plugin.create(PK, {"algorithm": "RSA"}, preview=True)
    assert pid == ""
    for name in ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "publicKeyPem",
                 "publicKeyOpenssh", "publicKeyFingerprintMd5", "publicKeyFingerprintSha256"):
        assert pprops[name] == UNKNOWN
    assert pprops["algorithm"] == "RSA" and pprops["rsaBits"] == 2048
    plugin.stub.Delete(provider_pb2.DeleteRequest(id=rid, urn=plugin.urn(PK, "r"), type=PK,
                                                  properties=to_struct(props)))


# ----------------------------------------------------------------------------------------
# Certificates: the chain
# ----------------------------------------------------------------------------------------


def test_chain_verifies(chain: dict):
    root, inter, leaf = load_cert(chain["root"]), load_cert(chain["inter"]), load_cert(chain["leaf"])
    # Signatures.
    root.verify_directly_issued_by(root)
    inter.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(inter)
    # cryptography's RFC 5280 path validation, as a TLS client would do it.
    store = verification.Store([root])
    now = datetime.now(timezone.utc)
    for name in (x509.DNSName("rancher.example.test"), x509.DNSName("x.apps.example.test"),
                 x509.IPAddress(ipaddress.ip_address("10.0.0.5"))):
        verifier = verification.PolicyBuilder().store(store).time(now).build_server_verifier(name)
        path = verifier.verify(leaf, [inter])
        assert [c.subject for c in path] == [leaf.subject, inter.subject, root.subject]
    with pytest.raises(verification.VerificationError):
        verification.PolicyBuilder().store(store).time(now).build_server_verifier(
            x509.DNSName("other.example.test")).verify(leaf, [inter])
    client = verification.PolicyBuilder().store(store).time(now).build_client_verifier()
    assert client.verify(leaf, [inter]).chain[-1].subject == root.subject


def test_root_ca_fields(chain: dict):
    root = load_cert(chain["root"])
    props = chain["root"]
    assert root.subject == root.issuer
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "offline root CA"
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True and bc.value.path_length is None
    ku = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert ku.value.digital_signature and ku.value.key_encipherment and not ku.value.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        root.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(root.public_key())
    with pytest.raises(x509.ExtensionNotFound):  # only with setAuthorityKeyId
        root.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)  # P-256 key
    # Validity and the RFC 3339 outputs.
    start = datetime.fromisoformat(props["validityStartTime"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(props["validityEndTime"].replace("Z", "+00:00"))
    assert props["validityStartTime"].endswith("Z")
    assert root.not_valid_before_utc == start and root.not_valid_after_utc == end
    assert end - start == timedelta(hours=87600)
    assert abs(datetime.now(timezone.utc) - start) < timedelta(minutes=5)
    assert props["readyForRenewal"] is False
    assert props["keyAlgorithm"] == "ECDSA"
    assert chain["root_id"] == str(root.serial_number)
    assert 0 < root.serial_number < 2 ** 128
    # The private key input is secret in the outputs.
    assert is_secret(props["privateKeyPem"])


def test_intermediate_fields(chain: dict):
    root, inter = load_cert(chain["root"]), load_cert(chain["inter"])
    props = chain["inter"]
    assert inter.issuer == root.subject
    assert inter.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "offline intermediate CA"
    bc = inter.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is True
    assert inter.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    aki = inter.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value == \
        x509.SubjectKeyIdentifier.from_public_key(inter.public_key())
    assert isinstance(inter.public_key(), ec.EllipticCurvePublicKey) and inter.public_key().curve.name == "secp384r1"
    assert isinstance(inter.signature_hash_algorithm, hashes.SHA256)  # signed by the P-256 root
    assert props["caKeyAlgorithm"] == "ECDSA"
    assert is_secret(props["caPrivateKeyPem"]) and not is_secret(props["certPem"])
    csr_key = serialization.load_pem_private_key(pem_of(chain["inter_key"], "privateKeyPem"), None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert inter.public_key().public_bytes(*spki) == csr_key.public_key().public_bytes(*spki)


def test_leaf_fields(chain: dict):
    inter, leaf = load_cert(chain["inter"]), load_cert(chain["leaf"])
    props = chain["leaf"]
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["rancher.example.test", "*.apps.example.test"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5"),
                                                              ipaddress.ip_address("fd00::5")]
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://cluster.local/ns/x/sa/y"]
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA384)  # signed by the P-384 intermediate
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=8760)
    assert props["earlyRenewalHours"] == 720 and props["readyForRenewal"] is False
    # Subject copied from the CSR.
    csr = x509.load_pem_x509_csr(chain["leaf_csr"]["certRequestPem"].encode())
    assert leaf.subject == csr.subject
    assert chain["leaf_csr"]["keyAlgorithm"] == "RSA"


def test_cert_request_subject_order_and_id(plugin: Client):
    _, key, _ = plugin.create(PK, {"algorithm": "ED25519"})
    subject = {"commonName": "cn", "organization": "org", "organizationalUnit": "ou", "country": "DE",
               "province": "BY", "locality": "Munich", "postalCode": "80331",
               "streetAddresses": ["Main St 1", "Building B"], "serialNumber": "42",
               "emailAddress": "ops@example.test"}
    rid, props, _ = plugin.create(CSR, {"privateKeyPem": key["privateKeyPem"], "subject": subject,
                                        "dnsNames": ["a.example.test"]})
    csr = x509.load_pem_x509_csr(props["certRequestPem"].encode())
    assert csr.is_signature_valid
    assert rid == hashlib.sha1(csr.public_bytes(serialization.Encoding.DER)).hexdigest()
    oids = [[a.oid for a in rdn] for rdn in csr.subject.rdns]
    assert oids[0] == [NameOID.COUNTRY_NAME] and oids[-1] == [NameOID.EMAIL_ADDRESS]
    flat = [o[0] for o in oids]
    assert flat == [NameOID.COUNTRY_NAME, NameOID.STATE_OR_PROVINCE_NAME, NameOID.LOCALITY_NAME,
                    NameOID.STREET_ADDRESS, NameOID.POSTAL_CODE, NameOID.ORGANIZATION_NAME,
                    NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER,
                    NameOID.EMAIL_ADDRESS]
    assert sorted(a.value for a in csr.subject.rdns[3]) == ["Building B", "Main St 1"]
    assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["a.example.test"]
    assert props["keyAlgorithm"] == "ED25519"
    assert is_secret(props["privateKeyPem"])


def test_self_signed_ed25519_leaf_with_key_ids(plugin: Client):
    _, key, _ = plugin.create(PK, {"algorithm": "ED25519"})
    _, props, _ = plugin.create(SSC, {
        "privateKeyPem": plain(key["privateKeyPem"]),  # even when sent plain, returned secret
        "subject": {"commonName": "svc"}, "dnsNames": ["svc.example.test"],
        "validityPeriodHours": 24, "allowedUses": ["digital_signature", "server_auth"],
        "setSubjectKeyId": True, "setAuthorityKeyId": True})
    assert is_secret(props["privateKeyPem"])
    cert = load_cert(props)
    cert.verify_directly_issued_by(cert)
    assert cert.signature_hash_algorithm is None
    raw = cert.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ski == hashlib.sha1(b"\x04\x20" + raw).digest()  # upstream hashes asn1.Marshal(key)
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert props["keyAlgorithm"] == "ED25519"


def test_max_path_length_and_errors(plugin: Client):
    _, key, _ = plugin.create(PK, {"algorithm": "ECDSA", "ecdsaCurve": "P521"})
    _, props, _ = plugin.create(SSC, {"privateKeyPem": key["privateKeyPem"], "subject": {"commonName": "ca"},
                                      "isCaCertificate": True, "maxPathLength": 2,
                                      "validityPeriodHours": 1, "allowedUses": CA_USES})
    cert = load_cert(props)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 2
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA512)

    def create_error(token, news):
        inputs, _ = plugin.check(token, news)
        with pytest.raises(grpc.RpcError) as err:
            plugin.stub.Create(provider_pb2.CreateRequest(urn=plugin.urn(token, "e"), type=token,
                                                          properties=to_struct(inputs)))
        return err.value.details()

    # A CA needs a subject.
    assert "Distinguished Name" in create_error(SSC, {
        "privateKeyPem": key["privateKeyPem"], "isCaCertificate": True,
        "validityPeriodHours": 1, "allowedUses": CA_USES})
    # setAuthorityKeyId needs a subject key id.
    assert "Authority Key Identifier" in create_error(SSC, {
        "privateKeyPem": key["privateKeyPem"], "subject": {"commonName": "x"}, "setAuthorityKeyId": True,
        "validityPeriodHours": 1, "allowedUses": []})
    assert "PEM" in create_error(SSC, {"privateKeyPem": "garbage", "validityPeriodHours": 1, "allowedUses": []})


def test_locally_signed_rejects_wrong_ca_key(plugin: Client, chain: dict):
    inputs, _ = plugin.check(LSC, {
        "certRequestPem": chain["leaf_csr"]["certRequestPem"], "caCertPem": chain["inter"]["certPem"],
        "caPrivateKeyPem": chain["root_key"]["privateKeyPem"], "validityPeriodHours": 1,
        "allowedUses": ["server_auth"]})
    with pytest.raises(grpc.RpcError) as err:
        plugin.stub.Create(provider_pb2.CreateRequest(urn=plugin.urn(LSC, "bad"), type=LSC,
                                                      properties=to_struct(inputs)))
    assert "doesn't match" in err.value.details()


# ----------------------------------------------------------------------------------------
# Diff, Update, Read and preview for certificates
# ----------------------------------------------------------------------------------------


def _leaf_news(chain: dict, **override) -> dict:
    news = {k: v for k, v in chain["leaf_checked"].items()}
    news.update(override)
    return news


def test_cert_diff(plugin: Client, chain: dict):
    olds, old_inputs = chain["leaf"], chain["leaf_checked"]
    none = plugin.diff(LSC, olds, old_inputs, _leaf_news(chain))
    assert none.changes == provider_pb2.DiffResponse.DIFF_NONE and not none.replaces

    longer = plugin.diff(LSC, olds, old_inputs, _leaf_news(chain, validityPeriodHours=9000))
    assert longer.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(longer.replaces) == ["validityPeriodHours"]
    assert longer.detailedDiff["validityPeriodHours"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE

    uses = plugin.diff(LSC, olds, old_inputs, _leaf_news(chain, allowedUses=["server_auth"]))
    assert list(uses.replaces) == ["allowedUses"]

    ca = plugin.diff(LSC, olds, old_inputs, _leaf_news(chain, isCaCertificate=True))
    assert list(ca.replaces) == ["isCaCertificate"]

    # A new CA key (unknown during preview) replaces the certificate.
    rekey = plugin.diff(LSC, olds, old_inputs, _leaf_news(chain, caPrivateKeyPem=UNKNOWN))
    assert list(rekey.replaces) == ["caPrivateKeyPem"]
    newcsr = plugin.diff(LSC, olds, old_inputs, _leaf_news(chain, certRequestPem=chain["inter_csr"]["certRequestPem"]))
    assert list(newcsr.replaces) == ["certRequestPem"]

    # earlyRenewalHours is updated in place, unless it makes the certificate due.
    early = plugin.diff(LSC, olds, old_inputs, _leaf_news(chain, earlyRenewalHours=100))
    assert early.changes == provider_pb2.DiffResponse.DIFF_SOME and not early.replaces
    assert early.detailedDiff["earlyRenewalHours"].kind == provider_pb2.PropertyDiff.UPDATE
    due = plugin.diff(LSC, olds, old_inputs, _leaf_news(chain, earlyRenewalHours=8761))
    assert list(due.replaces) == ["readyForRenewal"]
    assert due.detailedDiff["readyForRenewal"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE

    # Self-signed: subject changes replace; an empty-string field equals an absent one.
    root_olds, root_in = chain["root"], chain["root_checked"]
    subj = dict(root_in, subject={"commonName": "other"})
    assert list(plugin.diff(SSC, root_olds, root_in, subj).replaces) == ["subject"]
    same = dict(root_in, subject={**root_in["subject"], "locality": ""})
    assert plugin.diff(SSC, root_olds, root_in, same).changes == provider_pb2.DiffResponse.DIFF_NONE
    sans = dict(root_in, dnsNames=["x.example.test"])
    d = plugin.diff(SSC, root_olds, root_in, sans)
    assert list(d.replaces) == ["dnsNames"] and d.detailedDiff["dnsNames"].kind == provider_pb2.PropertyDiff.ADD_REPLACE


def test_cert_expired_state_is_replaced_and_read_flags_it(plugin: Client, chain: dict):
    olds = dict(chain["leaf"], validityEndTime="2000-01-01T00:00:00Z")
    d = plugin.diff(LSC, olds, chain["leaf_checked"], _leaf_news(chain))
    assert list(d.replaces) == ["readyForRenewal"]
    read = plugin.stub.Read(provider_pb2.ReadRequest(id=chain["leaf_id"], urn=plugin.urn(LSC, "leaf"), type=LSC,
                                                     properties=to_struct(olds), inputs=to_struct(chain["leaf_checked"])))
    props = to_dict(read.properties)
    assert props["readyForRenewal"] is True
    assert props["certPem"] == olds["certPem"]


def test_cert_read_and_update_keep_the_certificate(plugin: Client, chain: dict):
    olds, old_inputs = chain["leaf"], chain["leaf_checked"]
    read = plugin.stub.Read(provider_pb2.ReadRequest(id=chain["leaf_id"], urn=plugin.urn(LSC, "leaf"), type=LSC,
                                                     properties=to_struct(olds), inputs=to_struct(old_inputs)))
    assert read.id == chain["leaf_id"]
    assert to_dict(read.properties) == olds, "refresh must not change anything"
    assert is_secret(to_dict(read.properties)["caPrivateKeyPem"])
    news, _ = plugin.check(LSC, _leaf_news(chain, earlyRenewalHours=48))
    resp = plugin.stub.Update(provider_pb2.UpdateRequest(
        id=chain["leaf_id"], urn=plugin.urn(LSC, "leaf"), type=LSC, olds=to_struct(olds),
        news=to_struct(news), old_inputs=to_struct(old_inputs)))
    props = to_dict(resp.properties)
    assert props["earlyRenewalHours"] == 48
    for key in ("certPem", "validityStartTime", "validityEndTime", "caKeyAlgorithm"):
        assert props[key] == olds[key]
    assert props["readyForRenewal"] is False
    assert is_secret(props["caPrivateKeyPem"])


def test_cert_preview_create_returns_unknowns(plugin: Client):
    news = {"certRequestPem": UNKNOWN, "caCertPem": UNKNOWN, "caPrivateKeyPem": secret(UNKNOWN),
            "validityPeriodHours": 10, "allowedUses": ["server_auth"]}
    rid, props, _ = plugin.create(LSC, news, preview=True)
    assert rid == ""
    for key in ("certPem", "validityStartTime", "validityEndTime", "readyForRenewal", "caKeyAlgorithm"):
        assert props[key] == UNKNOWN
    assert props["validityPeriodHours"] == 10 and props["earlyRenewalHours"] == 0
    _, props, _ = plugin.create(SSC, {"privateKeyPem": UNKNOWN, "validityPeriodHours": 1, "allowedUses": []},
                                preview=True)
    assert props["certPem"] == UNKNOWN and props["keyAlgorithm"] == UNKNOWN
    _, props, _ = plugin.create(CSR, {"privateKeyPem": UNKNOWN}, preview=True)
    assert props["certRequestPem"] == UNKNOWN


# ----------------------------------------------------------------------------------------
# A real `pulumi up` through the CLI (skips when the CLI or language host is not usable)
# ----------------------------------------------------------------------------------------


from tests.toolchain.offline.cli import find_cli as _find_cli  # noqa: E402



PROGRAM = textwrap.dedent('''
    import pulumi
    import pulumi_tls as tls

    root_key = tls.PrivateKey("root-key", algorithm="ECDSA", ecdsa_curve="P256")
    root = tls.SelfSignedCert("root", private_key_pem=root_key.private_key_pem,
        subject=tls.SelfSignedCertSubjectArgs(common_name="up root", organization="rke2-rancher"),
        is_ca_certificate=True, validity_period_hours=48,
        allowed_uses=["cert_signing", "crl_signing", "digital_signature"])
    leaf_key = tls.PrivateKey("leaf-key", algorithm="RSA")
    csr = tls.CertRequest("leaf-csr", private_key_pem=leaf_key.private_key_pem,
        subject=tls.CertRequestSubjectArgs(common_name="up.example.test"), dns_names=["up.example.test"],
        ip_addresses=["192.0.2.1"])
    leaf = tls.LocallySignedCert("leaf", cert_request_pem=csr.cert_request_pem,
        ca_private_key_pem=root_key.private_key_pem, ca_cert_pem=root.cert_pem,
        validity_period_hours=24, early_renewal_hours=1,
        allowed_uses=["digital_signature", "key_encipherment", "server_auth"])
    pulumi.export("root", root.cert_pem)
    pulumi.export("leaf", leaf.cert_pem)
    pulumi.export("leafEnd", leaf.validity_end_time)
    pulumi.export("key", leaf_key.private_key_pem)
''')


def test_pulumi_up_with_offline_plugins(tmp_path: Path):
    cli = _find_cli()
    if cli is None:
        pytest.skip("no pulumi CLI found")
    host = OFFLINE / "language_host.py"
    if not host.exists():
        pytest.skip("toolchain/offline/language_host.py is not there yet")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _write_wrapper(bindir)
    lang = bindir / "pulumi-language-python"
    lang.write_text(f'#!/bin/sh\nexec {PYTHON} {host} "$@"\n')
    lang.chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    venv_dir = Path(sys.prefix)
    (project / "Pulumi.yaml").write_text(
        "name: tls-offline-up\nruntime:\n  name: python\n  options:\n"
        f"    toolchain: pip\n    virtualenv: {venv_dir}\n")
    state = tmp_path / "state"
    state.mkdir()
    env = dict(os.environ,
               PATH=f"{bindir}:{os.path.dirname(cli)}:{os.environ.get('PATH', '')}",
               PULUMI_BACKEND_URL=f"file://{state}", PULUMI_CONFIG_PASSPHRASE="test",
               PULUMI_HOME=str(tmp_path / "home"), PULUMI_SKIP_UPDATE_CHECK="true",
               PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([cli, *args, "--non-interactive"], cwd=project, env=env, text=True,
                              capture_output=True, timeout=CLI_TIMEOUT)

    init = run("stack", "init", "dev")
    if init.returncode != 0:
        pytest.skip(f"pulumi stack init failed: {init.stderr[-2000:]}")
    # First an empty program: if that fails, the language host (not this plugin) is the problem.
    (project / "__main__.py").write_text("import pulumi\n")
    empty = run("preview")
    if empty.returncode != 0:
        pytest.skip(f"offline language host not usable yet: {(empty.stdout + empty.stderr)[-2000:]}")
    (project / "__main__.py").write_text(PROGRAM)
    preview = run("preview")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    up = run("up", "--yes", "--skip-preview")
    assert up.returncode == 0, up.stdout + up.stderr
    outs = json.loads(run("stack", "output", "--json", "--show-secrets").stdout)
    root = x509.load_pem_x509_certificate(outs["root"].encode())
    leaf = x509.load_pem_x509_certificate(outs["leaf"].encode())
    leaf.verify_directly_issued_by(root)
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["up.example.test"]
    assert outs["key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    plain_outs = json.loads(run("stack", "output", "--json").stdout)
    assert plain_outs["key"] == "[secret]"
    # The state keeps the private keys encrypted.
    exported = run("stack", "export").stdout
    assert "BEGIN RSA PRIVATE KEY" not in exported and "BEGIN EC PRIVATE KEY" not in exported
    # Second up and a refresh change nothing.
    again = run("preview", "--expect-no-changes")
    assert again.returncode == 0, again.stdout + again.stderr
    refresh = run("refresh", "--yes", "--skip-preview")
    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    outs2 = json.loads(run("stack", "output", "--json", "--show-secrets").stdout)
    assert outs2 == outs
    after = run("preview", "--expect-no-changes")
    assert after.returncode == 0, after.stdout + after.stderr
    down = run("destroy", "--yes", "--skip-preview")
    assert down.returncode == 0, down.stdout + down.stderr
