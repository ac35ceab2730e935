"""Property-based: hostile stack config is refused, or accepted and then inert everywhere.

For each class of config key, hypothesis generates hostile values (shell metacharacters,
command substitutions, newlines, zone ids, NUL, unicode look-alikes, haproxy/keepalived
directives, huge lists) mixed with valid ones, puts ONE such value into an otherwise valid
stack and checks the contract (issue 11):

- refused: a ConfigError whose key is the generated key (or a named related key, e.g. the
  other half of a duplicate), on one line, starting `rke2-rancher:<key>: `, and never
  containing a value that is or sits under a secret;
- accepted: the whole program is evaluated under Pulumi mocks (tests/harness.py), and every
  remote command it registers (create, update, delete) passes `bash -n`; the script's
  header, the only place config values go, consists of assignments only, and bash reads
  back exactly the values Python quoted (a canary file that the injected commands would
  create never appears); every config.yaml on stdin is YAML with only the expected keys;
  the haproxy.cfg passes the real `haproxy -c` with exactly the expected sections and
  server lines; keepalived.conf passes `keepalived -t` (when the machine allows a private
  network namespace) with exactly the expected blocks.

EXAMPLES (env RKE2_RANCHER_HYPOTHESIS_EXAMPLES, default 25) is the max_examples of every
property; the module counts the cases run and prints the total (pytest -s shows it;
test_zz_cases_were_run asserts it).
"""

from __future__ import annotations

import atexit
import copy
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components import render
from components.config import ETCD_SNAPSHOT_RKE2_KEYS, ConfigError, is_ip, parse_config
from components.scripts import SCRIPTS_DIR
from tests.harness import evaluate
from tests.stacks import SAMPLE_SECRETS

