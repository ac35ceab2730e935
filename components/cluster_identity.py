"""ClusterIdentity: the cluster's CA set, owned by the stack (cluster.ca: generated).

RKE2 creates its CAs on first start, so rebuilding the first server used to lose them.
Here pulumi-tls creates a root CA and an intermediate, then the CA set RKE2 expects
(server-ca, client-ca, request-header-ca, etcd/server-ca, etcd/peer-ca, service.key),
which the servers receive before their first start. The join token's CA hash is then
known in the program, so joiners pin the CA from the first run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from . import identity, kubeconfig

# CAs live 10 years, as RKE2's own; they never renew by themselves (rotation is explicit).
CA_VALIDITY_HOURS = 10 * 365 * 24
# Leaf certificates: a year, reissued by `pulumi up` within 30 days of expiry.
LEAF_VALIDITY_HOURS = 365 * 24
LEAF_EARLY_RENEWAL_HOURS = 30 * 24
CA_USES = ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"]


@dataclass(frozen=True)
class ClusterIdentityArgs:
    cluster_hostname: str
    """Named in the CA subjects, so an operator can tell clusters apart."""
    token_password: pulumi.Output[str] | None = None
    """Secret password part of the join token; derived from the stack's keys when None."""
    ingress_hostname: str | None = None
    """When set, also issue Rancher's ingress certificate for this name (rancher.tlsSource: secret)."""


