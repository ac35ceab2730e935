"""RKE2Agent: one RKE2 agent (worker) node, joined through the registration address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi

from . import node_prep, render, upgrade
from .config import StackConfig
from .host import HostAccess, step
from .node_steps import file_step, install_step, uninstall_step

MIN_DISK_MB = 2048


@dataclass(frozen=True)
class RKE2AgentArgs:
    stack: StackConfig
    """The validated stack config."""
    index: int
    """Position in `agents`."""
    host: HostAccess
    """SSH access to this agent."""
    token: pulumi.Output[str]
    """Secret join token (configured, or read from servers[0])."""
    cluster_ca: pulumi.Output[str]
    """PEM of the cluster CA, to verify the registration address."""
    checker: HostAccess
    """SSH access to a server, where node readiness is checked and the node removed on destroy."""
    join_after: Sequence[pulumi.Resource] = ()
    """What must be ready before the registration check (the last server, the load balancer)."""
    upgrade_guard: pulumi.Resource | None = None
    """servers[0]'s upgrade guard: runs before anything here."""
    batch_index: int = 0
    """This agent's batch (cluster.upgrade.agentBatch), from 0."""
    previous_batch: Sequence[str] = ()
    """Node names of the batch before: on a version change this agent's drain and install wait,
    on servers[0], until they have finished (upgrade.turn_step)."""


class RKE2Agent(pulumi.ComponentResource):
    ready: pulumi.Output[str]
    """Resolves once the node is Ready, as seen from a server."""

    def __init__(self, name: str, args: RKE2AgentArgs, opts: pulumi.ResourceOptions | None = None):
        stack, node, cluster = args.stack, args.stack.agents[args.index], args.stack.cluster
        cfg = render.agent_config(stack, args.index)
        props = {
            "nodeName": node.name, "address": node.address, "index": args.index,
            "version": cluster.version, "registrationAddress": render.registration_url(stack),
            "nodeIp": cfg.get("node-ip"), "labels": list(node.labels), "taints": list(node.taints),
            "schedulable": node.schedulable, "hostKeyVerified": args.host.host_key_verified,
            **args.host.bastion_props,
            "retainOnDestroy": cluster.retain_on_destroy, "profile": cfg.get("profile"),
            "systemDefaultRegistry": cfg.get("system-default-registry"),
            "registryMirrors": sorted(stack.registries.mirrors) if stack.registries else [],
            "upgradeAfter": list(args.previous_batch),
        }
        super().__init__("rke2:index:RKE2Agent", name, props, opts)
        host = args.host

        def after(*deps: pulumi.Resource | None) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None])

        uninstall = uninstall_step(name, host, cluster, "agent", opts=after())
        preflight = step(f"{name}-preflight", host, "preflight.sh",
                         values={"ROLE": "agent", "MIN_DISK_MB": MIN_DISK_MB, "CA_MODE": "agent"},
                         opts=after(uninstall, args.upgrade_guard))
        registration = step(f"{name}-registration-check", host, "registration-check.sh",
                            values={"REGISTRATION_URL": render.registration_url(stack),
                                    "TIMEOUT": cluster.ready_timeout_seconds},
                            stdin=args.cluster_ca, opts=after(preflight, *args.join_after))
        cis_check = node_prep.cis_check_step(name, host, cluster, "agent", cfg.get("profile"),
                                             opts=after(preflight))
        config = file_step(f"{name}-config", host, render.SERVER_CONFIG_PATH, render.to_yaml(cfg),
                           opts=after(preflight, cis_check))
        registries, registries_trigger = node_prep.registries_step(name, host, stack, opts=after(preflight))
        images = node_prep.images_step(name, host, cluster, opts=after(preflight))
        token_file = file_step(f"{name}-token", host, render.TOKEN_CONFIG_PATH,
                                   pulumi.Output.secret(args.token).apply(render.token_yaml),
                                   opts=after(preflight), secret=True)
        # Agents after every server, batch after batch (taking turns on servers[0]), each
        # drained first (from a server).
        turn = upgrade.turn_step(node.name, args.checker, cluster, cluster.cni, args.batch_index,
                                 list(args.previous_batch), opts=after(preflight, *args.join_after))
        drain = upgrade.drain_step(node.name, args.checker, cluster, opts=after(preflight, turn, *args.join_after))
        install = install_step(name, host, cluster, "agent", opts=after(config, drain, turn, *args.join_after))
        cis = node_prep.cis_step(name, host, cluster, "agent", cfg.get("profile"), opts=after(install))
        service = step(f"{name}-service", host, "service.sh",
                       values={"UNIT": "rke2-agent", "ACTION": "restart",
                               "TIMEOUT": cluster.ready_timeout_seconds, "SINGLE_SERVER": 0},
                       update_values={"ACTION": "ensure"},
                       triggers=[cluster.version, render.restart_fingerprint(cfg), *registries_trigger],
                       opts=after(install, config, token_file, registration, registries, images, cis))
        node_ready = step(f"{name}-node", args.checker, "node-ready.sh",
                          values={"NODE": node.name, "ACTION": "wait", "TIMEOUT": cluster.ready_timeout_seconds},
                          delete_script="node-ready.sh",
                          delete_values={"NODE": node.name, "ACTION": "remove", "TIMEOUT": 300},
                          opts=after(service))
        # After a restart for a new version: Ready at the new kubelet, uncordoned, before the next batch.
        upgrade_ready = upgrade.ready_step(node.name, args.checker, cluster, cluster.cni, opts=after(node_ready))
        self.ready = node_ready.stdout
        self.readiness = upgrade_ready
        self.register_outputs({**props, "ready": self.ready})  # props too: stack policies read outputs
