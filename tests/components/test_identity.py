"""cluster.ca: generated: the stack-owned CA set, the computed token, secrets."""

import base64
import hashlib

import pytest
import yaml

from components import identity
from tests.harness import evaluate, plaintext_outside_secrets
from tests.upstream_rules import openssl_ca, openssl_der, upstream_ca_hash
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("ha")
CA_RESOURCES = ["server-ca", "client-ca", "request-header-ca", "etcd-server-ca", "etcd-peer-ca"]


@pytest.fixture(scope="module")
def ha():
    return evaluate(RAW, SECRETS)


def test_ca_set_is_created_from_root_and_intermediate(ha):
    certs = ha.names("tls:index/locallySignedCert:LocallySignedCert")
    assert sorted(certs) == sorted(f"cluster-identity-{c}" for c in ["intermediate-ca", *CA_RESOURCES, "admin-client"])
    assert ha.names("tls:index/selfSignedCert:SelfSignedCert") == ["cluster-identity-root-ca"]
    assert "cluster-identity-service-key" in ha.names("tls:index/privateKey:PrivateKey")
    for c in CA_RESOURCES:
        cert = ha.by_name(f"cluster-identity-{c}")
        assert cert.input("isCaCertificate") is True
        assert "cluster-identity-intermediate-ca" in cert.input("caCertPem")
    parent = ha.by_name("cluster-identity").urn
    assert all(ha.by_name(n).parent == parent for n in certs)


def test_every_server_receives_the_ca_before_its_first_start(ha):
    for s in ["rke2-server-1", "rke2-server-2", "rke2-server-3"]:
        assert ha.depends_on(f"{s}-service", f"{s}-ca")
        step = ha.by_name(f"{s}-ca")
        assert "stdin" in step.secret_paths()
        lines = step.input("stdin").splitlines()
        paths = [line.split()[0] for line in lines]
        assert {"server-ca.crt", "server-ca.key", "etcd/peer-ca.key", "service.key"} <= set(paths)
        assert all(line.split()[1] == "0600" for line in lines if line.split()[0].endswith(".key"))


def _placed_file(ev, server: str, path: str) -> str:
    for line in ev.by_name(f"{server}-ca").input("stdin").splitlines():
        name, _mode, data = line.split()
        if name == path:
            return base64.b64decode(data).decode()
    raise AssertionError(f"{path} not placed on {server}")


def test_token_is_computed_with_the_ca_hash(ha):
    # The hash joiners check is k3s hashCA over server-ca.crt as the servers hold it.
    bundle = _placed_file(ha, "rke2-server-1", "server-ca.crt")
    assert bundle.count("BEGIN CERTIFICATE") == 3
    expected = f"K10{upstream_ca_hash(bundle.encode())}::server:sample-join-token-abcdef"
    for name in ("rke2-server-1-token", "rke2-server-3-token", "rke2-agent-2-token"):
        # Servers' token step also gets the password (base64) first, for its change guard.
        drop_in = ha.by_name(name).input("stdin").splitlines(keepends=True)[-1]
        assert drop_in == f"token: {expected}\n", name
        assert "stdin" in ha.by_name(name).secret_paths()
    assert "rke2-server-1-read-token" not in ha.names()


def test_ca_hash_of_a_single_certificate_is_the_file_hash(tmp_path):
    # k3s pkg/clientaccess/token.go hashCA: one certificate -> sha256 of the file's bytes.
    single = openssl_ca(tmp_path, "single")
    assert identity.ca_hash(single.decode()) == hashlib.sha256(single).hexdigest() == upstream_ca_hash(single)


def test_ca_hash_of_a_chain_is_the_root_der_hash(tmp_path):
    # k3s hashCA: more than one certificate -> sha256 of the DER of the root the first
    # certificate chains to. The chain is made by openssl, not by the product.
    root = openssl_ca(tmp_path, "root")
    inter = openssl_ca(tmp_path, "inter", signer="root")
    leaf_ca = openssl_ca(tmp_path, "leaf", signer="inter")
    bundle = leaf_ca + inter + root
    want = hashlib.sha256(openssl_der(tmp_path / "root.crt")).hexdigest()
    assert upstream_ca_hash(bundle) == want
    assert identity.ca_hash(bundle.decode()) == want
    assert identity.ca_hash((leaf_ca + root + inter).decode()) == want  # order of the rest does not matter
    assert identity.ca_hash(bundle.decode()) != hashlib.sha256(bundle).hexdigest()


