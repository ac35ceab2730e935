"""What a host step does to its host, as each host script declares it.

Pure module. Every host script (components/scripts/*.sh, except lib.sh) carries one header
line near its top:

    # host-effect: <clause>; <clause>; ...

read left to right, the first clause that holds wins. A clause is an effect, optionally
followed by `if` and conditions joined by `and` (all must hold) or `or` (one must):

    VAR=value        the value the step's command assigns to VAR (components/scripts.py render)
    changed(VAR)     VAR differs from the command the host last ran (always true on create)
    changed(stdin)   the step's stdin differs from the last run (always true on create)
    created          the step is created (a new step, or the replacement of a replaced one)
    handed-over      the step is deleted while another host of the stack takes its address
                     (a renamed node, or a host moved between servers and agents)

e.g. `# host-effect: restart if ACTION=restart; nothing`. The plan (components/plan.py)
evaluates the declaration of the script a step runs, for the command that will run, so
effects live next to the code that has them and cannot drift into a table kept apart.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
HEADER = "# host-effect:"
MARKER_RE = re.compile(r"^# rke2-rancher: (?P<name>[A-Za-z0-9_.-]+\.sh)$", re.M)
_VAR_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Effect:
    name: str
    label: str
    down: bool = False
    """The RKE2 service is stopped or restarted: the node is down for a while."""


EFFECTS = {e.name: e for e in (
    Effect("nothing", "nothing (re-runs its checks, changes nothing)"),
    Effect("file", "file rewritten"),
    Effect("reload", "config rewritten, service reloaded (no restart)"),
    Effect("install", "software (re)installed"),
    Effect("restart", "RKE2 restart", down=True),
    Effect("certs", "certificates regenerated (RKE2 restart)", down=True),
    Effect("drain", "node cordoned and drained"),
    Effect("restore", "etcd data replaced: restored from the snapshot, or moved aside to rejoin (RKE2 restart)",
           down=True),
    Effect("uninstall", "RKE2 uninstalled", down=True),
    Effect("refused", "refused on an initialised host (the step fails, nothing changes)"),
)}

# Labels for a step that runs for the first time.
CREATE_LABELS = {"nothing": "nothing (checks only)", "install": "software installed", "file": "file written"}

# How bad an effect is, for the one effect a replaced step (create + delete) reports.
SEVERITY = ["nothing", "file", "reload", "install", "refused", "restart", "certs", "drain", "restore", "uninstall"]


class EffectError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    kind: str  # "value", "changed", "created"
    var: str = ""
    value: str = ""

    def holds(self, run: "Run") -> bool:
        if self.kind == "created":
            return run.created
        if self.kind == "handed-over":
            return run.handed_over
        if self.kind == "changed":
            return run.created or run.changed(self.var)
        return run.values.get(self.var) == self.value


@dataclass(frozen=True)
class Clause:
    effect: str
    conditions: tuple[Condition, ...] = ()
    any_of: bool = False

    def holds(self, run: "Run") -> bool:
        if not self.conditions:
            return True
        results = (c.holds(run) for c in self.conditions)
        return any(results) if self.any_of else all(results)


@dataclass(frozen=True)
class Run:
    """One run of a host script: the values it is given, and what differs from the last run."""

    values: dict
    created: bool = False
    handed_over: bool = False
    changed_vars: frozenset = frozenset()
    stdin_changed: bool = False

    def changed(self, var: str) -> bool:
        return self.stdin_changed if var == "stdin" else var in self.changed_vars


def parse_condition(text: str) -> Condition:
    text = text.strip()
    if text in ("created", "handed-over"):
        return Condition(text)
    m = re.fullmatch(r"changed\((stdin|[A-Z][A-Z0-9_]*)\)", text)
    if m:
        return Condition("changed", var=m.group(1))
    m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(\S+)", text)
    if m:
        return Condition("value", var=m.group(1), value=m.group(2))
    raise EffectError(f"condition {text!r}: expected VAR=value, changed(VAR), changed(stdin), created or handed-over")


def parse_declaration(text: str) -> tuple[Clause, ...]:
    """`<effect> [if <cond> (and|or) ...]; ...` -> clauses. The last clause must be unconditional."""
    clauses = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            raise EffectError(f"empty clause in {text!r}")
        effect, _, cond = part.partition(" if ")
        effect = effect.strip()
        if effect not in EFFECTS:
            raise EffectError(f"unknown effect {effect!r} (known: {', '.join(EFFECTS)})")
        conditions: tuple[Condition, ...] = ()
        any_of = False
        if cond:
            if " and " in cond and " or " in cond:
                raise EffectError(f"clause {part!r} mixes and/or")
            any_of = " or " in cond
            conditions = tuple(parse_condition(c) for c in re.split(r" and | or ", cond))
        clauses.append(Clause(effect, conditions, any_of))
    if clauses[-1].conditions:
        raise EffectError(f"{text!r}: the last clause must have no condition (the default)")
    return tuple(clauses)


def declaration_of(script_text: str) -> str | None:
    """The declaration in the script's leading comment block (before its first command)."""
    for line in script_text.splitlines():
        if line.startswith(HEADER):
            return line[len(HEADER):].strip()
        if line.strip() and not line.lstrip().startswith("#"):
            break
    return None


