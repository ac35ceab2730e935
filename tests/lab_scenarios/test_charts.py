"""Issue 13: cert-manager and Rancher installed for real. One server (`jjtestserver`) on the
real upstream parts (rke2-standin on the real etcd and kube-apiserver v1.33.5,
kwok in place of the kubelet), the kubernetes provider's real Helm, and a chart mirror over
HTTPS on the lab's workstation (tests/lab/chartrepo.py) holding our test charts
(tests/lab/charts: the real charts' install contract, nothing running inside). The lab has
no route anywhere else, so every install here is an air-gapped one.

What is checked is what a user sees: `pulumi up` output, and the cluster through the stack's
`kubeconfig` output with a real kubectl. Helm's own records are its release Secrets
(helm/helm pkg/storage/driver/secrets.go: `sh.helm.release.v1.<name>.v<revision>`, labels
owner=helm, name, status, version)."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.lab.chartrepo import ChartMirror
from tests.lab.fixtures import requires_lab, rke2_version
from tests.lab.realparts.parts import parts_unavailable_reason
from tests.lab_scenarios.support import (LabStack, available_deployments, kubectl_through, provision_artifacts,
                                         settled)
from tests.lab_scenarios.test_single_server import HOST, single_config

_reason = parts_unavailable_reason()
pytestmark = [requires_lab(), pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

CERT_MANAGER = "v1.16.5"
RANCHER = "2.12.3"
PASSWORD = "lab-bootstrap-Q7v2xPz9"


def kubectl_for(lab, stack: LabStack, tmp_path: Path):
    return kubectl_through(lab, stack, tmp_path / "kubeconfig")


def helm_releases(kubectl) -> dict[str, list[tuple[int, str]]]:
    """{release: [(revision, status), ...]} from Helm's release Secrets, all namespaces."""
    items = json.loads(kubectl("get", "secrets", "-A", "-l", "owner=helm", "-o", "json").stdout)["items"]
    out: dict[str, list[tuple[int, str]]] = {}
    for s in items:
        labels = s["metadata"]["labels"]
        out.setdefault(labels["name"], []).append((int(labels["version"]), labels["status"]))
    return {k: sorted(v) for k, v in out.items()}


