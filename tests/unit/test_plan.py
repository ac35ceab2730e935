"""The impact plan's pure parts (components/effects.py, components/plan.py).

Previews here are built from the program's own registrations under mocks (tests/harness.py:
real command text, real props, real dependencies), with the operation of each step set by
the test; the real engine's previews are in tests/engine/test_plan_engine.py."""

from __future__ import annotations

import copy
import json
import re

import pytest

from components import effects as fx, plan, scripts
from tests.harness import SECRET_SIG, evaluate
from tests.stacks import load_stack

HOST_SCRIPTS = sorted(p.name for p in fx.SCRIPTS_DIR.glob("*.sh") if p.name != "lib.sh")


# ------------------------------------------------------------------ effects: the declarations

@pytest.mark.parametrize("name", HOST_SCRIPTS)
def test_every_host_script_declares_its_effect(name):
    text = (fx.SCRIPTS_DIR / name).read_text()
    decl = fx.declaration_of(text)
    assert decl is not None, f"{name}: add a `# host-effect:` line near the top"
    clauses = fx.parse_declaration(decl)
    # The variables a declaration tests are ones the script reads (a renamed one would
    # leave a condition that never holds).
    for clause in clauses:
        for cond in clause.conditions:
            if cond.kind in ("value", "changed") and cond.var != "stdin":
                assert re.search(rf"\${{?{cond.var}\b", text), f"{name}: {cond.var} is not used by the script"
            if cond.var == "stdin":
                assert re.search(r"\bcat\b|\bread\b|write_atomically", text), f"{name} reads no stdin"


def test_lib_declares_nothing():
    assert fx.declaration_of((fx.SCRIPTS_DIR / "lib.sh").read_text()) is None


def test_the_declaration_is_read_from_the_leading_comment_block_only():
    assert fx.declaration_of("# what it does\n\n# host-effect: file if created; nothing\necho x\n") == \
        "file if created; nothing"
    assert fx.declaration_of("# what it does\nset -e\n# host-effect: restart; nothing\n") is None


@pytest.mark.parametrize("text, error", [
    ("explode", "unknown effect"),
    ("restart if ACTION=restart", "last clause"),
    ("restart if ACTION=restart and RETAIN=0 or X=1; nothing", "mixes"),
    ("restart if action=restart; nothing", "condition"),
    ("restart;; nothing", "empty clause"),
])
def test_bad_declarations_are_refused(text, error):
    with pytest.raises(fx.EffectError, match=error):
        fx.parse_declaration(text)


@pytest.mark.parametrize("user", ["root", "deploy"])
@pytest.mark.parametrize("name", HOST_SCRIPTS)
def test_parse_command_reads_back_what_render_wrote(name, user):
    values = {"ACTION": "restart", "DEST": "/etc/a b/'q'.yaml", "SANS": "DNS:a\nIP Address:10.0.0.1",
              "EMPTY": "", "N": 5}
    command = scripts.as_command(scripts.render(name, "host-step", **values), user)
    parsed = fx.parse_command(command)
    assert parsed.script == name
    assert parsed.values == {"STEP": "host-step", **{k: str(v) for k, v in values.items()}}


def test_parse_command_ignores_other_commands():
    assert fx.parse_command("echo hi") is None
    assert fx.parse_command(None) is None
    assert fx.parse_command("bash -c 'unterminated") is None


def test_effect_follows_the_values_and_what_changed():
    svc = {"UNIT": "rke2-server", "ACTION": "restart"}
    assert fx.effect_of("service.sh", fx.Run(svc, created=True)) == "restart"
    assert fx.effect_of("service.sh", fx.Run({**svc, "ACTION": "ensure"})) == "nothing"
    assert fx.effect_of("uninstall.sh", fx.Run({"ACTION": "uninstall", "RETAIN": "0"})) == "uninstall"
    assert fx.effect_of("uninstall.sh", fx.Run({"ACTION": "uninstall", "RETAIN": "1"})) == "nothing"
    assert fx.effect_of("uninstall.sh", fx.Run({"ACTION": "register", "RETAIN": "0"}, created=True)) == "nothing"
    assert fx.effect_of("write-file.sh", fx.Run({"DEST": "/x"})) == "nothing"  # only the address changed
    assert fx.effect_of("write-file.sh", fx.Run({"DEST": "/x"}, stdin_changed=True)) == "file"
    bumped = fx.Run({"RKE2_VERSION": "v2"}, changed_vars=frozenset({"RKE2_VERSION"}))
    assert fx.effect_of("install.sh", bumped) == "install"
    assert fx.effect_of("token.sh", fx.Run({}, stdin_changed=True)) == "refused"
    assert fx.effect_of("token.sh", fx.Run({}, created=True)) == "file"
    assert fx.effect_of("node-ready.sh", fx.Run({"ACTION": "remove"})) == "drain"


