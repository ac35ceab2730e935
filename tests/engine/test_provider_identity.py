"""Review finding: renewing the stack-issued admin certificate replaces the kubernetes provider.

pulumi/pulumi-kubernetes provider/pkg/provider/provider.go DiffConfig: when the new
`kubeconfig` is computed (unknown in a preview) it answers Replaces: ["kubeconfig"], and the
engine then replaces every resource that uses the provider (cert-manager, Rancher releases).
hashicorp/terraform-provider-tls internal/provider/common_cert.go
modifyPlanIfCertificateReadyForRenewal: once now >= validity_end_time - early_renewal_hours,
`ready_for_renewal` is RequiresReplace, so the admin LocallySignedCert is replaced and its
cert_pem is unknown in the preview. components/cluster.py builds the provider's kubeconfig
from that cert_pem, so the yearly renewal the closing note of issue 10 (item 8) promises is
a replacement of the provider and of every Kubernetes resource of the stack.

The expectation (the provider stays, only its kubeconfig may update) comes from what an
operator needs, not from the product. It failed before the provider got a clusterIdentifier.
"""

import datetime as dt
import json

import pytest

from tests.engine.engine import make_project, steps_by_name, step_type
from tests.engine.plan_state import deploy_recorded, preview_env

pytestmark = pytest.mark.engine


def test_admin_cert_early_renewal_keeps_the_kubernetes_provider(tmp_path):
    project = make_project(tmp_path)
    deploy_recorded(project, "ha", tmp_path)
    project.env = preview_env(project, tmp_path)

    # A rerun with no change: nothing to do (baseline, so the check below is not vacuous).
    before, _ = project.preview_json("ha", "--show-sames")
    steps = steps_by_name(before)
    assert steps["cluster"]["op"] == "same", steps["cluster"]["op"]

    # Move the admin certificate's end inside its 30-day early-renewal window (what the
    # state looks like eleven months after the first `up`).
    state = json.loads(project.run("stack", "export", "--stack", "ha", "--show-secrets").stdout)
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    hit = 0
    for r in state["deployment"]["resources"]:
        if r["type"] == "tls:index/locallySignedCert:LocallySignedCert" and r["urn"].endswith("-admin-client"):
            r["outputs"]["validityEndTime"] = soon
            hit += 1
    assert hit == 1
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    project.run("stack", "import", "--stack", "ha", "--file", str(path))

    after, _ = project.preview_json("ha", "--show-sames")
    steps = steps_by_name(after)
    admin = [s for n, s in steps.items() if n.endswith("-admin-client")
             and step_type(s) == "tls:index/locallySignedCert:LocallySignedCert"]
    assert admin and admin[0]["op"] in ("replace", "create-replacement"), admin  # the renewal is seen
    releases = {n: s["op"] for n, s in steps.items() if step_type(s).startswith("kubernetes:")}
    assert steps["cluster"]["op"] in ("same", "update"), \
        f"kubernetes provider: {steps['cluster']['op']}; kubernetes resources: {releases}"
    assert not [n for n, op in releases.items() if "replace" in op or op == "delete"], releases


def test_cluster_hostname_change_keeps_the_kubernetes_provider(tmp_path):
    # Issue 10 item 3 makes a cluster.hostname change safe for the CA set; the same change
    # moves the active cluster's server URL in the stack-issued kubeconfig, and
    # pulumi-kubernetes DiffConfig (getActiveClusterFromConfig differs) then replaces the
    # provider, hence the cert-manager and Rancher releases, unless the provider has a
    # clusterIdentifier (same function: an unchanged clusterIdentifier clears Replaces).
    project = make_project(tmp_path)
    deploy_recorded(project, "ha", tmp_path)
    project.env = preview_env(project, tmp_path)
    doc = project.stack_config("ha")
    doc["config"]["rke2-rancher:cluster"]["hostname"] = "renamed.example.internal"
    project.write_stack_config("ha", doc)
    after, _ = project.preview_json("ha", "--show-sames")
    steps = steps_by_name(after)
    releases = {n: s["op"] for n, s in steps.items() if step_type(s).startswith("kubernetes:")}
    assert steps["cluster"]["op"] in ("same", "update"), \
        f"kubernetes provider: {steps['cluster']['op']}; kubernetes resources: {releases}"
    assert not [n for n, op in releases.items() if "replace" in op or op == "delete"], releases
