"""Offline Python language host: a stand-in for the `pulumi-language-python` plugin.

The engine starts a language plugin, reads its port from stdout and calls the
LanguageRuntime gRPC service on it. This module is that plugin for Python programs
(`runtime: python`, `toolchain: pip` with a `virtualenv`), written for the machines where
the Go module of the official host cannot be fetched.

Two roles, one file:

* **server** (default): `language_host.py [flags] [ENGINE_ADDRESS]` serves LanguageRuntime.
  It needs only grpcio and the `pulumi` package (for its generated protos).
* **exec** (`language_host.py exec --monitor ... ENTRY [ARGS]`): run by `Run` with the
  *program's* virtualenv python. It wires the Pulumi SDK to the engine (monitor, engine,
  project, stack, organization, config, secret keys, dry-run, parallelism) and runs the
  program's entry point (`__main__.py` of the program directory), the job the official
  `pulumi-language-python-exec` script does. Invoking the file with exec-style arguments
  (`--monitor ...` first) also selects this role, so an installed
  `pulumi-language-python-exec` wrapper pointing here behaves sensibly.

Exit codes of the exec role: 0 success; 32 "an error was already reported to the engine"
(`Run` answers `bail`, so the CLI fails without repeating it); anything else is the
program's own exit status, which `Run` turns into an error message.

Policy packs (`pulumi preview --policy-pack DIR` with a Python `PulumiPolicy.yaml`): CLI
v3.259.0 starts them through this host's `RunPlugin` (kind "analyzer"): the pack's python
(its `virtualenv` option, relative to DIR) runs DIR (its `__main__.py`) with the engine
address as argument; the pack serves the Analyzer service itself and its stdout (the port)
and stderr are streamed back. Older CLIs looked for a `pulumi-analyzer-policy-python`
executable instead; the `analyzer-policy` role
(`language_host.py analyzer-policy ENGINE DIR [-virtualenv=PATH]`) can stand in for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterable, Iterator

# Set when the exec role already reported the failure to the engine.
EXIT_ERROR_REPORTED = 32

HOST_VERSION = "3.259.0"

UNSUPPORTED_TOOLCHAINS = ("uv", "poetry")

# Run by the program's python: prints [{"name", "version"}] of the installed distributions;
# argv[1] == "0" leaves out those another installed distribution requires (pip's
# --not-required).
_LIST_DISTRIBUTIONS = r"""
import importlib.metadata as md, json, re, sys
canon = lambda n: re.sub(r"[-_.]+", "-", n).lower()
dists, required = {}, set()
for d in md.distributions():
    name = d.metadata["Name"]
    if not name or canon(name) in dists:
        continue
    dists[canon(name)] = {"name": name, "version": d.version}
    for req in d.requires or []:
        spec, _, marker = req.partition(";")
        m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip())
        if m and "extra" not in marker:
            required.add(canon(m.group(0)))
