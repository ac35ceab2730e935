#!/usr/bin/env python3
"""Lab stand-in for `systemctl` and `journalctl` inside lab hosts. NOT systemd.

Lab hosts are namespaces without systemd, so the lab installs this file as /usr/bin/systemctl
and /usr/bin/journalctl (netlab rewrites the shebang to the lab's Python). It implements the
subset of systemd behaviour that install scripts rely on:

- units from /etc/systemd/system, /run/systemd/system, /usr/local/lib/systemd/system,
  /usr/lib/systemd/system with `<unit>.d/*.conf` drop-ins; a unit is read when first used
  and then kept until `daemon-reload` (edits without a reload warn, as systemd does);
- Type=simple|exec|notify|oneshot|forking; notify waits for READY=1 on NOTIFY_SOCKET, so
  `systemctl start` blocks until the service is ready (forever with TimeoutStartSec=0, as
  on a real host); Restart=always|on-failure with RestartSec; ExecStartPre/Post, ExecStop,
  ExecStopPost, ExecReload, Environment(File), KillMode, RemainAfterExit, Conflicts,
  Requires/Wants of services, Condition{PathExists,FileNotEmpty}, RuntimeDirectory;
- enable/disable via the usual `<target>.wants` symlinks.

Each service runs under a small supervisor process (this file, `__lab-supervise`) that
captures output into /var/log/lab-journal/<unit>.log with timestamps and keeps state in
/run/lab-systemd. Every verb and process start is appended to
/var/log/lab-journal/systemctl-events.log ("<iso time> <event> <unit> <detail>") so tests can
count starts and restarts. Lab-only verbs: `lab-boot` (start the units enabled through this
stand-in, in After=/Before= order) and `lab-shutdown` (stop everything).
"""
import contextlib
import datetime as dt
import fcntl
import glob
import hashlib
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

UNIT_DIRS = ["/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system"]
STATE_DIR = "/run/lab-systemd"
JOURNAL_DIR = "/var/log/lab-journal"
EVENTS = f"{JOURNAL_DIR}/systemctl-events.log"
ENABLED_HERE = "/var/lib/lab-systemd/enabled-here"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ME = os.path.realpath(__file__)
BOOT_START_WAIT = 120
ACTIVE_LIKE = ("active", "activating", "deactivating", "reloading")


class UnitError(Exception):
    pass