# ------------------------------------------------------------------ previews from the program

def _mask(v):
    """Secrets as `pulumi preview --json` prints them."""
    if isinstance(v, dict):
        if SECRET_SIG in v:
            return "[secret]"
        return {k: _mask(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_mask(x) for x in v]
    return v


def _state(reg) -> dict:
    return {"urn": reg.urn, "type": reg.type, "parent": reg.parent, "dependencies": reg.dependencies,
            "inputs": _mask(reg.raw_inputs)}


def evaluation(stack: str, change=None):
    raw, secrets = load_stack(stack)
    raw = copy.deepcopy(raw)
    if change:
        change(raw)
    return evaluate(raw, secrets)


def registrations(stack: str, change=None):
    return {r.name: r for r in evaluation(stack, change).registrations}


def preview_of(before: dict, after: dict, ops: dict[str, str], replace_reasons=()) -> tuple[dict, dict]:
    """(preview document, stack export) for the steps named in `ops`."""
    steps = []
    for name, op in ops.items():
        s = {"op": op, "urn": (after.get(name) or before[name]).urn}
        if op != "create":
            s["oldState"] = _state(before[name])
        if op != "delete":
            s["newState"] = _state(after[name])
        if op == "replace":
            s["replaceReasons"] = list(replace_reasons)
        steps.append(s)
    state = {"deployment": {"resources": [_state(r) for r in before.values()]}}
    return {"steps": steps}, state


def test_every_component_prop_names_a_config_key():
    for stack in ("dev", "ha"):
        for reg in registrations(stack).values():
            if reg.type.startswith("rke2:index:"):
                missing = set(reg.raw_inputs) - set(plan.CAUSES[reg.type])
                assert not missing, f"{reg.type} props without a config key in plan.CAUSES: {missing}"


def test_every_cause_names_a_config_key_the_program_reads():
    from components.config import KNOWN_KEYS
    known = set(KNOWN_KEYS[""])
    for section, names in KNOWN_KEYS.items():
        if section and section != "servers[]":
            known |= {f"{section}.{n}" for n in names}
    known |= {f"{role}.{n}" for role in ("servers", "agents") for n in KNOWN_KEYS["servers[]"]}
    for ctype, table in plan.CAUSES.items():
        for prop, text in table.items():
            for key in re.findall(r"(?<![\w.{])([a-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)?|\{node\}\.[A-Za-z]+|\{role\})",
                                  text.split(" (")[0]):
                key = key.replace("{node}", "servers").replace("{role}", "servers")
                assert key in known, f"plan.CAUSES[{ctype!r}][{prop!r}] names {key!r}, which config.py does not read"


def test_version_bump_on_ha_orders_servers_then_agents_in_parallel():
    before = registrations("ha")
    after = registrations("ha", lambda r: r["cluster"].__setitem__("version", "v1.33.6+rke2r1"))
    nodes = ["rke2-server-1", "rke2-server-2", "rke2-server-3", "rke2-agent-1", "rke2-agent-2"]
    ops = {**{n: "update" for n in nodes}, **{f"{n}-install": "update" for n in nodes},
           **{f"{n}-service": "replace" for n in nodes}}
    preview, state = preview_of(before, after, ops, replace_reasons=["triggers"])
    p = plan.build(preview, stack="ha", state=state)
    # Agents follow the last server; the second waits for the first only when the program
    # wires it so (agent batches), as the harness reads the registrations independently.
    second = 5 if evaluation("ha").depends_on("rke2-agent-2", "rke2-agent-1") else 4
    assert [(h.name, h.stage) for h in p.hosts] == [
        ("rke2-server-1", 1), ("rke2-server-2", 2), ("rke2-server-3", 3), ("rke2-agent-1", 4), ("rke2-agent-2", second)]
    for h in p.hosts:
        assert h.causes == ["cluster.version changed"]
        assert [(s.name.split("-")[-1], s.effect) for s in h.steps] == [("install", "install"), ("service", "restart")]
        assert "replacement forced by triggers" in h.steps[1].causes
    t = p.totals
    assert t.max_servers_down == 1 and t.quorum_kept and t.servers == 3 and len(t.restarts) == 5


def test_servers_without_ordering_count_as_down_together():
    before = registrations("ha")
    ops = {f"rke2-server-{n}-service": "replace" for n in (1, 2, 3)}
    preview, state = preview_of(before, before, ops)
    # Cut the one-at-a-time chain: every dependency between servers removed.
    for s in preview["steps"]:
        s["newState"]["dependencies"] = []
    for r in state["deployment"]["resources"]:
        r["dependencies"] = [d for d in r["dependencies"] if "rke2-server" not in d or
                             d.split("::")[-1].startswith(r["urn"].split("::")[-1].rsplit("-", 1)[0])]
    p = plan.build(preview, stack="ha", state=state)
    assert p.totals.max_servers_down == 3 and not p.totals.quorum_kept
    assert "ETCD QUORUM AT RISK" in plan.to_text(p)


def test_removed_agent_is_drained_then_uninstalled_at_the_end():
    before = registrations("ha")
    after = registrations("ha", lambda r: r["agents"].pop())
    gone = [n for n in before if n.startswith("rke2-agent-2")]
    ops = {"rke2-lb": "update", **{n: "delete" for n in gone}}
    preview, state = preview_of(before, after, ops)
    p = plan.build(preview, stack="ha", state=state)
    agent = next(h for h in p.hosts if h.name == "rke2-agent-2")
    assert agent.stage is None and p.hosts[-1] is agent
    effects = {s.name: s.effect for s in agent.steps}
    assert effects["rke2-agent-2-node"] == "drain" and effects["rke2-agent-2-uninstall"] == "uninstall"
    names = [s.name for s in agent.steps]
    assert names.index("rke2-agent-2-node") < names.index("rke2-agent-2-uninstall")
    assert agent.causes == ["rke2-agent-2 removed from agents"]
    assert p.totals.agents_drained == 1 and p.totals.hosts_removed == ["rke2-agent-2"]
    assert p.totals.destroyed == len(gone)


def test_san_change_names_the_configured_key_not_the_derived_list():
    before = registrations("dev")
    after = registrations("dev", lambda r: r["cluster"]["tlsSans"].append("jj.example.net"))
    preview, state = preview_of(before, after, {"jjtestserver": "update", "jjtestserver-config": "update",
                                                "jjtestserver-san-refresh": "update"})
    p = plan.build(preview, stack="dev", state=state)
    (h,) = p.hosts
    assert h.causes == ["cluster.tlsSans: 1 added"]
    assert {s.name: s.effect for s in h.steps} == {"jjtestserver-config": "file", "jjtestserver-san-refresh": "certs"}
    assert p.totals.certificates_reissued == 1 and p.totals.restarts == {"jjtestserver": 1}


def test_no_secret_reaches_any_rendering():
    before = registrations("ha")
    after = registrations("ha", lambda r: r["rancher"].__setitem__("replicas", 2))
    preview, state = preview_of(before, after, {"rancher": "update", "rancher-release": "update",
                                                "rke2-agent-1-token": "update"})
    # What the real preview would carry for secrets: masks and ciphertext objects.
    cipher = {SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:c2VjcmV0LWNpcGhlcnRleHQ="}
    for s in preview["steps"]:
        if not s["urn"].endswith("-token"):
            continue
        s["oldState"]["inputs"]["stdin"] = cipher
        s["newState"]["inputs"]["stdin"] = {**cipher, "ciphertext": "v1:bmV3LWNpcGhlcnRleHQ="}
    raw, _ = load_stack("ha")
    events = [{"policyEvent": {"resourceUrn": "urn:x::rancher", "policyName": "p", "enforcementLevel": "advisory",
                               "message": "Policy text\nRancher 'rancher': replicas | 2 vs 3. Fix: 3."}}]
    p = plan.build(preview, events, stack="ha", state=state)
    rendered = plan.to_text(p) + plan.to_markdown(p) + plan.to_json(p)
    for secret in ("c2VjcmV0LWNpcGhlcnRleHQ", "bmV3LWNpcGhlcnRleHQ", raw["rancher"]["bootstrapPassword"],
                   raw["token"]):
        assert secret not in rendered
    agent_token = next(s for h in p.hosts for s in h.steps if s.name == "rke2-agent-1-token")
    assert agent_token.effect == "file" and agent_token.causes == ["a secret sent on stdin (token, CA or credentials)"]
    (rancher,) = p.other  # the component and its Helm release: one change, one cause
    assert (rancher.name, rancher.op, rancher.causes, rancher.resources) == (
        "rancher", "update", ["rancher.replicas changed"], ["rancher", "rancher-release"])
    # the policy message's own `|` does not break the Markdown table
    assert "replicas \\| 2 vs 3" in plan.to_markdown(p)
    assert json.loads(plan.to_json(p))["policies"][0]["message"].startswith("Rancher 'rancher'")


def test_nothing_changes():
    p = plan.build({"steps": [{"op": "same", "urn": "urn:pulumi:s::p::pulumi:pulumi:Stack::p-s",
                               "newState": {"type": "pulumi:pulumi:Stack"}}]}, stack="dev")
    assert p.hosts == [] and p.other == [] and not p.blocked
    assert "Nothing changes." in plan.to_text(p) and "Nothing changes." in plan.to_markdown(p)


def test_cli_reads_saved_previews_and_exits_1_when_blocked(tmp_path, capsys):
    before = registrations("dev")
    preview, state = preview_of(before, before, {"jjtestserver-service": "update"})
    (tmp_path / "p.json").write_text(json.dumps(preview))
    (tmp_path / "s.json").write_text(json.dumps(state))
    (tmp_path / "e.jsonl").write_text(json.dumps({"policyEvent": {
        "resourceUrn": "urn:pulumi:dev::rke2-rancher::rke2:index:RKE2Server::jjtestserver",
        "policyName": "rancher-single-node-replicas", "enforcementLevel": "mandatory", "message": "m"}}) + "\n")
    args = ["--stack", "dev", "--preview-json", str(tmp_path / "p.json"), "--state-json", str(tmp_path / "s.json"),
            "--events-json", str(tmp_path / "e.jsonl"), "--format", "json", "-o", f"markdown={tmp_path / 'sum.md'}"]
    assert plan.main(args) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["blocked"] and out["hosts"][0]["steps"][0]["effect"] == "nothing"
    assert "**Blocked**" in (tmp_path / "sum.md").read_text()


def test_renamed_node_hands_its_host_over_instead_of_uninstalling():
    # uninstall.sh: the old name's delete finds the host marked for the new name and leaves
    # RKE2 installed; the old Node object is still drained and removed (node-ready.sh).
    before = registrations("ha")
    after = registrations("ha", lambda r: r["agents"][1].__setitem__("name", "rke2-agent-9"))
    ops = {**{n: "delete" for n in before if n.startswith("rke2-agent-2")},
           **{n: "create" for n in after if n.startswith("rke2-agent-9")}}
    preview, state = preview_of(before, after, ops)
    p = plan.build(preview, stack="ha", state=state)
    old = next(h for h in p.hosts if h.name == "rke2-agent-2")
    effects = {s.name: s.effect for s in old.steps}
    assert effects["rke2-agent-2-uninstall"] == "nothing" and effects["rke2-agent-2-node"] == "drain"
    assert old.causes == ["rke2-agent-2 removed from agents"]
    # the same removal without a successor uninstalls
    preview, state = preview_of(before, registrations("ha", lambda r: r["agents"].pop()),
                                {n: "delete" for n in before if n.startswith("rke2-agent-2")})
    gone = next(h for h in plan.build(preview, stack="ha", state=state).hosts if h.name == "rke2-agent-2")
    assert {s.name: s.effect for s in gone.steps}["rke2-agent-2-uninstall"] == "uninstall"


def test_cli_runs_only_preview_and_stack_export(monkeypatch, capsys):
    """`make plan` never deploys and never reaches a host: the only commands are the two
    previews and the state export (read from the backend)."""
    calls = []
    before = registrations("dev")
    preview, state = preview_of(before, before, {"jjtestserver-service": "update"})

    class Done:
        def __init__(self, stdout):
            self.stdout, self.stderr, self.returncode = stdout, "", 0

    def fake_run(args, **kw):
        calls.append((list(args), (kw.get("env") or {}).get("PULUMI_ENABLE_STREAMING_JSON_PREVIEW")))
        if args[1:3] == ["stack", "export"]:
            return Done(json.dumps(state))
        if kw.get("env", {}).get("PULUMI_ENABLE_STREAMING_JSON_PREVIEW") == "1":
            return Done(json.dumps({"policyEvent": {"policyName": "x", "enforcementLevel": "advisory",
                                                    "resourceUrn": "urn:a::b", "message": "m"}}) + "\n")
        return Done(json.dumps(preview))

    monkeypatch.setattr(plan.subprocess, "run", fake_run)
    assert plan.main(["--stack", "dev", "--pulumi", "pulumi", "--", "--policy-pack", "policy"]) == 0
    assert [(a[1:3], streaming) for a, streaming in calls] == [
        (["stack", "export"], None), (["preview", "--json"], None), (["preview", "--json"], "1")]
    for args, _ in calls[1:]:
        assert args[-2:] == ["--policy-pack", "policy"] and "--diff" in args
    assert "x on b" in capsys.readouterr().out


def test_list_keys_say_what_was_added_or_removed_and_labels_name_their_node():
    before = registrations("ha")
    after = registrations("ha", lambda r: (r["cluster"]["tlsSans"].insert(0, "a.example.internal"),
                                           r["agents"][0]["labels"].append("tier=web")))
    preview, state = preview_of(before, after, {n: "update" for n in
                                                ("rke2-server-1", "rke2-agent-1", "rke2-agent-1-config")})
    p = plan.build(preview, stack="ha", state=state)
    causes = {h.name: h.causes for h in p.hosts}
    assert causes["rke2-server-1"] == ["cluster.tlsSans: 1 added"]
    assert causes["rke2-agent-1"] == ["agents[0].labels: 1 added"]
