"""The rke2-guard pack under the real engine: `pulumi preview --policy-pack policy`."""

import copy

import pytest

from tests.engine.engine import ROOT, make_project

pytestmark = pytest.mark.engine
POLICY = str(ROOT / "policy")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if not (ROOT / "policy" / "venv" / "bin" / "python").exists():
        pytest.skip("policy/venv is missing: run `make venv` (make test does)")
    return make_project(tmp_path_factory.mktemp("policy-engine"))


def preview_with(project, stack, change=None, *extra):
    doc = project.stack_config(stack)
    changed = copy.deepcopy(doc)
    if change:
        change(changed["config"])
    project.write_stack_config(stack, changed)
    try:
        project.init(stack)
        return project.run("preview", "--stack", stack, "--non-interactive", "--policy-pack", POLICY, *extra,
                           check=False)
    finally:
        project.write_stack_config(stack, doc)


@pytest.mark.parametrize("stack", ["dev", "ha"])
def test_sample_stacks_pass_the_pack(project, stack):
    res = preview_with(project, stack)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "rke2-guard" in res.stdout  # the pack ran; exit 0 means no mandatory violation


def test_three_replicas_on_one_node_is_blocked(project):
    def three(cfg):
        cfg["rke2-rancher:rancher"]["replicas"] = 3
    res = preview_with(project, "dev", three)
    assert res.returncode != 0
    assert "rancher-single-node-replicas" in res.stdout + res.stderr


def test_volatile_ip_san_is_advisory_then_blocking_with_the_strict_config(project):
    def volatile(cfg):
        cfg["rke2-rancher:cluster"]["tlsSans"].append("192.168.1.100")
    res = preview_with(project, "dev", volatile)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "san-hygiene" in out and "192.168.1.100" in out and "advisory" in out.lower()
    strict = preview_with(project, "dev", volatile, "--policy-pack-config", str(ROOT / "policy/examples/strict.json"))
    assert strict.returncode != 0
    assert "san-hygiene" in strict.stdout + strict.stderr


def test_weak_bootstrap_password_is_blocked_without_being_shown(project):
    stack_file = project.dir / "Pulumi.dev.yaml"
    original = stack_file.read_text()
    try:
        project.init("dev")
        project.run("config", "set", "--path", "--secret", "--stack", "dev",
                    "rke2-rancher:rancher.bootstrapPassword", "Xy7-short")  # under 12 characters
        res = preview_with(project, "dev")
        assert res.returncode != 0
        assert "rancher-bootstrap-password" in res.stdout + res.stderr
        assert "Xy7-short" not in res.stdout + res.stderr
    finally:
        stack_file.write_text(original)