keep = [v for k, v in sorted(dists.items()) if sys.argv[1] == "1" or k not in required]
print(json.dumps(keep))
"""


# ---------------------------------------------------------------------------------------
# Helpers shared by the server roles (no grpc needed).
# ---------------------------------------------------------------------------------------


def _struct_to_dict(struct: Any) -> dict[str, Any]:
    if struct is None:
        return {}
    try:
        from google.protobuf import json_format

        return json_format.MessageToDict(struct)
    except Exception:  # noqa: BLE001 - a malformed options struct means "no options"
        return {}


class ProgramOptions:
    """Runtime options of a program or plugin (the `runtime.options` of its project file)."""

    def __init__(self, root: str, options: dict[str, Any]):
        self.root = root or os.getcwd()
        self.options = options
        self.toolchain = str(options.get("toolchain") or "pip")
        venv = options.get("virtualenv")
        self.virtualenv_error = "" if venv is None or isinstance(venv, str) else (
            "the 'virtualenv' runtime option must be a string"
        )
        self.virtualenv_option = venv if isinstance(venv, str) else ""
        if self.virtualenv_option:
            self.virtualenv = os.path.normpath(
                self.virtualenv_option
                if os.path.isabs(self.virtualenv_option)
                else os.path.join(self.root, self.virtualenv_option)
            )
        else:
            self.virtualenv = ""

    @classmethod
    def from_info(cls, info: Any) -> "ProgramOptions":
        root = getattr(info, "root_directory", "") if info is not None else ""
        opts = _struct_to_dict(info.options) if info is not None and info.HasField("options") else {}
        return cls(root, opts)

    def check(self) -> None:
        """Raises ValueError with a user-facing message if the environment cannot be used."""
        if self.virtualenv_error:
            raise ValueError(self.virtualenv_error)
        if self.toolchain in UNSUPPORTED_TOOLCHAINS:
            raise ValueError(
                f"the offline Python language host supports toolchain 'pip' only, not {self.toolchain!r}"
            )
        if self.virtualenv and not is_virtualenv(self.virtualenv):
            raise ValueError(
                f"The 'virtualenv' runtime option is set to {self.virtualenv_option!r}, but "
                f"{self.virtualenv!r} doesn't appear to be a virtual environment "
                "(no bin/python). Create it first (e.g. `make venv`)."
            )

    def python(self) -> str:
        if self.virtualenv:
            return os.path.join(self.virtualenv, "bin", "python")
        return os.environ.get("PULUMI_PYTHON_CMD") or _which("python3") or _which("python") or "python3"

    def environ(self, base: Iterable[str] | dict[str, str] | None = None) -> dict[str, str]:
        """The environment for a child python: `base` with the virtualenv activated."""
        if base is None:
            env = dict(os.environ)
        elif isinstance(base, dict):
            env = dict(base)
        else:
            env = {}
            for item in base:
                key, sep, value = item.partition("=")
                if sep:
                    env[key] = value
        if self.virtualenv:
            env.pop("PYTHONHOME", None)
            env["VIRTUAL_ENV"] = self.virtualenv
            bindir = os.path.join(self.virtualenv, "bin")
            env["PATH"] = bindir + (os.pathsep + env["PATH"] if env.get("PATH") else "")
        return env


def is_virtualenv(path: str) -> bool:
    return os.path.exists(os.path.join(path, "bin", "python"))


def _which(name: str) -> str | None:
    from shutil import which

    return which(name)


def _python_version(python: str, env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(
            [python, "--version"], capture_output=True, text=True, timeout=60, env=env, check=False
        )
    except OSError:
        return ""
    return (out.stdout or out.stderr).strip().removeprefix("Python ").strip()


class _Children:
    """Processes started by this host, ended when the host is cancelled or exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def terminate_all(self, grace: float = 3.0) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                try:
                    proc.terminate()
                except OSError:
                    pass
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    proc.kill()
                except OSError:
                    pass


CHILDREN = _Children()


