"""Grade a class: a roster of students, several exercises, live labs or handed-in evidence.

The engine of `lab grade`, with no CLI knowledge. Each student's nodes are gathered once for
all exercises (one SSH round trip per node, the union of the exercises' sections), or each
evidence file (EXERCISE.xml, `cibadmin --query` output) is read and run through crm_mon once;
then every exercise is graded on those same facts. A student who cannot be graded (lab
unreachable, evidence missing or broken) is an error row with the reason: never a 0, never an
abort of the whole class.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lab.core.errors import LabError, UsageError
from lab.core.paths import lab_home
from lab.core.xmlsafe import loads_untrusted_json, one_line, read_untrusted_file
from lab.engine.exercises import Exercise, load
from lab.engine.grading import CheckOutcome, grade, sections_for
from lab.gather.facts import facts_from_cib_file
from lab.gather.probes import destructive_probes
from lab.workflows.checking import gather_from_addresses
from lab.workflows.roster import MAX_ROSTER_BYTES, Student
from lab.workflows.roster import load_roster as load_roster  # callers name it here too

MAX_PARALLEL = 256
MAX_TIMEOUT = 3600.0

Say = Callable[[str], None]


# --- what to grade --------------------------------------------------------------------------

def exercises_from_ids(ids: Iterable[str]) -> list[Exercise]:
    """The exercises to grade, each loaded once; an unknown or repeated id is a UsageError."""
    wanted = [i.strip() for i in ids if i.strip()]
    if not wanted:
        raise UsageError("no exercises to grade: give --exercises a,b,c or --exam PLAN.json")
    repeated = sorted({i for i in wanted if wanted.count(i) > 1})
    if repeated:
        raise UsageError(f"exercise '{repeated[0]}' is listed twice")
    return [load(i) for i in wanted]


def load_plan(path: Path) -> list[str]:
    """The exercise ids of an exam plan: {"tasks": [{"exercise": "ID"}, ...]} (other keys ignored)."""
    if path.is_dir():
        raise UsageError(f"--exam {path} is a folder: give the exam's PLAN.json file "
                         '({"tasks": [{"exercise": "ID"}, ...]})')
    raw = read_untrusted_file(path, "exam plan", limit=MAX_ROSTER_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"exam plan {path} is not UTF-8 text") from None
    data = loads_untrusted_json(text, f"exam plan {path}")
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list) or not tasks:
        raise UsageError(f'exam plan {path}: needs "tasks": [{{"exercise": "ID"}}, ...]')
    ids = []
    for index, task in enumerate(tasks):
        exercise = task.get("exercise") if isinstance(task, dict) else None
        if not isinstance(exercise, str) or not exercise:
            raise UsageError(f'exam plan {path}: tasks[{index}] needs "exercise": an exercise id')
        ids.append(exercise)
    return ids


def parse_drops(specs: Iterable[str], exercises: Sequence[Exercise]) -> frozenset[tuple[str, str]]:
    """--drop-check EXERCISE:CHECK_ID values, each naming a check of a graded exercise."""
    by_id = {e.id: e for e in exercises}
    drops = set()
    for spec in specs:
        exercise_id, sep, check_id = spec.partition(":")
        if not sep or not exercise_id or not check_id:
            raise UsageError(f"--drop-check '{spec}' is not EXERCISE:CHECK_ID")
        exercise = by_id.get(exercise_id)
        if exercise is None:
            raise UsageError(f"--drop-check '{spec}': '{exercise_id}' is not among the graded exercises")
        ids = [c.id for c in exercise.checks]
        if check_id not in ids:
            raise UsageError(f"--drop-check '{spec}': '{exercise_id}' has no check '{check_id}' "
                             f"(checks: {', '.join(ids)})")
        drops.add((exercise_id, check_id))
    return frozenset(drops)


def drop_labels(drops: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(sorted(f"{e}:{c}" for e, c in drops))


# --- results ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    id: str
    passed: bool | None  # None: skipped (needs a live lab, or acts on machines without --yes)
    points: int
    message: str


@dataclass(frozen=True)
class ExerciseResult:
    """One student's grade for one exercise; `error` set: it could not be graded at all."""

    exercise: str
    checks: tuple[CheckResult, ...]
    max_score: int
    error: str | None = None

    @property
    def passed(self) -> bool | None:
        if self.error is not None:
            return None
        ran = [c for c in self.checks if c.passed is not None]
        return bool(ran) and all(c.passed for c in ran)

    @property
    def score(self) -> int | None:
        return None if self.error is not None else sum(c.points for c in self.checks if c.passed)

    @property
    def status(self) -> str:
        return "error" if self.error is not None else "pass" if self.passed else "fail"


