"""The exam's state on the host (exam.json in the lab's exam folder) and its timer.

The timer is a function of the state file and the host's clocks; the guests' clocks never count.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.core.errors import UsageError
from lab.vm.labstate import Lab, current_name, write_atomic
from lab.workflows.exam import Plan, plan_from_json
from lab.workflows.examfile import state_path

WARN_MINUTES = (30, 10, 5, 1)
STATE_SCHEMA = 1


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
    write_atomic(state_path(lab_dir), json.dumps(state.to_json(), indent=2) + "\n", mode=0o600)


def current_exam() -> tuple[Path, ExamState] | None:
    """The current lab's running exam, or None (no lab, no exam, or one already submitted).
    Never raises: every `lab` command asks, also without a lab."""
    try:
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


def practice_used(lab_dir: Path, state: ExamState) -> None:
    """Record that a refused aid was used with --practice: the results say practice."""
    if not state.practice:
        state.practice = True
        write_state(lab_dir, state)


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