def ts(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def chart_config(host, mirror: ChartMirror, **rancher) -> dict:
    config = single_config(host)
    config["certManager"] = {"enabled": True, "version": CERT_MANAGER, "repository": mirror.url,
                             "repositoryCaFile": mirror.ca_file}
    config["rancher"] = {"enabled": True, "version": RANCHER, "repository": mirror.url,
                         "repositoryCaFile": mirror.ca_file, "replicas": 1, **rancher}
    return config


def deploy_server(lab, artifacts, tmp_path, address: str) -> tuple:
    host = lab.add_host(HOST, address)
    provision_artifacts(host, artifacts)
    mirror = ChartMirror(lab, tmp_path)
    mirror.add("cert-manager", CERT_MANAGER)
    mirror.add("rancher", RANCHER)
    # A mislabelled release: the product's table lets Rancher 2.12 onto Kubernetes 1.33, this
    # chart says otherwise, so Helm's own refusal is what the user sees.
    mirror.add("rancher", "2.12.2", kube_version="< 1.33.0-0")
    mirror.start()
    stack = LabStack(lab, tmp_path)
    stack.init()
    return host, mirror, stack


def configure(stack: LabStack, config: dict) -> None:
    """The stack's config, with the bootstrap password set as a secret (inside `rancher`)."""
    stack.configure(config)
    if config["rancher"].get("enabled"):
        stack.pulumi("config", "set", "--path", "--secret", "--stack", stack.name,
                     "rke2-rancher:rancher.bootstrapPassword", PASSWORD)


def test_cert_manager_then_rancher_from_a_chart_mirror_on_the_real_api(realparts_artifacts, lab, tmp_path):
    host, mirror, stack = deploy_server(lab, realparts_artifacts, tmp_path, "10.77.0.71")

    # The version guard meets the real chart: Rancher 2.11 on RKE2 v1.33 is refused by the
    # program before anything is registered, so nothing is fetched or installed.
    configure(stack, chart_config(host, mirror, version="2.11.3"))
    res = stack.pulumi("preview", "--non-interactive", "--stack", stack.name, check=False)
    assert res.returncode != 0
    # (The value shows as [secret]: with the password set under `rancher` as the README says,
    # Pulumi marks the whole `rancher` object secret, and the program hides all of it.)
    assert "rke2-rancher:rancher.version:" in res.stdout and "requires Kubernetes < 1.33" in res.stdout
    assert mirror.requests() == [] and stack.resource_count() == 0

    # The pinned, compatible charts: Rancher installs after cert-manager is ready.
    configure(stack, chart_config(host, mirror))
    stack.up()
    kubectl = kubectl_for(lab, stack, tmp_path)
    assert helm_releases(kubectl) == {"cert-manager": [(1, "deployed")], "rancher": [(1, "deployed")]}
    got = [line.split()[0] for line in mirror.requests()]
    assert set(got) == {"GET"}
    fetched = {line.split()[1] for line in mirror.requests()}
    assert {"/index.yaml", f"/cert-manager-{CERT_MANAGER}.tgz", f"/rancher-{RANCHER}.tgz"} <= fetched

    # cert-manager's release was finished (Helm marks it deployed once its wait for the three
    # Deployments is over, helm pkg/action/install.go) before Rancher's release record was
    # written; its CRDs are what let the API server take Rancher's Issuer. Read from the
    # release records, not from the Deployments' Available transition time, which a late kwok
    # lease renewal can move later (support.SETTLE_S).
    want = {d: "True" for d in ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook")}
    assert settled(lambda: available_deployments(kubectl, "cert-manager"), want) == want
    cm_record = json.loads(kubectl("get", "secret", "-n", "cert-manager", "sh.helm.release.v1.cert-manager.v1",
                                   "-o", "json", "--show-managed-fields").stdout)
    cm_deployed = max(ts(f["time"]) for f in cm_record["metadata"]["managedFields"])
    rancher_record = json.loads(kubectl("get", "secret", "-n", "cattle-system", "sh.helm.release.v1.rancher.v1",
                                        "-o", "json").stdout)
    assert cm_deployed <= ts(rancher_record["metadata"]["creationTimestamp"])
    assert kubectl("get", "issuer", "rancher", "-n", "cattle-system", "-o", "name").stdout.strip() == \
        "issuer.cert-manager.io/rancher"
    deploy = json.loads(kubectl("get", "deployment", "rancher", "-n", "cattle-system", "-o", "json").stdout)
    assert deploy["status"].get("readyReplicas") == 1

    # The bootstrap password is in the cluster's Secret and nowhere in plaintext outside it.
    secret = json.loads(kubectl("get", "secret", "bootstrap-secret", "-n", "cattle-system", "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["bootstrapPassword"]).decode() == PASSWORD
    state = stack.pulumi("stack", "export", "--stack", stack.name).stdout
    outputs = stack.pulumi("stack", "output", "--json", "--stack", stack.name).stdout
    host_logs = "\n".join(c for _, c in host.commands(include_lab=True))
    for where, text in (("state", state), ("state files", stack.state_text()), ("outputs", outputs),
                        ("pulumi output", "\n".join(stack.transcript)), ("host command log", host_logs)):
        assert PASSWORD not in text, f"bootstrap password in plaintext in {where}"

    # A second up changes nothing.
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)

    # A changed Rancher value upgrades the Rancher release only (its pre-upgrade hook runs),
    # and Rancher's lookup keeps the bootstrap secret as it was.
    configure(stack, chart_config(host, mirror, replicas=2))
    changed = stack.changed_resources()
    # The component records its arguments (for the policy pack), so it changes with its release.
    assert changed == {"rancher": "update", "rancher-release": "update"}, changed
    stack.up()
    assert helm_releases(kubectl) == {"cert-manager": [(1, "deployed")],
                                      "rancher": [(1, "superseded"), (2, "deployed")]}
    deploy = json.loads(kubectl("get", "deployment", "rancher", "-n", "cattle-system", "-o", "json").stdout)
    assert deploy["spec"]["replicas"] == 2 and deploy["status"].get("readyReplicas") == 2
    again = json.loads(kubectl("get", "secret", "bootstrap-secret", "-n", "cattle-system", "-o", "json").stdout)
    assert again["data"] == secret["data"]
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)

    # With the guard satisfied but a chart that excludes the cluster, Helm refuses in its own
    # words (helm/helm v3.18.6, the provider's, pkg/action/action.go renderResources: "chart
    # requires kubeVersion: %s which is incompatible with Kubernetes %s"), before it records
    # a revision: Rancher stays as it was, and going back to the pinned chart changes nothing.
    configure(stack, chart_config(host, mirror, version="2.12.2", replicas=2))
    res = stack.up(check=False)
    assert res.returncode != 0
    assert "chart requires kubeVersion: < 1.33.0-0 which is incompatible with Kubernetes v1.33.5" in res.stdout + res.stderr
    assert helm_releases(kubectl) == {"cert-manager": [(1, "deployed")],
                                      "rancher": [(1, "superseded"), (2, "deployed")]}
    # Back on the pinned chart, the release has nothing to do; only the component's recorded
    # arguments (written before its release failed) go back to 2.12.3.
    configure(stack, chart_config(host, mirror, replicas=2))
    assert stack.changed_resources() == {"rancher": "update"}
    stack.up()
    assert helm_releases(kubectl)["rancher"] == [(1, "superseded"), (2, "deployed")]
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)

    # No other route: the public repositories do not even resolve on the lab network.
    probe = lab.run([lab.python, "-c", "import socket; socket.getaddrinfo('charts.jetstack.io', 443)"], timeout=30)
    assert probe.returncode != 0


def test_rancher_with_the_stacks_own_ca_and_no_cert_manager(realparts_artifacts, lab, tmp_path):
    """rancher.tlsSource: secret with the stack's CA: the ingress certificate and the private
    CA Rancher hands to agents are the stack's; no cert-manager, so no Issuer."""
    host, mirror, stack = deploy_server(lab, realparts_artifacts, tmp_path, "10.77.0.72")
    config = chart_config(host, mirror, tlsSource="secret", hostname="rancher.rk2lab.test")
    config["certManager"] = {"enabled": False}
    configure(stack, config)
    stack.up()
    kubectl = kubectl_for(lab, stack, tmp_path)
    assert helm_releases(kubectl) == {"rancher": [(1, "deployed")]}

    root_pem = stack.output("clusterCaCertificate")
    root = x509.load_pem_x509_certificate(root_pem.encode())
    ingress = json.loads(kubectl("get", "secret", "tls-rancher-ingress", "-n", "cattle-system", "-o", "json").stdout)
    assert ingress["type"] == "kubernetes.io/tls"
    chain = x509.load_pem_x509_certificates(base64.b64decode(ingress["data"]["tls.crt"]))
    leaf = chain[0]
    assert "rancher.rk2lab.test" in leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    for child, parent in zip(chain, [*chain[1:], root]):
        child.verify_directly_issued_by(parent)  # the chain ends at the stack's root
    ca = json.loads(kubectl("get", "secret", "tls-ca", "-n", "cattle-system", "-o", "json").stdout)
    assert base64.b64decode(ca["data"]["cacerts.pem"]).decode().strip() == root_pem.strip()

    deploy = json.loads(kubectl("get", "deployment", "rancher", "-n", "cattle-system", "-o", "json").stdout)
    volumes = deploy["spec"]["template"]["spec"].get("volumes", [])
    assert {"name": "tls-ca-volume", "secret": {"defaultMode": 0o400, "secretName": "tls-ca"}} in volumes  # privateCA
    assert kubectl("get", "crd", "issuers.cert-manager.io", check=False).returncode != 0
    stack.pulumi("preview", "--expect-no-changes", "--non-interactive", "--stack", stack.name)
    assert rke2_version() in kubectl("get", "nodes", "-o", "jsonpath={.items[0].status.nodeInfo.kubeletVersion}").stdout
