"""Host lab: Debian hosts booted with systemd (systemd_hosts) in their own network
namespaces on a private bridge (netlab), reached over real SSH; the real etcd and Kubernetes
parts built from Go modules (realparts); RKE2's air-gap artifacts holding a behavioural
stand-in that runs them (standin); pytest fixtures (fixtures)."""
from .netlab import Host, Lab, LabError, cleanup_stale
from .standin import build_artifacts

__all__ = ["Host", "Lab", "LabError", "build_artifacts", "cleanup_stale"]
