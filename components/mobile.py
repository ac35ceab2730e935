"""Pure helpers for mobile mode (cluster.mobile): what keeps a single server working after
it moves to another network, besides its stable node address (scripts/stable-ip.sh).

- Canal's flannel picks its interface from the default route at start unless `flannel.iface`
  is set through a HelmChartConfig for rke2-canal (RKE2 has no flannel-iface flag; docs.rke2.io
  networking/basic_network_options). Mobile mode pins it to the stable address, which
  flannel's --iface accepts as well as an interface name, so it does not matter whether the
  host holds the address on a dummy interface or on lo.
- CoreDNS forwards to the resolvers copied into its pods at creation; after a move they are
  the old network's. scripts/dns-follow.sh restarts the CoreDNS deployment whenever the
  host's resolv.conf changes, so in-cluster DNS follows the move without a `pulumi up`.
"""

from __future__ import annotations

import yaml

# Any file in this directory is applied by RKE2's deploy controller.
CANAL_CONFIG_PATH = "/var/lib/rancher/rke2/server/manifests/rke2-rancher-canal-config.yaml"


def uses_canal(server_config: dict) -> bool:
    """RKE2's default CNI is canal; `cni` may be a string or a list (with multus first)."""
    cni = server_config.get("cni", "canal")
    names = cni if isinstance(cni, list) else [cni]
    return "canal" in names


def canal_config(stable_ip: str) -> str:
    """The HelmChartConfig that pins flannel to the stable address."""
    values = yaml.safe_dump({"flannel": {"iface": stable_ip}}, default_flow_style=False)
    doc = {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChartConfig",
        "metadata": {"name": "rke2-canal", "namespace": "kube-system"},
        "spec": {"valuesContent": values},
    }
    return "# Managed by rke2-rancher (mobile mode): flannel uses the stable node address.\n" + \
        yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)
