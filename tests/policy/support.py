"""Hand-built policy args for the rke2-guard unit tests.

Props go through pulumi_policy's own deserializer and unknown-checking proxy, as in the
engine's Analyze/AnalyzeStack path: secrets may be given in wire form and unknowns as the
engine's sentinels. Fixtures start compliant; each test changes one property.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs,
                           StackValidationArgs)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from rke2_guard import common

STACK = "urn:pulumi:dev::rke2-rancher::"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
UNKNOWN_ARRAY = "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2"
UNKNOWN_BOOL = "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"
UNKNOWN_NUMBER = "3eeb2bf0-c639-47a8-9e75-3b44932eb421"
UNKNOWN_OBJECT = "dd056dcd-154b-4c76-9bd3-c8f88648b5ff"

PASSWORD = "c0rrect-h0rse-battery-staple"


def wire_secret(value: Any) -> dict:
    """A secret as the engine sends it to analyzers (KeepSecrets)."""
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


@dataclass
class Reporter:
    """Collects report_violation calls."""

    calls: list[tuple[str, str | None]] = field(default_factory=list)

    def __call__(self, message: str, urn: str | None = None) -> None:
        assert isinstance(message, str) and message
        self.calls.append((message, urn))

    @property
    def messages(self) -> list[str]:
        return [m for m, _ in self.calls]

    def only(self) -> str:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][0]


def urn(typ: str, name: str, parent_type: str | None = None) -> str:
    chain = f"{parent_type}${typ}" if parent_type else f"pulumi:pulumi:Stack${typ}"
    return f"{STACK}{chain}::{name}"


def engine_props(props: dict) -> Any:
    return unknown_checking_proxy(deserialize_properties(copy.deepcopy(props)))


def opts(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def resource_args(typ: str, name: str, props: dict, config: dict | None = None,
                  parent_type: str | None = None, parent_name: str | None = None) -> ResourceValidationArgs:
    parent = urn(parent_type, parent_name or name) if parent_type else None
    return ResourceValidationArgs(typ, engine_props(props), urn(typ, name, parent_type), name, opts(parent),
                                  None, config)


def run(validate, args) -> Reporter:
    reporter = Reporter()
    validate(args, reporter)
    return reporter


# ---------------------------------------------------------------------------
# Compliant props, shaped like the components' registrations
# ---------------------------------------------------------------------------


def server(**changes: Any) -> dict:
    """servers[0] of a single-server cluster named jjtestserver (the dev stack)."""
    props = {
        "nodeName": "jjtestserver", "address": "jjtestserver", "index": 0, "serverCount": 1,
        "clusterHostname": "jjtestserver", "version": "v1.33.5+rke2r1",
        "configuredTlsSans": ["jjtestserver", "localhost", "127.0.0.1"],
        "tlsSans": ["jjtestserver", "localhost", "127.0.0.1"],
        "kubeconfigServer": "https://jjtestserver:6443",
        "registrationAddress": "https://jjtestserver:9345",
        "loadBalancerAddress": None, "loadBalancerVip": None, "mobile": True, "nodeIp": "10.255.255.1",
        "labels": [], "taints": [], "schedulable": True, "writeKubeconfigMode": "0600",
        "hostKeyVerified": True, "tokenSource": "secret", "retainOnDestroy": False,
    }
    props.update(changes)
    return props


def ha_server(index: int = 0, **changes: Any) -> dict:
    """A server of the HA stack: 3 servers behind rke2-lb with the VIP 10.20.0.100."""
    sans = ["rke2.example.internal", "rke2-lb.example.internal", "10.20.0.100"]
    props = server(
        nodeName=f"rke2-server-{index + 1}", address=f"10.20.0.{11 + index}", index=index, serverCount=3,
        clusterHostname="rke2.example.internal", configuredTlsSans=["rke2.example.internal"], tlsSans=sans,
        kubeconfigServer="https://rke2.example.internal:6443",
        registrationAddress="https://10.20.0.100:9345",
        loadBalancerAddress="rke2-lb.example.internal", loadBalancerVip="10.20.0.100", mobile=False,
        nodeIp=None)
    props.update(changes)
    return props


def agent(name: str = "rke2-agent-1", **changes: Any) -> dict:
    props = {
        "nodeName": name, "address": "10.20.0.21", "index": 0, "version": "v1.33.5+rke2r1",
        "registrationAddress": "https://10.20.0.100:9345", "nodeIp": None, "labels": [], "taints": [],
        "schedulable": True, "hostKeyVerified": True, "retainOnDestroy": False,
    }
    props.update(changes)
    return props


def load_balancer(**changes: Any) -> dict:
    props = {
        "name": "rke2-lb", "address": "rke2-lb.example.internal", "vip": "10.20.0.100",
        "registrationAddress": "https://10.20.0.100:9345", "backends": [], "ports": [9345, 6443],
        "hostKeyVerified": True,
    }
    props.update(changes)
    return props


def rancher(**changes: Any) -> dict:
    """RancherRelease props on the dev stack."""
    props = {
        "version": "2.12.3", "namespace": "cattle-system",
        "chartRepository": "https://releases.rancher.com/server-charts/stable", "hostname": "jjtestserver",
        "replicas": 1, "tlsSource": "rancher", "schedulableNodes": 1,
        "values": {"hostname": "jjtestserver", "replicas": 1, "ingress": {"tls": {"source": "rancher"}}},
    }
    props.update(changes)
    return props


def rancher_helm(**value_changes: Any) -> dict:
    """Inputs of the rancher helm Release: the password is a nested secret, in wire form."""
    values = {"hostname": "jjtestserver", "replicas": 1, "ingress": {"tls": {"source": "rancher"}},
              "bootstrapPassword": wire_secret(PASSWORD)}
    values.update(value_changes)
    return {"name": "rancher", "chart": "rancher", "version": "2.12.3", "namespace": "cattle-system",
            "repositoryOpts": {"repo": "https://releases.rancher.com/server-charts/stable"}, "values": values}


def cert_manager_helm(**changes: Any) -> dict:
    props = {"name": "cert-manager", "chart": "cert-manager", "version": "v1.16.5", "namespace": "cert-manager",
             "values": {"crds": {"enabled": True, "keep": True}}}
    props.update(changes)
    return props


# ---------------------------------------------------------------------------
# Stacks (what AnalyzeStack sees)
# ---------------------------------------------------------------------------


@dataclass
class Res:
    typ: str
    name: str
    props: dict
    parent_type: str | None = None
    parent_name: str | None = None


def dev_stack(**overrides: dict) -> list[Res]:
    """The dev stack's policy-relevant resources; `overrides` replaces a resource's props by name."""
    resources = [
        Res(common.SERVER, "jjtestserver", server()),
        Res(common.CERT_MANAGER, "cert-manager", {"version": "v1.16.5"}),
        Res(common.HELM_RELEASE, "cert-manager-release", cert_manager_helm(), common.CERT_MANAGER, "cert-manager"),
        Res(common.RANCHER, "rancher", rancher()),
        Res(common.HELM_RELEASE, "rancher-release", rancher_helm(), common.RANCHER, "rancher"),
    ]
    return _apply(resources, overrides)


def ha_stack(**overrides: dict) -> list[Res]:
    resources = [
        Res(common.LOAD_BALANCER, "rke2-lb", load_balancer()),
        *(Res(common.SERVER, f"rke2-server-{i + 1}", ha_server(i)) for i in range(3)),
        Res(common.AGENT, "rke2-agent-1", agent("rke2-agent-1")),
        Res(common.AGENT, "rke2-agent-2", agent("rke2-agent-2", index=1, address="10.20.0.22")),
        Res(common.CERT_MANAGER, "cert-manager", {"version": "v1.16.5"}),
        Res(common.HELM_RELEASE, "cert-manager-release", cert_manager_helm(), common.CERT_MANAGER, "cert-manager"),
        Res(common.RANCHER, "rancher", rancher(hostname="rancher.example.internal", replicas=3, schedulableNodes=5,
                                               values={"hostname": "rancher.example.internal", "replicas": 3,
                                                       "ingress": {"tls": {"source": "rancher"}}})),
        Res(common.HELM_RELEASE, "rancher-release",
            rancher_helm(hostname="rancher.example.internal", replicas=3), common.RANCHER, "rancher"),
    ]
    return _apply(resources, overrides)


def _apply(resources: list[Res], overrides: dict[str, Any]) -> list[Res]:
    by_name = {r.name.replace("-", "_"): r for r in resources}
    for key, props in overrides.items():
        if props is None:
            resources.remove(by_name[key])
        else:
            by_name[key].props = props
    return resources


def stack_args(resources: list[Res], config: dict | None = None) -> StackValidationArgs:
    built: dict[str, PolicyResource] = {}
    result = []
    for r in resources:
        parent = built.get(urn(r.parent_type, r.parent_name)) if r.parent_type else None
        res = PolicyResource(r.typ, engine_props(r.props), urn(r.typ, r.name, r.parent_type), r.name,
                             opts(parent.urn if parent else None), None, parent, [], {})
        built[res.urn] = res
        result.append(res)
    return StackValidationArgs(result, config)
