"""components/builtin_sans.py against k3s's rule, written out here independently.

k3s pkg/cli/server/server.go run(): ControlConfig.SANs gets the advertise address, the
first address of each service CIDR (master.ServiceIPRange: network address + 1), then
"127.0.0.1", "::1", "localhost", the node name, every node IP and node-external-ip;
pkg/daemons/control/deps/deps.go adds "kubernetes", "kubernetes.default",
"kubernetes.default.svc", "kubernetes.default.svc."+ClusterDomain. RKE2 defaults:
service-cidr 10.43.0.0/16, cluster-domain cluster.local.
"""

from __future__ import annotations

from components.builtin_sans import builtin_sans
from components.config import parse_config
from components import render
from tests.stacks import load_stack

K8S = ["DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc"]


def test_defaults_and_node_keys():
    got = builtin_sans({"node-name": "jjtestserver", "node-ip": "10.254.254.1",
                        "advertise-address": "10.254.254.1", "tls-san": ["ignored.example"]})
    assert set(got) == {"IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "DNS:localhost",
                        *K8S, "DNS:kubernetes.default.svc.cluster.local", "DNS:jjtestserver",
                        "IP Address:10.254.254.1", "IP Address:10.43.0.1"}
    assert len(got) == len(set(got))


def test_service_cidr_cluster_domain_lists_and_external_ip():
    got = builtin_sans({"node-name": "n1", "node-ip": ["10.0.0.5", "fd00::5"],
                        "node-external-ip": "203.0.113.7", "service-cidr": "10.96.0.0/12,fd00:96::/108",
                        "cluster-domain": "corp.internal"})
    assert {"IP Address:10.0.0.5", "IP Address:FD00:0:0:0:0:0:0:5", "IP Address:203.0.113.7",
            "IP Address:10.96.0.1", "IP Address:FD00:96:0:0:0:0:0:1",
            "DNS:kubernetes.default.svc.corp.internal"} <= set(got)
    assert "DNS:kubernetes.default.svc.cluster.local" not in got


def test_dev_stack_lists_two_builtin_names_as_tls_san():
    """Pulumi.dev.yaml's tlsSans include localhost and 127.0.0.1: both are built in."""
    stack = parse_config(*load_stack("dev"))
    got = builtin_sans(render.server_config(stack, 0))
    assert "DNS:localhost" in got and "IP Address:127.0.0.1" in got
    assert "DNS:jjtestserver" in got  # node name
