"""RancherRelease: the Rancher chart into cattle-system, with real Helm semantics (hooks)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

NAMESPACE = "cattle-system"


@dataclass(frozen=True)
class RancherReleaseArgs:
    version: str
    """Pinned chart version, e.g. 2.12.3 (checked against the RKE2 version by config.py)."""
    hostname: str
    """DNS name Rancher answers on."""
    replicas: int
    """Rancher server replicas (the policy pack checks it against schedulable nodes)."""
    bootstrap_password: pulumi.Output[str]
    """Secret first-login password; no default."""
    tls_source: str
    """ingress.tls.source: rancher, letsEncrypt or secret."""
    repository: str
    """Chart repository URL."""
    repository_ca_file: str | None = None
    """CA bundle the repository's certificate chains to (Helm's --ca-file)."""
    letsencrypt_email: str | None = None
    """Account e-mail for letsEncrypt."""
    schedulable_nodes: int = 1
    """Nodes Rancher can run on; recorded for the policy pack."""
    ingress_tls: tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Output[str]] | None = None
    """(certificate chain, secret key, private CA) from the stack's CA, for tlsSource: secret."""
    timeout_seconds: int = 900
    """How long Helm waits for Rancher to roll out."""


def rancher_values(args: RancherReleaseArgs) -> dict:
    """Chart values without the password (added as a secret by the component)."""
    values: dict = {
        "hostname": args.hostname,
        "replicas": args.replicas,
        "ingress": {"tls": {"source": args.tls_source}},
    }
    if args.tls_source == "letsEncrypt":
        values["letsEncrypt"] = {"email": args.letsencrypt_email, "ingress": {"class": "nginx"}}
    return values


def needs_cert_manager(tls_source: str) -> bool:
    return tls_source in ("rancher", "letsEncrypt")


class RancherRelease(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    url: pulumi.Output[str]

    def __init__(self, name: str, args: RancherReleaseArgs, opts: pulumi.ResourceOptions | None = None):
        values = rancher_values(args)
        props = {"version": args.version, "namespace": NAMESPACE, "chartRepository": args.repository,
                 "hostname": args.hostname, "replicas": args.replicas, "tlsSource": args.tls_source,
                 "schedulableNodes": args.schedulable_nodes, "values": dict(values)}
        super().__init__("rke2:index:RancherRelease", name, props, opts)
        secrets = []
        if args.ingress_tls is not None:
            # Rancher on the cluster's own trust root: the ingress certificate and the CA
            # Rancher hands to agents (privateCA) come from the stack's CA.
            chain, key, ca = args.ingress_tls
            ns = k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": NAMESPACE},
                                       opts=pulumi.ResourceOptions(parent=self))
            secrets = [
                k8s.core.v1.Secret(f"{name}-ingress-tls", metadata={"name": "tls-rancher-ingress", "namespace": NAMESPACE},
                                   type="kubernetes.io/tls",
                                   string_data=pulumi.Output.secret(pulumi.Output.all(chain, key).apply(
                                       lambda v: {"tls.crt": v[0], "tls.key": v[1]})),
                                   opts=pulumi.ResourceOptions(parent=self, depends_on=[ns])),
                k8s.core.v1.Secret(f"{name}-private-ca", metadata={"name": "tls-ca", "namespace": NAMESPACE},
                                   string_data={"cacerts.pem": ca},
                                   opts=pulumi.ResourceOptions(parent=self, depends_on=[ns])),
            ]
            values["privateCA"] = True
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            k8s.helm.v3.ReleaseArgs(
                name="rancher",
                chart="rancher",
                version=args.version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.repository, ca_file=args.repository_ca_file),
                namespace=NAMESPACE,
                create_namespace=True,
                values={**values, "bootstrapPassword": pulumi.Output.secret(args.bootstrap_password)},
                skip_await=False,
                wait_for_jobs=True,
                timeout=args.timeout_seconds,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=secrets),
        )
        self.url = pulumi.Output.from_input(f"https://{args.hostname}")
        self.register_outputs({**props, "url": self.url})  # props too: stack policies read outputs
