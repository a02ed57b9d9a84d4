"""The candidate's progress over time: progress.jsonl in the lab home, one JSON object a line
(each `lab check` of an exercise, each exam at submit and at regrade), and the per-objective
view of it that `lab progress` prints and the exam's report.html charts.

The file is data and never trusted: each line is parsed as bounded JSON and checked field by
field; a line that is not a valid record (garbage, cut, hostile, of another version) is skipped
and counted, never fatal. An append is one write(2) with O_APPEND under an flock, so two `lab`
commands never interleave or lose a line; the file is bounded (MAX_BYTES): an append that
would pass the bound first rewrites the file (atomically) with its newest half.
"""

from __future__ import annotations

import fcntl
import html
import json
import math
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core.errors import LabError, UsageError
from lab.core.paths import lab_home
from lab.core.xmlsafe import loads_untrusted_json
from lab.vm.labstate import write_atomic
from lab.workflows.gradebook import chart_svg

FILE_NAME = "progress.jsonl"
VERSION = 1
KINDS = ("check", "exam")
MAX_BYTES = 2 * 2**20  # ~6000 checks or ~1000 exams; the oldest half goes first
MAX_LINE_BYTES = 32 * 1024
MAX_ITEMS = 64
MAX_TEXT = 200
CHART_POINTS = 10  # attempts per objective in the exam report's chart
_SPARKS = "▁▂▃▄▅▆▇█"


def history_path() -> Path:
    return lab_home() / FILE_NAME


# --- records -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One exercise's result inside a record: points scored of the points judged."""

    exercise: str
    objective: str
    score: float
    max: float


@dataclass(frozen=True)
class Entry:
    time: float
    kind: str  # check | exam
    items: tuple[Item, ...]
    practice: bool = False
    key: str | None = None  # an exam's identity: its regrade replaces it
    label: str = ""


def check_record(exercise_id: str, objective: str, score: int, judged: int, *, source: str,
                 practice: bool = False, when: float | None = None) -> dict[str, Any]:
    """The line a `lab check` adds: its exercise, points scored of points judged, where it was judged."""
    return {"v": VERSION, "time": time.time() if when is None else when, "kind": "check", "source": source,
            "practice": practice, "label": exercise_id,
            "items": [{"exercise": exercise_id, "objective": objective, "score": score, "max": judged}]}


def exam_record(doc: Mapping[str, Any], *, regrade: bool = False, when: float | None = None) -> dict[str, Any]:
    """The line an exam adds (from its results document): each task's points of the points
    judged (ERROR points are not the candidate's), the total, and the exam's key."""
    times = doc.get("times") or {}
    key = f"{doc.get('seed')}@{times.get('started', '')}"
    items = [{"exercise": t["exercise"], "objective": t["objective"], "score": t["score"], "max": t["judged"]}
             for t in doc.get("tasks", []) if t.get("judged")]
    summary = doc.get("summary") or {}
    return {"v": VERSION, "time": time.time() if when is None else when, "kind": "exam", "key": key,
            "regrade": regrade, "practice": bool(doc.get("practice")), "label": f"exam seed {doc.get('seed')}",
            "percent": summary.get("percent"), "status": summary.get("status"), "items": items}


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError("not a short printable string")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError("not a finite number >= 0")
    return float(value)


def parse_entry(data: Any) -> Entry:
    """A record read back, checked field by field (ValueError for anything else)."""
    if not isinstance(data, dict) or data.get("v") != VERSION or data.get("kind") not in KINDS:
        raise ValueError("not a progress record")
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not 0 < len(raw_items) <= MAX_ITEMS:
        raise ValueError("items")
    items = []
    for raw in raw_items:
        if not isinstance(raw, dict):
            raise ValueError("item")
        item = Item(_text(raw.get("exercise")), _text(raw.get("objective")), _number(raw.get("score")),
                    _number(raw.get("max")))
        if item.max <= 0 or item.score > item.max:
            raise ValueError("score out of range")
        items.append(item)
    key = data.get("key")
    practice = data.get("practice", False)
    if not isinstance(practice, bool) or (key is not None and not isinstance(key, str)):
        raise ValueError("practice/key")
    label = data.get("label", "")
    return Entry(time=_number(data.get("time")), kind=data["kind"], items=tuple(items), practice=practice,
                 key=key[:MAX_TEXT] if key else None, label=_text(label) if label else "")


# --- the file ------------------------------------------------------------------------------

