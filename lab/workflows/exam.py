"""A mock exam: the draw (plan) and the combined start state.

Pure: the plan is a function of the seed and the catalogue. No CLI knowledge here; the exam's
state and timer live in lab/workflows/examstate.py, the VM steps (build, submit, reboot) in
lab/workflows/exam_run.py, scoring and results in lab/workflows/examscore.py.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab import __version__
from lab.core.errors import UsageError
from lab.engine.exercises import Exercise, exercises_dir, load, load_all
from lab.engine.grading import sections_for
from lab.gather.probes import destructive_probes
from lab.vm.network import needs_second_network

DEFAULT_TASKS = 8
DEFAULT_MINUTES = 120
MAX_TASKS = 16
PLAN_SCHEMA = 1
# Weight of a task by its objective: how much of 361.3's hands-on work the objective is
# (resources and constraints are most of it, awareness topics least).
OBJECTIVE_WEIGHTS = {
    "Managing resources (resource classes, operations)": 3,
    "Rules and constraints (location, order, colocation)": 3,
    "Advanced resources (templates, groups, clones, promotable)": 2,
    "Cluster configuration (pcs, corosync with pacemaker)": 2,
    "Quorum and fencing": 2,
    "Troubleshooting (crm_mon, corosync and pacemaker logs)": 2,
    "Node information, standby and health": 1,
    "ACLs and older stacks (awareness)": 1,
}


def weight_of(objective: str) -> int:
    return OBJECTIVE_WEIGHTS.get(objective, 1)


# --- the catalogue and which exercises an exam may draw ------------------------------------

def catalogue_info() -> dict[str, str]:
    """The catalogue's identity: a plan drawn from other exercise files says so."""
    digest = hashlib.sha256()
    for path in sorted(exercises_dir().glob("*.toml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return {"version": __version__, "hash": "sha256:" + digest.hexdigest()}


# Host fixtures one exam lab state can hold for all its tasks: fence_virtd runs on the host and
# outlives the reboot phase (its key stays on the nodes' disks). The shared SBD disk is attached
# and blanked for each start of its own exercise, which other tasks' start would not expect.
EXAM_FIXTURES = frozenset({"fence-virtd"})


def exam_eligible(exercise: Exercise, node_count: int = 2, second_network: bool = True) -> str | None:
    """Why an exercise cannot be an exam task (None: it can). One lab state holds every task:
    a task needs the running cluster, no host fixture but those in EXAM_FIXTURES, and no check
    that fences or reboots (the exam's own persistence phase is the reboot). SECOND_NETWORK: the
    lab has the second cluster network (labs made before it do not)."""
    if exercise.start.baseline != "cluster":
        return f"starts from the '{exercise.start.baseline}' snapshot, not the running cluster"
    foreign = [f for f in exercise.start.fixtures if f not in EXAM_FIXTURES]
    if foreign:
        return f"needs host fixtures an exam cannot hold ({', '.join(foreign)})"
    acts = destructive_probes(sections_for(exercise))
    if acts:
        return f"its checks act on the machines ({', '.join(acts)})"
    if exercise.start.min_nodes > node_count:
        return f"needs {exercise.start.min_nodes} nodes"
    if not exercise.start.fits(node_count):
        return f"works on at most {exercise.start.max_nodes} nodes"
    if not second_network and needs_second_network(exercise):
        return "needs the lab's second cluster network (a lab made before it: lab destroy, lab up)"
    return None


# --- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedTask:
    exercise: str
    objective: str
    weight: int
    params: dict[str, Any]
    persistent: bool

    def to_json(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "objective": self.objective, "weight": self.weight,
                "params": dict(self.params), "persistent": self.persistent}

    def load(self) -> Exercise:
        """The exercise with this task's parameters."""
        return load(self.exercise).with_params(self.params)


@dataclass(frozen=True)
class Plan:
    seed: int
    tasks: tuple[PlannedTask, ...]
    catalogue: dict[str, str] = field(default_factory=dict)
    nodes: tuple[str, ...] = ("node1", "node2")

    def to_json(self) -> dict[str, Any]:
        return {"schema": PLAN_SCHEMA, "seed": self.seed, "nodes": list(self.nodes),
                "tasks": [t.to_json() for t in self.tasks], "catalogue": dict(self.catalogue)}

    def exercises(self) -> list[Exercise]:
        return [t.load() for t in self.tasks]


def plan_from_json(data: Any, where: str) -> Plan:
    """A plan read back (exam state, results.json); wrong shapes are one UsageError."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list) or not isinstance(data.get("seed"), int):
        raise UsageError(f"{where}: not an exam plan (needs seed and tasks)")
    tasks = []
    for index, raw in enumerate(data["tasks"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("exercise"), str) \
                or not isinstance(raw.get("params", {}), dict):
            raise UsageError(f"{where}: tasks[{index}] needs exercise and params")
        exercise = load(raw["exercise"]).with_params(raw.get("params", {}))
        tasks.append(PlannedTask(exercise.id, exercise.objective, weight_of(exercise.objective),
                                 dict(exercise.param_values), exercise.persistent))
    nodes = data.get("nodes") or ["node1", "node2"]
    return Plan(data["seed"], tuple(tasks), dict(data.get("catalogue") or {}), tuple(nodes))


def _draw_params(exercise: Exercise, rng: random.Random) -> dict[str, Any]:
    return {p.name: rng.choice(p.choices) for p in exercise.params}


def draw_plan(seed: int | None = None, tasks: int = DEFAULT_TASKS, nodes: Sequence[str] = ("node1", "node2"),
              catalogue: Sequence[Exercise] | None = None, second_network: bool = True) -> Plan:
    """K tasks drawn with random.Random(seed): round by round over the objectives in a drawn
    order, one exercise per objective and round, parameters drawn, never two tasks that touch
    the same objects. The same seed and catalogue give the same plan."""
    if not 1 <= tasks <= MAX_TASKS:
        raise UsageError(f"an exam has 1 to {MAX_TASKS} tasks, not {tasks}")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 10**9)
    pool = [e for e in (catalogue if catalogue is not None else load_all())
            if exam_eligible(e, len(nodes), second_network) is None]
    by_objective: dict[str, list[Exercise]] = {}
    for exercise in sorted(pool, key=lambda e: e.id):
        by_objective.setdefault(exercise.objective, []).append(exercise)
    best: list[Exercise] = []
    # A greedy draw can paint itself into a corner (a task that touches every node early):
    # draw again from a stream derived from the seed, still deterministic.
    for attempt in range(DRAW_ATTEMPTS):
        rng = random.Random(seed if attempt == 0 else f"{seed}:{attempt}")
        chosen = _draw_once(by_objective, tasks, rng, nodes)
        if len(chosen) > len(best):
            best = chosen
        if len(best) == tasks:
            break
    if len(best) < tasks:
        raise UsageError(f"only {len(best)} tasks fit together without touching the same objects "
                         f"(seed {seed}); draw {len(best)} tasks or fewer")
    planned = tuple(PlannedTask(e.id, e.objective, weight_of(e.objective), dict(e.param_values), e.persistent)
                    for e in best)
    return Plan(seed, planned, catalogue_info(), tuple(nodes))


DRAW_ATTEMPTS = 25


def _draw_once(by_objective: Mapping[str, list[Exercise]], tasks: int, rng: random.Random,
               nodes: Sequence[str]) -> list[Exercise]:
    objectives = sorted(by_objective)
    rng.shuffle(objectives)
    chosen: list[Exercise] = []
    while len(chosen) < tasks:
        placed = False
        for objective in objectives:
            if len(chosen) >= tasks:
                break
            candidates = [e for e in by_objective[objective] if e.id not in {c.id for c in chosen}]
            rng.shuffle(candidates)
            for candidate in candidates:
                picked = _fit(candidate, chosen, rng, nodes)
                if picked is not None:
                    chosen.append(picked)
                    placed = True
                    break
        if not placed:
            break
    return chosen


def _fit(exercise: Exercise, chosen: Sequence[Exercise], rng: random.Random,
         nodes: Sequence[str], attempts: int = 12) -> Exercise | None:
    """The exercise with drawn parameters that touch nothing a chosen task touches, or None."""
    for _ in range(attempts if exercise.params else 1):
        candidate = exercise.with_params(_draw_params(exercise, rng)) if exercise.params else exercise
        if not any(candidate.touches.conflicts(c.touches, nodes) for c in chosen):
            return candidate
    return None


def conflicts(exercises: Sequence[Exercise], nodes: Sequence[str] = ("node1", "node2")) -> list[str]:
    """Every pair of tasks that touch the same objects ('a/b: resources'); [] for a good plan."""
    out = []
    for i, a in enumerate(exercises):
        for b in exercises[i + 1:]:
            kinds = a.touches.conflicts(b.touches, nodes)
            if kinds:
                out.append(f"{a.id}/{b.id}: {', '.join(kinds)}")
    return out


# --- one start state for every task ------------------------------------------------------------

@dataclass(frozen=True)
class CombinedStart:
    commands: tuple[str, ...]
    faults: tuple[dict[str, Any], ...]
    fixtures: tuple[str, ...] = ()


def combined_start(exercises: Sequence[Exercise]) -> CombinedStart:
    """Every task's start commands in one list, and their faults after them; the host fixtures
    they need (each once) are set up before the commands.

    Tasks that touch every node's placement (stickiness) go first, so the resources they
    expect on node1 are made in an empty cluster, as in their own start state. A command two
    tasks share word for word (the vip/web backdrop) runs once.
    """
    ordered = sorted(exercises, key=lambda e: "*" not in e.touches.nodes)
    commands: list[str] = []
    for exercise in ordered:
        for command in exercise.start.commands:
            if command not in commands:
                commands.append(command)
    faults = tuple(f for e in ordered for f in e.start.faults)
    fixtures = tuple(dict.fromkeys(f for e in ordered for f in e.start.fixtures))
    return CombinedStart(tuple(commands), faults, fixtures)


def task_text(number: int, exercise: Exercise) -> str:
    return f"Task {number}: {exercise.title}\n\n{exercise.task.strip()}\n"


def plan_text(plan: Plan, exercises: Sequence[Exercise] | None = None) -> str:
    exercises = exercises or plan.exercises()
    lines = [f"exam plan, seed {plan.seed} ({len(plan.tasks)} tasks, catalogue {plan.catalogue.get('hash', '')[:19]})"]
    for number, (task, exercise) in enumerate(zip(plan.tasks, exercises, strict=True), 1):
        params = ", ".join(f"{k}={v}" for k, v in task.params.items())
        lines.append(f"  {number:>2}. {task.exercise:<28} weight {task.weight}  "
                     f"{'persistent' if task.persistent else 'runtime'}  {exercise.title}"
                     + (f"  ({params})" if params else ""))
    return "\n".join(lines)
