"""CertManager: jetstack's cert-manager chart, installed with real Helm semantics."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from . import versions

NAMESPACE = "cert-manager"


@dataclass(frozen=True)
class CertManagerArgs:
    version: str
    """Pinned chart version, e.g. v1.16.5."""
    repository: str
    """Chart repository URL (jetstack's, or a site's chart mirror)."""
    repository_ca_file: str | None = None
    """CA bundle the repository's certificate chains to (Helm's --ca-file)."""
    timeout_seconds: int = 600
    """How long Helm waits for the webhook and the startupapicheck job."""


def cert_manager_values(version: str) -> dict:
    return {**versions.cert_manager_crd_values(version), "startupapicheck": {"enabled": True}}


class CertManager(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    status: pulumi.Output[str]
    """Helm release status; deployed means the webhook answered."""

    def __init__(self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None):
        values = cert_manager_values(args.version)
        props = {"version": args.version, "namespace": NAMESPACE, "chartRepository": args.repository,
                 "values": values}
        super().__init__("rke2:index:CertManager", name, props, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            k8s.helm.v3.ReleaseArgs(
                name="cert-manager",
                chart="cert-manager",
                version=args.version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.repository, ca_file=args.repository_ca_file),
                namespace=NAMESPACE,
                create_namespace=True,
                values=values,
                # Helm waits for the webhook Deployment, and wait_for_jobs for the
                # startupapicheck job that proves the webhook answers, before Rancher goes on.
                skip_await=False,
                wait_for_jobs=True,
                atomic=True,
                timeout=args.timeout_seconds,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.status = self.release.status.apply(lambda s: s.status)
        self.register_outputs({**props, "status": self.status})  # props too: stack policies read outputs
