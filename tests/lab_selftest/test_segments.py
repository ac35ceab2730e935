"""netlab private segments (tests/lab/netlab.py Lab.add_segment / attach / add_host(segment=)):
reachable only from hosts on or attached to them, and gone after teardown."""
import subprocess

import pytest

from tests.lab.fixtures import requires_lab
from tests.lab.netlab import Lab, LabError

pytestmark = requires_lab()


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_segment_hosts_are_reachable_only_through_an_attached_host():
    root_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    lab = Lab()
    lab.start()
    try:
        seg = lab.add_segment("priv", "10.78.0.0/24")
        gate = lab.add_host("gate", "10.77.0.5")
        assert lab.attach(gate, "priv", "10.78.0.5") == "eth1"
        inner = lab.add_host("inner", "10.78.0.11", segment="priv")
        assert sorted(gate.addresses()) == ["10.77.0.5", "10.78.0.5", "127.0.0.1"]
        assert sorted(inner.addresses()) == ["10.78.0.11", "127.0.0.1"]
        # The workstation: no route. The attached host: connects to inner's sshd.
        res = lab.run(["python3", "-c", "import socket; socket.create_connection(('10.78.0.11', 22), 3)"])
        assert res.returncode != 0 and "Network is unreachable" in res.stderr, res.stderr
        rc, out, err = gate.exec("python3 -c \"import socket; s = socket.create_connection(('10.78.0.11', 22), 3); "
                                 "print(s.recv(64).decode().split('-')[0])\"")
        assert rc == 0 and out.strip() == "SSH", err
        # Inner has no way out: no default route.
        rc, _, err = inner.exec("python3 -c \"import socket; socket.create_connection(('10.77.0.1', 22), 3)\"")
        assert rc != 0 and "Network is unreachable" in err, err
        with pytest.raises(LabError):
            lab.add_host("stray", "10.77.0.40", segment="priv")
        with pytest.raises(LabError):
            lab.add_segment("clash", "10.77.0.0/25")
        names = {lab.netns, seg.netns, gate.netns, inner.netns}
        assert names <= _netns()
    finally:
        lab.close()
    assert not names & _netns()
    assert subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout == root_links
