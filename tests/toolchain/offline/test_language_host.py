"""Tests of the offline Python language host (toolchain/offline/language_host.py).

Two layers:
* the gRPC service on its own (no CLI needed): plugin info, unimplemented codegen, Run's
  errors for a missing virtualenv, RunPlugin streaming;
* the real Pulumi CLI driving it: preview/up/stack output/destroy of a small program,
  config (plain and secret), failing programs, and Python policy packs.

The CLI tests skip (with the reason) when no `pulumi` binary is found. Everything runs in
temporary directories with a file backend; automatic plugin downloads are disabled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
OFFLINE = HERE.parents[2] / "toolchain" / "offline"
HOST = OFFLINE / "language_host.py"
CLI_TIMEOUT = 300


# ----------------------------------------------------------------------------------------
# Locating the CLI and a python with the Pulumi SDK.
# ----------------------------------------------------------------------------------------


from tests.toolchain.offline.cli import find_cli as _find_cli  # noqa: E402



CLI = _find_cli()
needs_cli = pytest.mark.skipif(
    CLI is None,
    reason="no Pulumi CLI binary (set PULUMI_CLI, or run `make toolchain`)",
)


def _has_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory) -> Path:
    """A virtualenv whose python has the Pulumi SDK (and pulumi_policy when available).

    The test interpreter's own venv when there is one; otherwise a venv that sees this
    interpreter's site-packages (created offline, without pip).
    """
    if sys.prefix != sys.base_prefix and (Path(sys.prefix) / "bin" / "python").exists():
        return Path(sys.prefix)
    path = tmp_path_factory.mktemp("sdkvenv") / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(path)
    return path


# ----------------------------------------------------------------------------------------
# The gRPC service on its own.
# ----------------------------------------------------------------------------------------


@pytest.fixture()
def host():
    """A running language host and a LanguageRuntime stub connected to it."""
    import grpc
    from pulumi.runtime.proto import language_pb2_grpc

    proc = subprocess.Popen(
        [sys.executable, str(HOST), "127.0.0.1:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline().strip())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield language_pb2_grpc.LanguageRuntimeStub(channel)
        channel.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _info(root: Path, **options):
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import language_pb2

    opts = struct_pb2.Struct()
    opts.update(options)
    return language_pb2.ProgramInfo(
        root_directory=str(root), program_directory=str(root), entry_point=".", options=opts
    )


def test_plugin_info_and_unimplemented_codegen(host):
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import language_pb2

    assert host.GetPluginInfo(empty_pb2.Empty()).version
    assert list(host.GetRequiredPackages(language_pb2.GetRequiredPackagesRequest()).packages) == []
    assert list(host.GetRequiredPlugins(language_pb2.GetRequiredPluginsRequest()).plugins) == []
    assert list(host.RuntimeOptionsPrompts(language_pb2.RuntimeOptionsRequest()).prompts) == []
    with pytest.raises(grpc.RpcError) as err:
        host.GenerateProgram(language_pb2.GenerateProgramRequest())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as err:
        host.Pack(language_pb2.PackRequest())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_install_dependencies_is_a_reported_noop(host, tmp_path):
    from pulumi.runtime.proto import language_pb2

    out = b"".join(
        r.stdout
        for r in host.InstallDependencies(
            language_pb2.InstallDependenciesRequest(directory=str(tmp_path), info=_info(tmp_path, virtualenv="venv"))
        )
    )
    assert b"does not install dependencies" in out


def test_about_and_program_dependencies_use_the_virtualenv(host, tmp_path, sdk_venv):
    from pulumi.runtime.proto import language_pb2

    (tmp_path / "venv").symlink_to(sdk_venv)
    info = _info(tmp_path, virtualenv="venv", toolchain="pip")
    about = host.About(language_pb2.AboutRequest(info=info))
    assert about.executable == str(tmp_path / "venv" / "bin" / "python")
    assert about.version.startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    deps = host.GetProgramDependencies(
        language_pb2.GetProgramDependenciesRequest(info=info, transitiveDependencies=True)
    ).dependencies
    names = {d.name.lower().replace("_", "-") for d in deps}
    assert "pulumi" in names and "grpcio" in names
    top = host.GetProgramDependencies(language_pb2.GetProgramDependenciesRequest(info=info)).dependencies
    # grpcio is required by pulumi: not a top-level dependency.
    assert "grpcio" not in {d.name.lower() for d in top}


def test_run_reports_a_missing_virtualenv(host, tmp_path):
    from pulumi.runtime.proto import language_pb2

    resp = host.Run(language_pb2.RunRequest(project="p", stack="s", info=_info(tmp_path, virtualenv="nope")))
    assert "doesn't appear to be a virtual environment" in resp.error
    assert not resp.bail


def test_run_plugin_streams_output_and_exit_code(host, tmp_path, sdk_venv):
    from pulumi.runtime.proto import language_pb2

    (tmp_path / "venv").symlink_to(sdk_venv)
    (tmp_path / "__main__.py").write_text(
        "import os, sys\nprint('out', sys.argv[1], os.environ.get('FROM_ENGINE'))\n"
        "print('err', file=sys.stderr)\nsys.exit(3)\n"
    )
    responses = list(
        host.RunPlugin(
            language_pb2.RunPluginRequest(
                pwd=str(tmp_path),
                program=str(tmp_path),
                args=["arg1"],
                env=["FROM_ENGINE=yes", f"PATH={os.environ.get('PATH', '')}"],
                info=_info(tmp_path, virtualenv="venv"),
                kind="analyzer",
            )
        )
    )
    stdout = b"".join(r.stdout for r in responses)
    stderr = b"".join(r.stderr for r in responses)
    assert stdout == b"out arg1 yes\n"
    assert stderr == b"err\n"
    assert responses[-1].WhichOneof("output") == "exitcode" and responses[-1].exitcode == 3


def test_legacy_analyzer_policy_role_starts_the_pack(tmp_path, sdk_venv):
    """`analyzer-policy ENGINE DIR -virtualenv=V`: what old CLIs ran as pulumi-analyzer-policy-python."""
    (tmp_path / "venv").symlink_to(sdk_venv)
    (tmp_path / "__main__.py").write_text("import sys\nprint('4242', sys.argv[1:])\n")
    proc = subprocess.run(
        [sys.executable, str(HOST), "analyzer-policy", "127.0.0.1:1", ".", "-virtualenv=venv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0 and "No module named pulumi.policy" in proc.stderr:
        pytest.skip("pulumi.policy is not importable in the test virtualenv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("4242")


# ----------------------------------------------------------------------------------------
# The real CLI.
# ----------------------------------------------------------------------------------------

PROGRAM = '''
import pulumi


class Thing(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("lhtest:index:Thing", name, None, opts)
        self.size = pulumi.Output.from_input(3)
        self.register_outputs({"size": self.size})


cfg = pulumi.Config()
thing = Thing("my-thing")
print("program ran with dry_run=%s" % pulumi.runtime.is_dry_run())
pulumi.export("plain", "value-1")
pulumi.export("size", thing.size)
pulumi.export("secretValue", pulumi.Output.secret("s3cret"))
pulumi.export("greeting", cfg.get("greeting") or "unset")
pulumi.export("password", cfg.get_secret("password") or "unset")
pulumi.export("secretKeys", sorted(
    k for k in ("lhtest:greeting", "lhtest:password") if pulumi.runtime.is_config_secret(k)))
pulumi.export("project", pulumi.get_project())
pulumi.export("stack", pulumi.get_stack())
'''


class Cli:
    def __init__(self, root: Path, sdk_venv: Path):
        self.root = root
        self.sdk_venv = sdk_venv
        bindir = root / "bin"
        bindir.mkdir()
        wrapper = bindir / "pulumi-language-python"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HOST}" "$@"\n')
        wrapper.chmod(0o755)
        (root / "state").mkdir()
        (root / "home").mkdir()
        self.env = {
            **os.environ,
            "PATH": os.pathsep.join([str(bindir), os.path.dirname(CLI), os.environ.get("PATH", "")]),
            "PULUMI_BACKEND_URL": f"file://{root / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": "x",
            "PULUMI_HOME": str(root / "home"),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        }
        for var in ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS", "VIRTUAL_ENV"):
            self.env.pop(var, None)

    def project(self, name: str, source: str = PROGRAM) -> Path:
        """A project directory with its own stack (named like the directory: one backend)."""
        pdir = self.root / name
        pdir.mkdir()
        (pdir / ".venv").symlink_to(self.sdk_venv)
        (pdir / "Pulumi.yaml").write_text(
            textwrap.dedent(
                """\
                name: lhtest
                runtime:
                  name: python
                  options:
                    toolchain: pip
                    virtualenv: .venv
                """
            )
        )
        (pdir / "__main__.py").write_text(textwrap.dedent(source))
        self.run(pdir, "stack", "init", name, check=True)
        return pdir

    def run(self, cwd: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [CLI, *args, "--non-interactive"],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="module")
def cli(tmp_path_factory, sdk_venv):
    if CLI is None:
        pytest.skip("no Pulumi CLI binary")
    return Cli(tmp_path_factory.mktemp("langhost"), sdk_venv)


def _out(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


@needs_cli
def test_program_lifecycle_with_config(cli):
    pdir = cli.project("lifecycle")
    cli.run(pdir, "config", "set", "greeting", "hello-there", check=True)
    cli.run(pdir, "config", "set", "--secret", "password", "pa55word", check=True)

    preview = cli.run(pdir, "preview")
    assert preview.returncode == 0, _out(preview)
    assert "lhtest:index:Thing" in preview.stdout and "my-thing" in preview.stdout
    assert "program ran with dry_run=True" in preview.stdout
    assert "pa55word" not in _out(preview)

    up = cli.run(pdir, "up", "--yes", "--skip-preview")
    assert up.returncode == 0, _out(up)
    assert "program ran with dry_run=False" in up.stdout

    shown = cli.run(pdir, "stack", "output", "--json", "--show-secrets")
    assert shown.returncode == 0, _out(shown)
    outputs = json.loads(shown.stdout)
    assert outputs == {
        "plain": "value-1",
        "size": 3,
        "secretValue": "s3cret",
        "greeting": "hello-there",
        "password": "pa55word",
        "secretKeys": ["lhtest:password"],
        "project": "lhtest",
        "stack": "lifecycle",
    }
    hidden = json.loads(cli.run(pdir, "stack", "output", "--json", check=True).stdout)
    assert hidden["secretValue"] == "[secret]" and hidden["password"] == "[secret]"
    assert hidden["plain"] == "value-1"

    state = json.loads(cli.run(pdir, "stack", "export", check=True).stdout)
    types = {r["type"] for r in state["deployment"]["resources"]}
    assert {"pulumi:pulumi:Stack", "lhtest:index:Thing"} <= types

    destroy = cli.run(pdir, "destroy", "--yes", "--skip-preview")
    assert destroy.returncode == 0, _out(destroy)
    state = json.loads(cli.run(pdir, "stack", "export", check=True).stdout)
    assert not state["deployment"].get("resources")


def _error_diagnostics(proc: subprocess.CompletedProcess) -> list[str]:
    doc = json.loads(proc.stdout)
    return [d["message"] for d in doc.get("diagnostics", []) if d.get("severity") == "error"]


FAILURES = {
    "raises": (
        "def helper():\n    raise ValueError('boom-7f3a')\nhelper()\n",
        "boom-7f3a",
    ),
    "log-error-and-exit": (
        "import pulumi\npulumi.log.error('bad settings 9c1e')\nraise SystemExit(1)\n",
        "bad settings 9c1e",
    ),
    "run-error": (
        "import pulumi\nraise pulumi.RunError('run error 4d2b')\n",
        "run error 4d2b",
    ),
    "exit-with-message": (
        "import sys\nsys.exit('exit message 5e6f')\n",
        "exit message 5e6f",
    ),
}


@needs_cli
@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failing_program_fails_preview_with_its_message_once(cli, case):
    source, message = FAILURES[case]
    pdir = cli.project(f"fail-{case}", source="import pulumi\n" + source)
    proc = cli.run(pdir, "preview", "--json")
    assert proc.returncode != 0, _out(proc)
    errors = _error_diagnostics(proc)
    assert sum(message in e for e in errors) == 1, errors
    # The failure was already reported: no second, generic "exit code" error.
    assert not any("exit code" in e for e in errors), errors
    if case == "raises":
        (tb,) = [e for e in errors if message in e]
        assert "Traceback" in tb and "helper()" in tb and "language_host.py" not in tb


@needs_cli
def test_nonzero_exit_without_message_is_reported(cli):
    pdir = cli.project("fail-silent", source="import sys\nsys.exit(7)\n")
    proc = cli.run(pdir, "preview", "--json")
    assert proc.returncode != 0
    assert any("non-zero exit code: 7" in e for e in _error_diagnostics(proc)), proc.stdout


POLICY_PACK = '''
from pulumi_policy import EnforcementLevel, PolicyPack, ReportViolation, ResourceValidationPolicy


def no_things(args, report_violation: ReportViolation):
    if args.resource_type == "lhtest:index:Thing":
        report_violation("Things named %s are not allowed" % args.name)


PolicyPack(
    name="lhtest-pack",
    enforcement_level=EnforcementLevel.{level},
    policies=[
        ResourceValidationPolicy(
            name="{policy}",
            description="No Thing components.",
            validate=no_things,
        ),
    ],
)
'''


def _policy_pack(cli: Cli, name: str, level: str, policy: str) -> Path:
    if not _has_module(str(cli.sdk_venv / "bin" / "python"), "pulumi_policy"):
        pytest.skip("pulumi_policy is not installed in the test virtualenv")
    pack = cli.root / name
    pack.mkdir()
    (pack / "venv").symlink_to(cli.sdk_venv)
    (pack / "PulumiPolicy.yaml").write_text(
        "description: test pack\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n"
    )
    (pack / "__main__.py").write_text(POLICY_PACK.format(level=level, policy=policy))
    return pack


@needs_cli
def test_mandatory_policy_blocks_preview(cli):
    pack = _policy_pack(cli, "pack-mandatory", "MANDATORY", "no-things-mandatory")
    pdir = cli.project("policy-mandatory")
    proc = cli.run(pdir, "preview", "--policy-pack", str(pack))
    assert proc.returncode != 0, _out(proc)
    assert "no-things-mandatory" in proc.stdout
    assert "Things named my-thing are not allowed" in proc.stdout


@needs_cli
def test_advisory_policy_does_not_block_preview(cli):
    pack = _policy_pack(cli, "pack-advisory", "ADVISORY", "no-things-advisory")
    pdir = cli.project("policy-advisory")
    proc = cli.run(pdir, "preview", "--policy-pack", str(pack))
    assert proc.returncode == 0, _out(proc)
    assert "no-things-advisory" in proc.stdout
    assert "advisory" in proc.stdout


@needs_cli
def test_policy_pack_with_missing_virtualenv_fails_clearly(cli):
    pack = cli.root / "pack-novenv"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text(
        "runtime:\n  name: python\n  options:\n    virtualenv: venv\n"
    )
    (pack / "__main__.py").write_text("raise SystemExit('unreachable')\n")
    pdir = cli.project("policy-novenv")
    proc = cli.run(pdir, "preview", "--policy-pack", str(pack))
    assert proc.returncode != 0
    assert "doesn't appear to be a virtual environment" in _out(proc)
