"""Real upstream parts for the host lab: build.sh (etcd, kube-apiserver, kubectl, kwok from
the Go module proxy, cached), pki (RKE2's TLS layout), parts (running them in lab network
namespaces as k3s/RKE2 configures them)."""
from .parts import ApiServer, EtcdMember, PartsError, Proc, ensure_parts, parts_unavailable_reason
from .pki import ClusterCAs

__all__ = ["ApiServer", "ClusterCAs", "EtcdMember", "PartsError", "Proc", "ensure_parts",
           "parts_unavailable_reason"]
