"""`make plan` against the real engine: a deployed stack's state (recorded, see
tests/engine/plan_state.py: the real program and engine, no host or cluster touched), a
config change, then the plan CLI (components/plan.py: real `pulumi preview --json --diff
--policy-pack policy` twice and `pulumi stack export`). Expectations follow the README's
"Changing a SAN or the host's address safely" table and the components' wiring (servers one
at a time, agents in parallel after the last server), written out here, not computed by
the plan's code."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine.engine import PRIVATE_TMP, ROOT, make_project
from tests.engine.plan_state import deploy_recorded, preview_env

pytestmark = pytest.mark.engine
C = "rke2-rancher:"
NEW_TOKEN = "plan-test-new-token-6c1f0e"


def cluster(d):
    return d["config"][C + "cluster"]


class Deployed:
    def __init__(self, tmp: Path, stack: str):
        if not (ROOT / "policy" / "venv" / "bin" / "python").exists():
            pytest.skip("policy/venv is missing: run `make venv` (make test does)")
        self.stack = stack
        self.project = make_project(tmp)
        deploy_recorded(self.project, stack, tmp)
        self.env = preview_env(self.project, tmp)
        self.project.env = self.env
        self.doc = self.project.stack_config(stack)
        key = Path(self.env["HOME"]) / ".ssh" / "id_ed25519"
        self.secrets = [line for line in key.read_text().splitlines() if "PRIVATE KEY" not in line and line]
        self.secrets += [self.config_secret("rancher.bootstrapPassword")]
        if stack == "ha":
            self.secrets.append(self.config_secret("token"))
        # The encrypted forms in the stack file must not be echoed either.
        self.secrets += [v for v in _secure_values(self.doc)]

    def config_secret(self, path: str) -> str:
        out = self.project.run("config", "get", "--path", path, "--stack", self.stack).stdout.strip()
        assert out and "[secret]" not in out
        return out

    def plan(self, change=None, secret: tuple[str, str] | None = None) -> tuple[dict, str, str, float]:
        changed = copy.deepcopy(self.doc)
        if change:
            change(changed)
        self.project.write_stack_config(self.stack, changed)
        if secret:
            self.project.run("config", "set", "--secret", "--path", secret[0], secret[1], "--stack", self.stack)
        try:
            t = time.monotonic()
            out_dir = Path(self.env["HOME"]).parent
            files = {fmt: out_dir / f"plan.{fmt}" for fmt in ("text", "markdown")}
            for f in files.values():
                f.unlink(missing_ok=True)
            proc = subprocess.run(
                [*PRIVATE_TMP, str(ROOT / ".venv" / "bin" / "python"), "-m", "components.plan", "--stack", self.stack,
                 "--format", "json", *(f"-o{fmt}={f}" for fmt, f in files.items()),
                 "--", "--policy-pack", str(ROOT / "policy")],
                cwd=self.project.dir, env=self.env, capture_output=True, text=True, timeout=600)
            assert proc.returncode in (0, 1), proc.stderr[-3000:]
            outs = {"json": proc.stdout, **{fmt: f.read_text() for fmt, f in files.items()}}
            for fmt, text in outs.items():
                for s in self.secrets:
                    assert s not in text, f"a secret appeared in the {fmt} plan"
            for s in self.secrets:
                assert s not in proc.stderr
            assert proc.returncode == (1 if json.loads(outs["json"])["blocked"] else 0)
            elapsed = time.monotonic() - t
        finally:
            self.project.write_stack_config(self.stack, self.doc)
        return json.loads(outs["json"]), outs["text"], outs["markdown"], elapsed


def _secure_values(doc) -> list[str]:
    out = []

    def walk(v):
        if isinstance(v, dict):
            if "secure" in v:
                out.append(v["secure"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(doc)
    return out


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    return Deployed(tmp_path_factory.mktemp("plan-dev"), "dev")


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    return Deployed(tmp_path_factory.mktemp("plan-ha"), "ha")


def agents_in_sequence() -> bool:
    """Whether the ha stack's agents upgrade one after the other: batches of
    cluster.upgrade.agentBatch (issue 14: a count or a percent, default 10 %, at least 1)."""
    from tests.stacks import load_stack
    raw, _ = load_stack("ha")
    batch = str(((raw.get("cluster") or {}).get("upgrade") or {}).get("agentBatch", "10%"))
    n = len(raw.get("agents") or [])
    size = int(batch) if not batch.endswith("%") else n * int(batch[:-1]) // 100
    return max(size, 1) < n


def hosts(plan) -> list[tuple]:
    return [(h["name"], h["stage"]) for h in plan["hosts"]]


def steps(plan, host) -> dict[str, tuple[str, str]]:
    h = next(h for h in plan["hosts"] if h["name"] == host)
    return {s["name"]: (s["op"], s["effect"]) for s in h["steps"]}


def causes(plan, host) -> list[str]:
    return next(h for h in plan["hosts"] if h["name"] == host)["causes"]


def policies(plan, level=None) -> set[str]:
    return {p["policy"] for p in plan["policies"] if level is None or p["level"] == level}


# ------------------------------------------------------------------ dev: the mobile single server

def test_dev_nothing_changed(dev):
    plan, text, md, _ = dev.plan()
    assert plan["hosts"] == [] and plan["other"] == []
    assert "Nothing changes." in text and "Nothing changes." in md
    t = plan["totals"]
    assert (t["restarts"], t["max_servers_down"], t["destroyed"], t["certificates_reissued"]) == ({}, 0, 0, 0)
    assert not plan["blocked"]


def test_dev_san_added(dev):
    plan, text, md, _ = dev.plan(lambda d: cluster(d)["tlsSans"].append("jj.example.net"))
    assert hosts(plan) == [("jjtestserver", 1)]
    assert causes(plan, "jjtestserver") == ["cluster.tlsSans: 1 added"]
    assert steps(plan, "jjtestserver") == {"jjtestserver-config": ("update", "file"),
                                           "jjtestserver-san-refresh": ("update", "certs")}
    t = plan["totals"]
    assert t["restarts"] == {"jjtestserver": 1} and t["max_servers_down"] == 1
    assert t["certificates_reissued"] == 1 and t["destroyed"] == 0
    assert "the only server restarts" in text
    assert "| stage 1 | jjtestserver (server) | `jjtestserver-san-refresh` | update |" in md


def test_dev_san_removed(dev):
    plan, *_ = dev.plan(lambda d: cluster(d)["tlsSans"].remove("localhost"))
    assert hosts(plan) == [("jjtestserver", 1)]
    # what left the list, not which positions shifted
    assert causes(plan, "jjtestserver") == ["cluster.tlsSans: 1 removed"]
    assert steps(plan, "jjtestserver")["jjtestserver-san-refresh"] == ("update", "certs")
    assert plan["totals"]["certificates_reissued"] == 1


def test_dev_mobile_address_changed_restarts_nothing(dev):
    plan, *_ = dev.plan(lambda d: d["config"][C + "servers"][0].__setitem__("address", "192.168.50.7"))
    assert hosts(plan) == [("jjtestserver", 1)]
    assert causes(plan, "jjtestserver") == ["servers[0].address changed"]
    s = steps(plan, "jjtestserver")
    # every step's connection changes (README: updates only re-check), nothing restarts
    assert {"jjtestserver-service", "jjtestserver-install", "jjtestserver-config", "jjtestserver-stable-ip"} <= set(s)
    assert set(s.values()) == {("update", "nothing")}
    assert plan["totals"]["restarts"] == {} and plan["totals"]["max_servers_down"] == 0


def test_dev_version_bumped(dev):
    plan, *_ = dev.plan(lambda d: cluster(d).__setitem__("version", "v1.33.6+rke2r1"))
    s = next(h for h in plan["hosts"] if h["name"] == "jjtestserver")["steps"]
    got = [(x["name"], x["op"], x["effect"]) for x in s]
    install = got.index(("jjtestserver-install", "update", "install"))
    service = got.index(("jjtestserver-service", "replace", "restart"))
    assert install < service
    # whatever else a version change runs (upgrade guards, snapshots) restarts nothing
    assert {e for _, _, e in got[:service] + got[service + 1:]} <= {"nothing", "file", "install", "drain"}
    assert "replacement forced by triggers" in s[service]["causes"] and "cluster.version changed" in s[service]["causes"]
    assert plan["totals"]["restarts"] == {"jjtestserver": 1}


# ------------------------------------------------------------------ ha: 3 servers, LB, 2 agents

def test_ha_nothing_changed(ha):
    plan, *_ = ha.plan()
    assert plan["hosts"] == [] and plan["totals"]["max_servers_down"] == 0
    assert "ssh-host-key-verification" in policies(plan, "advisory") and not plan["blocked"]


def test_ha_san_added_restarts_servers_one_at_a_time(ha):
    plan, *_ = ha.plan(lambda d: cluster(d)["tlsSans"].append("api.example.internal"))
    assert hosts(plan) == [("rke2-server-1", 1), ("rke2-server-2", 2), ("rke2-server-3", 3)]
    for n in (1, 2, 3):
        assert causes(plan, f"rke2-server-{n}") == ["cluster.tlsSans: 1 added"]
        assert steps(plan, f"rke2-server-{n}")[f"rke2-server-{n}-san-refresh"] == ("update", "certs")
    t = plan["totals"]
    assert t["max_servers_down"] == 1 and t["quorum_kept"] and t["certificates_reissued"] == 3


def test_ha_address_changed(ha):
    plan, *_ = ha.plan(lambda d: d["config"][C + "servers"][1].__setitem__("address", "10.20.0.42"))
    assert [h for h, _ in hosts(plan)] == ["rke2-lb", "rke2-server-2"]
    assert causes(plan, "rke2-server-2") == ["servers[1].address changed"]
    assert set(steps(plan, "rke2-server-2").values()) == {("update", "nothing")}
    assert "loadBalancer backends" not in " ".join(causes(plan, "rke2-lb"))
    assert causes(plan, "rke2-lb") == ["servers[1] (load balancer backend) changed",
                                       "servers / agents (ingress backends) changed"]
    assert steps(plan, "rke2-lb") == {"rke2-lb-haproxy": ("update", "reload")}
    assert plan["totals"]["restarts"] == {}


def test_ha_version_bumped(ha):
    plan, *_ = ha.plan(lambda d: cluster(d).__setitem__("version", "v1.33.6+rke2r1"))
    assert hosts(plan)[:3] == [("rke2-server-1", 1), ("rke2-server-2", 2), ("rke2-server-3", 3)]
    # after the last server; the second agent waits for the first only when the program wires
    # it so (agent batches), as the mock harness reads the registrations independently
    second = 5 if agents_in_sequence() else 4
    assert sorted(hosts(plan)[3:]) == [("rke2-agent-1", 4), ("rke2-agent-2", second)]
    t = plan["totals"]
    assert t["restarts"] == {n: 1 for n in ("rke2-server-1", "rke2-server-2", "rke2-server-3",
                                            "rke2-agent-1", "rke2-agent-2")}
    assert t["max_servers_down"] == 1 and t["quorum_kept"] and t["servers"] == 3


def test_ha_server_added_is_blocked_by_policy(ha):
    plan, text, *_ = ha.plan(lambda d: d["config"][C + "servers"].append(
        {"name": "rke2-server-4", "address": "10.20.0.14"}))
    assert ("rke2-server-4", 5) in hosts(plan)  # after server-1, the load balancer (its guards), 2 and 3
    assert causes(plan, "rke2-server-4") == ["servers[3] added (rke2-server-4)"]
    assert steps(plan, "rke2-server-4")["rke2-server-4-service"] == ("create", "restart")
    assert plan["totals"]["hosts_added"] == ["rke2-server-4"] and plan["totals"]["restarts"] == {}
    assert "ha-odd-server-count" in policies(plan, "mandatory") and plan["blocked"]
    assert "BLOCKED" in text


def test_ha_server_removed(ha):
    plan, *_ = ha.plan(lambda d: d["config"][C + "servers"].pop())
    gone = next(h for h in plan["hosts"] if h["name"] == "rke2-server-3")
    assert gone["op"] == "delete" and gone["stage"] is None and hosts(plan)[-1] == ("rke2-server-3", None)
    s = {x["name"]: (x["op"], x["effect"]) for x in gone["steps"]}
    assert s["rke2-server-3-uninstall"] == ("delete", "uninstall")
    assert [x["name"] for x in gone["steps"]][-1] == "rke2-server-3-uninstall"  # deleted last
    t = plan["totals"]
    assert t["hosts_removed"] == ["rke2-server-3"] and t["destroyed"] >= len(gone["steps"]) + 1
    assert "ha-odd-server-count" in policies(plan, "mandatory")


def test_ha_agent_added(ha):
    plan, *_ = ha.plan(lambda d: d["config"][C + "agents"].append(
        {"name": "rke2-agent-3", "address": "10.20.0.23"}))
    assert causes(plan, "rke2-agent-3") == ["agents[2] added (rke2-agent-3)"]
    assert dict(hosts(plan))["rke2-agent-3"] > dict(hosts(plan))["rke2-lb"]
    assert steps(plan, "rke2-agent-3")["rke2-agent-3-service"] == ("create", "restart")
    assert plan["totals"]["restarts"] == {} and plan["totals"]["max_servers_down"] == 0
    # Rancher's recorded schedulable node count follows; its release does not change.
    assert [(o["name"], o["op"], o["causes"], o["resources"]) for o in plan["other"]] == [
        ("rancher", "update", ["servers / agents (schedulable nodes) changed"], ["rancher"])]


def test_ha_rancher_value_changed(ha):
    plan, *_ = ha.plan(lambda d: d["config"][C + "rancher"].__setitem__("hostname", "rancher2.example.internal"))
    assert plan["hosts"] == []
    assert [(o["name"], o["op"], o["causes"], o["resources"]) for o in plan["other"]] == [
        ("rancher", "update", ["rancher.hostname changed"], ["rancher", "rancher-release"])]


def test_ha_token_changed_is_refused_on_initialised_servers(ha):
    plan, text, md, _ = ha.plan(secret=("token", NEW_TOKEN))
    assert NEW_TOKEN not in text + md + json.dumps(plan)
    for n in (1, 2, 3):
        assert steps(plan, f"rke2-server-{n}") == {f"rke2-server-{n}-token": ("update", "refused")}
        assert causes(plan, f"rke2-server-{n}") == []
    for n in (1, 2):
        assert steps(plan, f"rke2-agent-{n}") == {f"rke2-agent-{n}-token": ("update", "file")}
    assert all(c.startswith("a secret sent on stdin") for h in plan["hosts"] for s in h["steps"]
               for c in s["causes"])
    assert plan["totals"]["refused"] == [f"rke2-server-{n}-token" for n in (1, 2, 3)]
    assert "WILL FAIL: rke2-server-1-token, rke2-server-2-token, rke2-server-3-token" in text


def test_ha_agent_removed_is_drained_then_uninstalled(ha):
    plan, *_ = ha.plan(lambda d: d["config"][C + "agents"].pop())
    gone = next(h for h in plan["hosts"] if h["name"] == "rke2-agent-2")
    assert gone["op"] == "delete" and hosts(plan)[-1] == ("rke2-agent-2", None)
    names = [s["name"] for s in gone["steps"]]
    assert names.index("rke2-agent-2-node") < names.index("rke2-agent-2-service") < len(names) - 1
    assert names[-1] == "rke2-agent-2-uninstall"
    effects = {s["name"]: s["effect"] for s in gone["steps"]}
    assert effects["rke2-agent-2-node"] == "drain" and effects["rke2-agent-2-uninstall"] == "uninstall"
    assert plan["totals"]["agents_drained"] == 1 and plan["totals"]["hosts_removed"] == ["rke2-agent-2"]
    assert causes(plan, "rke2-lb") == ["servers / agents (ingress backends) removed"]


# ------------------------------------------------------------------ day-2 on etcd (issue 14)
# Their text plans are the README's runbook examples (printed with `pytest -s`).
def test_ha_server_rebuilt_runs_its_steps_again_and_removes_its_stale_member(ha):
    def rebuild(d):
        d["config"][C + "servers"][1]["rebuild"] = "disk-2026-12"
    plan, text, *_ = ha.plan(rebuild)
    print(text)
    assert [h for h, _ in hosts(plan)] == ["rke2-server-2"]
    s = steps(plan, "rke2-server-2")
    assert s["rke2-server-2-install"][0] == "replace" and s["rke2-server-2-service"] == ("replace", "restart")
    assert s["rke2-server-2-stale-member"][0] == "replace"  # its trigger: the rebuild label
    assert "rke2-server-2-uninstall" not in s
    assert "servers[1].rebuild" in " ".join(causes(plan, "rke2-server-2"))
    assert plan["totals"]["max_servers_down"] == 1 and not plan["totals"].get("hosts_removed")


def test_ha_snapshot_then_restore(ha):
    plan, text, *_ = ha.plan(lambda d: cluster(d).__setitem__("snapshot", "before-rancher-2-13"))
    print(text)
    assert [h for h, _ in hosts(plan)] == ["rke2-server-1"]
    assert steps(plan, "rke2-server-1") == {"rke2-server-1-snapshot": ("create", "file")}
    plan, text, *_ = ha.plan(lambda d: cluster(d).__setitem__("restore", "before-rancher-2-13-rke2-server-1-1765000000"))
    print(text)
    first = steps(plan, "rke2-server-1")
    assert first["rke2-server-1-restore-check"][0] == "create" and first["rke2-server-1-restore"][0] == "create"
    for s in ("rke2-server-2", "rke2-server-3"):
        assert steps(plan, s)[f"{s}-restore-stop"][0] == "create"
        assert steps(plan, s)[f"{s}-restore-rejoin"] == ("create", "restore")


def test_ha_first_server_removed_the_next_one_guards(ha):
    plan, text, *_ = ha.plan(lambda d: d["config"][C + "servers"].pop(0))
    print(text)
    gone = next(h for h in plan["hosts"] if h["name"] == "rke2-server-1")
    assert gone["op"] == "delete" and gone["stage"] is None
    assert {x["name"]: (x["op"], x["effect"]) for x in gone["steps"]}["rke2-server-1-uninstall"] == ("delete", "uninstall")
    new_first = steps(plan, "rke2-server-2")
    assert new_first["rke2-server-2-membership-guard"][0] == "create"
    order = [h for h, _ in hosts(plan)]
    assert order.index("rke2-server-2") < order.index("rke2-server-3")


def test_ha_version_bump_runbook(ha):
    plan, text, *_ = ha.plan(lambda d: cluster(d).__setitem__("version", "v1.33.6+rke2r1"))
    print(text)
    first = steps(plan, "rke2-server-1")
    assert first["rke2-server-1-upgrade-guard"] == ("replace", "file")  # the snapshot