# --- small helpers ------------------------------------------------------------------------
def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def append(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(text)


def event(kind: str, unit: str, detail: str = "") -> None:
    append(EVENTS, f"{now_iso()} {kind} {unit} {detail}".rstrip() + "\n")


def journal(unit: str, ident: str, pid: int, msg: str) -> None:
    append(f"{JOURNAL_DIR}/{unit}.log", f"{now_iso()} {socket.gethostname()} {ident}[{pid}]: {msg}\n")


def alive(pid) -> bool:
    """True for a live process; zombies count as dead (this machine's PID 1 does not reap)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def parse_time(text, default=None):
    """systemd time span in seconds; None means infinity."""
    if text is None:
        return default
    text = text.strip()
    if text in ("infinity", ""):
        return None
    total, units = 0.0, {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "": 1}
    for num, unit in re.findall(r"([\d.]+)\s*([a-z]*)", text):
        total += float(num) * units.get(unit, 1)
    return total


def norm(name: str) -> str:
    return name if "." in name else name + ".service"


@contextlib.contextmanager
def locked(path: str):
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- unit files ---------------------------------------------------------------------------
def parse_unit_text(text: str, into: dict) -> None:
    section, cont = None, ""
    for raw in text.splitlines():
        line = cont + raw.strip() if cont else raw.rstrip()
        cont = ""
        if line.endswith("\\"):
            cont = line[:-1] + " "
            continue
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
            into.setdefault(section, {})
            continue
        if section is None or "=" not in s:
            continue
        key, value = (x.strip() for x in s.split("=", 1))
        values = into[section].setdefault(key, [])
        if value == "":
            values.clear()  # an empty assignment resets a list setting
        else:
            values.append(value)


def read_disk(name: str):
    fragment = next((os.path.join(d, name) for d in UNIT_DIRS
                     if os.path.isfile(os.path.join(d, name))), None)
    if fragment is None:
        return None
    dropins = {}
    for d in reversed(UNIT_DIRS):
        for f in glob.glob(os.path.join(d, name + ".d", "*.conf")):
            dropins[os.path.basename(f)] = f
    files = [fragment] + [dropins[k] for k in sorted(dropins)]
    texts = []
    for f in files:
        with open(f) as fh:
            texts.append([f, fh.read()])
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()
    return {"name": name, "fragment": fragment, "files": texts, "hash": digest}


class Unit:
    def __init__(self, snap: dict, changed: bool = False):
        self.name = snap["name"]
        self.fragment = snap["fragment"]
        self.files = snap["files"]
        self.changed_on_disk = changed
        self.sections: dict = {}
        for _, text in self.files:
            parse_unit_text(text, self.sections)

    def spec(self, s: str) -> str:
        base = self.name.rsplit(".", 1)[0]
        prefix, _, inst = base.partition("@")
        table = {"n": self.name, "N": base, "p": prefix, "i": inst, "H": socket.gethostname(),
                 "t": "/run", "%": "%"}
        return re.sub(r"%(.)", lambda m: table.get(m.group(1), m.group(0)), s)

    def get(self, section: str, key: str, default=None):
        values = self.sections.get(section, {}).get(key)
        return self.spec(values[-1]) if values else default

    def getlist(self, section: str, key: str) -> list:
        return [self.spec(v) for v in self.sections.get(section, {}).get(key, [])]

    def words(self, section: str, key: str) -> list:
        return [w for v in self.getlist(section, key) for w in v.split()]

    @property
    def type(self) -> str:
        if not self.getlist("Service", "ExecStart"):
            return "oneshot"
        return self.get("Service", "Type", "simple")

    def flag(self, key: str) -> bool:
        return (self.get("Service", key, "no") or "no").lower() in ("yes", "true", "1", "on")


def load(name: str):
    """The unit as systemd would have it loaded: cached until daemon-reload."""
    if name.endswith(".target"):
        return None
    snap_path = f"{STATE_DIR}/units/{name}.json"
    disk = read_disk(name)
    if os.path.exists(snap_path):
        with open(snap_path) as f:
            snap = json.load(f)
        return Unit(snap, changed=disk is None or disk["hash"] != snap["hash"])
    if disk is None:
        return None
    os.makedirs(os.path.dirname(snap_path), exist_ok=True)
    with open(snap_path, "w") as f:
        json.dump(disk, f)
    return Unit(disk)


def warn_changed(u: Unit) -> None:
    if u.changed_on_disk:
        print(f"Warning: The unit file, source configuration file or drop-ins of {u.name} "
              "changed on disk. Run 'systemctl daemon-reload' to reload units.", file=sys.stderr)


# --- state --------------------------------------------------------------------------------
DEFAULT_STATE = {"active": "inactive", "sub": "dead", "main_pid": 0, "supervisor": 0,
                 "result": "success", "since": "", "restarts": 0, "exec_status": ""}


def read_state(name: str) -> dict:
    try:
        with open(f"{STATE_DIR}/{name}.state.json") as f:
            return {**DEFAULT_STATE, **json.load(f)}
    except (OSError, ValueError):
        return dict(DEFAULT_STATE)


def write_state(name: str, **changes) -> dict:
    with locked(f"{STATE_DIR}/{name}.state.lock"):
        st = {**read_state(name), **changes}
        tmp = f"{STATE_DIR}/{name}.state.json.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, f"{STATE_DIR}/{name}.state.json")
    return st


def effective_state(name: str) -> dict:
    st = read_state(name)
    if st["active"] in ACTIVE_LIKE and st["supervisor"] and not alive(st["supervisor"]):
        st = write_state(name, active="failed", sub="failed", result="supervisor-lost",
                         main_pid=0, supervisor=0)
    return st


# --- running commands ---------------------------------------------------------------------
def build_env(u: Unit, extra: dict | None = None) -> dict:
    env = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "INVOCATION_ID": os.urandom(16).hex()}
    for value in u.getlist("Service", "Environment"):
        for assignment in shlex.split(value):
            k, _, v = assignment.partition("=")
            env[k] = v
    for value in u.getlist("Service", "EnvironmentFile"):
        optional, path = value.startswith("-"), value.lstrip("-")
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if not line or line[0] in "#;" or "=" not in line:
                        continue
                    k, _, v = line.partition("=")
                    v = v.strip()
                    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                        v = v[1:-1]
                    env[k.strip()] = v
        except FileNotFoundError:
            if not optional:
                raise UnitError(f"Failed to load environment files: {path}")
    env.update(extra or {})
    return env


def parse_exec(line: str, env: dict) -> tuple[list, bool]:
    flags = ""
    while line and line[0] in "-@:+!":
        flags, line = flags + line[0], line[1:]
    argv = []
    for word in shlex.split(line):
        if ":" not in flags:
            m = re.fullmatch(r"\$(\w+)", word)
            if m:  # a lone $VAR splits into words, ${VAR} stays one word (systemd rules)
                argv.extend(env.get(m.group(1), "").split())
                continue
            word = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word)
        argv.append(word)
    return argv, "-" in flags


def pump(stream, unit: str, ident: str, pid: int) -> None:
    for raw in iter(stream.readline, b""):
        journal(unit, ident, pid, raw.decode(errors="replace").rstrip("\n"))
    stream.close()


def spawn(u: Unit, argv: list, env: dict):
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=u.get("Service", "WorkingDirectory", "/"))


def run_logged(u: Unit, line: str, env: dict, timeout=None) -> int:
    """Run one Exec line to completion, output to the journal. Returns its status
    (0 when the line is prefixed with '-')."""
    argv, ignore = parse_exec(line, env)
    try:
        proc = spawn(u, argv, env)
    except OSError as e:
        journal(u.name, "systemctl", os.getpid(), f"Failed to execute {argv[0]}: {e.strerror}")
        return 0 if ignore else 203
    pumper = threading.Thread(target=pump, daemon=True,
                              args=(proc.stdout, u.name, os.path.basename(argv[0]), proc.pid))
    pumper.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        journal(u.name, "systemctl", os.getpid(), f"{argv[0]} timed out; killing it")
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
    pumper.join(timeout=2)
    return 0 if ignore else rc


def run_lines(u: Unit, key: str, env: dict) -> int:
    for line in u.getlist("Service", key):
        rc = run_logged(u, line, env)
        if rc != 0:
            journal(u.name, "systemctl", os.getpid(), f"{key} {line!r} failed with status {rc}")
            return rc
    return 0


def conditions_met(u: Unit) -> bool:
    for key, test in (("ConditionPathExists", os.path.exists),
                      ("ConditionFileNotEmpty", lambda p: os.path.isfile(p) and os.path.getsize(p) > 0),
                      ("ConditionPathIsDirectory", os.path.isdir)):
        for value in u.getlist("Unit", key):
            negate, path = value.startswith("!"), value.lstrip("!")
            if test(path) == negate:
                journal(u.name, "systemctl", os.getpid(), f"condition {key}={value} not met")
                return False
    return True


def prepare_runtime(u: Unit) -> None:
    for d in u.words("Service", "RuntimeDirectory"):
        os.makedirs(f"/run/{d}", exist_ok=True)


# --- the supervisor -----------------------------------------------------------------------
def supervise(name: str) -> int:
    """Runs detached for one service: starts it, tracks readiness and exit, restarts it per
    Restart=, stops it on SIGTERM."""
    u = load(name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    write_state(name, supervisor=os.getpid())
    restart = u.get("Service", "Restart", "no")
    restart_sec = parse_time(u.get("Service", "RestartSec"), 0.1) or 0.1
    start_timeout = parse_time(u.get("Service", "TimeoutStartSec", "90s"))
    start_timeout = None if start_timeout == 0 else start_timeout
    stop_timeout = parse_time(u.get("Service", "TimeoutStopSec", "90s")) or 90
    kill_mode = u.get("Service", "KillMode", "control-group")
    success = {int(x) for x in u.words("Service", "SuccessExitStatus") if x.isdigit()}
    while True:
        try:
            env = build_env(u)
        except UnitError as e:
            journal(name, "systemctl", os.getpid(), str(e))
            write_state(name, active="failed", sub="failed", result="resources", supervisor=0)
            event("failed", name, "result=resources")
            return 1
        write_state(name, active="activating", sub="start-pre", main_pid=0)
        prepare_runtime(u)
        rc = run_lines(u, "ExecStartPre", env)
        status, timed_out = rc, False
        main = None
        if rc == 0:
            notify = None
            if u.type == "notify":
                path = f"{STATE_DIR}/notify-{name}.sock"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                notify.bind(path)
                env["NOTIFY_SOCKET"] = path
            argv, _ = parse_exec(u.getlist("Service", "ExecStart")[-1], env)
            try:
                main = spawn(u, argv, env)
            except OSError as e:
                journal(name, "systemctl", os.getpid(), f"Failed to execute {argv[0]}: {e.strerror}")
                status = 203
            if main is not None:
                event("spawn", name, f"pid={main.pid}")
                write_state(name, main_pid=main.pid, sub="start")
                ident = u.get("Service", "SyslogIdentifier") or os.path.basename(argv[0])
                pumper = threading.Thread(target=pump, args=(main.stdout, name, ident, main.pid),
                                          daemon=True)
                pumper.start()
                ready = u.type in ("simple", "exec", "idle")
                marked = False
                deadline = time.monotonic() + start_timeout if start_timeout else None
                while True:
                    if notify is not None and not ready:
                        r, _, _ = select.select([notify], [], [], 0.2)
                        if r:
                            msg = notify.recv(4096).decode(errors="replace")
                            ready = "READY=1" in msg.split("\n")
                    elif u.type == "forking" and not ready:
                        if main.poll() is not None:
                            break
                        time.sleep(0.1)
                    else:
                        time.sleep(0.2)
                    if ready and not marked:
                        marked = True
                        run_lines(u, "ExecStartPost", env)
                        write_state(name, active="active", sub="running", since=now_iso(),
                                    result="success")
                        event("ready", name, f"pid={main.pid}")
                    if main.poll() is not None:
                        break
                    if stop.is_set():
                        stop_main(u, main, kill_mode, stop_timeout, env)
                        break
                    if not ready and deadline and time.monotonic() > deadline:
                        journal(name, "systemctl", os.getpid(),
                                "start operation timed out. Terminating.")
                        timed_out = True
                        stop_main(u, main, kill_mode, stop_timeout, env)
                        break
                pumper.join(timeout=2)
                status = main.returncode
                if u.type == "forking" and status == 0 and not stop.is_set():
                    write_state(name, active="active", sub="running", since=now_iso())
                    event("ready", name, "forking")
                    return 0  # the daemon is on its own now; stop kills by PIDFile
                event("exit", name, f"status={status}")
            if notify is not None:
                notify.close()
        if stop.is_set():
            run_lines(u, "ExecStopPost", env)
            write_state(name, active="inactive", sub="dead", main_pid=0, supervisor=0,
                        exec_status=str(status))
            event("stopped", name)
            return 0
        clean = not timed_out and (status == 0 or status in success or status in (
            -signal.SIGTERM, -signal.SIGHUP, -signal.SIGINT, -signal.SIGPIPE))
        result = ("timeout" if timed_out else "success" if clean
                  else "signal" if status < 0 else "exit-code")
        run_lines(u, "ExecStopPost", env)
        if restart == "always" or (restart == "on-failure" and not clean) or (
                restart == "on-abnormal" and (timed_out or status < 0)):
            st = write_state(name, active="activating", sub="auto-restart", main_pid=0,
                             result=result, exec_status=str(status),
                             restarts=read_state(name)["restarts"] + 1)
            event("auto-restart", name, f"status={status}")
            journal(name, "systemctl", os.getpid(),
                    f"Scheduled restart job, restart counter is at {st['restarts']}.")
            if stop.wait(restart_sec):
                write_state(name, active="inactive", sub="dead", supervisor=0)
                event("stopped", name)
                return 0
            continue
        write_state(name, active="inactive" if clean else "failed",
                    sub="dead" if clean else "failed", main_pid=0, supervisor=0,
                    result=result, exec_status=str(status))
        event("stopped" if clean else "failed", name, f"status={status}")
        return 0


def stop_main(u: Unit, main, kill_mode: str, timeout: float, env: dict) -> None:
    write_state(u.name, active="deactivating", sub="stop")
    run_lines(u, "ExecStop", {**env, "MAINPID": str(main.pid)})
    if main.poll() is None:
        sig = getattr(signal, u.get("Service", "KillSignal", "SIGTERM"), signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            if kill_mode == "control-group":
                os.killpg(main.pid, sig)
            elif kill_mode != "none":
                os.kill(main.pid, sig)
        try:
            main.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            journal(u.name, "systemctl", os.getpid(), "State 'stop-sigterm' timed out. Killing.")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(main.pid, signal.SIGKILL)
            main.wait()
    if kill_mode in ("control-group", "mixed"):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(main.pid, signal.SIGKILL)


# --- verbs --------------------------------------------------------------------------------
def job_failed(verb: str, name: str) -> int:
    print(f"Job for {name} failed because the control process exited with error code.\n"
          f"See \"systemctl status {name}\" and \"journalctl -xeu {name}\" for details.",
          file=sys.stderr)
    return 1


def start(name: str, wait: bool = True, verb_event: str | None = "start",
          wait_limit: float | None = None, _chain: tuple = ()) -> int:
    if name.endswith(".target"):
        return 0
    u = load(name)
    if u is None:
        print(f"Failed to start {name}: Unit {name} not found.", file=sys.stderr)
        return 5
    warn_changed(u)
    for dep in u.words("Unit", "Requires") + u.words("Unit", "Wants"):
        dep = norm(dep)
        if dep.endswith(".service") and dep not in _chain and \
                effective_state(dep)["active"] != "active" and load(dep) is not None:
            rc = start(dep, True, "start", wait_limit, _chain + (name,))
            if rc != 0 and dep in u.words("Unit", "Requires"):
                print(f"A dependency job for {name} failed. See 'journalctl -xe' for details.",
                      file=sys.stderr)
                return 1
    for other in u.words("Unit", "Conflicts"):
        if effective_state(norm(other))["active"] in ACTIVE_LIKE:
            stop(norm(other))
    with locked(f"{STATE_DIR}/{name}.lock"):
        st = effective_state(name)
        already = st["active"] in ACTIVE_LIKE and not (u.type == "oneshot" and st["active"] != "active")
        if not already:
            if verb_event:
                event(verb_event, name)
            if not conditions_met(u):
                write_state(name, active="inactive", sub="dead", result="condition")
                return 0
            if u.type == "oneshot":
                return run_oneshot(u)
            write_state(name, active="activating", sub="start", result="", main_pid=0,
                        supervisor=0)
            proc = subprocess.Popen([sys.executable, ME, "__lab-supervise", name],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=open(f"{STATE_DIR}/{name}.supervisor.log", "a"),
                                    start_new_session=True, close_fds=True)
            write_state(name, supervisor=proc.pid)
    if not wait:
        return 0
    deadline = time.monotonic() + wait_limit if wait_limit else None
    while True:
        st = effective_state(name)
        if st["active"] == "active":
            return 0
        if st["active"] in ("failed", "inactive"):
            return job_failed("start", name)
        if deadline and time.monotonic() > deadline:
            print(f"lab-boot: {name} still {st['active']} ({st['sub']}), moving on", file=sys.stderr)
            return 1
        time.sleep(0.1)


def run_oneshot(u: Unit) -> int:
    name = u.name
    write_state(name, active="activating", sub="start", supervisor=0, main_pid=0)
    try:
        env = build_env(u)
    except UnitError as e:
        journal(name, "systemctl", os.getpid(), str(e))
        write_state(name, active="failed", sub="failed", result="resources")
        return job_failed("start", name)
    prepare_runtime(u)
    timeout = parse_time(u.get("Service", "TimeoutStartSec"))
    event("spawn", name, "oneshot")
    for key in ("ExecStartPre", "ExecStart", "ExecStartPost"):
        for line in u.getlist("Service", key):
            rc = run_logged(u, line, env, timeout=timeout or None)
            if rc != 0:
                journal(name, "systemctl", os.getpid(), f"{key} failed with status {rc}")
                run_lines(u, "ExecStopPost", env)
                write_state(name, active="failed", sub="failed", result="exit-code",
                            exec_status=str(rc))
                event("failed", name, f"status={rc}")
                return job_failed("start", name)
    remain = u.flag("RemainAfterExit")
    write_state(name, active="active" if remain else "inactive",
                sub="exited" if remain else "dead", result="success", since=now_iso(),
                exec_status="0")
    event("ready" if remain else "exit", name, "status=0")
    return 0


def stop(name: str, verb_event: str | None = "stop") -> int:
    if name.endswith(".target"):
        return 0
    u = load(name)
    if u is None:
        print(f"Failed to stop {name}: Unit {name} not loaded.", file=sys.stderr)
        return 5
    with locked(f"{STATE_DIR}/{name}.lock"):
        st = effective_state(name)
        if verb_event:
            event(verb_event, name)
        if u.type == "oneshot" or st["sub"] == "running" and not st["supervisor"]:
            if st["active"] == "active":
                env = build_env(u)
                run_lines(u, "ExecStop", env)
                run_lines(u, "ExecStopPost", env)
                if u.type == "forking" and st["main_pid"]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(st["main_pid"], signal.SIGTERM)
                write_state(name, active="inactive", sub="dead", main_pid=0)
            return 0
        sup = st["supervisor"]
        if sup and alive(sup):
            os.kill(sup, signal.SIGTERM)
            limit = (parse_time(u.get("Service", "TimeoutStopSec", "90s")) or 90) + 10
            deadline = time.monotonic() + limit
            while alive(sup) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(sup):
                for pid in (st["main_pid"], sup):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                write_state(name, active="failed", sub="failed", result="timeout", supervisor=0)
        elif st["active"] in ACTIVE_LIKE:
            write_state(name, active="inactive", sub="dead", main_pid=0, supervisor=0)
    return 0


def reload(name: str) -> int:
    u = load(name)
    if u is None:
        print(f"Failed to reload {name}: Unit {name} not found.", file=sys.stderr)
        return 5
    st = effective_state(name)
    if not u.getlist("Service", "ExecReload"):
        print(f"Failed to reload {name}: Job type reload is not applicable for unit {name}.",
              file=sys.stderr)
        return 1
    if st["active"] != "active":
        print(f"{name} is not active, cannot reload.", file=sys.stderr)
        return 1
    event("reload", name)
    rc = run_lines(u, "ExecReload", build_env(u, {"MAINPID": str(st["main_pid"])}))
    return job_failed("reload", name) if rc else 0


def wants_links(name: str) -> list:
    return sorted(glob.glob(f"/etc/systemd/system/*.wants/{name}")
                  + glob.glob(f"/etc/systemd/system/*.requires/{name}"))


def enabled_here() -> list:
    try:
        with open(ENABLED_HERE) as f:
            return [x for x in f.read().split() if x]
    except FileNotFoundError:
        return []


def set_enabled_here(names: list) -> None:
    os.makedirs(os.path.dirname(ENABLED_HERE), exist_ok=True)
    with open(ENABLED_HERE, "w") as f:
        f.write("".join(n + "\n" for n in dict.fromkeys(names)))


def enable(name: str) -> int:
    disk = read_disk(name)
    if disk is None:
        print(f"Failed to enable unit: Unit file {name} does not exist.", file=sys.stderr)
        return 1
    u = Unit(disk)
    targets = [(t, "wants") for t in u.words("Install", "WantedBy")] + \
              [(t, "requires") for t in u.words("Install", "RequiredBy")]
    if not targets:
        print("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
              "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
              "units). This means they are not meant to be enabled using systemctl.",
              file=sys.stderr)
        return 0
    for target, kind in targets:
        link = f"/etc/systemd/system/{target}.{kind}/{name}"
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(disk["fragment"], link)
            print(f"Created symlink {link} \u2192 {disk['fragment']}.", file=sys.stderr)
    set_enabled_here(enabled_here() + [name])
    event("enable", name)
    return 0


def disable(name: str) -> int:
    for link in wants_links(name):
        os.unlink(link)
        print(f'Removed "{link}".', file=sys.stderr)
    set_enabled_here([n for n in enabled_here() if n != name])
    event("disable", name)
    return 0


def enabled_state(name: str) -> tuple[str, int]:
    disk = read_disk(name)
    if disk is None:
        return "not-found", 1
    if wants_links(name):
        return "enabled", 0
    if not Unit(disk).sections.get("Install"):
        return "static", 0
    return "disabled", 1


def describe_active(st: dict) -> str:
    since = f" since {st['since']}" if st["since"] and st["active"] == "active" else ""
    return f"{st['active']} ({st['sub']}){since}"


def status(name: str, lines: int) -> int:
    u = load(name)
    if u is None:
        print(f"Unit {name} could not be found.", file=sys.stderr)
        return 4
    warn_changed(u)
    st = effective_state(name)
    state, _ = enabled_state(name)
    print(f"\u25cf {name} - {u.get('Unit', 'Description', name)}")
    print(f"     Loaded: loaded ({u.fragment}; {state}; preset: enabled)")
    print(f"     Active: {describe_active(st)}")
    if st["main_pid"]:
        print(f"   Main PID: {st['main_pid']}")
    print("      Notes: lab stand-in for systemd (tests/lab/hosttools/systemctl.py)")
    tail = read_journal([name])[-lines:] if lines else []
    if tail:
        print()
        for ts, rest in tail:
            print(short_time(ts) + " " + rest)
    return 0 if st["active"] == "active" else 3


def show(name: str, props: list, value_only: bool) -> int:
    u = load(name)
    st = effective_state(name)
    state, _ = enabled_state(name)
    allprops = {
        "Id": name, "LoadState": "loaded" if u else "not-found",
        "ActiveState": st["active"], "SubState": st["sub"], "MainPID": str(st["main_pid"]),
        "Result": st["result"], "NRestarts": str(st["restarts"]),
        "ExecMainStatus": st["exec_status"], "UnitFileState": state,
        "FragmentPath": u.fragment if u else "", "Type": u.type if u else "",
        "ActiveEnterTimestamp": st["since"],
        "NeedDaemonReload": "yes" if u and u.changed_on_disk else "no",
    }
    for key in props or list(allprops):
        val = allprops.get(key, "")
        print(val if value_only else f"{key}={val}")
    return 0


# --- journal ------------------------------------------------------------------------------
def read_journal(units: list | None) -> list:
    if units:
        files = [f"{JOURNAL_DIR}/{u}.log" for u in units]
    else:
        files = [f for f in glob.glob(f"{JOURNAL_DIR}/*.log") if f != EVENTS]
    entries = []
    for f in files:
        with contextlib.suppress(FileNotFoundError), open(f, errors="replace") as fh:
            for line in fh:
                ts, _, rest = line.rstrip("\n").partition(" ")
                entries.append((ts, rest))
    entries.sort(key=lambda e: e[0])
    return entries


def short_time(ts: str) -> str:
    try:
        return dt.datetime.fromisoformat(ts).strftime("%b %d %H:%M:%S")
    except ValueError:
        return ts


def journalctl_main(args: list) -> int:
    units, lines, output = [], None, "short"
    it = iter(args)
    for a in it:
        if a in ("-u", "--unit"):
            units.append(norm(next(it, "")))
        elif a.startswith("--unit="):
            units.append(norm(a.split("=", 1)[1]))
        elif a.startswith("-u") and len(a) > 2:
            units.append(norm(a[2:]))
        elif a in ("-n", "--lines"):
            lines = int(next(it, "10"))
        elif a.startswith("--lines="):
            lines = int(a.split("=", 1)[1])
        elif re.fullmatch(r"-n\d+", a):
            lines = int(a[2:])
        elif a in ("-o", "--output"):
            output = next(it, "short")
        elif a.startswith("--output="):
            output = a.split("=", 1)[1]
        elif a == "-e" or a == "-xe" or a == "-xeu":
            lines = lines or 1000
            if a == "-xeu":
                units.append(norm(next(it, "")))
        elif a in ("--since", "--until", "-t", "--identifier", "-p", "--priority"):
            next(it, None)  # accepted, not applied
        elif a.startswith("-"):
            continue  # --no-pager, -b, -x, -q, -f (no follow in the lab), ...
    entries = read_journal(units)
    if lines is not None:
        entries = entries[-lines:] if lines else []
    if not entries:
        print("-- No entries --")
    for ts, rest in entries:
        if output == "cat":
            print(rest.split(": ", 1)[-1])
        elif output.startswith("short-iso"):
            print(f"{ts} {rest}")
        else:
            print(f"{short_time(ts)} {rest}")
    return 0


# --- lab-only verbs -----------------------------------------------------------------------
def boot_order(names: list) -> list:
    units = {n: load(n) for n in names}
    after = {n: set() for n in names}
    for n, u in units.items():
        if u is None:
            continue
        for a in u.words("Unit", "After"):
            if norm(a) in after:
                after[n].add(norm(a))
        for b in u.words("Unit", "Before"):
            if norm(b) in after:
                after[norm(b)].add(n)
    order, done = [], set()
    while len(order) < len(names):
        ready = [n for n in names if n not in done and after[n] <= done] or \
                [n for n in names if n not in done][:1]  # break cycles as systemd would
        for n in ready:
            order.append(n)
            done.add(n)
    return order


def lab_boot() -> int:
    import shutil
    shutil.rmtree(f"{STATE_DIR}/units", ignore_errors=True)  # a boot reads units afresh
    names = [n for n in enabled_here() if enabled_state(n)[0] == "enabled"]
    for n in boot_order(names):
        rc = start(n, wait=True, verb_event="boot-start", wait_limit=BOOT_START_WAIT)
        print(f"lab-boot: {n}: {effective_state(n)['active']} (rc {rc})")
    return 0


def lab_shutdown() -> int:
    names = [os.path.basename(p)[:-len(".state.json")]
             for p in glob.glob(f"{STATE_DIR}/*.state.json")]
    for n in reversed(boot_order(names)):
        if effective_state(n)["active"] in ACTIVE_LIKE:
            stop(n, verb_event="shutdown-stop")
    return 0


# --- command line -------------------------------------------------------------------------
def systemctl_main(args: list) -> int:
    opts, pos = set(), []
    props, sig, lines = [], "SIGTERM", 10
    it = iter(args)
    for a in it:
        if a in ("-p", "--property"):
            props += next(it, "").split(",")
        elif a.startswith("--property="):
            props += a.split("=", 1)[1].split(",")
        elif a in ("-s", "--signal"):
            sig = next(it, "SIGTERM")
        elif a.startswith("--signal="):
            sig = a.split("=", 1)[1]
        elif a in ("-n", "--lines"):
            lines = int(next(it, "10"))
        elif a.startswith("--lines="):
            lines = int(a.split("=", 1)[1])
        elif a.startswith("-"):
            opts.add({"-q": "--quiet", "-l": "--full"}.get(a, a))
        else:
            pos.append(a)
    if not pos:
        print("systemctl (lab stand-in): a verb is required", file=sys.stderr)
        return 1
    verb, names = pos[0], [norm(n) for n in pos[1:]]
    quiet, now, wait = "--quiet" in opts, "--now" in opts, "--no-block" not in opts
    rc = 0
    if verb == "daemon-reload":
        import shutil
        shutil.rmtree(f"{STATE_DIR}/units", ignore_errors=True)
        event("daemon-reload", "-")
        return 0
    if verb in ("start", "stop", "restart", "try-restart", "reload-or-restart", "reload",
                "enable", "disable", "reset-failed", "kill", "status", "show", "cat") and not names:
        print("Too few arguments.", file=sys.stderr)
        return 1
    known = ("start", "stop", "restart", "try-restart", "reload-or-restart", "reload",
             "enable", "disable", "is-active", "is-failed", "is-enabled", "status", "show",
             "cat", "reset-failed", "kill")
    for n in names if verb in known else []:
        r = 0
        if verb == "start":
            r = start(n, wait)
        elif verb == "stop":
            r = stop(n)
        elif verb in ("restart", "reload-or-restart", "try-restart"):
            if verb == "try-restart" and effective_state(n)["active"] not in ACTIVE_LIKE:
                continue
            event("restart", n)
            stop(n, verb_event=None)
            r = start(n, wait, verb_event=None)
        elif verb == "reload":
            r = reload(n)
        elif verb == "enable":
            r = enable(n) or (start(n, wait) if now else 0)
        elif verb == "disable":
            r = (stop(n) if now else 0) or disable(n)
        elif verb == "is-active":
            st = effective_state(n)["active"] if not n.endswith(".target") else "active"
            if not quiet:
                print(st)
            r = 0 if st == "active" else 3
        elif verb == "is-failed":
            st = effective_state(n)["active"]
            if not quiet:
                print(st)
            r = 0 if st == "failed" else 1
        elif verb == "is-enabled":
            state, r = enabled_state(n)
            if state == "not-found":
                print(f"Failed to get unit file state for {n}: No such file or directory",
                      file=sys.stderr)
            elif not quiet:
                print(state)
        elif verb == "status":
            r = status(n, lines)
        elif verb == "show":
            r = show(n, props, "--value" in opts)
        elif verb == "cat":
            u = load(n)
            if u is None:
                print(f"No files found for {n}.", file=sys.stderr)
                r = 1
            for path, text in (u.files if u else []):
                print(f"# {path}\n{text}")
        elif verb == "reset-failed":
            if read_state(n)["active"] == "failed":
                write_state(n, active="inactive", sub="dead", result="success")
        elif verb == "kill":
            pid = effective_state(n)["main_pid"]
            if pid:
                os.kill(pid, getattr(signal, sig if sig.startswith("SIG") else "SIG" + sig))
                event("kill", n, sig)
        rc = rc or r
    if verb in ("lab-boot", "lab-shutdown"):
        return lab_boot() if verb == "lab-boot" else lab_shutdown()
    if verb in ("reboot", "poweroff", "halt", "kexec", "suspend"):
        print(f"systemctl (lab stand-in): '{verb}' is not available in lab hosts; the lab "
              "reboots a host with Host.reboot()", file=sys.stderr)
        return 1
    if verb not in known:
        print(f"systemctl (lab stand-in): verb '{verb}' is not supported", file=sys.stderr)
        return 1
    return rc


def main() -> int:
    prog = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if args[:1] == ["__lab-supervise"]:
        return supervise(args[1])
    if prog == "journalctl":
        return journalctl_main(args)
    return systemctl_main(args)


if __name__ == "__main__":
    sys.exit(main())
