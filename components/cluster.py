"""Wires the components for a whole stack: servers in order, agents in parallel,
cert-manager and Rancher on top. `__main__.py` calls `build` and exports its outputs."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from . import etcd_ops, kubeconfig as admin_kubeconfig, render
from .cert_manager import CertManager, CertManagerArgs
from .cluster_identity import ClusterIdentity, ClusterIdentityArgs
from .config import StackConfig
from .ha_load_balancer import HALoadBalancer, HALoadBalancerArgs
from .host import HostAccess, load_private_key
from .rancher_release import RancherRelease, RancherReleaseArgs, needs_cert_manager
from .rke2_agent import RKE2Agent, RKE2AgentArgs
from .rke2_server import RKE2Server, RKE2ServerArgs


def build(stack: StackConfig) -> dict[str, pulumi.Input]:
    private_key = load_private_key(stack.ssh)

    def access(address: str, rebuild: str | None = None) -> HostAccess:
        return HostAccess(address=address, ssh=stack.ssh, private_key=private_key, rebuild=rebuild)

    configured_token = pulumi.Output.secret(stack.token) if stack.token else None
    identity = None
    if stack.cluster.ca == "generated":
        # The stack owns the CA, so the full K10 token (with its CA hash) is known up front.
        rancher_own_cert = stack.rancher.enabled and stack.rancher.tls_source == "secret"
        identity = ClusterIdentity("cluster-identity", ClusterIdentityArgs(
            cluster_hostname=stack.cluster.hostname, token_password=configured_token,
            ingress_hostname=stack.rancher.hostname if rancher_own_cert else None))
        configured_token = identity.token
    def load_balancer(first: RKE2Server) -> HALoadBalancer | None:
        # After servers[0], whose guards it waits for; before the servers that join through it.
        if stack.load_balancer is None:
            return None
        return HALoadBalancer(stack.load_balancer.name, HALoadBalancerArgs(
            stack=stack, host=access(stack.load_balancer.address), guard=first.upgrade_guard))

    servers: list[RKE2Server] = []
    lb = None
    for i, node in enumerate(stack.servers):
        if i == 1:
            lb = load_balancer(servers[0])
        if i == 0:
            token = configured_token
            join_after = []
        else:
            token = configured_token or servers[0].token
            # One at a time: etcd admits one learner at a time.
            join_after = [servers[-1].readiness] + ([lb.readiness] if lb else [])
        servers.append(RKE2Server(node.name, RKE2ServerArgs(
            stack=stack, index=i, host=access(node.address, node.rebuild), token=token, join_after=join_after,
            ca_files=identity.files if identity else None,
            rotate_after=[servers[-1].rotation] if servers and servers[-1].rotation else [],
            upgrade_guard=servers[0].upgrade_guard if servers else None,
            first_host=access(stack.servers[0].address) if i > 0 else None)))
    if len(servers) == 1:  # a load balancer in front of one server
        lb = load_balancer(servers[0])
    first = servers[0]
    if identity is not None:
        # Known once the identity exists (unknown in a new stack's first preview) and stable
        # afterwards: a data dependency on a host step would make it unknown whenever that
        # step changes, and the kubernetes provider (and its releases) would be replaced.
        kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            identity.server_ca_bundle, identity.admin_cert_pem, identity.admin_key_pem).apply(
            lambda v: admin_kubeconfig.build(render.api_endpoint(stack), stack.cluster.hostname, *v)))
        kubeconfig_expiry = identity.admin_expiry
    else:
        kubeconfig, kubeconfig_expiry = first.kubeconfig, first.kubeconfig_expiry
    join_token = configured_token or first.token

    agents: list[RKE2Agent] = []
    if stack.agents:
        # The CA agents verify the registration address with (not taken from the kubeconfig:
        # a renewed admin certificate must not re-run every agent's registration check).
        cluster_ca = identity.server_ca_bundle if identity is not None else \
            kubeconfig.apply(render.kubeconfig_ca_pem)
        # In batches (cluster.upgrade.agentBatch): on a version change an agent of batch k
        # installs, restarts and is Ready before any agent of batch k+1 gets the new release
        # (the turn is taken on servers[0]: a first install joins every agent at once).
        previous_batch: list[str] = []
        for k, batch in enumerate(stack.cluster.upgrade.batches(len(stack.agents))):
            for i in batch:
                node = stack.agents[i]
                agent = RKE2Agent(node.name, RKE2AgentArgs(
                    stack=stack, index=i, host=access(node.address), token=join_token,
                    cluster_ca=cluster_ca, checker=access(stack.servers[0].address),
                    join_after=[servers[-1].readiness] + ([lb.readiness] if lb else []),
                    upgrade_guard=first.upgrade_guard,
                    batch_index=k, previous_batch=previous_batch))
                agents.append(agent)
            previous_batch = [stack.agents[i].name for i in batch]

    # Day-2 on etcd, once every server is ready: an on-demand snapshot, then a restore.
    snapshot_dir = render.snapshot_dir(render.server_config(stack, 0))
    snapshot = etcd_ops.snapshot_step(stack.servers[0].name, access(stack.servers[0].address), stack, snapshot_dir,
                                      opts=pulumi.ResourceOptions(parent=first,
                                                                  depends_on=[s.readiness for s in servers]))
    restored = etcd_ops.restore_steps(
        [(node.name, access(node.address), server) for node, server in zip(stack.servers, servers)],
        stack, snapshot_dir, after=[s.readiness for s in servers] + ([snapshot] if snapshot else []))

    # pulumi-kubernetes replaces a provider (and every release it manages) when its kubeconfig
    # is unknown in a preview or names another cluster, unless clusterIdentifier is set and
    # unchanged (provider.go DiffConfig). The kubeconfig changes by design (a renewed admin
    # certificate, a quarterly re-read, a new cluster.hostname); the cluster stays the same.
    provider = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret(kubeconfig),
                            cluster_identifier=f"rke2-rancher/{pulumi.get_project()}/{pulumi.get_stack()}",
                            opts=pulumi.ResourceOptions(depends_on=[s.readiness for s in servers]
                                                        + ([restored] if restored else [])))

    cert_manager = None
    if stack.cert_manager.enabled:
        cert_manager = CertManager("cert-manager", CertManagerArgs(
            version=stack.cert_manager.version, repository=stack.cert_manager.repository,
            repository_ca_file=stack.cert_manager.repository_ca_file),
                                   opts=pulumi.ResourceOptions(providers=[provider]))
    rancher_url = None
    if stack.rancher.enabled:
        r = stack.rancher
        depends = [cert_manager] if cert_manager is not None and needs_cert_manager(r.tls_source) else []
        depends += [a.readiness for a in agents]
        rancher = RancherRelease("rancher", RancherReleaseArgs(
            version=r.version, hostname=r.hostname, replicas=r.replicas,
            bootstrap_password=pulumi.Output.secret(r.bootstrap_password),
            tls_source=r.tls_source, repository=r.repository, repository_ca_file=r.repository_ca_file,
            letsencrypt_email=r.letsencrypt_email,
            schedulable_nodes=stack.schedulable_nodes,
            ingress_tls=(identity.ingress_cert_chain, identity.ingress_key, identity.root_cert_pem)
            if identity is not None and identity.ingress_cert_chain is not None else None,
        ), opts=pulumi.ResourceOptions(providers=[provider], depends_on=depends))
        rancher_url = rancher.url

    return {
        "kubeconfig": pulumi.Output.secret(kubeconfig),
        "apiEndpoint": render.api_endpoint(stack),
        "registrationAddress": render.registration_url(stack),
        "rancherUrl": rancher_url,
        "servers": [n.name for n in stack.servers],
        "agents": [n.name for n in stack.agents],
        "clusterCaCertificate": identity.root_cert_pem if identity else None,
        "caExpiry": identity.ca_expiry if identity else None,
        # The kubeconfig output's client certificate (renewed as kubeconfig.py says).
        "kubeconfigExpiry": kubeconfig_expiry,
        # Leaf certificates the stack issues (RKE2's own leaves live 365 days on the hosts).
        "rancherIngressCertExpiry": identity.ingress_expiry if identity else None,
        # Snapshot files on servers[0] that the stack took (cluster.snapshot, pre-upgrade).
        "etcdSnapshots": etcd_ops.snapshots_taken(snapshot),
    }