@dataclass(frozen=True)
class StudentResult:
    """A row of the gradebook. The email is the roster's, never written to results.json."""

    id: str
    name: str
    exercises: tuple[ExerciseResult, ...]
    email: str = ""

    @property
    def status(self) -> str:
        states = {e.status for e in self.exercises}
        return "error" if "error" in states else "pass" if states == {"pass"} else "fail"

    @property
    def score(self) -> int | None:
        """None while any exercise could not be graded: a total would read as a real 0."""
        scores = [e.score for e in self.exercises]
        return None if any(s is None for s in scores) else sum(s or 0 for s in scores)

    @property
    def max_score(self) -> int:
        return sum(e.max_score for e in self.exercises)


@dataclass(frozen=True)
class ClassResults:
    exercises: tuple[str, ...]
    dropped: tuple[str, ...]  # "EXERCISE:CHECK_ID", sorted
    students: tuple[StudentResult, ...]


@dataclass(frozen=True)
class GradeOptions:
    parallel: int = 4
    timeout: float = 10.0  # SSH connect timeout per node
    allow_destructive: bool = False  # run probes that fence or reboot the students' machines
    drops: frozenset[tuple[str, str]] = frozenset()
    known_hosts: Path | None = None  # default: the lab home's known_hosts, as `lab check --node`

    def validate(self) -> None:
        if not 1 <= self.parallel <= MAX_PARALLEL:
            raise UsageError(f"--parallel must be from 1 to {MAX_PARALLEL}")
        if not 0 < self.timeout <= MAX_TIMEOUT:  # also false for nan
            raise UsageError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")


# --- the engine ---------------------------------------------------------------------------

def grade_class(students: Sequence[Student], exercises: Sequence[Exercise], options: GradeOptions, *,
                previous: ClassResults | None = None, say: Say | None = None) -> ClassResults:
    """Grade every student on every exercise, `options.parallel` students at a time.

    With PREVIOUS (--only-errors), students whose previous row graded without error keep it;
    the others (error rows, and students new to the roster) are graded again and merged in.
    """
    options.validate()
    ids = tuple(e.id for e in exercises)
    labels = drop_labels(options.drops)
    if previous is not None:
        if set(previous.exercises) != set(ids):
            raise UsageError(f"--only-errors: the earlier results graded {', '.join(previous.exercises)}, "
                             f"not {', '.join(ids)}; grade the same exercises, or all students again")
        if previous.dropped != labels:
            raise UsageError(f"--only-errors: the earlier results dropped "
                             f"{', '.join(previous.dropped) or 'no check'}, this run "
                             f"{', '.join(labels) or 'no check'}; give the same --drop-check")
    kept: dict[str, StudentResult] = {}
    if previous is not None:
        by_id = {s.id: s for s in previous.students}
        for student in students:
            old = by_id.get(student.id)
            if old is not None and old.status != "error":
                order = {e.exercise: e for e in old.exercises}
                kept[student.id] = StudentResult(student.id, student.name,
                                                 tuple(order[i] for i in ids if i in order), student.email)
    todo = [s for s in students if s.id not in kept]
    note = say or (lambda _text: None)
    lock = threading.Lock()
    done = [0]
    began = time.monotonic()
    note(f"grading {len(todo)} student(s) x {len(exercises)} exercise(s), {options.parallel} at a time"
         + (f" ({len(kept)} kept from the earlier results)" if kept else ""))

    def one(student: Student) -> StudentResult:
        result = grade_student(student, exercises, options, say=note)
        with lock:
            done[0] += 1
            total = "" if result.score is None else f" {result.score}/{result.max_score}"
            note(f"[{done[0]}/{len(todo)}] {student.id}: {result.status}{total} "
                 f"({time.monotonic() - began:.1f} s)")
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(options.parallel, len(todo) or 1))) as pool:
        fresh = {r.id: r for r in pool.map(one, todo)}
    rows = tuple(kept.get(s.id) or fresh[s.id] for s in students)
    return ClassResults(ids, labels, rows)


