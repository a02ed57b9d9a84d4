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
from lab.core.tomlfile import read_toml, validated
from lab.engine.pcs import is_pcs010, pcs_generation
from lab.engine.schema import ID_PATTERN, ExerciseDoc, ParamDoc

_ID = re.compile(ID_PATTERN)
# Values of these hold commands: a node parameter is written {nodeK} there (filled per lab).
_COMMAND_KEYS = {"commands", "pcs", "pcs09", "pcs010", "crmsh"}


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
    max_nodes: int | None = None  # the largest lab it works on; None: any

    def fits(self, nodes: int) -> bool:
        """Whether a lab of NODES nodes can run the exercise."""
        return self.min_nodes <= nodes and (self.max_nodes is None or nodes <= self.max_nodes)


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
        if is_pcs010(pcs_version) and self.solution_pcs010 is not None:
            return self.solution_pcs010
        return self.solution_pcs


def exercises_dir() -> Path:
    override = os.environ.get("LAB_EXERCISES_DIR")
    if override:
        return Path(override)
    return Path(str(resources.files("exercises")))


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


def _doc(data: Any, path: Path) -> ExerciseDoc:
    return validated(ExerciseDoc, data, path.name, ExerciseSchemaError, context={"stem": path.stem})


def _param(name: str, doc: ParamDoc) -> Param:
    return Param(name, doc.default, doc.choices, doc.kind)


def parse_exercise(data: dict, path: Path) -> Exercise:
    """Validate one exercise's data against the schema (lab.engine.schema); raise
    ExerciseSchemaError naming the file, the key and what was expected.

    Parameters take their defaults; Exercise.with_params renders other values."""
    params = tuple(_param(n, p) for n, p in _doc(data, path).params.items())
    return _parse_rendered(data, path, params, {p.name: p.default for p in params})


def _parse_rendered(data: dict, path: Path, params: tuple[Param, ...],
                    values: dict[str, Any]) -> Exercise:
    """The exercise with these parameter values put into its texts, validated again."""
    by_name = {p.name: p for p in params}
    rendered = {k: (v if k in ("id", "params", "objective") else _fill(v, by_name, values, False))
                for k, v in data.items()}
    doc = _doc(rendered, path)
    start = doc.start
    fixtures = tuple(start.fixtures)
    touches = doc.touches
    return Exercise(
        id=doc.id, title=doc.title, objective=doc.objective, task=doc.task, hints=doc.hints,
        start=StartState(start.baseline, start.commands,
                         tuple(f.model_dump(exclude_unset=True) | {"kind": f.kind} for f in start.faults),
                         start.min_nodes, fixtures, start.max_nodes),
        solution_pcs=doc.solution.pcs, solution_crmsh=doc.solution.crmsh,
        solution_pcs09=doc.solution.pcs09 or None, solution_pcs010=doc.solution.pcs010 or None,
        checks=tuple(CheckRef(c.id, c.check, c.description, c.points, c.params) for c in doc.checks),
        live_only=doc.live_only, notes=doc.notes, path=path,
        # The host-side fixtures a start state uses are touched whether declared or not.
        touches=Touches(touches.resources, touches.nodes, touches.properties, touches.daemons,
                        touches.corosync, tuple(dict.fromkeys(touches.fixtures + fixtures))),
        persistent=doc.persistent, params=params, param_values=dict(values), raw=data)


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