class ClusterIdentity(pulumi.ComponentResource):
    root_cert_pem: pulumi.Output[str]
    """The root CA certificate (public): the one trust root of the cluster."""
    server_ca_bundle: pulumi.Output[str]
    """server-ca.crt as placed on the servers (server CA + intermediate + root)."""
    files: pulumi.Output[dict]
    """Secret {relative path under server/tls: (mode, content)} to place on every server."""
    token: pulumi.Output[str]
    """Secret full join token K10<hashCA of server-ca.crt>::server:<password>."""
    ca_expiry: pulumi.Output[str]
    """Root CA notAfter (RFC 3339)."""
    admin_cert_pem: pulumi.Output[str]
    """The admin client certificate (system:admin, system:masters) signed by client-ca."""
    admin_key_pem: pulumi.Output[str]
    """Its secret private key."""
    admin_expiry: pulumi.Output[str]
    """Its notAfter (RFC 3339)."""

    def __init__(self, name: str, args: ClusterIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("rke2:index:ClusterIdentity", name, {
            "clusterHostname": args.cluster_hostname,
            "cas": list(identity.CA_NAMES),
            "caValidityHours": CA_VALIDITY_HOURS,
        }, opts)
        child = pulumi.ResourceOptions(parent=self)

        def key(label: str, algorithm: str = "ECDSA") -> tls.PrivateKey:
            return tls.PrivateKey(f"{name}-{label}-key", algorithm=algorithm,
                                  ecdsa_curve="P256" if algorithm == "ECDSA" else None,
                                  rsa_bits=2048 if algorithm == "RSA" else None, opts=child)

        def subject(cn: str) -> tls.SelfSignedCertSubjectArgs:
            # X.509 caps a common name at 64 characters (RFC 5280 ub-common-name); a long
            # cluster.hostname is cut there (the CA is found by key, not by name).
            return tls.SelfSignedCertSubjectArgs(common_name=cn[:64], organization="rke2-rancher")

        # The hostname names a CA only when it is created: a later cluster.hostname change
        # must never replace a CA (the hosts hold its keys and place-ca refuses another).
        ca_subject_fixed = pulumi.ResourceOptions(parent=self, ignore_changes=["subject"])

        root_key = key("root-ca")
        root = tls.SelfSignedCert(
            f"{name}-root-ca", private_key_pem=root_key.private_key_pem,
            subject=subject(f"rke2-rancher root CA for {args.cluster_hostname}"),
            is_ca_certificate=True, validity_period_hours=CA_VALIDITY_HOURS, allowed_uses=CA_USES,
            opts=ca_subject_fixed)

        def signed_ca(label: str, cn: str, signer_key: tls.PrivateKey, signer_cert) -> tuple:
            k = key(label)
            csr = tls.CertRequest(f"{name}-{label}-csr", private_key_pem=k.private_key_pem,
                                  subject=tls.CertRequestSubjectArgs(common_name=cn[:64], organization="rke2-rancher"),
                                  opts=ca_subject_fixed)
            cert = tls.LocallySignedCert(
                f"{name}-{label}", cert_request_pem=csr.cert_request_pem,
                ca_private_key_pem=signer_key.private_key_pem, ca_cert_pem=signer_cert.cert_pem,
                is_ca_certificate=True, validity_period_hours=CA_VALIDITY_HOURS, allowed_uses=CA_USES,
                opts=child)
            return k, cert

        inter_key, inter = signed_ca("intermediate-ca", f"rke2-rancher intermediate CA for {args.cluster_hostname}",
                                     root_key, root)
        cas = {ca: signed_ca(identity.resource_label(ca), identity.common_name(ca), inter_key, inter)
               for ca in identity.CA_NAMES}
        service_key = key("service", algorithm="RSA")

        pems = pulumi.Output.all(
            root=root.cert_pem, inter=inter.cert_pem, service_key=service_key.private_key_pem,
            **{f"{ca}.crt": cas[ca][1].cert_pem for ca in identity.CA_NAMES},
            **{f"{ca}.key": cas[ca][0].private_key_pem for ca in identity.CA_NAMES},
        )
        self.files = pulumi.Output.secret(pems.apply(identity.tls_files))
        self.root_cert_pem = root.cert_pem
        self.server_ca_bundle = pems.apply(lambda p: identity.chain(p["server-ca.crt"], p["inter"], p["root"]))
        password = args.token_password if args.token_password is not None else \
            pulumi.Output.secret(service_key.private_key_pem.apply(identity.derived_password))
        self.token = pulumi.Output.secret(pulumi.Output.all(self.server_ca_bundle, password).apply(
            lambda v: identity.full_token(v[0], v[1])))
        self.ca_expiry = root.validity_end_time

        # The stack's admin kubeconfig certificate (see kubeconfig.py): renewed by any
        # `pulumi up` within LEAF_EARLY_RENEWAL_HOURS of its expiry.
        admin_key = key("admin-client")
        admin_csr = tls.CertRequest(
            f"{name}-admin-client-csr", private_key_pem=admin_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=kubeconfig.ADMIN_USER,
                                               organization=kubeconfig.ADMIN_GROUP),
            opts=child)
        client_ca_key, client_ca = cas["client-ca"]
        admin = tls.LocallySignedCert(
            f"{name}-admin-client", cert_request_pem=admin_csr.cert_request_pem,
            ca_private_key_pem=client_ca_key.private_key_pem, ca_cert_pem=client_ca.cert_pem,
            validity_period_hours=LEAF_VALIDITY_HOURS, early_renewal_hours=LEAF_EARLY_RENEWAL_HOURS,
            allowed_uses=["digital_signature", "key_encipherment", "client_auth"], opts=child)
        self.admin_cert_pem = admin.cert_pem
        self.admin_key_pem = pulumi.Output.secret(admin_key.private_key_pem)
        self.admin_expiry = admin.validity_end_time

        self.ingress_cert_chain = self.ingress_key = self.ingress_expiry = None
        if args.ingress_hostname:
            ing_key = key("rancher-ingress")
            ing_csr = tls.CertRequest(
                f"{name}-rancher-ingress-csr", private_key_pem=ing_key.private_key_pem,
                subject=tls.CertRequestSubjectArgs(common_name=args.ingress_hostname[:64], organization="rke2-rancher"),
                dns_names=[args.ingress_hostname], opts=child)
            ing = tls.LocallySignedCert(
                f"{name}-rancher-ingress", cert_request_pem=ing_csr.cert_request_pem,
                ca_private_key_pem=inter_key.private_key_pem, ca_cert_pem=inter.cert_pem,
                validity_period_hours=LEAF_VALIDITY_HOURS, early_renewal_hours=LEAF_EARLY_RENEWAL_HOURS,
                allowed_uses=["digital_signature", "key_encipherment", "server_auth"], opts=child)
            # The served chain ends at the intermediate; clients trust the root (privateCA).
            self.ingress_cert_chain = pulumi.Output.all(ing.cert_pem, inter.cert_pem).apply(
                lambda p: identity.chain(*p))
            self.ingress_key = pulumi.Output.secret(ing_key.private_key_pem)
            self.ingress_expiry = ing.validity_end_time
        self.register_outputs({"rootCertPem": self.root_cert_pem, "caExpiry": self.ca_expiry})
