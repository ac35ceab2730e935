"""Issue 15, CIS profile: a converge with `cluster.profile: cis` on the lab's systemd hosts (real
Debian, real systemd, real systemctl/journald/sysctl), one server and one agent.

What RKE2 demands before it starts with the profile, written here from its source and not from
the product (rancher/rke2 v1.33.5+rke2r1, pkg/cli/cmds/profile_linux.go `validateProfile`,
called by cmds/server.go and cmds/agent.go): `validateKernelReqs` on servers and agents, the
four kernel parameters of `kernelRuntimeParameters`; `validateETCDReqs` on servers only, an
`etcd` user and group. The parameters file RKE2 ships for that is
bundle/share/rke2/rke2-cis-sysctl.conf (docs.rke2.io security/hardening_guide: copy it to
/etc/sysctl.d/60-rke2-cis.conf and apply it). rke2-standin enforces the same checks (its
validate_profile), so the converge only succeeds if the product prepared the hosts.

Lab hosts share this machine's kernel: each host here owns private copies of exactly those four
parameters (systemd_hosts.py private_kernel_params); the machine's own values never change.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab.systemd_hosts import nspawn_unavailable_reason
from tests.lab_scenarios.support import LabStack, base_cluster, host_key_line, provision_artifacts

_reason = nspawn_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

SERVER, AGENT = "jjcisserver", "jjcisagent"
# rancher/rke2 bundle/share/rke2/rke2-cis-sysctl.conf (= profile_linux.go kernelRuntimeParameters)
CIS_PARAMS = {"vm.panic_on_oom": "0", "vm.overcommit_memory": "1", "kernel.panic": "10",
              "kernel.panic_on_oops": "1"}


def sysctl(host, name: str) -> str:
    rc, out, err = host.ssh(f"sysctl -n {name}")
    assert rc == 0, err
    return out.strip()


def active(host, unit: str) -> str:
    return host.ssh(f"systemctl is-active {unit}")[1].strip()


def test_cis_profile_converges_on_systemd_hosts(lab, realparts_artifacts, tmp_path: Path):
    machine = {p: Path("/proc/sys", p.replace(".", "/")).read_text().strip() for p in CIS_PARAMS}
    hosts = {name: lab.add_host(name, addr, private_kernel_params=tuple(CIS_PARAMS))
             for name, addr in ((SERVER, "10.77.0.41"), (AGENT, "10.77.0.42"))}
    server, agent = hosts[SERVER], hosts[AGENT]
    for h in hosts.values():
        provision_artifacts(h, realparts_artifacts)
    # The hosts start from the machine's values, which RKE2 would refuse.
    assert any(sysctl(server, p) != v for p, v in CIS_PARAMS.items()), "nothing for the product to do"

    stack = LabStack(lab, tmp_path)
    stack.configure({
        "ssh": {"privateKeyPath": str(server.private_key_path),
                "hostKeys": {n: host_key_line(h) for n, h in hosts.items()}},
        "cluster": base_cluster(SERVER, tlsSans=[SERVER], profile="cis"),
        "servers": [{"name": SERVER, "address": SERVER}],
        "agents": [{"name": AGENT, "address": AGENT}],
        "certManager": {"enabled": False},   # the charts are test_charts.py's and test_ha.py's subject
        "rancher": {"enabled": False},
    })
    stack.init()
    stack.up()

    for h, unit in ((server, "rke2-server"), (agent, "rke2-agent")):
        assert active(h, unit) == "active", h.journal(unit)[-3000:]
        assert h.ssh(f"systemctl is-enabled {unit}")[1].strip() == "enabled"
        for p, v in CIS_PARAMS.items():
            assert sysctl(h, p) == v, (h.name, p)
        # The file RKE2 ships, where the hardening guide puts it.
        assert h.ssh("cat /etc/sysctl.d/60-rke2-cis.conf")[1] == \
            h.ssh("cat /usr/local/share/rke2/rke2-cis-sysctl.conf")[1]
        assert "invalid kernel parameter" not in h.journal(unit)
    # validateETCDReqs: servers only.
    assert server.ssh("getent passwd etcd && getent group etcd")[0] == 0
    assert agent.ssh("getent passwd etcd")[0] != 0
    assert {p: Path("/proc/sys", p.replace(".", "/")).read_text().strip() for p in CIS_PARAMS} == machine

    # Nothing left to do.
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)

    # The profile holds across a reboot: the kernel forgets the values, systemd-sysctl applies
    # /etc/sysctl.d at boot, and the enabled unit starts again under the profile's checks.
    server.reboot()
    deadline = time.monotonic() + 180  # a boot starts the real etcd and kube-apiserver again
    while active(server, "rke2-server") != "active" and time.monotonic() < deadline:
        time.sleep(1)
    assert active(server, "rke2-server") == "active", server.journal("rke2-server")[-3000:]
    assert sysctl(server, "kernel.panic") == "10"

    # The check the product satisfied is real: a parameter put back makes RKE2 refuse to start.
    rc, _, err = agent.ssh("sysctl -w kernel.panic=0 >/dev/null && systemctl restart rke2-agent", timeout=60)
    assert rc != 0
    assert "invalid kernel parameter value kernel.panic=0 - expected 10" in agent.journal("rke2-agent")
