"""cis-profile: every RKE2 node runs RKE2's CIS profile (`profile: cis` in its config.yaml).

With the profile RKE2 hardens its components and sets Pod Security Admission itself
(rancher/rke2 pkg/rke2 ProfileCIS), and refuses to start unless the host is prepared: the
`etcd` user and group on servers and the kernel parameters of the release's
rke2-cis-sysctl.conf (pkg/cli/cmds/profile_linux.go validateProfile). `cluster.profile: cis`
makes the program prepare the hosts and write the key on every node; the components register
the effective key as the `profile` prop (cluster.profile, or cluster.extraConfig's node-wide
`profile`).
"""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from .common import AGENT, SERVER, UNKNOWN, label, read

PROFILE = "cis"


def validate_cis_profile(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (SERVER, AGENT):
        return
    profile = read(args.props, "profile")
    if profile is UNKNOWN or profile == PROFILE:
        return
    who = label(args.resource_type, args.name)
    now = "without a profile" if profile in (None, "") else f"with profile {profile!r}"
    report(f"{who}: RKE2 runs {now}, not RKE2's CIS profile. Fix: set cluster.profile: cis (the program "
           "then creates the etcd user on the servers and applies the kernel parameters RKE2 ships on "
           "every node before the first start).")
