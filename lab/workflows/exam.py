"""A mock exam: the draw (plan), the combined start state, and the exam's state and timer.

Pure where it can be: the plan is a function of the seed and the catalogue; the timer is a
function of the state file and the host's clocks. No CLI knowledge here; the VM steps
(build, submit, reboot) live in lab/workflows/exam_run.py, scoring and results in lab/workflows/examscore.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import __version__
from lab.core.errors import UsageError
from lab.engine.exercises import Exercise, exercises_dir, load, load_all

DEFAULT_TASKS = 8
DEFAULT_MINUTES = 120
MAX_TASKS = 16
WARN_MINUTES = (30, 10, 5, 1)
PLAN_SCHEMA = 1
STATE_SCHEMA = 1
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


def exam_eligible(exercise: Exercise, node_count: int = 2) -> str | None:
    """Why an exercise cannot be an exam task (None: it can). One lab state holds every task:
    a task needs the running cluster, no host-side fixture, and no check that fences or reboots
    (the exam's own persistence phase is the reboot)."""
    from lab.engine.grading import sections_for
    from lab.gather.probes import destructive_probes

    if exercise.start.baseline != "cluster":
        return f"starts from the '{exercise.start.baseline}' snapshot, not the running cluster"
    if exercise.start.fixtures:
        return f"needs host fixtures ({', '.join(exercise.start.fixtures)})"
    acts = destructive_probes(sections_for(exercise))
    if acts:
        return f"its checks act on the machines ({', '.join(acts)})"
    if exercise.start.min_nodes > node_count:
        return f"needs {exercise.start.min_nodes} nodes"
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
              catalogue: Sequence[Exercise] | None = None) -> Plan:
    """K tasks drawn with random.Random(seed): round by round over the objectives in a drawn
    order, one exercise per objective and round, parameters drawn, never two tasks that touch
    the same objects. The same seed and catalogue give the same plan."""
    if not 1 <= tasks <= MAX_TASKS:
        raise UsageError(f"--tasks must be from 1 to {MAX_TASKS}")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 10**9)
    pool = [e for e in (catalogue if catalogue is not None else load_all())
            if exam_eligible(e, len(nodes)) is None]
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
                         f"(seed {seed}); ask for --tasks {len(best)} or fewer")
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


def combined_start(exercises: Sequence[Exercise]) -> CombinedStart:
    """Every task's start commands in one list, and their faults after them.

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
    return CombinedStart(tuple(commands), faults)


# --- the exam's state on the host ----------------------------------------------------------------

def host_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass
class ExamState:
    """exam.json in the exam folder. The deadline is kept twice: as wall time, and as the host's
    monotonic clock at start plus the duration (immune to wall clock changes while the host runs;
    after a host reboot the wall time is all there is). The guests' clocks never count."""

    plan: Plan
    minutes: float
    started_wall: float
    started_monotonic: float
    host_boot: str
    status: str = "running"  # running | submitting | submitted
    practice: bool = False
    marks: dict[str, str] = field(default_factory=dict)
    watcher_pid: int | None = None
    build_seconds: float | None = None
    results: str | None = None
    sign_key: str | None = None  # the key file's path (the watcher signs with it); never the key

    @property
    def deadline_wall(self) -> float:
        return self.started_wall + self.minutes * 60

    def seconds_left(self, now_wall: float | None = None, now_monotonic: float | None = None,
                     boot: str | None = None) -> float:
        now_wall = time.time() if now_wall is None else now_wall
        now_monotonic = time.monotonic() if now_monotonic is None else now_monotonic
        boot = host_boot_id() if boot is None else boot
        if boot and boot == self.host_boot:
            return self.started_monotonic + self.minutes * 60 - now_monotonic
        return self.deadline_wall - now_wall

    def to_json(self) -> dict[str, Any]:
        return {"schema": STATE_SCHEMA, "plan": self.plan.to_json(), "minutes": self.minutes,
                "started_wall": self.started_wall, "deadline_wall": self.deadline_wall,
                "started_monotonic": self.started_monotonic, "host_boot": self.host_boot,
                "status": self.status, "practice": self.practice, "marks": dict(self.marks),
                "watcher_pid": self.watcher_pid, "build_seconds": self.build_seconds,
                "results": self.results, "sign_key": self.sign_key}

    @classmethod
    def from_json(cls, data: Any, where: str) -> ExamState:
        if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
            raise UsageError(f"{where}: not an exam state file (schema {STATE_SCHEMA})")
        try:
            state = cls(plan=plan_from_json(data["plan"], where), minutes=float(data["minutes"]),
                        started_wall=float(data["started_wall"]),
                        started_monotonic=float(data["started_monotonic"]), host_boot=str(data["host_boot"]),
                        status=str(data["status"]), practice=bool(data.get("practice", False)),
                        marks={str(k): str(v) for k, v in dict(data.get("marks") or {}).items()},
                        watcher_pid=data.get("watcher_pid"), build_seconds=data.get("build_seconds"),
                        results=data.get("results"), sign_key=data.get("sign_key"))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{where}: field {exc} is missing or of the wrong type") from None
        if state.status not in ("running", "submitting", "submitted"):
            raise UsageError(f"{where}: field 'status' must be running, submitting or submitted")
        return state


