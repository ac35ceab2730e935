"""Real-engine checks of the stack-owned CA set (cluster.ca: generated)."""

import copy
import json
import subprocess
from pathlib import Path

import pytest

from tests.engine.engine import make_project, step_type, steps_by_name

pytestmark = pytest.mark.engine

CA_TYPES = ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/certRequest:CertRequest",
            "tls:index/locallySignedCert:LocallySignedCert", "tls:index/privateKey:PrivateKey")


def test_hostname_change_never_replaces_a_ca(tmp_path):
    # hashicorp/terraform-provider-tls (what pulumi-tls wraps) internal/provider/
    # resource_self_signed_cert.go and resource_cert_request.go: `subject` is RequiresReplace,
    # so a CA whose subject names cluster.hostname would be replaced by a hostname change,
    # and every host would then refuse the new CA (place-ca) while the stack lost the old keys.
    project = make_project(tmp_path)
    # No chart repository is reachable here: leave the Helm releases out of this stack.
    doc = project.stack_config("ha")
    doc["config"]["rke2-rancher:certManager"] = {"enabled": False}
    doc["config"]["rke2-rancher:rancher"] = {"enabled": False}
    project.write_stack_config("ha", doc)
    # `up` reads the SSH key named by the sample stack even though only tls resources run.
    ssh_dir = Path(project.env["HOME"]) / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_dir / "id_ed25519")], check=True)
    preview, _ = project.preview_json("ha")
    identity = [s["urn"] for s in preview["steps"]
                if step_type(s) in CA_TYPES or step_type(s) == "rke2:index:ClusterIdentity"]
    assert len(identity) > 10, identity
    # The targeted up creates the CA set; the engine then refuses the kubernetes provider
    # (it depends on host steps outside the targets), which does not matter here: the state
    # must hold every targeted resource.
    project.run("up", "--yes", "--skip-preview", "--non-interactive", "--stack", "ha",
                *(f"--target={u}" for u in identity), check=False)
    state = json.loads(project.run("stack", "export", "--stack", "ha").stdout)
    created = {r["urn"] for r in state["deployment"]["resources"]}
    assert set(identity) <= created, set(identity) - created

    doc = project.stack_config("ha")
    changed = copy.deepcopy(doc)
    changed["config"]["rke2-rancher:cluster"]["hostname"] = "renamed.example.internal"
    project.write_stack_config("ha", changed)
    after, _ = project.preview_json("ha", "--show-sames")
    steps = steps_by_name(after)
    ca_steps = {name: s["op"] for name, s in steps.items()
                if step_type(s) in CA_TYPES and "rancher-ingress" not in name}
    assert len(ca_steps) == len(identity) - 1, ca_steps  # every CA resource, minus the component
    assert {op for op in ca_steps.values()} == {"same"}, ca_steps
    # The change itself is seen: the servers' config (tls-san, kubeconfig server) follows it.
    assert steps["rke2-server-1-config"]["op"] in ("update", "create"), steps["rke2-server-1-config"]["op"]