def _watch_parent() -> None:
    """Exit (ending our children) once the engine that started us is gone."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            CHILDREN.terminate_all(grace=1.0)
            os._exit(0)


# ---------------------------------------------------------------------------------------
# Server role: the LanguageRuntime service.
# ---------------------------------------------------------------------------------------


def _make_servicer(engine_address: str | None):
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

    this_file = os.path.abspath(__file__)

    class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
        def __init__(self) -> None:
            self.engine_address = engine_address or ""

        # -- plumbing -------------------------------------------------------------------

        def Handshake(self, request, context):
            if request.engine_address:
                self.engine_address = request.engine_address
            return language_pb2.LanguageHandshakeResponse()

        def GetPluginInfo(self, request, context):
            return plugin_pb2.PluginInfo(version=HOST_VERSION)

        def Cancel(self, request, context):
            # Like the official host: a running program is not killed here; the engine stops
            # serving it and it ends on its own (or with this host, see _watch_parent).
            return empty_pb2.Empty()

        # -- dependencies ---------------------------------------------------------------

        def GetRequiredPlugins(self, request, context):
            # Plugins are found on PATH (the bootstrap puts them there); nothing to install.
            return language_pb2.GetRequiredPluginsResponse()

        def GetRequiredPackages(self, request, context):
            return language_pb2.GetRequiredPackagesResponse()

        def InstallDependencies(self, request, context):
            opts = ProgramOptions.from_info(request.info if request.HasField("info") else None)
            where = opts.virtualenv or "the current python environment"
            yield language_pb2.InstallDependenciesResponse(
                stdout=(
                    "The offline Python language host does not install dependencies: "
                    f"{where} is prepared by the project's Makefile (make venv).\n"
                ).encode()
            )

        def GetProgramDependencies(self, request, context):
            opts = ProgramOptions.from_info(request.info if request.HasField("info") else None)
            try:
                opts.check()
            except ValueError as e:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
            # importlib.metadata in the program's python: works without pip and offline.
            proc = subprocess.run(
                [opts.python(), "-c", _LIST_DISTRIBUTIONS, "1" if request.transitiveDependencies else "0"],
                capture_output=True,
                text=True,
                env=opts.environ(),
                check=False,
                timeout=300,
            )
            if proc.returncode != 0:
                context.abort(grpc.StatusCode.INTERNAL, f"listing installed packages failed: {proc.stderr.strip()}")
            try:
                deps = json.loads(proc.stdout)
            except ValueError as e:
                context.abort(grpc.StatusCode.INTERNAL, f"could not parse the package list: {e}")
            return language_pb2.GetProgramDependenciesResponse(
                dependencies=[
                    language_pb2.DependencyInfo(name=d.get("name", ""), version=d.get("version", ""))
                    for d in deps
                ]
            )

        def About(self, request, context):
            opts = ProgramOptions.from_info(request.info if request.HasField("info") else None)
            python = opts.python()
            version = _python_version(python, opts.environ())
            return language_pb2.AboutResponse(
                executable=python,
                version=version,
                metadata={"host": "rke2-rancher offline language host", "toolchain": opts.toolchain},
            )

        def RuntimeOptionsPrompts(self, request, context):
            return language_pb2.RuntimeOptionsResponse()

        def Template(self, request, context):
            # Nothing to rewrite in a newly instantiated project.
            return language_pb2.TemplateResponse()

        # -- running programs -----------------------------------------------------------

        def Run(self, request, context):
            info = request.info if request.HasField("info") else None
            try:
                opts = ProgramOptions.from_info(info)
                opts.check()
            except ValueError as e:
                return language_pb2.RunResponse(error=str(e))

            program_dir = (info.program_directory if info is not None else "") or request.pwd or os.getcwd()
            entry = (info.entry_point if info is not None else "") or request.program or "."
            if not os.path.isabs(entry):
                entry = os.path.normpath(os.path.join(program_dir, entry))

            args = [opts.python(), "-u", this_file, "exec"]

            def flag(name: str, value: str) -> None:
                if value:
                    args.extend([f"--{name}", value])

            flag("monitor", request.monitor_address)
            flag("engine", self.engine_address)
            flag("project", request.project)
            flag("stack", request.stack)
            flag("organization", request.organization)
            flag("pwd", request.pwd)
            flag("root_directory", info.root_directory if info is not None else "")
            flag("dry_run", "true" if request.dryRun else "false")
            flag("parallel", str(request.parallel))
            args.append(entry)
            args.extend(request.args)

            env = opts.environ()
            env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
            env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
            env["PYTHONUNBUFFERED"] = "1"

            try:
                proc = subprocess.Popen(args, env=env, cwd=request.pwd or program_dir)
            except OSError as e:
                return language_pb2.RunResponse(
                    error=f"problem executing program (could not run language executor): {e}"
                )
            CHILDREN.add(proc)
            try:
                code = proc.wait()
            finally:
                CHILDREN.discard(proc)
            sys.stdout.flush()
            sys.stderr.flush()
            if code == 0:
                return language_pb2.RunResponse()
            if code == EXIT_ERROR_REPORTED:
                return language_pb2.RunResponse(bail=True)
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = str(-code)
                return language_pb2.RunResponse(error=f"program exited unexpectedly: killed by signal {name}")
            return language_pb2.RunResponse(error=f"program exited with non-zero exit code: {code}")

        def RunPlugin(self, request, context):
            info = request.info if request.HasField("info") else None
            try:
                opts = ProgramOptions.from_info(info)
                opts.check()
            except ValueError as e:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))

            program_dir = (info.program_directory if info is not None else "") or request.program
            args = [opts.python(), "-u", program_dir, *request.args]
            env = opts.environ(list(request.env) if request.env else None)
            env["PYTHONUNBUFFERED"] = "1"
            try:
                proc = subprocess.Popen(
                    args,
                    env=env,
                    cwd=request.pwd or program_dir,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                )
            except OSError as e:
                context.abort(
                    grpc.StatusCode.INTERNAL,
                    f"problem executing plugin program (could not run language executor): {e}",
                )
            CHILDREN.add(proc)
            context.add_callback(lambda: proc.poll() is None and proc.terminate())
            try:
                yield from _stream_process(proc, language_pb2.RunPluginResponse)
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(3)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                CHILDREN.discard(proc)

        # -- code generation and packaging: not offered offline --------------------------

        def _unimplemented(self, context, what: str):
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{what} is not implemented by the offline Python language host",
            )

        def GenerateProgram(self, request, context):
            self._unimplemented(context, "GenerateProgram")

        def GenerateProject(self, request, context):
            self._unimplemented(context, "GenerateProject")

        def GeneratePackage(self, request, context):
            self._unimplemented(context, "GeneratePackage")

        def Pack(self, request, context):
            self._unimplemented(context, "Pack")

        def Link(self, request, context):
            self._unimplemented(context, "Link")

    return LanguageHost(), language_pb2_grpc.add_LanguageRuntimeServicer_to_server


def _stream_process(proc: subprocess.Popen, response_type) -> Iterator[Any]:
    """Yields RunPluginResponse messages: stdout/stderr chunks as they come, then the exit code."""
    import queue

    chunks: "queue.Queue[tuple[str, bytes | None]]" = queue.Queue()

    def pump(name: str, stream) -> None:
        try:
            while True:
                data = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
                if not data:
                    break
                chunks.put((name, data))
        finally:
            chunks.put((name, None))

    threads = [
        threading.Thread(target=pump, args=("stdout", proc.stdout), daemon=True),
        threading.Thread(target=pump, args=("stderr", proc.stderr), daemon=True),
    ]
    for t in threads:
        t.start()
    open_streams = 2
    while open_streams:
        name, data = chunks.get()
        if data is None:
            open_streams -= 1
            continue
        yield response_type(**{name: data})
    code = proc.wait()
    yield response_type(exitcode=code if code >= 0 else 128 - code)


def serve_language_host(argv: list[str]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from plugin_server import engine_address, serve

    servicer, add = _make_servicer(engine_address(argv))
    threading.Thread(target=_watch_parent, daemon=True).start()

    def stop(signum, frame):  # the engine ends plugins with SIGINT/SIGTERM: leave quietly
        CHILDREN.terminate_all(grace=1.0)
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        serve(lambda server: add(servicer, server))
    finally:
        CHILDREN.terminate_all()


# ---------------------------------------------------------------------------------------
# Legacy policy-pack launcher (`pulumi-analyzer-policy-python ENGINE DIR -virtualenv=V`).
# ---------------------------------------------------------------------------------------


def run_analyzer_policy(argv: list[str]) -> int:
    virtualenv = ""
    positional: list[str] = []
    for arg in argv:
        if arg.startswith("-virtualenv=") or arg.startswith("--virtualenv="):
            virtualenv = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            continue
        else:
            positional.append(arg)
    if len(positional) < 2:
        print("usage: analyzer-policy ENGINE_ADDRESS POLICY_PACK_DIR [-virtualenv=PATH]", file=sys.stderr)
        return 2
    engine, pack = positional[0], positional[1]
    opts = ProgramOptions(os.getcwd(), {"virtualenv": virtualenv} if virtualenv else {})
    try:
        opts.check()
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 1
    env = opts.environ()
    os.execve(opts.python(), [opts.python(), "-u", "-m", "pulumi.policy", engine, pack], env)
    return 1  # not reached


# ---------------------------------------------------------------------------------------
# Exec role: runs inside the program's python.
# ---------------------------------------------------------------------------------------


def _parse_exec_args(argv: list[str]):
    import argparse

    ap = argparse.ArgumentParser(prog="language_host.py exec", description="Run a Pulumi Python program")
    ap.add_argument("--monitor")
    ap.add_argument("--engine")
    ap.add_argument("--project")
    ap.add_argument("--stack")
    ap.add_argument("--organization")
    ap.add_argument("--pwd")
    ap.add_argument("--root_directory")
    ap.add_argument("--dry_run", default="false")
    ap.add_argument("--parallel", default="0")
    ap.add_argument("--tracing")
    ap.add_argument("PROGRAM")
    ap.add_argument("ARGS", nargs=argparse.REMAINDER)
    return ap.parse_args(argv)


class _ErrorCountingEngine:
    """Wraps the engine stub to note whether an error diagnostic reached the engine."""

    def __init__(self, stub: Any):
        self._stub = stub
        self.errors = 0

    def Log(self, request, *args, **kwargs):  # noqa: N802 - gRPC method name
        from pulumi.runtime.proto import engine_pb2

        if request.severity == engine_pb2.ERROR:
            self.errors += 1
        return self._stub.Log(request, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)


def _engine_stub(address: str) -> Any:
    import grpc
    from pulumi.runtime.proto import engine_pb2_grpc

    try:
        from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS as options
    except ImportError:  # older or newer SDK layout
        options = [("grpc.max_receive_message_length", 400 * 1024 * 1024)]
    return engine_pb2_grpc.EngineStub(grpc.insecure_channel(address, options=options))


def _program_traceback(exc: BaseException) -> str:
    """The exception's traceback without the frames of this runner, asyncio and runpy."""
    import traceback

    this_file = os.path.abspath(__file__)
    noise = (os.sep + "asyncio" + os.sep, os.sep + "pulumi" + os.sep + "runtime" + os.sep + "stack.py")

    def keep(frame: traceback.FrameSummary) -> bool:
        name = frame.filename
        if name.startswith("<frozen runpy") or os.path.abspath(name) == this_file:
            return False
        return not any(n in name for n in noise)

    te = traceback.TracebackException.from_exception(exc)
    kept = [f for f in te.stack if keep(f)]
    if kept:
        te.stack = traceback.StackSummary.from_list(kept)
    return "".join(te.format())