def _open_locked(path: Path) -> int:
    """The history file opened for appending and flocked; reopened if a compaction replaced it
    while this process waited for the lock (else the line would go to the unlinked file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"{path} is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == info.st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise UsageError(f"{path} keeps being replaced while appending to it")


def _compact(path: Path, room: int) -> None:
    """Keep the newest lines that fit in half the bound (minus ROOM for the next line). Records
    are ASCII (written with ensure_ascii): a line that is not is garbage and goes first."""
    with path.open("rb") as handle:
        lines = [line for line in handle.read().splitlines(keepends=True) if line.isascii()]
    kept: list[bytes] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) > MAX_BYTES // 2 - room:
            break
        kept.append(line)
        size += len(line)
    write_atomic(path, b"".join(reversed(kept)).decode("ascii"), mode=0o600)


def append(record: Mapping[str, Any], path: Path | None = None) -> Path:
    """Add one record as one line; OSError when the lab home cannot be written."""
    path = path or history_path()
    try:
        parse_entry(json.loads(json.dumps(record)))  # what is written must read back
    except ValueError as exc:
        raise UsageError(f"not a progress record ({exc}): nothing was judged") from None
    line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
    if len(line) > MAX_LINE_BYTES:
        raise UsageError(f"a progress record of {len(line)} bytes is larger than {MAX_LINE_BYTES}")
    fd = _open_locked(path)
    try:
        if os.fstat(fd).st_size + len(line) > MAX_BYTES:
            _compact(path, len(line))
            os.close(fd)
            fd = _open_locked(path)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a line cut short (disk full): end it first
            line = b"\n" + line
        os.write(fd, line)
    finally:
        os.close(fd)
    return path


@dataclass(frozen=True)
class History:
    path: Path
    entries: tuple[Entry, ...]
    skipped: int


def read(path: Path | None = None) -> History:
    """Every valid record, oldest first; the rest counted in `skipped`. A missing file is empty."""
    path = path or history_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return History(path, (), 0)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path} is not a regular file")
        skipped = 0
        if info.st_size > 2 * MAX_BYTES:  # grown by something else: read its newest part
            handle.seek(info.st_size - 2 * MAX_BYTES)
            handle.readline()
            skipped += 1
        data = handle.read(2 * MAX_BYTES)
    entries = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            if len(raw) > MAX_LINE_BYTES:
                raise ValueError("line too long")
            entries.append(parse_entry(loads_untrusted_json(raw.decode("utf-8"), "progress line", max_depth=8)))
        except (ValueError, LabError, RecursionError):
            skipped += 1
    return History(path, tuple(entries), skipped)


# --- per objective -----------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    time: float
    percent: float
    kind: str
    label: str
    practice: bool


@dataclass(frozen=True)
class Series:
    objective: str
    attempts: tuple[Attempt, ...]

    @property
    def last(self) -> float:
        return self.attempts[-1].percent

    @property
    def best(self) -> float:
        return max(a.percent for a in self.attempts)


def _latest_per_exam(entries: Iterable[Entry]) -> list[Entry]:
    """Entries in time order; an exam regraded keeps its place and takes the newest grading."""
    out: list[Entry] = []
    where: dict[str, int] = {}
    for entry in sorted(entries, key=lambda e: e.time):
        if entry.kind == "exam" and entry.key:
            if entry.key in where:
                old = out[where[entry.key]]
                out[where[entry.key]] = Entry(old.time, entry.kind, entry.items, entry.practice, entry.key, entry.label)
                continue
            where[entry.key] = len(out)
        out.append(entry)
    return out


def objective_series(entries: Iterable[Entry]) -> list[Series]:
    """Per objective, one attempt per record that judged it: its points over the points judged."""
    by: dict[str, list[Attempt]] = {}
    for entry in _latest_per_exam(entries):
        sums: dict[str, list[float]] = {}
        for item in entry.items:
            pair = sums.setdefault(item.objective, [0.0, 0.0])
            pair[0] += item.score
            pair[1] += item.max
        for objective, (got, possible) in sums.items():
            by.setdefault(objective, []).append(
                Attempt(entry.time, round(100 * got / possible, 1), entry.kind, entry.label, entry.practice))
    return [Series(k, tuple(v)) for k, v in sorted(by.items())]


def trend(series: Series) -> str:
    """The last attempts as a sparkline, and the change from the one before."""
    spark = "".join(_SPARKS[min(len(_SPARKS) - 1, int(a.percent / 100 * len(_SPARKS)))]
                    for a in series.attempts[-8:])
    if len(series.attempts) < 2:
        return f"{spark} new"
    delta = series.attempts[-1].percent - series.attempts[-2].percent
    return f"{spark} {'=' if abs(delta) < 0.05 else f'{delta:+.0f}'}"


def chart_html(series: Sequence[Series]) -> str:
    """For the exam report: per objective, its last attempts as lab grade's inline SVG bar
    chart (one bar per attempt, labelled with its date and kind). Nothing is fetched."""
    out = ['<h2 id="progress">Progress per objective (lab progress)</h2>']
    for s in series:
        rows = [(time.strftime("%Y-%m-%d %H:%M", time.localtime(a.time)) + f" {a.kind}"
                 + (" (practice)" if a.practice else ""), int(round(a.percent * 10)), 1000)
                for a in s.attempts[-CHART_POINTS:]]
        out += [f"<h3>{html.escape(s.objective)}</h3>", chart_svg(rows, label=f"progress: {s.objective}")]
    return "\n".join(out)


def after_exam(doc: Mapping[str, Any], *, regrade: bool = False) -> tuple[str, str | None]:
    """Record an exam; return the report's progress charts (the whole history) and None, or ""
    and why not: a lab home that cannot be written never stops an exam's results."""
    try:
        path = append(exam_record(doc, regrade=regrade))
        return chart_html(objective_series(read(path).entries)), None
    except (OSError, LabError) as exc:
        return "", f"progress not recorded: {exc}"