EXAMPLES = int(os.environ.get("RKE2_RANCHER_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])
CASES: Counter = Counter()

# Injected commands would create this file; it must never exist.
_WORK = Path(tempfile.mkdtemp(prefix="rke2-hostile-"))
atexit.register(shutil.rmtree, _WORK, True)
CANARY = _WORK / "canary-pwned"
TOUCH = f"touch {CANARY}"
SECRET_MARK = "Zq9SECRETmark"

INJECTIONS = [
    "%eth0", "%25eth0", f"%'$({TOUCH})'", f"%x\n{TOUCH}\n", "\n", "\r\n", "\x00", "\t", " ",
    f";{TOUCH}", f"$({TOUCH})", f"`{TOUCH}`", f"' ; {TOUCH} ; '", f'" ; {TOUCH} ; "', "\\", "\\\n",
    "#", "{a,b}", "[1-2]", "*", "?", "|", "&", ">", "<", "!", "~", "^", "=", ":", "/", "..", "+", "@",
    "\u200b", "\u2028", "\u202e", "\uff11", "\u0663", "\u00e9", "\U0001f600",
    "\nglobal\n    stats socket /tmp/hostile.sock level admin\n",
    "\n    server evil 192.0.2.66:6443\n",
    "\n}\nvrrp_script evil {\n    script \"/bin/touch /tmp/x\"\n}\n",
    "\nextra-key: injected\n", "': x\n",
]


def hostile(valid: list[str]) -> st.SearchStrategy[str]:
    """Valid values, and valid values with an injection prepended, appended or inserted."""
    base = st.sampled_from(valid)
    inj = st.sampled_from(INJECTIONS)
    return st.one_of(
        base, base,
        st.builds(lambda b, i: b + i, base, inj),
        st.builds(lambda b, i: i + b, base, inj),
        st.builds(lambda b, i, k: b[:k % (len(b) + 1)] + i + b[k % (len(b) + 1):], base, inj, st.integers(0, 64)),
        st.builds(lambda b, i, j: b + i + j, base, inj, inj),
        st.text(min_size=1, max_size=24),
    )


# -- base stacks ---------------------------------------------------------------------------

def _single() -> dict:
    return {
        "ssh": {"user": "root", "privateKey": SAMPLE_SECRETS["ssh.privateKey"]},
        "cluster": {"hostname": "rke2.example.internal", "version": "v1.33.5+rke2r1",
                    "tlsSans": ["rke2.example.internal"]},
        "servers": [{"name": "rke2-server-1", "address": "10.20.0.11"}],
        "certManager": {"version": "v1.16.5"},
        "rancher": {"version": "2.12.3", "replicas": 1, "bootstrapPassword": SAMPLE_SECRETS["rancher.bootstrapPassword"]},
        "token": SAMPLE_SECRETS["token"],
    }


def _mobile() -> dict:
    raw = _single()
    raw["cluster"]["mobile"] = True
    return raw


def _ha() -> dict:
    raw = _single()
    raw["servers"] = [{"name": "rke2-server-1", "address": "10.20.0.11"},
                      {"name": "rke2-server-2", "address": "10.20.0.12"}]
    raw["agents"] = [{"name": "rke2-agent-1", "address": "10.20.0.21"}]
    raw["loadBalancer"] = {"name": "rke2-lb", "address": "10.20.0.5", "vip": "10.20.0.100"}
    raw["rancher"]["replicas"] = 3
    return raw


def _snapshots() -> dict:
    raw = _single()
    raw["cluster"]["etcdSnapshots"] = {"s3": {"bucket": "rke2-snapshots"}}
    return raw


BASES = {"single": _single, "mobile": _mobile, "ha": _ha, "snapshots": _snapshots}
SECRET_TOPS = {"rke2-rancher:ssh", "rke2-rancher:token", "rke2-rancher:rancher"}


def _set(raw: dict, path: tuple, value) -> dict:
    new = copy.deepcopy(raw)
    node = new
    for p in path[:-1]:
        node = node.setdefault(p, {}) if isinstance(p, str) else node[p]
    node[path[-1]] = value
    return new


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# -- checks on accepted config ---------------------------------------------------------------

_ASSIGN_RE = re.compile(r"[A-Z][A-Z0-9_]*=", re.ASCII)


def _inner_script(command: str) -> str:
    argv = shlex.split(command)
    assert argv[:2] in (["bash", "-c"], ["sudo", "-n"]), argv[:3]
    assert argv[-1] == "rke2-rancher" and len(argv) in (4, 6), argv
    return argv[-2]


def check_scripts(commands: list[str]) -> int:
    """bash -n on every remote command and its script; config values only in the header, as
    assignments bash reads back unchanged. Returns the number of scripts checked."""
    work = Path(tempfile.mkdtemp(dir=_WORK))
    driver = ["set -u"]
    expected: list[list[str]] = []
    for i, command in enumerate(commands):
        script = _inner_script(command)
        name = re.match(r"#!/bin/bash\n# rke2-rancher: ([a-z0-9.-]+)\n", script)
        assert name, script[:80]
        template = (SCRIPTS_DIR / "lib.sh").read_text() + (SCRIPTS_DIR / name.group(1)).read_text()
        assert script.endswith(template), f"{name.group(1)}: config text outside the header"
        header = script[:-len(template)]
        tokens = shlex.split(header, comments=True)
        assert all(_ASSIGN_RE.match(t) for t in tokens), tokens
        keys = [t.split("=", 1)[0] for t in tokens]
        expected.append([t.split("=", 1)[1] for t in tokens])
        (work / f"{i}.cmd").write_text(command)
        (work / f"{i}.sh").write_text(script)
        (work / f"{i}.header").write_text(header)
        reads = " ".join(f'"${{{k}}}"' for k in keys)
        driver += [f"bash -n {work}/{i}.cmd || echo 'SYNTAX {i}.cmd' >&2",
                   f"bash -n {work}/{i}.sh || echo 'SYNTAX {i}.sh' >&2",
                   f"( . {work}/{i}.header; printf '%s\\0' {reads} ) > {work}/{i}.out"]
    res = subprocess.run(["bash", "-c", "\n".join(driver)], cwd=work, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert res.returncode == 0 and "SYNTAX" not in res.stderr, res.stderr
    for i, values in enumerate(expected):
        got = (work / f"{i}.out").read_text().split("\0")[:-1]
        assert got == values, (got, values)
    assert not CANARY.exists(), "an injected command ran"
    shutil.rmtree(work)
    return len(commands)


HAPROXY_SECTIONS = {"global", "defaults"}


def check_haproxy(cfg: str, stack) -> None:
    sections = [line for line in cfg.splitlines() if line and not line.startswith((" ", "#"))]
    names = {"rke2-supervisor", "kube-apiserver"} | ({"ingress-http", "ingress-https"} if render.ingress_nodes(stack) else set())
    resolvers = ["resolvers system"] if any(not is_ip(render.lb_backend_address(stack, n))
                                            for n in (*stack.servers, *stack.agents)) else []
    assert sorted(sections) == sorted(["global", "defaults"] + resolvers + [f"{kind} {n}" for n in names
                                                                  for kind in ("frontend", "backend")]), sections
    servers = [line for line in cfg.splitlines() if line.startswith("    server ")]
    assert len(servers) == 2 * len(stack.servers) + 2 * len(render.ingress_nodes(stack)) * bool(
        render.ingress_nodes(stack)), servers
    for line in servers:
        assert re.fullmatch(r"    server [a-z0-9.-]+ (\[[0-9a-f:.]+\]|[0-9.]+|[a-z0-9.-]+):[0-9]+ check", line), line
    if shutil.which("haproxy"):
        path = _WORK / "haproxy.cfg"
        path.write_text(cfg)
        res = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr


def _keepalived_netns() -> bool:
    if not shutil.which("keepalived") or not shutil.which("unshare"):
        return False
    res = subprocess.run(["unshare", "--net", "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p0"],
                         capture_output=True)
    return res.returncode == 0


KEEPALIVED_T = _keepalived_netns()


def check_keepalived(conf: str, stack) -> None:
    lb = stack.load_balancer
    blocks = [line for line in conf.splitlines() if line and not line.startswith((" ", "#", "}"))]
    assert blocks == ["global_defs {", "vrrp_track_process track_haproxy {", "vrrp_instance rke2_vip {"], blocks
    assert f"\n    interface {lb.vip_interface}\n" in conf and f"\n        {lb.vip}\n    }}\n" in conf
    if KEEPALIVED_T:
        path = _WORK / "keepalived.conf"
        path.write_text(conf)
        iface = shlex.quote(lb.vip_interface)
        res = subprocess.run(["unshare", "--net", "sh", "-c",
                              f"ip link add {iface} type veth peer name rke2peer0 && keepalived -t -f {path}"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr


CONFIG_KEYS = {"server", "node-name", "node-ip", "advertise-address", "node-label", "node-taint", "tls-san",
               "write-kubeconfig-mode", "cni", "cluster-cidr", "service-cidr", "cluster-dns", "disable",
               "system-default-registry", "profile", "pod-security-admission-config-file",
               *ETCD_SNAPSHOT_RKE2_KEYS.values()}


def check_accepted(raw: dict, secrets: set[str], preview: bool = False) -> None:
    stack = parse_config(raw, secrets)
    ev = evaluate(raw, secrets, preview=preview)
    commands = []
    for reg in ev.registrations:
        if reg.type != "command:remote:Command":
            continue
        for field in ("create", "update", "delete"):
            if reg.input(field):
                commands.append(reg.input(field))
        if f"DEST={render.SERVER_CONFIG_PATH}\n" in reg.input("create"):
            doc = yaml.safe_load(reg.input("stdin"))
            extra = set(stack.cluster.extra_config) | set(stack.cluster.agent_extra_config)
            assert isinstance(doc, dict) and set(doc) <= CONFIG_KEYS | extra, doc
            if stack.cluster.etcd_snapshots is not None:
                CASES["etcdSnapshots"] += 1
                assert {k: doc[k] for k in doc if k in ETCD_SNAPSHOT_RKE2_KEYS.values()} == \
                    render.etcd_snapshot_keys(stack), doc
        if f"DEST={render.REGISTRIES_PATH}\n" in reg.input("create"):
            CASES["registries.yaml"] += 1
            check_registries_yaml(reg.input("stdin"), stack)
        if reg.name.endswith("-images"):
            CASES["images"] += 1
            lines = reg.input("stdin").splitlines()
            assert len(lines) == len(stack.cluster.images_archives), lines
            for line, archive in zip(lines, stack.cluster.images_archives):
                # images.sh splits each line into three words with `read -r sum name link`.
                assert line.split(" ") == [archive.sha256, archive.name, archive.url], line
                assert re.fullmatch(r"[0-9a-f]{64} [A-Za-z0-9][A-Za-z0-9._-]* (https|file):[^\s]+", line), line
        if reg.name.endswith("-san-refresh"):
            for line in reg.input("stdin").splitlines():
                assert re.fullmatch(r"DNS:(\*\.)?[a-z0-9.-]+|IP Address:[0-9A-F:.]+", line), line
    CASES["scripts"] += check_scripts(commands)
    if stack.load_balancer is not None:
        check_haproxy(ev.by_name(f"{stack.load_balancer.name}-haproxy").input("stdin"), stack)
        if stack.load_balancer.vip:
            check_keepalived(ev.by_name(f"{stack.load_balancer.name}-keepalived").input("stdin"), stack)


def check_registries_yaml(text: str, stack) -> None:
    """registries.yaml as RKE2 reads it (rancher/wharfie pkg/registries/types.go): only the
    keys of that format, every value what the validated config holds."""
    doc = yaml.safe_load(text)
    assert set(doc) == {"mirrors", "configs"}, doc
    reg = stack.registries
    assert set(doc["mirrors"]) == set(reg.mirrors) and set(doc["configs"]) == set(reg.configs)
    for host, m in doc["mirrors"].items():
        assert set(m) <= {"endpoint", "rewrite"} and m["endpoint"] == list(reg.mirrors[host].endpoints), m
        assert m.get("rewrite", {}) == dict(reg.mirrors[host].rewrites)
    for host, c in doc["configs"].items():
        assert set(c) <= {"auth", "tls"}, c
        assert set(c.get("tls", {})) <= {"ca_file", "cert_file", "key_file", "insecure_skip_verify"}, c
        assert set(c.get("auth", {})) in (set(), {"username", "password"}, {"identity_token"}), c


def check_refused(err: ConfigError, path: tuple, related: tuple[str, ...], value) -> None:
    key = _dotted(path)
    message = str(err)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"rke2-rancher:{err.key}: "), message
    assert err.key == key or err.key.startswith(key + ".") or err.key.startswith(key + "[") or \
        any(re.fullmatch(r, err.key) for r in related), (key, message)


def run_case(base: str, path: tuple, value, related: tuple[str, ...] = (), secret: bool = False,
             preview: bool = False) -> str:
    raw = _set(BASES[base](), path, value)
    secrets = set(SECRET_TOPS)
    if secret:
        secrets.add(f"rke2-rancher:{path[0]}")
    CASES["total"] += 1
    try:
        parse_config(raw, secrets)
    except ConfigError as err:
        CASES["refused"] += 1
        check_refused(err, path, related, value)
        if secret:
            assert SECRET_MARK not in str(err), str(err)
        return "refused"
    CASES["accepted"] += 1
    check_accepted(raw, secrets, preview)
    return "accepted"


# -- key classes -------------------------------------------------------------------------------

ADDRESS_RELATED = (r"(servers|agents)\[\d+\]\.(address|nodeIp)", r"loadBalancer\.(address|vip)", r"cluster\.mobile")
IP_VALID = ["10.20.0.31", "fd00::31", "FD00:0::31", "192.0.2.7", "10.20.0.011", "fe80::1", "::ffff:10.0.0.1",
            "0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "127.0.0.1"]
ADDRESS_VALID = IP_VALID + ["node-31.example.internal", "rke2-server-9", "NODE.example"]

ADDRESS_KEYS = [
    ("single", ("servers", 0, "address")),
    ("single", ("servers", 0, "nodeIp")),
    ("ha", ("agents", 0, "address")),
    ("ha", ("agents", 0, "nodeIp")),
    ("ha", ("servers", 1, "address")),
    ("ha", ("loadBalancer", "address")),
    ("ha", ("loadBalancer", "vip")),
    ("mobile", ("cluster", "mobileNodeIp")),
]


@pytest.mark.parametrize("base, path", ADDRESS_KEYS, ids=[_dotted(p) for _, p in ADDRESS_KEYS])
@SETTINGS
@given(value=hostile(ADDRESS_VALID))
def test_addresses(base, path, value):
    run_case(base, path, value, ADDRESS_RELATED)


NET_KEYS = [("cluster", "clusterCidr"), ("cluster", "serviceCidr"), ("cluster", "clusterDns")]
NET_VALID = ["10.50.0.0/16", "10.43.0.0/16", "fd00:42::/56", "10.42.0.1/16", "10.43.0.10", "10.43.0.0",
             "10.60.0.10", "fd00::10", "10.42.0.0/15"]


@pytest.mark.parametrize("path", NET_KEYS, ids=[_dotted(p) for p in NET_KEYS])
@SETTINGS
@given(value=hostile(NET_VALID))
def test_cluster_networks(path, value):
    run_case("single", path, value, (r"cluster\.(clusterCidr|serviceCidr|clusterDns)",))


NAME_KEYS = [("single", ("cluster", "hostname")), ("single", ("rancher", "hostname")),
             ("single", ("servers", 0, "name")), ("ha", ("loadBalancer", "name"))]
NAME_VALID = ["rke2.example.internal", "rke2-server-9", "jjtestserver", "a" * 63, "x." * 120 + "x", "Upper.example",
              "under_score", "1.2.3.4", "10.0.0.011", "-lead.example", "*.example.com"]


@pytest.mark.parametrize("base, path", NAME_KEYS, ids=[_dotted(p) for _, p in NAME_KEYS])
@SETTINGS
@given(value=hostile(NAME_VALID))
def test_names(base, path, value):
    run_case(base, path, value, (r"(servers|agents)\[\d+\]\.name", r"loadBalancer\.name"))


@SETTINGS
@given(value=st.one_of(hostile(ADDRESS_VALID + NAME_VALID),
                       st.lists(hostile(ADDRESS_VALID + NAME_VALID), min_size=0, max_size=5),
                       st.lists(st.sampled_from(ADDRESS_VALID), min_size=250, max_size=300)))
def test_tls_sans(value):
    run_case("single", ("cluster", "tlsSans"), value if isinstance(value, list) else [value])


PATTERN_KEYS = {
    ("ssh", "user"): ["root", "ubuntu", "rke2_admin", "Root", "a" * 33],
    ("cluster", "version"): ["v1.33.5+rke2r1", "v1.33.9+rke2r2", "stable", "v1.33.5", "latest"],
    ("cluster", "writeKubeconfigMode"): ["0600", "0640", "644", "0800"],
    ("cluster", "certificateRotation"): ["2026-11-22", "rotate:1", "r.1_x"],
    ("cluster", "mobileInterface"): ["auto", "dummy", "loopback"],
    ("cluster", "cni"): ["canal", "calico", "cilium", "flannel", "none"],
    ("rancher", "letsEncryptEmail"): ["ops@example.com", "a+b@example.org"],
    ("rancher", "tlsSource"): ["rancher", "secret", "letsEncrypt"],
    ("cluster", "profile"): ["cis", "etcd", "cis-1.23"],
    ("cluster", "systemDefaultRegistry"): ["registry.example.com:5000", "[fd00::5]:5000", "10.0.0.5", "*",
                                           "reg.example:0", "Reg.example"],
}


@pytest.mark.parametrize("path", list(PATTERN_KEYS), ids=[_dotted(p) for p in PATTERN_KEYS])
@SETTINGS
@given(data=st.data())
def test_patterns_and_choices(path, data):
    value = data.draw(hostile(PATTERN_KEYS[path]))
    run_case("mobile" if path[1].startswith("mobile") else "single", path, value,
             (r"rancher\.(letsEncryptEmail|version)", r"certManager\.enabled"))


# cluster.etcdSnapshots (issue 14): one property over its string fields, on a stack with an S3 target.
ETCD_SNAPSHOT_VALUES = {
    ("cluster", "etcdSnapshots", "schedule"): ["0 */12 * * *", "@daily", "@every 1h30m", "*/5 1-3 * jan-mar mon-fri",
                                               "60 * * * *", "0 0 * * 7", "0 0 * *"],
    ("cluster", "etcdSnapshots", "s3", "bucket"): ["rke2-snapshots", "a.b-c", "ab", "10.0.0.1", "Snap_Shots"],
    ("cluster", "etcdSnapshots", "s3", "endpoint"): ["minio.internal:9000", "s3.amazonaws.com", "[fd00::9]:9000",
                                                     "10.0.0.9", "https://minio.internal"],
    ("cluster", "etcdSnapshots", "s3", "folder"): ["prod", "rke2/prod", "a/../b", "/lead"],
    ("cluster", "etcdSnapshots", "s3", "region"): ["us-east-1", "garage", "us east"],
    ("cluster", "etcdSnapshots", "s3", "endpointCa"): ["/etc/pki/minio-ca.pem", "relative.pem"],
}


@SETTINGS
@given(data=st.data())
def test_etcd_snapshots(data):
    path = data.draw(st.sampled_from(sorted(ETCD_SNAPSHOT_VALUES)))
    run_case("snapshots", path, data.draw(hostile(ETCD_SNAPSHOT_VALUES[path])))


@SETTINGS
@given(value=hostile(["eth0", "ens3", "bond0.100", "a" * 15, "a" * 16]))
def test_vip_interface(value):
    run_case("ha", ("loadBalancer", "vipInterface"), value)


URL_VALID = ["https://get.rke2.io", "https://mirror.example.internal/rke2/install.sh", "file:///opt/rke2/install.sh",
             "https://[fd00::5]:8443/install.sh", "https://10.0.0.5/i.sh?x=1&y=2", "http://get.rke2.io",
             "https://get.rke2.io/{a,b}", "https://user:pw@get.rke2.io/", "ftp://x/y", "https://fe80::1%25eth0/x"]


@pytest.mark.parametrize("path", [("cluster", "installScriptUrl"), ("rancher", "repository")],
                         ids=["cluster.installScriptUrl", "rancher.repository"])
@SETTINGS
@given(value=hostile(URL_VALID))
def test_urls(path, value):
    run_case("single", path, value)


@pytest.mark.parametrize("path", [("cluster", "artifactDir"), ("ssh", "privateKeyPath")],
                         ids=["cluster.artifactDir", "ssh.privateKeyPath"])
@SETTINGS
@given(value=hostile(["/opt/rke2-artifacts", "/var/lib/x/../y", "relative/dir", "~/.ssh/id_ed25519", "/"]))
def test_paths(path, value):
    raw_path = path
    if path == ("ssh", "privateKeyPath"):
        # Not both a key and a key path: this class replaces the inline key by a path.
        base = _single()
        base["ssh"].pop("privateKey")
        BASES["nokey"] = lambda: copy.deepcopy(base)
        outcome = run_case("nokey", raw_path, value, preview=True)  # no key file: a preview goes on
    else:
        outcome = run_case("single", raw_path, value)
    assert outcome in ("accepted", "refused")


@pytest.mark.parametrize("field, valid", [
    ("labels", ["node-role.example.com/worker=true", "k=v", "a/b/c=d", "k=" + "v" * 64]),
    ("taints", ["dedicated=infra:NoSchedule", "k:NoExecute", "k=v:Sometimes"]),
], ids=["labels", "taints"])
@SETTINGS
@given(data=st.data())
def test_labels_and_taints(field, valid, data):
    value = data.draw(st.one_of(st.lists(hostile(valid), min_size=1, max_size=4),
                                st.lists(st.sampled_from(valid), min_size=250, max_size=260)))
    run_case("single", ("servers", 0, field), value)


RKE2_KEYS = ["profile", "selinux", "kubelet-arg", "kubelet-arg+", "system-default-registry", "etcd-s3-bucket",
             "token", "agent-token", "data-dir", "server", "etcd-s3-secret-key", "etcd-s3-access-key",
             "cluster-reset", "write-kubeconfig", "supervisor-port", "https-listen-port", "datastore-endpoint",
             "ingress-controller", "disable", "Profile", "my-password", "kube-apiserver-arg"]
EXTRA_VALUE = st.one_of(hostile(["cis", "reg.example:5000", "true", "max-pods=200", "none", "x"]), st.booleans(),
                        st.integers(-5, 10**6), st.lists(hostile(["a=1", "b=2"]), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))


@pytest.mark.parametrize("section", ["extraConfig", "agentExtraConfig"])
@SETTINGS
@given(data=st.data())
def test_extra_config(section, data):
    keys = st.one_of(st.sampled_from(RKE2_KEYS), hostile(RKE2_KEYS))
    value = data.draw(st.dictionaries(keys, EXTRA_VALUE, min_size=1, max_size=3))
    run_case("ha", ("cluster", section), value, (r"cluster\.extraConfig.*", r"cluster\.agentExtraConfig.*",
                                                 r"cluster\.mobile"))


REGISTRY_HOSTS = ["docker.io", "registry.example.internal:5000", "[fd00::9]:5000", "10.20.0.9:5000", "*",
                  "Docker.io", "reg.example:", "fd00::9"]
ENDPOINTS = ["https://registry.example.internal:5000", "http://10.20.0.9:5000/v2/hub", "https://[fd00::9]:5000",
             "ftp://x.example", "https://u:p@x.example"]
REWRITES = ["^rancher/(.*)", "(.*)", "(?=x)", "\\1", "("]
PATHS = ["/etc/pki/registry-ca.pem", "/etc/pki/client.pem", "relative.pem", "/"]


@SETTINGS
@given(data=st.data())
def test_registries(data):
    """Mirror and config hosts, endpoints, rewrites and TLS paths: ONE of them hostile, the rest
    valid (so accepted stacks are common too); credentials are in test_secrets_never_shown and
    tests/unit/test_registries.py."""
    target = data.draw(st.sampled_from(["mirror host", "config host", "endpoint", "rewrite", "tls path", "skip"]))

    def pick(kind: str, valid: list[str], count: int = 3):
        return data.draw(hostile(valid) if target == kind else st.sampled_from(valid[:count]))

    mirror = {"endpoints": [pick("endpoint", ENDPOINTS)]}
    if data.draw(st.booleans()):
        mirror["rewrites"] = {pick("rewrite", REWRITES, 2): data.draw(st.sampled_from(["m/$1", "", "x"]))}
    tls = {"caFile": pick("tls path", PATHS, 2)}
    if data.draw(st.booleans()):
        tls |= {"certFile": pick("tls path", PATHS, 2), "keyFile": PATHS[0]}
    if data.draw(st.booleans()):
        tls["insecureSkipVerify"] = data.draw(st.one_of(st.booleans(), hostile(["true", "yes"])) if target == "skip"
                                              else st.booleans())
    value = {"mirrors": {pick("mirror host", REGISTRY_HOSTS, 5): mirror},
             "configs": {pick("config host", REGISTRY_HOSTS, 5): {"tls": tls}}}
    run_case("ha", ("registries",), value)


ARCHIVE_URLS = ["https://mirror.example.internal/rke2/rke2-images.linux-amd64.tar.zst", "file:///srv/images/extra.tar",
                "https://[fd00::9]/i.tar.gz", "http://mirror.example/a.tar", "https://m.example/a.exe",
                "https://m.example/dir/"]


@SETTINGS
@given(data=st.data())
def test_image_archives(data):
    hostile_url = data.draw(st.booleans())
    archives = data.draw(st.lists(st.fixed_dictionaries({
        "url": hostile(ARCHIVE_URLS) if hostile_url else st.sampled_from(ARCHIVE_URLS[:3]),
        "sha256": st.sampled_from(["ab" * 32, "AB" * 32]) if hostile_url else hostile(["ab" * 32, "AB" * 32, "a" * 63,
                                                                                        "g" * 64])}),
        min_size=1, max_size=3))
    run_case("ha", ("cluster", "imagesArchives"), archives)


@SETTINGS
@given(data=st.data())
def test_host_keys(data):
    ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForTests0000000000000000000000"
    rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDw4o6gJy8UtmIbkcpnkO3Kwc4qsEnSctNMHrLBKF0EMKZ0sLqvl"
    addr = data.draw(hostile(["10.20.0.11", "10.20.0.12", "10.20.0.5", "10.20.0.21", "10.20.0.100",
                              "10.20.0.99", "10.020.0.11", "::ffff:10.20.0.11"]))
    key = data.draw(hostile([ed, rsa, "ssh-dss AAAAB3NzaC1kc3MAAACBAP", ed + " comment@host"]))
    outcome = run_case("ha", ("ssh", "hostKeys"), {addr: key})
    if outcome == "accepted":
        ev_stack = parse_config(_set(_ha(), ("ssh", "hostKeys"), {addr: key}), SECRET_TOPS)
        (norm,) = ev_stack.ssh.host_keys
        assert norm in {n.address for n in (*ev_stack.servers, *ev_stack.agents)} | {ev_stack.load_balancer.address}


@SETTINGS
@given(data=st.data())
def test_integers(data):
    path = data.draw(st.sampled_from([("ssh", "port"), ("cluster", "readyTimeoutSeconds"), ("rancher", "replicas")]))
    value = data.draw(st.one_of(st.integers(-10, 10**6), hostile(["22", "600", "3", "2.5", "0x10"]),
                                st.booleans(), st.floats(allow_nan=True)))
    run_case("single", path, value)


# -- secrets ----------------------------------------------------------------------------------

SECRET_VALUE = st.builds(lambda a, b: a + SECRET_MARK + b, st.sampled_from(["", "-----BEGIN KEY-----\n", "pw "]),
                         hostile(["x", "y\nz", "K10abc::server:p"]))


@pytest.mark.parametrize("path", [
    ("ssh", "privatekey"), ("ssh", "privateKey"), ("rancher", "bootstrapPasword"), ("rancher", "bootstrapPassword"),
    ("token",), ("tokn",), ("ssh",), ("rancher",), ("cluster", "etcdS3"), ("cluster", "etcdS3", "secretKey"),
    ("cluster", "etcdS3", "secretkey"), ("cluster", "extraConfig", "etcd-s3-secret-key"),
    ("cluster", "extraConfig", "etcd-s3-secretkey"), ("servers", 0, "password"),
    ("registries", "configs", "reg.example", "auth", "password"), ("registries", "configs", "reg.example", "auth", "token"),
    ("registries", "configs", "reg.example", "auth"), ("registries", "configs", "reg.example", "auth", "pasword"),
    ("registries", "configs"), ("registries",),
], ids=lambda p: _dotted(p))
@SETTINGS
@given(value=st.one_of(SECRET_VALUE, st.lists(SECRET_VALUE, min_size=1, max_size=2),
                       st.dictionaries(st.sampled_from(["a", "privateKey"]), SECRET_VALUE, min_size=1)))
def test_secrets_never_shown(path, value):
    """Nothing here is marked secret beyond the sample stack's own secret keys: the program
    must know by itself that these keys may carry secrets."""
    raw = _single()
    if path[:2] == ("cluster", "etcdS3") and len(path) == 3:
        raw["cluster"]["etcdS3"] = {"accessKey": "AKIA", "secretKey": "k"}
    if path[:4] == ("registries", "configs", "reg.example", "auth") and len(path) == 5:
        raw["registries"] = {"configs": {"reg.example": {"auth": {"username": "puller"}}}}
    raw = _set(raw, path, value)
    CASES["total"] += 1
    try:
        parse_config(raw, {"rke2-rancher:rancher", "rke2-rancher:token"})
    except ConfigError as err:
        CASES["refused"] += 1
        assert SECRET_MARK not in str(err), str(err)
        assert "\n" not in str(err)
        return
    # Accepted (a secret where one belongs): it never reaches a plain input of any resource.
    CASES["accepted"] += 1
    ev = evaluate(raw, {"rke2-rancher:rancher", "rke2-rancher:token", "rke2-rancher:ssh"})
    from tests.harness import plaintext_outside_secrets
    for reg in ev.registrations:
        assert SECRET_MARK not in plaintext_outside_secrets(reg.raw_inputs), reg.urn


@pytest.mark.parametrize("base, path", [("single", ("cluster", "hostname")), ("single", ("servers", 0, "address")),
                                        ("single", ("cluster", "clusterDns")), ("ha", ("loadBalancer", "vip"))],
                         ids=lambda p: p if isinstance(p, str) else _dotted(p))
@SETTINGS
@given(value=st.builds(lambda a, b: a + SECRET_MARK + b, hostile(["", "10.0.0.1", "x"]), hostile(["", "y"])))
def test_values_under_a_secret_section_never_shown(base, path, value):
    """A whole section marked secret (pulumi config set --secret): no value under it is shown."""
    assert run_case(base, path, value, (r".*",), secret=True) == "refused"


# -- stable-ip.sh: the helper it writes runs at every boot as root -----------------------------

_STUB_IP = """#!/bin/sh
n=$(ls "$IP_LOG" | wc -l)
for a in "$@"; do printf '%s\\0' "$a"; done > "$IP_LOG/$((n + 100))"
case "$1 $2" in "addr add") exit 0 ;; *) exit 1 ;; esac
"""


@SETTINGS
@given(stable_ip=hostile(["10.255.255.1", "fd00::1"]).filter(lambda v: "\x00" not in v),
       method=hostile(["auto", "dummy", "loopback"]).filter(lambda v: "\x00" not in v))
def test_stable_ip_helper_takes_values_inert(stable_ip, method):
    """Not through config (which refuses all of these): stable-ip.sh itself, rendered with any
    value, writes a helper whose values are plain data: `sh -n` passes, the helper hands the
    address to `ip` as one argument, and no injected command runs."""
    from components import scripts

    CASES["total"] += 1
    CASES["stable-ip"] += 1
    work = Path(tempfile.mkdtemp(dir=_WORK))
    (work / "bin").mkdir()
    (work / "bin" / "ip").write_text(_STUB_IP)
    (work / "bin" / "ip").chmod(0o755)
    text = scripts.render("stable-ip.sh", "prop-stable-ip", STABLE_IP=stable_ip, METHOD=method)
    body = (SCRIPTS_DIR / "stable-ip.sh").read_text()
    overrides = (f'write_atomically() {{ cat > "{work}/$(basename "$1")"; chmod "$2" "{work}/$(basename "$1")"; }}\n'
                 "systemctl() { :; }\n"
                 'ip() { printf \' %s/%s \\n\' "$STABLE_IP" "$plen"; }\n')
    script = text[:-len(body)] + overrides + body
    res = subprocess.run(["bash", "-c", script, "rke2-rancher"], capture_output=True, text=True, cwd=work,
                         env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert res.returncode == 0, res.stderr
    helper = work / "rke2-stable-ip"
    assert subprocess.run(["sh", "-n", str(helper)]).returncode == 0
    plen = 128 if ":" in stable_ip else 32
    (work / "ip.log").mkdir()
    res = subprocess.run([str(helper)], capture_output=True, text=True, cwd=work,
                         env={"PATH": f"{work}/bin:/usr/bin:/bin", "IP_LOG": str(work / "ip.log")}, timeout=30)
    calls = [f.read_bytes().decode().split("\0")[:-1] for f in sorted((work / "ip.log").iterdir())]
    if method == "dummy":  # the stub has no dummy links: the helper must say so and stop
        assert res.returncode == 1 and "dummy interfaces unavailable" in res.stderr, res
        assert not any(c[:2] == ["addr", "add"] for c in calls), calls
    else:
        assert res.returncode == 0, res.stderr
        assert calls[-1] == ["addr", "add", f"{stable_ip}/{plen}", "dev", "lo"], calls
    assert not CANARY.exists(), "an injected command ran"
    # The unit and the drop-in are constant: exactly the quoted heredocs of the script.
    for name, marker in (("rke2-stable-ip.service", "UNIT"), ("10-rke2-stable-ip.conf", "DROPIN")):
        heredoc = body.split(f"<<'{marker}'\n", 1)[1].split(f"\n{marker}\n", 1)[0] + "\n"
        assert (work / name).read_bytes().decode() == heredoc
    shutil.rmtree(work)


def test_zz_cases_were_run():
    """Runs last in this module: the generated cases above really ran (figures for the report)."""
    if CASES["total"] == CASES["stable-ip"]:
        pytest.skip("run with the property tests above to count their cases")
    print(f"\nhostile config: {CASES['total']} generated cases, {CASES['refused']} refused, "
          f"{CASES['accepted']} accepted, {CASES['stable-ip']} stable-ip helper cases; "
          f"{CASES['scripts']} rendered scripts checked, {CASES['registries.yaml']} registries.yaml and "
          f"{CASES['images']} image lists checked")
    assert CASES["refused"] > 0 and CASES["accepted"] > 0 and CASES["scripts"] > 0