def exam_dir(lab_dir: Path) -> Path:
    return lab_dir / "exam"


def state_path(lab_dir: Path) -> Path:
    return exam_dir(lab_dir) / "exam.json"


def read_state(lab_dir: Path) -> ExamState | None:
    path = state_path(lab_dir)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None
    return ExamState.from_json(data, str(path))


def write_state(lab_dir: Path, state: ExamState) -> None:
    from lab.vm.labstate import write_atomic

    write_atomic(state_path(lab_dir), json.dumps(state.to_json(), indent=2) + "\n", mode=0o600)


def current_exam() -> tuple[Path, ExamState] | None:
    """The current lab's running exam, or None (no lab, no exam, or one already submitted).
    Never raises: every `lab` command asks, also without a lab."""
    try:
        from lab.vm.labstate import Lab, current_name

        lab_dir = Lab(current_name()).dir
        state = read_state(lab_dir)
    except Exception:  # noqa: BLE001 - no lab or a broken file: no exam to enforce here
        return None
    if state is None or state.status == "submitted":
        return None
    return lab_dir, state


def format_left(seconds: float) -> str:
    if seconds <= 0:
        return "time is up"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d} left"


def warning(seconds: float) -> str | None:
    """The warning for this much time left: at 30, 10, 5 and 1 minutes (the nearest one crossed)."""
    if seconds <= 0:
        return "exam: time is up; 'lab exam submit' (the watcher submits by itself)"
    crossed = [m for m in WARN_MINUTES if seconds <= m * 60]
    if not crossed:
        return None
    return f"exam: less than {min(crossed)} minute{'s' if min(crossed) > 1 else ''} left ({format_left(seconds)})"


def mark(lab_dir: Path, number: int, what: str) -> ExamState:
    """The candidate's own done/revisit mark on task NUMBER (1-based); 'clear' removes it."""
    state = read_state(lab_dir)
    if state is None or state.status != "running":
        raise UsageError("no exam is running: 'lab exam start'")
    if not 1 <= number <= len(state.plan.tasks):
        raise UsageError(f"task {number} does not exist (tasks 1..{len(state.plan.tasks)})")
    if what not in ("done", "revisit", "clear"):
        raise UsageError("mark must be done, revisit or clear")
    if what == "clear":
        state.marks.pop(str(number), None)
    else:
        state.marks[str(number)] = what
    write_state(lab_dir, state)
    return state


def status_lines(state: ExamState) -> list[str]:
    """Time left, and each task's title with the candidate's mark."""
    left = state.seconds_left()
    lines = [f"exam (seed {state.plan.seed}{', practice' if state.practice else ''}): {state.status}, "
             f"{format_left(left) if state.status == 'running' else ''}".rstrip(", ")]
    for number, (task, exercise) in enumerate(zip(state.plan.tasks, state.plan.exercises(), strict=True), 1):
        mark_text = state.marks.get(str(number), "")
        kind = "" if task.persistent else "  (runtime only)"
        lines.append(f"  {number:>2}. [{mark_text or ' ':^7}] {exercise.title}{kind}")
    note = warning(left) if state.status == "running" else None
    if note:
        lines.append(note)
    return lines


def refusal(command: str) -> str:
    return (f"'lab {command}' is not allowed during an exam ('lab exam status'); add --practice to "
            "use it anyway (the exam is then marked as practice)")


def practice_used(lab_dir: Path, state: ExamState) -> None:
    """Record that a refused aid was used with --practice: the results say practice."""
    if not state.practice:
        state.practice = True
        write_state(lab_dir, state)


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


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
