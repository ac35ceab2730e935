"""Host lab: namespaced hosts with real sshd on a private bridge (netlab), RKE2's air-gap
artifacts holding a behavioural stand-in (standin), a systemd stand-in for inside the hosts
(hosttools/systemctl.py), and pytest fixtures (fixtures)."""
from .netlab import Host, Lab, LabError, cleanup_stale
from .standin import build_artifacts

__all__ = ["Host", "Lab", "LabError", "build_artifacts", "cleanup_stale"]
