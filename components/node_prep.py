"""Host preparation that servers and agents share (issue 15): registries.yaml, image archives
placed before the first start, and the CIS profile's etcd user and kernel parameters."""

from __future__ import annotations

import pulumi
from pulumi_command import remote

from . import render
from .config import ClusterConfig, StackConfig
from .host import HostAccess, step
from .node_steps import file_step


def registries_step(name: str, host: HostAccess, stack: StackConfig, opts: pulumi.ResourceOptions
                    ) -> tuple[remote.Command | None, list[pulumi.Input]]:
    """Writes /etc/rancher/rke2/registries.yaml (0600, atomic, only when changed) and returns the
    service's restart trigger for it: RKE2 reads the file at start only. With credentials (or a
    secret `registries` config key) the file travels as a secret and its trigger is a secret too."""
    reg = stack.registries
    if reg is None:
        return None, []
    text = render.registries_yaml(reg)
    fingerprint = render.secret_fingerprint(text)
    if reg.secret:
        return (file_step(f"{name}-registries", host, render.REGISTRIES_PATH, pulumi.Output.secret(text),
                          opts=opts, secret=True),
                [pulumi.Output.secret(fingerprint)])
    return file_step(f"{name}-registries", host, render.REGISTRIES_PATH, text, opts=opts), [fingerprint]


def images_step(name: str, host: HostAccess, cluster: ClusterConfig, opts: pulumi.ResourceOptions
                ) -> remote.Command | None:
    """Fetches cluster.imagesArchives into RKE2's images directory, each checked by sha256."""
    if not cluster.images_archives:
        return None
    return step(f"{name}-images", host, "images.sh", values={"DIR": render.IMAGES_DIR},
                stdin=render.images_list(cluster.images_archives), opts=opts)


def cis_check_step(name: str, host: HostAccess, cluster: ClusterConfig, role: str, profile: str | None,
                   opts: pulumi.ResourceOptions) -> remote.Command | None:
    """profile: cis (the node's effective config.yaml key: cluster.profile, or the same key through
    cluster.extraConfig / agentExtraConfig): checks, before anything is installed, that the host can run it."""
    if profile != "cis":
        return None
    return step(f"{name}-cis-check", host, "cis.sh",
                values={"ACTION": "check", "ROLE": role, "SYSCTL_DEST": render.CIS_SYSCTL_PATH}, opts=opts)


def cis_step(name: str, host: HostAccess, cluster: ClusterConfig, role: str, profile: str | None,
             opts: pulumi.ResourceOptions) -> remote.Command | None:
    """cluster.profile: cis: the etcd user and group (servers) and the kernel parameters file the
    installed release ships, put in place and applied. Runs after the install (it reads that file)."""
    if profile != "cis":
        return None
    return step(f"{name}-cis", host, "cis.sh",
                values={"ACTION": "apply", "ROLE": role, "SYSCTL_DEST": render.CIS_SYSCTL_PATH,
                        "RKE2_VERSION": cluster.version}, opts=opts)


def psa_step(name: str, host: HostAccess, stack: StackConfig, opts: pulumi.ResourceOptions
             ) -> tuple[remote.Command | None, list[pulumi.Input]]:
    """cluster.profile: cis on a server: the Pod Security Admission file config.yaml points at
    (render.psa_config), and the service's restart trigger for its content."""
    text = render.psa_config(stack)
    if text is None:
        return None, []
    return (file_step(f"{name}-psa", host, render.PSA_CONFIG_PATH, text, opts=opts),
            [render.secret_fingerprint(text)])
