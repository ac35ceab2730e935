"""Issue 10 item 6: the uninstall step names its node and role on the host, so the delete of
an old name's step (Pulumi deletes it at the end of the update that created the new one)
recognises a host the stack now manages under another name or role."""

from tests.harness import evaluate
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("ha")


def values(script: str) -> dict[str, str]:
    """NAME=value assignments at the top of a rendered step command."""
    out = {}
    for line in script.split("\n"):
        key, sep, value = line.partition("=")
        if sep and key.isupper() and key.replace("_", "").isalnum():
            out[key] = value.strip("'")
    return out


def test_uninstall_step_create_and_delete_name_node_and_role():
    ev = evaluate(RAW, SECRETS)
    for node in RAW["servers"]:
        step = ev.by_name(f"{node['name']}-uninstall")
        create, delete = values(step.input("create")), values(step.input("delete"))
        assert (create["ACTION"], create["NODE"], create["ROLE"]) == ("register", node["name"], "server")
        assert (delete["ACTION"], delete["NODE"], delete["ROLE"]) == ("uninstall", node["name"], "server")
    assert RAW["agents"]
    for node in RAW["agents"]:
        delete = values(ev.by_name(f"{node['name']}-uninstall").input("delete"))
        assert (delete["NODE"], delete["ROLE"]) == (node["name"], "agent")


def test_renamed_node_gets_a_new_uninstall_step_for_the_same_host():
    renamed = [dict(RAW["servers"][0], name="rke2-server-renamed"), *RAW["servers"][1:]]
    ev = evaluate(with_changes(RAW, servers=renamed), SECRETS)
    step = ev.by_name("rke2-server-renamed-uninstall")
    assert values(step.input("create"))["NODE"] == "rke2-server-renamed"
    assert step.input("connection")["host"] == RAW["servers"][0]["address"]
