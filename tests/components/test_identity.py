"""cluster.ca: generated: the stack-owned CA set, the computed token, secrets."""

import hashlib

import pytest

from components import identity
from tests.harness import evaluate, plaintext_outside_secrets
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("ha")
CA_RESOURCES = ["server-ca", "client-ca", "request-header-ca", "etcd-server-ca", "etcd-peer-ca"]


@pytest.fixture(scope="module")
def ha():
    return evaluate(RAW, SECRETS)


def test_ca_set_is_created_from_root_and_intermediate(ha):
    certs = ha.names("tls:index/locallySignedCert:LocallySignedCert")
    assert sorted(certs) == sorted(f"cluster-identity-{c}" for c in ["intermediate-ca", *CA_RESOURCES])
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


def test_token_is_computed_with_the_ca_hash(ha):
    bundle = identity.chain("-----BEGIN CERTIFICATE-----\ncluster-identity-server-ca\n-----END CERTIFICATE-----\n",
                            "-----BEGIN CERTIFICATE-----\ncluster-identity-intermediate-ca\n-----END CERTIFICATE-----\n",
                            "-----BEGIN CERTIFICATE-----\ncluster-identity-root-ca\n-----END CERTIFICATE-----\n")
    expected = f"K10{hashlib.sha256(bundle.encode()).hexdigest()}::server:sample-join-token-abcdef"
    for name in ("rke2-server-1-token", "rke2-server-3-token", "rke2-agent-2-token"):
        assert ha.by_name(name).input("stdin") == f"token: {expected}\n", name
        assert "stdin" in ha.by_name(name).secret_paths()
    assert "rke2-server-1-read-token" not in ha.names()


def test_private_keys_never_in_plaintext(ha):
    for reg in ha.registrations:
        assert "sample-private-" not in plaintext_outside_secrets(reg.raw_inputs), reg.urn


def test_outputs_show_the_trust_root_and_its_lifetime(ha):
    assert "cluster-identity-root-ca" in ha.resolved["clusterCaCertificate"]
    assert ha.resolved["caExpiry"] == "2036-11-20T00:00:00Z"


def test_password_is_derived_without_a_configured_token():
    ev = evaluate(with_changes(RAW, token=None), SECRETS - {"rke2-rancher:token"})
    token = ev.by_name("rke2-server-2-token").input("stdin")
    assert token.startswith("token: K10") and "::server:" in token
    assert "rke2-server-1-read-token" not in ev.names()


def test_certificate_rotation_runs_one_server_at_a_time():
    ev = evaluate(with_changes(RAW, cluster__certificateRotation="2026-11-22"), SECRETS)
    assert ev.depends_on("rke2-server-2-rotate-certs", "rke2-server-1-rotate-certs")
    assert ev.depends_on("rke2-server-3-rotate-certs", "rke2-server-2-rotate-certs")
    assert ev.by_name("rke2-server-1-rotate-certs").input("triggers") == ["2026-11-22"]


def test_full_token_keeps_only_the_password_of_a_configured_k10_token():
    assert identity.full_token("ca", "K10abc::server:pw") == \
        f"K10{hashlib.sha256(b'ca').hexdigest()}::server:pw"
    assert identity.full_token("ca", "pw").endswith("::server:pw")


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
