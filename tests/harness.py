"""Evaluates the program under Pulumi mocks and records every registration.

The mock monitor is replaced by one that keeps what the engine would receive: type,
name, parent, dependencies and the serialized inputs (where secrets are still wrapped),
so tests can check ordering, parenting and that secrets stay secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pmocks

from tests.mock_certs import MockCertificateAuthority

SECRET_SIG = "4dabf18193072939515e22adb298388d"

# rke2.yaml as RKE2 writes it: a client certificate valid 365 days.
FAKE_KUBECONFIG_EXPIRY = dt.datetime(2027, 11, 20, tzinfo=dt.timezone.utc)
FAKE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmZha2UKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    client-certificate-data: {client_cert}
    client-key-data: c2FtcGxlLWNsaWVudC1rZXk=
""".format(
    client_cert=base64.b64encode(MockCertificateAuthority().issue(
        "rke2-client-admin", is_ca=False, not_after=FAKE_KUBECONFIG_EXPIRY).encode()).decode())
FAKE_SERVER_TOKEN = "K10feedface::server:sample-generated-token-xyz"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        super().__init__()
        self.certificates = MockCertificateAuthority()
        self.requests: dict[str, dict | None] = {}  # certRequestPem -> its subject inputs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "command:remote:Command":
            if args.name.endswith("-kubeconfig"):
                outputs["stdout"] = FAKE_KUBECONFIG
            elif args.name.endswith("-read-token"):
                outputs["stdout"] = FAKE_SERVER_TOKEN
            else:
                outputs["stdout"] = "ok"
            outputs["stderr"] = ""
        if args.typ == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {"status": "deployed"}
        if args.typ == "tls:index/privateKey:PrivateKey":
            outputs["privateKeyPem"] = f"-----BEGIN PRIVATE KEY-----\nsample-private-{args.name}\n-----END PRIVATE KEY-----\n"
        if args.typ == "tls:index/selfSignedCert:SelfSignedCert":
            outputs["certPem"] = self.certificates.issue(args.name, is_ca=bool(args.inputs.get("isCaCertificate")))
            outputs["validityEndTime"] = "2036-11-20T00:00:00Z"
        if args.typ == "tls:index/locallySignedCert:LocallySignedCert":
            outputs["certPem"] = self.certificates.issue(args.name, is_ca=bool(args.inputs.get("isCaCertificate")),
                                                         signer_pem=args.inputs["caCertPem"],
                                                         subject=self.requests.get(args.inputs["certRequestPem"]))
            outputs["validityEndTime"] = "2036-11-20T00:00:00Z"
        if args.typ == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = f"-----BEGIN CERTIFICATE REQUEST-----\n{args.name}\n-----END CERTIFICATE REQUEST-----\n"
            self.requests[outputs["certRequestPem"]] = args.inputs.get("subject")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    dependencies: list[str]
    raw_inputs: dict[str, Any]
    custom: bool

    def input(self, key: str) -> Any:
        """An input with secrets unwrapped (for comparisons)."""
        return _unwrap(self.raw_inputs.get(key))

    def secret_paths(self) -> list[str]:
        return list(_secret_paths(self.raw_inputs, ""))


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _secret_paths(value: Any, path: str):
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            yield path
            return
        for k, v in value.items():
            yield from _secret_paths(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _secret_paths(v, f"{path}[{i}]")


def plaintext_outside_secrets(value: Any) -> str:
    """The serialized inputs with every secret-wrapped value removed."""
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            if v.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
                return "[secret]"
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    return json.dumps(strip(value))


class RecordingMonitor(pmocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        self.registrations.append(Registration(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent,
            dependencies=list(request.dependencies),
            raw_inputs=json_format.MessageToDict(request.object), custom=request.custom))
        return response


@dataclass
class Evaluation:
    registrations: list[Registration]
    outputs: dict[str, Any] = field(default_factory=dict)
    """Stack outputs as returned by build(): Output objects."""
    resolved: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def by_name(self, name: str) -> Registration:
        matches = [r for r in self.registrations if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, got {[r.urn for r in matches]}"
        return matches[0]

    def names(self, typ: str | None = None) -> list[str]:
        return [r.name for r in self.registrations if typ is None or r.type == typ]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.registrations if r.urn == urn)

    def depends_on(self, a: str, b: str) -> bool:
        """Whether resource a (transitively) depends on resource b, by explicit or parent-inherited deps."""
        # The SDK expands a dependency on a component into its children's URNs.
        targets = {self.by_name(b).urn}
        frontier = set(targets)
        while frontier:
            frontier = {r.urn for r in self.registrations if r.parent in frontier}
            targets |= frontier
        seen, todo = set(), [self.by_name(a).urn]
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            reg = self.by_urn(urn)
            if targets & set(reg.dependencies):
                return True
            todo.extend(reg.dependencies)
            # Dependencies on a component mean on all of its children.
            todo.extend(r.urn for r in self.registrations if r.parent == urn)
            # A child registers only once its parent did, and the parent waits for its own
            # depends_on first: ancestors' dependencies hold for the child too.
            ancestor = self._parent(reg)
            while ancestor is not None:
                if targets & set(ancestor.dependencies):
                    return True
                todo.extend(ancestor.dependencies)
                ancestor = self._parent(ancestor)
        return False

    def _parent(self, reg: Registration) -> Registration | None:
        return next((r for r in self.registrations if r.urn == reg.parent), None)


def evaluate(raw: dict[str, Any], secret_keys: set[str] = frozenset(), preview: bool = False) -> Evaluation:
    """Runs components.cluster.build on the config under mocks; returns what was registered."""
    from components.cluster import build
    from components.config import parse_config

    mocks = Mocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="rke2-rancher", stack="test", preview=preview, monitor=monitor)
    evaluation = Evaluation(registrations=monitor.registrations)

    @pulumi.runtime.test
    def run():
        outputs = build(parse_config(raw, secret_keys))
        evaluation.outputs = outputs
        # Serialize the stack outputs like the engine would receive them, so the test
        # sees which are secret-wrapped.
        holder = pulumi.ComponentResource("test:index:StackOutputs", "stack-outputs", props=dict(outputs))
        return pulumi.Output.from_input(holder.urn)

    run()
    outputs_reg = evaluation.by_name("stack-outputs")
    evaluation.resolved = {k: outputs_reg.input(k) for k in evaluation.outputs}
    evaluation.secret_outputs = {p.split(".")[0] for p in outputs_reg.secret_paths()}
    evaluation.registrations.remove(outputs_reg)
    return evaluation


def assigned(command: str, key: str) -> str:
    """The value a step's script assigns to `key` (a `bash -c '<script>' ...` command line)."""
    script = shlex.split(command)[2]
    [line] = [ln for ln in script.splitlines() if ln.startswith(f"{key}=")]
    return shlex.split(line[len(key) + 1:])[0]


def changed_inputs(a, b) -> dict[str, list[str]]:
    """{custom resource name: [input keys that differ]} between two evaluations."""
    diff = {}
    for reg in a.registrations:
        if not reg.custom:
            continue
        other = b.by_name(reg.name)
        keys = sorted(k for k in set(reg.raw_inputs) | set(other.raw_inputs) if reg.input(k) != other.input(k))
        if keys:
            diff[reg.name] = keys
    return diff
