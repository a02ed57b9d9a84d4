"""Exercises are data: one TOML file each under exercises/, validated on load."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lab.core.errors import ExerciseSchemaError, UsageError
from lab.core.tomlfile import read_toml

# The host-side preparations a start state may ask for (made by lab.vm.fixtures).
FIXTURES = ("fence-virtd", "sbd-disk")

BASELINES = ("installed", "cluster")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class CheckRef:
    id: str
    check: str
    description: str
    points: int
    params: dict[str, Any]


@dataclass(frozen=True)
class StartState:
    """How `lab start` prepares the exercise: a baseline snapshot, commands, faults."""

    baseline: str
    commands: tuple[str, ...] = ()
    faults: tuple[dict[str, Any], ...] = ()
    min_nodes: int = 2
    # Host-side preparation (lab.vm.fixtures): a fence daemon, a shared disk.
    fixtures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Param:
    """A value drawn per exam seed: a resource id, an interval, a score, a node, an attribute value.

    Choices are a closed list: a drawn value goes into shell commands, so it is never free text.
    kind "node" names a lab node (node1..): it is written {nodeK} in commands, nodeK elsewhere.
    """

    name: str
    default: str | int
    choices: tuple[str | int, ...]
    kind: str = "value"


@dataclass(frozen=True)
class Touches:
    """What a task changes or depends on; two exam tasks never share any of it ("*" = all of a kind).

    nodes may say "first"/"last" (the lab's first/last node)."""

    resources: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()
    daemons: tuple[str, ...] = ()
    corosync: bool = False
    fixtures: tuple[str, ...] = ()

    def sets(self, nodes: Sequence[str] = ("node1", "node2")) -> dict[str, frozenset[str]]:
        """The touched objects by kind, with first/last resolved for a lab of these nodes."""
        alias = {"first": nodes[0], "last": nodes[-1]}
        return {"resources": frozenset(self.resources),
                "nodes": frozenset(alias.get(n, n) for n in self.nodes),
                "properties": frozenset(self.properties), "daemons": frozenset(self.daemons),
                "corosync": frozenset({"corosync.conf"} if self.corosync else ()),
                "fixtures": frozenset(self.fixtures)}

    def conflicts(self, other: Touches, nodes: Sequence[str] = ("node1", "node2")) -> list[str]:
        """Kinds in which both touch the same object (or one touches all of a kind the other uses)."""
        mine, theirs = self.sets(nodes), other.sets(nodes)
        return [kind for kind in mine
                if (mine[kind] & theirs[kind]) or ("*" in mine[kind] and theirs[kind])
                or ("*" in theirs[kind] and mine[kind])]


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    objective: str
    task: str
    hints: tuple[str, ...]
    start: StartState
    solution_pcs: tuple[str, ...]
    solution_crmsh: tuple[str, ...]
    solution_pcs09: tuple[str, ...] | None
    checks: tuple[CheckRef, ...]
    live_only: bool
    notes: str = ""
    # pcs 0.10.x only, where 0.11 changed a syntax (e.g. sbd's --device= became device=).
    solution_pcs010: tuple[str, ...] | None = None
    path: Path = field(default=Path())
    touches: Touches = field(default=Touches())
    # Must the task's effect survive a reboot (the exam's persistence phase)? False: runtime-only.
    persistent: bool = True
    params: tuple[Param, ...] = ()
    param_values: dict[str, str | int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def with_params(self, values: dict[str, Any]) -> Exercise:
        """The exercise with these parameter values (the rest default); each must be a choice."""
        declared = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise UsageError(f"{self.id}: unknown parameter '{unknown[0]}' "
                             f"(parameters: {', '.join(declared) or 'none'})")
        chosen = {p.name: p.default for p in self.params}
        for name, value in values.items():
            if value not in declared[name].choices:
                raise UsageError(f"{self.id}: parameter '{name}' = {value!r} is not one of "
                                 f"{', '.join(map(str, declared[name].choices))}")
            chosen[name] = value
        return _parse_rendered(self.raw, self.path, self.params, chosen)

    @property
    def max_score(self) -> int:
        return sum(c.points for c in self.checks)

    def solution_for(self, pcs_version: str | None) -> tuple[str, ...]:
        """The pcs solution in the syntax of the installed pcs (0.9 differs from 0.10+)."""
        if pcs_generation(pcs_version) == "0.9" and self.solution_pcs09 is not None:
            return self.solution_pcs09
        if pcs_version and re.match(r"0\.10\.", pcs_version) and self.solution_pcs010 is not None:
            return self.solution_pcs010
        return self.solution_pcs


# Offline states never contact the VIP; TEST-NET-1 keeps it clearly not real.
OFFLINE_VIP = "192.0.2.10"


def command_context(nodes: Sequence[str], *, vip_ip: str = OFFLINE_VIP, password: str = "",
                    vms: Sequence[str] | None = None) -> dict[str, str]:
    """Values for the {placeholders} of start and solution commands.

    `vms` are the nodes' libvirt domain names, which fencing maps node names to.
    """
    vms = list(vms) if vms is not None else [f"VM_OF_{n}" for n in nodes]
    context = {"nodes": " ".join(nodes), "vip_ip": vip_ip, "password": password,
               "first_node": nodes[0], "last_node": nodes[-1],
               "vm_map": ";".join(f"{n}:{vm}" for n, vm in zip(nodes, vms, strict=True))}
    context.update({f"node{i}": name for i, name in enumerate(nodes, start=1)})
    return context


def render_command(command: str, context: dict[str, str]) -> str:
    """Fill placeholders; a literal brace in a command is written {{ or }}."""
    try:
        return command.format(**context)
    except (KeyError, IndexError, ValueError) as exc:
        raise ExerciseSchemaError(f"command '{command}' has an unknown placeholder: {exc}") from None


def pcs_generation(version: str | None) -> str:
    """'0.9' or '0.10+': the two pcs command syntaxes in the wild."""
    if not version:
        return "0.10+"
    match = re.match(r"(\d+)\.(\d+)", version)
    if match and (int(match.group(1)), int(match.group(2))) < (0, 10):
        return "0.9"
    return "0.10+"


def exercises_dir() -> Path:
    override = os.environ.get("LAB_EXERCISES_DIR")
    if override:
        return Path(override)
    return Path(str(resources.files("exercises")))


def _require(data: dict, key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ExerciseSchemaError(f"{where}: missing required field '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ExerciseSchemaError(f"{where}: field '{key}' must be {kind.__name__}")
    return value


def _strings(data: dict, key: str, where: str, required: bool = True) -> tuple[str, ...]:
    if key not in data and not required:
        return ()
    value = _require(data, key, list, where)
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise ExerciseSchemaError(f"{where}: field '{key}' must be a list of non-empty strings")
    return tuple(value)


_TOP_KEYS = {"id", "title", "objective", "task", "hints", "start", "solution", "checks",
             "live_only", "notes", "touches", "persistent", "params"}
_PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A drawn value lands in shell commands and CIB ids: a short plain token, nothing a shell reads.
_PARAM_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$")
_NODE_VALUE = re.compile(r"^node[1-5]$")
_TOUCH_KEYS = ("resources", "nodes", "properties", "daemons", "corosync", "fixtures")
# Values of these hold commands: a node parameter is written {nodeK} there (filled per lab).
_COMMAND_KEYS = {"commands", "pcs", "pcs09", "pcs010", "crmsh"}


def _reserved_names() -> set[str]:
    return set(command_context(["node1"])) | {f"node{i}" for i in range(1, 6)}


def parse_params(data: dict, where: str) -> tuple[Param, ...]:
    """[params.NAME] tables: default, choices, optional kind (value|node)."""
    raw = data.get("params", {})
    if not isinstance(raw, dict):
        raise ExerciseSchemaError(f"{where}: field 'params' must be a table of [params.NAME] tables")
    out = []
    for name, spec in raw.items():
        pwhere = f"{where} [params.{name}]"
        if not _PARAM_NAME.match(name) or name in _reserved_names():
            raise ExerciseSchemaError(f"{pwhere}: a parameter name is lowercase letters, digits and _ and "
                                      "not a command placeholder (node1, nodes, vip_ip, ...)")
        if not isinstance(spec, dict):
            raise ExerciseSchemaError(f"{pwhere}: must be a table with default and choices")
        extra = sorted(set(spec) - {"default", "choices", "kind"})
        if extra:
            raise ExerciseSchemaError(f"{pwhere}: unknown field '{extra[0]}'")
        kind = spec.get("kind", "value")
        if kind not in ("value", "node"):
            raise ExerciseSchemaError(f"{pwhere}: field 'kind' must be value or node")
        choices = spec.get("choices")
        if not isinstance(choices, list) or len(choices) < 2:
            raise ExerciseSchemaError(f"{pwhere}: field 'choices' must list at least two values")
        pattern = _NODE_VALUE if kind == "node" else _PARAM_VALUE
        for value in choices:
            if isinstance(value, bool) or not isinstance(value, (str, int)) or not pattern.match(str(value)):
                raise ExerciseSchemaError(f"{pwhere}: choice {value!r} is not a plain token "
                                          f"({'node1..node5' if kind == 'node' else 'letters, digits, _.:-'})")
        if len(set(map(str, choices))) != len(choices):
            raise ExerciseSchemaError(f"{pwhere}: field 'choices' lists a value twice")
        if "default" not in spec or spec["default"] not in choices:
            raise ExerciseSchemaError(f"{pwhere}: field 'default' must be one of the choices")
        out.append(Param(name, spec["default"], tuple(choices), kind))
    return tuple(out)


def _fill(value: Any, params: dict[str, Param], values: dict[str, Any], in_command: bool) -> Any:
    """Put parameter values into every string of value (a value is always written as text)."""
    if isinstance(value, dict):
        return {k: _fill(v, params, values, in_command or k in _COMMAND_KEYS) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, params, values, in_command) for v in value]
    if not isinstance(value, str) or not params:
        return value

    def shown(name: str) -> str:
        text = str(values[name])
        return "{" + text + "}" if in_command and params[name].kind == "node" else text

    names = "|".join(re.escape(n) for n in params)
    return re.sub(r"(?<!\{)\{(" + names + r")\}(?!\})", lambda m: shown(m.group(1)), value)


def _touches(data: dict, where: str, fixtures: tuple[str, ...]) -> Touches:
    raw = data.get("touches", {})
    if not isinstance(raw, dict):
        raise ExerciseSchemaError(f"{where}: field 'touches' must be a table ({', '.join(_TOUCH_KEYS)})")
    extra = sorted(set(raw) - set(_TOUCH_KEYS))
    if extra:
        raise ExerciseSchemaError(f"{where} [touches]: unknown field '{extra[0]}' (fields: {', '.join(_TOUCH_KEYS)})")
    corosync = raw.get("corosync", False)
    if not isinstance(corosync, bool):
        raise ExerciseSchemaError(f"{where} [touches]: field 'corosync' must be true or false")
    lists = {k: _strings(raw, k, f"{where} [touches]", False) for k in _TOUCH_KEYS if k != "corosync"}
    # The host-side fixtures a start state uses are touched whether declared or not.
    lists["fixtures"] = tuple(dict.fromkeys(lists["fixtures"] + fixtures))
    return Touches(corosync=corosync, **lists)


def parse_exercise(data: dict, path: Path) -> Exercise:
    """Validate one exercise's data against the schema; raise ExerciseSchemaError.

    Parameters take their defaults; Exercise.with_params renders other values."""
    where = path.name
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ExerciseSchemaError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    params = parse_params(data, where)
    return _parse_rendered(data, path, params, {p.name: p.default for p in params})


def _parse_rendered(data: dict, path: Path, params: tuple[Param, ...],
                    values: dict[str, Any]) -> Exercise:
    from checks import get_check

    where = path.name
    source, declared = data, params
    by_name = {p.name: p for p in params}
    data = {k: (v if k in ("id", "params", "objective") else _fill(v, by_name, values, False))
            for k, v in data.items()}
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ExerciseSchemaError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    ex_id = _require(data, "id", str, where)
    if not _ID.match(ex_id) or path.stem != ex_id:
        raise ExerciseSchemaError(f"{where}: id '{ex_id}' must be lowercase-dashed and match the file name")
    hints = _strings(data, "hints", where)
    start_data = _require(data, "start", dict, where)
    baseline = _require(start_data, "baseline", str, f"{where} [start]")
    if baseline not in BASELINES:
        raise ExerciseSchemaError(f"{where} [start]: baseline must be one of {', '.join(BASELINES)}")
    faults = start_data.get("faults", [])
    if not isinstance(faults, list) or not all(isinstance(f, dict) and "kind" in f for f in faults):
        raise ExerciseSchemaError(f"{where} [start]: faults must be a list of tables with 'kind'")
    min_nodes = start_data.get("min_nodes", 2)
    if not isinstance(min_nodes, int) or not 1 <= min_nodes <= 5:
        raise ExerciseSchemaError(f"{where} [start]: min_nodes must be an integer 1..5")
    fixtures = _strings(start_data, "fixtures", f"{where} [start]", False)
    unknown_fixtures = [f for f in fixtures if f not in FIXTURES]
    if unknown_fixtures:
        raise ExerciseSchemaError(f"{where} [start]: unknown fixture(s) {', '.join(unknown_fixtures)} "
                                  f"(known: {', '.join(FIXTURES)})")
    start = StartState(baseline, _strings(start_data, "commands", f"{where} [start]", False),
                       tuple(faults), min_nodes, fixtures)
    solution = _require(data, "solution", dict, where)
    pcs09 = _strings(solution, "pcs09", f"{where} [solution]", False) or None
    pcs010 = _strings(solution, "pcs010", f"{where} [solution]", False) or None
    checks = []
    seen: set[str] = set()
    for index, raw in enumerate(_require(data, "checks", list, where)):
        cwhere = f"{where} checks[{index}]"
        if not isinstance(raw, dict):
            raise ExerciseSchemaError(f"{cwhere}: must be a table")
        extra = set(raw) - {"id", "check", "description", "points", "params"}
        if extra:
            raise ExerciseSchemaError(f"{cwhere}: unknown field(s) {', '.join(sorted(extra))}")
        check_id = _require(raw, "id", str, cwhere)
        if check_id in seen:
            raise ExerciseSchemaError(f"{cwhere}: duplicate check id '{check_id}'")
        seen.add(check_id)
        name = _require(raw, "check", str, cwhere)
        spec = get_check(name)
        if spec is None:
            raise ExerciseSchemaError(f"{cwhere}: unknown check function '{name}'")
        params = raw.get("params", {})
        if not isinstance(params, dict):
            raise ExerciseSchemaError(f"{cwhere}: params must be a table")
        problem = spec.validate_params(params)
        if problem:
            raise ExerciseSchemaError(f"{cwhere}: params do not fit '{name}': {problem}")
        points = _require(raw, "points", int, cwhere)
        if points < 1:
            raise ExerciseSchemaError(f"{cwhere}: points must be positive")
        checks.append(CheckRef(check_id, name, _require(raw, "description", str, cwhere), points, params))
    if not checks:
        raise ExerciseSchemaError(f"{where}: an exercise needs at least one check")
    live_only = data.get("live_only", False)
    if not isinstance(live_only, bool):
        raise ExerciseSchemaError(f"{where}: live_only must be true or false")
    persistent = data.get("persistent", True)
    if not isinstance(persistent, bool):
        raise ExerciseSchemaError(f"{where}: field 'persistent' must be true or false")
    touches = _touches(data, where, fixtures)
    return Exercise(
        id=ex_id,
        title=_require(data, "title", str, where),
        objective=_require(data, "objective", str, where),
        task=_require(data, "task", str, where),
        hints=hints,
        start=start,
        solution_pcs=_strings(solution, "pcs", f"{where} [solution]"),
        solution_crmsh=_strings(solution, "crmsh", f"{where} [solution]"),
        solution_pcs09=pcs09,
        solution_pcs010=pcs010,
        checks=tuple(checks),
        live_only=live_only,
        notes=data.get("notes", ""),
        path=path,
        touches=touches,
        persistent=persistent,
        params=declared,
        param_values=dict(values),
        raw=source,
    )


def load_exercise_file(path: Path) -> Exercise:
    return parse_exercise(read_toml(path, "exercise file", ExerciseSchemaError), path)


def load_all() -> list[Exercise]:
    """Every exercise, in catalogue order (by file name within each objective)."""
    directory = exercises_dir()
    return [load_exercise_file(p) for p in sorted(directory.glob("*.toml"))]


def load(exercise_id: str) -> Exercise:
    path = exercises_dir() / f"{exercise_id}.toml"
    if not _ID.match(exercise_id) or not path.is_file():
        known = ", ".join(e.stem for e in sorted(exercises_dir().glob("*.toml")))
        raise UsageError(f"unknown exercise '{exercise_id}' (known: {known})")
    return load_exercise_file(path)
