"""HALoadBalancer: HAProxy (and optionally a keepalived VIP) in front of the servers."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from . import render
from .config import StackConfig
from .host import HostAccess, step


@dataclass(frozen=True)
class HALoadBalancerArgs:
    stack: StackConfig
    """The validated stack config (loadBalancer set)."""
    host: HostAccess
    """SSH access to the load balancer host."""
    guard: pulumi.Resource | None = None
    """servers[0]'s guards (its upgrade guard, after its membership guard): nothing here
    changes before they pass (a refused change of `servers` must not rewrite the backends)."""


class HALoadBalancer(pulumi.ComponentResource):
    ready: pulumi.Output[str]
    """Resolves once HAProxy runs the current backend list."""

    def __init__(self, name: str, args: HALoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        stack = args.stack
        lb = stack.load_balancer
        assert lb is not None
        backends = [f"{n.name}={render.lb_backend_address(stack, n)}" for n in stack.servers]
        props = {
            "name": lb.name, "address": lb.address, "vip": lb.vip,
            "registrationAddress": render.registration_url(stack), "backends": backends,
            "ports": [render.SUPERVISOR_PORT, render.API_PORT,
                      *(render.INGRESS_PORTS if render.ingress_nodes(stack) else ())],
            "ingressBackends": [f"{n.name}={render.lb_backend_address(stack, n)}"
                                for n in render.ingress_nodes(stack)],
            "hostKeyVerified": args.host.host_key_verified,
            **args.host.bastion_props,
        }
        super().__init__("rke2:index:HALoadBalancer", name, props, opts)
        host = args.host

        def after(*deps: pulumi.Resource | None) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None])

        packages = "haproxy keepalived" if lb.vip else "haproxy"
        install = step(f"{name}-packages", host, "haproxy.sh", values={"PACKAGES": packages}, opts=after(args.guard))
        haproxy = step(f"{name}-haproxy", host, "lb-config.sh",
                       values={"DEST": "/etc/haproxy/haproxy.cfg", "UNIT": "haproxy", "CHECK": "haproxy"},
                       stdin=render.haproxy_cfg(stack), opts=after(install))
        last = haproxy
        if lb.vip:
            last = step(f"{name}-keepalived", host, "lb-config.sh",
                        values={"DEST": "/etc/keepalived/keepalived.conf", "UNIT": "keepalived",
                                "CHECK": "keepalived"},
                        stdin=render.keepalived_conf(stack), opts=after(haproxy))
        self.ready = last.stdout
        self.readiness = last
        self.register_outputs({**props, "ready": self.ready})  # props too: stack policies read outputs