def test_ca_hash_falls_back_to_the_file_when_the_first_does_not_chain(tmp_path):
    # k3s hashCA hashes the file's bytes when Verify finds no chain.
    a, b = openssl_ca(tmp_path, "a"), openssl_ca(tmp_path, "b")
    unrelated = openssl_ca(tmp_path, "c", signer="b")
    bundle = unrelated + a
    assert identity.ca_hash(bundle.decode()) == hashlib.sha256(bundle).hexdigest() == upstream_ca_hash(bundle)


def test_private_keys_never_in_plaintext(ha):
    for reg in ha.registrations:
        assert "sample-private-" not in plaintext_outside_secrets(reg.raw_inputs), reg.urn


def test_outputs_show_the_trust_root_and_its_lifetime(ha):
    assert "# cluster-identity-root-ca\n" in ha.resolved["clusterCaCertificate"]
    assert ha.resolved["caExpiry"] == "2036-11-20T00:00:00Z"


def test_password_is_derived_without_a_configured_token():
    ev = evaluate(with_changes(RAW, token=None), SECRETS - {"rke2-rancher:token"})
    token = ev.by_name("rke2-server-2-token").input("stdin").splitlines()[-1]
    assert token.startswith("token: K10") and "::server:" in token
    assert "rke2-server-1-read-token" not in ev.names()


def test_certificate_rotation_runs_one_server_at_a_time():
    ev = evaluate(with_changes(RAW, cluster__certificateRotation="2026-11-22"), SECRETS)
    assert ev.depends_on("rke2-server-2-rotate-certs", "rke2-server-1-rotate-certs")
    assert ev.depends_on("rke2-server-3-rotate-certs", "rke2-server-2-rotate-certs")
    assert ev.by_name("rke2-server-1-rotate-certs").input("triggers") == ["2026-11-22"]


def test_full_token_keeps_only_the_password_of_a_configured_k10_token():
    ca = _placed_file(evaluate(RAW, SECRETS), "rke2-server-1", "server-ca.crt")
    assert identity.full_token(ca, "K10abc::server:pw") == f"K10{upstream_ca_hash(ca.encode())}::server:pw"
    assert identity.full_token(ca, "pw").endswith("::server:pw")


def test_encode_files_is_sorted_and_base64():
    text = identity.encode_files({"b.key": ("0600", "k"), "a.crt": ("0644", "c")})
    assert text == "a.crt 0644 Yw==\nb.key 0600 aw==\n"


def test_rancher_on_the_same_trust_root():
    dev, dev_secrets = load_stack("dev")
    ev = evaluate(with_changes(dev, rancher__tlsSource="secret"), dev_secrets)
    ingress = ev.by_name("cluster-identity-rancher-ingress")
    assert "cluster-identity-intermediate-ca" in ingress.input("caCertPem")
    assert ev.by_name("cluster-identity-rancher-ingress-csr").input("dnsNames") == ["jjtestserver"]
    tls_secret = ev.by_name("rancher-ingress-tls")
    assert tls_secret.input("type") == "kubernetes.io/tls" and "stringData" in tls_secret.secret_paths()
    assert "cluster-identity-root-ca" in ev.by_name("rancher-private-ca").input("stringData")["cacerts.pem"]
    release = ev.by_name("rancher-release")
    assert release.input("values")["privateCA"] is True
    assert release.input("values")["ingress"] == {"tls": {"source": "secret"}}
    assert ev.depends_on("rancher-release", "rancher-ingress-tls")
    assert ev.resolved["rancherIngressCertExpiry"] == "2036-11-20T00:00:00Z"


def test_kubeconfig_carries_a_stack_issued_admin_certificate(ha):
    # kubernetes/kubernetes plugin/pkg/auth/authorizer/rbac/bootstrappolicy (cluster-admin
    # bound to group system:masters): a client certificate with O=system:masters signed by the
    # apiserver's --client-ca-file (RKE2: server/tls/client-ca.crt) is cluster-admin.
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    doc = yaml.safe_load(ha.resolved["kubeconfig"])
    user = doc["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:admin"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    client_ca = x509.load_pem_x509_certificates(_placed_file(ha, "rke2-server-1", "client-ca.crt").encode())[0]
    cert.verify_directly_issued_by(client_ca)
    admin = ha.by_name("cluster-identity-admin-client")
    assert admin.input("earlyRenewalHours") > 0 and "client_auth" in admin.input("allowedUses")
    assert "client-key-data" in doc["users"][0]["user"]
    assert "rke2-server-1-kubeconfig" not in ha.names()  # nothing read from the host
    ca_data = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    assert ca_data == _placed_file(ha, "rke2-server-1", "server-ca.crt")
    assert ha.resolved["kubeconfigExpiry"] == "2036-11-20T00:00:00Z"  # the mock's validityEndTime
    assert "kubeconfig" in ha.secret_outputs and "kubeconfigExpiry" not in ha.secret_outputs