@lru_cache(maxsize=None)
def script_clauses(name: str) -> tuple[Clause, ...]:
    """The parsed declaration of components/scripts/<name>."""
    path = SCRIPTS_DIR / name
    if not path.is_file():
        raise EffectError(f"no host script {name}")
    decl = declaration_of(path.read_text())
    if decl is None:
        raise EffectError(f"{name} declares no `{HEADER}` line")
    try:
        return parse_declaration(decl)
    except EffectError as e:
        raise EffectError(f"{name}: {e}") from None


def effect_of(script: str, run: Run) -> str:
    for clause in script_clauses(script):
        if clause.holds(run):
            return clause.effect
    raise AssertionError("unreachable: the last clause is unconditional")


@dataclass(frozen=True)
class Command:
    """A remote command as components/host.py builds it: the script and its assigned values."""

    script: str
    values: dict


def parse_command(command: str | None) -> Command | None:
    """`bash -c '<script>' rke2-rancher` (or `sudo -n bash -c ...`) -> the script's name and the
    values assigned at its top (scripts.render). None for anything else."""
    if not isinstance(command, str):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if "-c" not in words:
        return None
    i = words.index("-c")
    if i + 1 >= len(words):
        return None
    body = words[i + 1]
    m = MARKER_RE.search(body)
    if not m:
        return None
    values = {}
    pos = body.find("\n", m.end()) + 1  # after the marker line
    while pos > 0:
        a = _ASSIGN_RE.match(body, pos)
        if not a:
            break  # the assignments end where lib.sh begins
        word, pos = _read_word(body, a.end())
        if word is None or (pos < len(body) and body[pos] != "\n"):
            break
        values[a.group(1)] = word
        pos += 1
    return Command(m.group("name"), values)


_ASSIGN_RE = re.compile(r"([A-Z][A-Z0-9_]*)=")


def _read_word(text: str, pos: int) -> tuple[str | None, int]:
    """One shell word as shlex.quote writes it: bare characters and quoted segments."""
    out = []
    while pos < len(text) and text[pos] not in " \t\n;&|":
        ch = text[pos]
        if ch in "'\"":
            end = text.find(ch, pos + 1)
            if end < 0:
                return None, pos
            segment = text[pos + 1:end]
            if ch == '"' and any(c in segment for c in "$`\\"):
                return None, pos  # never produced by shlex.quote
            out.append(segment)
            pos = end + 1
        elif ch in "$`\\":
            return None, pos
        else:
            out.append(ch)
            pos += 1
    return "".join(out), pos


def worst(effects) -> str:
    effects = list(effects) or ["nothing"]
    return max(effects, key=SEVERITY.index)
