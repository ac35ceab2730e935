"""Review finding: rke2-dns-follow restarts CoreDNS on every write of resolv.conf, even when
the resolvers did not change.

systemd.path(5): PathChanged= activates the unit "when the file is closed after having been
written to" (inotify IN_CLOSE_WRITE / IN_MOVED_TO), whatever the content. DHCP clients and
NetworkManager rewrite /etc/resolv.conf on every lease renewal, and systemd-resolved rewrites
/run/systemd/resolve/resolv.conf on link changes, with the same nameservers. Each write is then a
rollout restart of kube-system/rke2-coredns-rke2-coredns (on the single mobile server: a DNS
outage while the pod is recreated). The helper should compare the resolvers it last acted on.
"""

from tests.scripts.sandbox import Sandbox

HELPER = "/usr/local/sbin/rke2-dns-follow"
RESOLV = "nameserver 192.0.2.53\nsearch example.internal\n"


def _restarts(sandbox: Sandbox) -> list[str]:
    return [c for c in sandbox.calls() if "rollout restart deployment rke2-coredns-rke2-coredns" in c]


def test_rewriting_the_same_resolvers_does_not_restart_coredns(sandbox: Sandbox):
    assert sandbox.run("dns-follow.sh").returncode == 0
    sandbox.add_kubectl()
    sandbox.write("/etc/rancher/rke2/rke2.yaml", "apiVersion: v1\n", 0o600)
    sandbox.set_active("rke2-server")
    sandbox.write("/etc/resolv.conf", RESOLV, 0o644)
    sandbox.write("/run/systemd/resolve/resolv.conf", RESOLV, 0o644)
    assert sandbox.exec([HELPER]).returncode == 0  # first activation after a move: restarts
    assert _restarts(sandbox), sandbox.calls()      # (so the check below is not vacuous)

    sandbox.clear_calls()
    sandbox.write("/etc/resolv.conf", RESOLV, 0o644)  # a lease renewal: same content rewritten
    res = sandbox.exec([HELPER])                      # what the path unit then starts
    assert res.returncode == 0, res
    assert not _restarts(sandbox), "CoreDNS restarted although the resolvers are unchanged"