def run_exec(argv: list[str]) -> int:
    # Our own directory must not shadow the program's modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]

    try:
        import pulumi
        import pulumi.runtime
    except ImportError:
        import traceback

        traceback.print_exc()
        print(
            "\nThe Pulumi SDK is not installed in this python "
            f"({sys.executable}). Install the program's requirements into its virtualenv "
            "(pip install -r requirements.txt, or `make venv`).",
            file=sys.stderr,
        )
        return 1

    import asyncio
    import logging
    import runpy
    import traceback

    import grpc

    args = _parse_exec_args(argv)

    config = pulumi.runtime.get_config_env()
    secret_keys = pulumi.runtime.get_config_secret_keys_env()
    pulumi.runtime.set_all_config(config, secret_keys)

    engine = _ErrorCountingEngine(_engine_stub(args.engine)) if args.engine else None
    settings_kwargs: dict[str, Any] = dict(
        monitor=args.monitor,
        engine=engine,
        project=args.project,
        stack=args.stack,
        parallel=int(args.parallel or 0),
        dry_run=args.dry_run == "true",
        organization=args.organization,
    )
    if args.root_directory:
        settings_kwargs["root_directory"] = args.root_directory
    pulumi.runtime.configure(pulumi.runtime.Settings(**settings_kwargs))

    program = args.PROGRAM
    if args.pwd:
        os.chdir(args.pwd)
    sys.argv = [program, *args.ARGS]

    # The Pulumi programming model leaves futures unobserved when a program fails; asyncio's
    # complaints about that are noise for the user.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def report(message: str) -> int:
        try:
            pulumi.log.error(message)
            return EXIT_ERROR_REPORTED
        except Exception:  # noqa: BLE001 - the engine is gone: say it on stderr instead
            print(message, file=sys.stderr)
            return 1

    def engine_gone(exc: BaseException) -> bool:
        return isinstance(exc, grpc.RpcError) and exc.code() in (  # type: ignore[attr-defined]
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED,
        )

    exit_code = 0
    try:
        loop.run_until_complete(
            pulumi.runtime.run_in_stack(lambda: runpy.run_path(program, run_name="__main__"))
        )
    except SystemExit as e:
        code = e.code
        if code is None or code == 0:
            exit_code = 0
        elif isinstance(code, int):
            # An error the program logged (pulumi.log.error) before exiting is the message.
            exit_code = EXIT_ERROR_REPORTED if engine is not None and engine.errors else code
        else:
            exit_code = report(str(code))
    except KeyboardInterrupt:
        exit_code = report("Program interrupted")
    except pulumi.RunError as e:
        exit_code = report(str(e))
    except Exception as e:  # noqa: BLE001 - every program failure is reported the same way
        if engine_gone(e):
            # The engine stopped listening (cancelled, or failed elsewhere and said so).
            exit_code = EXIT_ERROR_REPORTED
        else:
            exit_code = report("Program failed with an unhandled exception:\n" + _program_traceback(e))
    finally:
        try:
            loop.close()
        except Exception:  # noqa: BLE001
            pass
        sys.stdout.flush()
        sys.stderr.flush()
    return exit_code


# ---------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    args = argv[1:]
    if args and args[0] == "exec":
        return run_exec(args[1:])
    if args and args[0] == "analyzer-policy":
        return run_analyzer_policy(args[1:])
    if args and args[0] in ("--monitor", "--engine", "--project", "--stack") and "--monitor" in args:
        # Invoked as `pulumi-language-python-exec` with the official script's arguments.
        return run_exec(args)
    serve_language_host(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