def grade_student(student: Student, exercises: Sequence[Exercise], options: GradeOptions,
                  say: Say | None = None) -> StudentResult:
    """One student on every exercise; anything that goes wrong becomes error rows, never raises."""
    try:
        if student.evidence is not None:
            rows = [_grade_evidence(student.evidence, e, options.drops) for e in exercises]
        else:
            rows = _grade_live(student, exercises, options, say)
    except Exception as exc:  # a bug or an unforeseen failure: this student's rows, not the class
        reason = f"unexpected {type(exc).__name__}: {one_line(str(exc), 300)}"
        rows = [_error(e, options.drops, reason) for e in exercises]
    return StudentResult(student.id, student.name, tuple(rows), student.email)


def _max_score(exercise: Exercise, drops: frozenset[tuple[str, str]]) -> int:
    return sum(c.points for c in exercise.checks if (exercise.id, c.id) not in drops)


def _error(exercise: Exercise, drops: frozenset[tuple[str, str]], reason: str) -> ExerciseResult:
    return ExerciseResult(exercise.id, (), _max_score(exercise, drops), one_line(reason, 600))


def _result(exercise: Exercise, outcomes: Sequence[CheckOutcome],
            drops: frozenset[tuple[str, str]]) -> ExerciseResult:
    checks = tuple(CheckResult(o.id, o.passed, o.points, o.message) for o in outcomes
                   if (exercise.id, o.id) not in drops)
    return ExerciseResult(exercise.id, checks, _max_score(exercise, drops))


def _grade_evidence(folder: Path, exercise: Exercise, drops: frozenset[tuple[str, str]]) -> ExerciseResult:
    """EXERCISE.xml of the evidence folder: read, run through crm_mon once, graded."""
    if not folder.is_dir():
        why = "does not exist" if not folder.exists() else "is not a folder"
        return _error(exercise, drops, f"evidence folder {folder} {why}")
    path = folder / f"{exercise.id}.xml"
    if path.is_symlink():  # a hand-in is a file of its own, never a pointer into the grader's disk
        return _error(exercise, drops, f"evidence {path} is a symbolic link, not a handed-in file")
    if not path.exists():
        return _error(exercise, drops, f"no evidence file {exercise.id}.xml in {folder}")
    if exercise.live_only:
        return _error(exercise, drops, f"'{exercise.id}' is judged on a live lab only: a saved CIB "
                                       "cannot show it (give this student nodes)")
    try:
        facts = facts_from_cib_file(path)
        return _result(exercise, grade(exercise, facts).outcomes, drops)
    except LabError as exc:
        return _error(exercise, drops, str(exc))


def _grade_live(student: Student, exercises: Sequence[Exercise], options: GradeOptions,
                say: Say | None) -> list[ExerciseResult]:
    """One gather of the union of sections on every node, then every exercise on those facts."""
    sections = frozenset().union(*(sections_for(e) for e in exercises))
    withheld = frozenset() if options.allow_destructive else frozenset(
        f"probe:{name}" for name in destructive_probes(sections))
    known_hosts = options.known_hosts or lab_home() / "known_hosts"
    try:
        facts = gather_from_addresses(
            student.nodes, identity=student.identity, known_hosts=known_hosts, timeout=options.timeout,
            sections=sections - withheld, say=(lambda text: say(f"{student.id}: {text}")) if say else None)
    except LabError as exc:
        return [_error(e, options.drops, str(exc)) for e in exercises]
    rows = []
    for exercise in exercises:
        try:
            # Checks that need a withheld probe are skipped and say so, as `lab check --node`.
            rows.append(_result(exercise, grade(exercise, facts, withheld).outcomes, options.drops))
        except LabError as exc:
            rows.append(_error(exercise, options.drops, str(exc)))
    return rows


def summary(results: ClassResults) -> Mapping[str, int]:
    """How many students passed, failed, or could not be graded."""
    counts = {"pass": 0, "fail": 0, "error": 0}
    for student in results.students:
        counts[student.status] += 1
    return counts
