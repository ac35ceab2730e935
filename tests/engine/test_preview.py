"""Real-engine previews: provider schemas, the same resources as the mock tests, SAN diffs."""

import copy

import pytest

from tests.engine.engine import make_project, step_type, steps_by_name
from tests.harness import evaluate
from tests.stacks import load_stack

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("engine"))


@pytest.mark.parametrize("stack", ["dev", "ha"])
def test_sample_stack_previews(project, stack):
    preview, proc = project.preview_json(stack)
    steps = steps_by_name(preview)
    assert steps, proc.stderr
    assert all(s["op"] == "create" for s in steps.values())


@pytest.mark.parametrize("stack", ["dev", "ha"])
def test_engine_and_mocks_agree_on_resources(project, stack):
    preview, _ = project.preview_json(stack)
    engine = {(name, step_type(s)) for name, s in steps_by_name(preview).items()}
    raw, secrets = load_stack(stack)
    mocks = {(r.name, r.type) for r in evaluate(raw, secrets, preview=True).registrations
             if r.type != "pulumi:pulumi:Stack"}
    # The engine adds the default provider instances; the program's own resources must match.
    engine = {e for e in engine if not e[1].startswith("pulumi:providers:") or e[0] == "cluster"}
    assert engine == mocks


def test_san_change_plan_differs_only_in_config_and_san_refresh(project):
    base, _ = project.preview_json("dev")
    doc = project.stack_config("dev")
    changed = copy.deepcopy(doc)
    changed["config"]["rke2-rancher:cluster"]["tlsSans"].append("jj.example.net")
    project.write_stack_config("dev", changed)
    try:
        other, _ = project.preview_json("dev")
    finally:
        project.write_stack_config("dev", doc)
    a, b = steps_by_name(base), steps_by_name(other)
    assert set(a) == set(b)
    differing = sorted(n for n in a if a[n]["newState"].get("inputs") != b[n]["newState"].get("inputs"))
    assert differing == ["jjtestserver", "jjtestserver-config", "jjtestserver-san-refresh"], differing
