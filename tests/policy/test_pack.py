"""The pack's shape: names, descriptions, levels, config schemas, layout and documentation."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml
from pulumi_policy import EnforcementLevel, StackValidationPolicy

from rke2_guard import PACK_NAME, build_policies

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policy"
POLICIES = build_policies()
BY_NAME = {p.name: p for p in POLICIES}

# Fixed by CONTRACT.md.
CONTRACT_LEVELS = {
    "rancher-single-node-replicas": EnforcementLevel.MANDATORY,
    "san-hygiene": EnforcementLevel.MANDATORY,
    "san-hygiene-volatile-ip": EnforcementLevel.ADVISORY,
}


def test_pack_name():
    assert PACK_NAME == "rke2-guard"


def test_names_are_unique_and_kebab_case():
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name


def test_contract_policies_and_levels():
    for name, level in CONTRACT_LEVELS.items():
        assert BY_NAME[name].enforcement_level == level, name
    assert isinstance(BY_NAME["rancher-single-node-replicas"], StackValidationPolicy)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_description_is_one_sentence_that_argues_its_level(policy):
    text = policy.description
    assert text.endswith(".") and text[0].isupper(), text
    assert not re.search(r"[.!?]\s+[A-Z]", text[:-1]), f"more than one sentence: {text}"
    assert policy.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY)
    level = policy.enforcement_level.value
    assert f"{level} because" in text or f"{level} by default since" in text, text


@pytest.mark.parametrize("policy", [p for p in POLICIES if p.config_schema], ids=lambda p: p.name)
def test_config_schema_properties_are_typed_defaulted_and_described(policy):
    for key, spec in policy.config_schema.properties.items():
        assert {"type", "default", "description"} <= set(spec), key
        kind = {"array": list, "boolean": bool, "integer": int, "string": str}[spec["type"]]
        assert isinstance(spec["default"], kind), key


def test_main_only_assembles_the_pack():
    tree = ast.parse((POLICY / "__main__.py").read_text())
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert {n.module for n in imports if isinstance(n, ast.ImportFrom)} == {"pulumi_policy", "rke2_guard"}
    calls = [n for n in body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(calls) == 1 and isinstance(calls[0], ast.Expr)
    call = calls[0].value
    assert isinstance(call, ast.Call) and call.func.id == "PolicyPack"
    assert {k.arg: getattr(k.value, "value", None) for k in call.keywords}["name"] == "rke2-guard"


def test_pack_does_not_import_the_program():
    for path in POLICY.rglob("*.py"):
        if "venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n == "components" or n.startswith("components.") for n in names), path


def test_pulumi_policy_yaml():
    doc = yaml.safe_load((POLICY / "PulumiPolicy.yaml").read_text())
    assert doc["runtime"] == {"name": "python", "options": {"virtualenv": "venv"}}
    assert doc["description"]


def pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==") for line in lines if "==" in line)


def test_requirements_match_the_program_pins():
    pack, program = pins(POLICY / "requirements.txt"), pins(ROOT / "requirements.txt")
    assert set(pack) == {"pulumi", "pulumi-policy"}
    for name, version in pack.items():
        assert program[name] == version, name


def test_strict_example_turns_the_volatile_ip_check_mandatory():
    strict = json.loads((POLICY / "examples" / "strict.json").read_text())
    assert strict["san-hygiene-volatile-ip"]["enforcementLevel"] == "mandatory"
    for name, value in strict.items():
        assert name in BY_NAME, name
        if isinstance(value, dict):
            schema = BY_NAME[name].config_schema.properties if BY_NAME[name].config_schema else {}
            assert set(value) - {"enforcementLevel"} <= set(schema), name


def test_readme_table_lists_every_policy_with_its_level():
    readme = (POLICY / "README.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z0-9-]+)` \| (mandatory|advisory)", readme, re.M)}
    assert rows == {p.name: p.enforcement_level.value for p in POLICIES}
    assert "--policy-pack-config" in readme and "examples/strict.json" in readme


def test_ci_example_runs_the_preview_with_the_pack():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    assert "pull_request" in workflow[True] or "pull_request" in workflow.get("on", {})
    text = (ROOT / ".github" / "workflows" / "preview.yml").read_text()
    assert "make preview" in text or "--policy-pack policy" in text
