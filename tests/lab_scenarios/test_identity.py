"""The stack-owned cluster identity on real hosts: the CA survives a rebuilt server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.lab.fixtures import requires_lab
from tests.upstream_rules import upstream_ca_hash
from tests.lab_scenarios.test_single_server import HOST, single_config, single_server

pytestmark = [requires_lab(), pytest.mark.lab]
TLS = "/var/lib/rancher/rke2/server/tls"


def served_verified(lab, root_pem: str) -> bool:
    """The API on 6443 answers over TLS verified against `root_pem`. Without a client
    certificate the answer is 401: k3s runs kube-apiserver with --anonymous-auth=false
    (pkg/daemons/control/server.go apiServer), so even /readyz needs credentials."""
    res = lab.https_get(f"https://{HOST}:6443/readyz", ca_pem=root_pem)
    assert res["error"] is None and res["status"] == 401, res
    return True


def test_stack_ca_is_served_pinned_by_the_token_and_survives_a_rebuild(lab, realparts_artifacts, tmp_path):
    host, stack = single_server(lab, realparts_artifacts, tmp_path, "10.77.0.14", mobile=True)

    root = stack.output("clusterCaCertificate")
    assert root.startswith("-----BEGIN CERTIFICATE-----")
    # The served API certificate chains to the stack's root CA.
    assert served_verified(lab, root)
    # The token RKE2 reports pins the CA the stack placed.
    bundle = Path(host.path(f"{TLS}/server-ca.crt")).read_bytes()
    token = Path(host.path("/var/lib/rancher/rke2/server/token")).read_text().strip()
    # k3s pkg/clientaccess/token.go hashCA: the bundle's root DER, not the file (upstream_rules).
    assert token.startswith(f"K10{upstream_ca_hash(bundle)}::server:")
    assert not token.startswith(f"K10{hashlib.sha256(bundle).hexdigest()}")
    kubeconfig = tmp_path / "kubeconfig-before-rebuild"
    kubeconfig.write_text(stack.output("kubeconfig"))

    # Rebuild the server: a targeted destroy runs rke2-uninstall.sh, `up` installs it again.
    server = f"urn:pulumi:{stack.name}::rke2-rancher::rke2:index:RKE2Server::{HOST}"
    stack.pulumi("destroy", "--yes", "--skip-preview", "--non-interactive", "--stack", stack.name,
                 "--target", server, "--target-dependents")
    assert not Path(host.path("/var/lib/rancher/rke2")).exists()
    stack.up()
    assert Path(host.path(f"{TLS}/server-ca.crt")).read_bytes() == bundle
    assert stack.output("clusterCaCertificate") == root
    # A kubeconfig saved before the rebuild still verifies the new server.
    res = lab.https_get(f"https://{HOST}:6443/readyz", kubeconfig=str(kubeconfig))
    assert res["ok"], res


def test_certificate_rotation_is_an_explicit_previewable_step(lab, realparts_artifacts, tmp_path):
    host, stack = single_server(lab, realparts_artifacts, tmp_path, "10.77.0.15", mobile=True)
    before = Path(host.path(f"{TLS}/serving-kube-apiserver.crt")).read_bytes()
    stack.configure(single_config(host, mobile=True, certificateRotation="2026-11-22"))
    changed = stack.changed_resources()
    assert changed == {f"{HOST}-rotate-certs": "create"}, changed
    stack.up()
    after = Path(host.path(f"{TLS}/serving-kube-apiserver.crt")).read_bytes()
    assert after != before
    assert served_verified(lab, stack.output("clusterCaCertificate"))

    # Any other change is an update of the step (pulumi-command runs `update`, else
    # `create`: commandController.go Update): it only re-checks, nothing rotates or stops.
    stack.configure(single_config(host, mobile=True, certificateRotation="2026-11-22", readyTimeoutSeconds=300))
    assert stack.changed_resources().get(f"{HOST}-rotate-certs") == "update"
    stack.up()
    assert Path(host.path(f"{TLS}/serving-kube-apiserver.crt")).read_bytes() == after


def test_a_new_token_on_an_initialised_cluster_is_refused_on_the_host(lab, realparts_artifacts, tmp_path):
    # rke2-facts.md / k3s pkg/cluster/bootstrap.go: RKE2 encrypts its bootstrap data with the
    # token's password; a restart with another one fails. The token step refuses first.
    host, stack = single_server(lab, realparts_artifacts, tmp_path, "10.77.0.16", mobile=True)
    drop_in = Path(host.path("/etc/rancher/rke2/config.yaml.d/50-rke2-rancher-token.yaml")).read_text()
    stack.set_secret("token", "a-different-token-value-0123")
    res = stack.up(check=False)
    assert res.returncode != 0
    assert "rke2 token rotate" in res.stdout + res.stderr
    assert "a-different-token-value-0123" not in res.stdout + res.stderr
    assert Path(host.path("/etc/rancher/rke2/config.yaml.d/50-rke2-rancher-token.yaml")).read_text() == drop_in
    assert served_verified(lab, stack.output("clusterCaCertificate"))
