"""Grade many labs at once from a roster (instructors): one row per lab, never one crash for all."""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lab.core.errors import LabError, UsageError
from lab.core.tomlfile import read_toml
from lab.core.xmlsafe import one_line
from lab.engine.exercises import Exercise
from lab.engine.grading import Report
from lab.engine.report import report_dict
from lab.workflows.checking import check_cib_file, check_nodes


@dataclass(frozen=True)
class RosterEntry:
    name: str
    nodes: tuple[str, ...] = ()
    cib: Path | None = None
    identity: Path | None = None


@dataclass(frozen=True)
class LabResult:
    entry: RosterEntry
    report: Report | None
    error: str | None


def load_roster(path: Path) -> list[RosterEntry]:
    """Read a roster TOML: [[lab]] tables with name and either nodes = [...] or cib = FILE."""
    data = read_toml(path, "roster", UsageError)
    default_identity = data.get("identity")
    labs = data.get("lab")
    if not isinstance(labs, list) or not labs:
        raise UsageError(f"roster {path} has no [[lab]] entries")
    entries, names = [], set()
    for index, lab in enumerate(labs):
        where = f"roster {path} lab[{index}]"
        name = lab.get("name") if isinstance(lab, dict) else None
        if not isinstance(name, str) or not name:
            raise UsageError(f"{where}: needs a name")
        if name in names:
            raise UsageError(f"{where}: name '{name}' given twice")
        names.add(name)
        nodes, cib = lab.get("nodes"), lab.get("cib")
        if (nodes is None) == (cib is None):
            raise UsageError(f"{where}: give either nodes = [\"NAME=USER@HOST\", ...] or cib = \"FILE\"")
        if nodes is not None and (not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes)):
            raise UsageError(f"{where}: nodes must be a list of NAME=USER@HOST[:PORT] strings")
        identity = lab.get("identity", default_identity)
        entries.append(RosterEntry(
            name=name,
            nodes=tuple(nodes or ()),
            cib=(path.parent / cib) if isinstance(cib, str) else None,
            identity=Path(identity).expanduser() if isinstance(identity, str) else None,
        ))
    return entries


def grade_roster(exercise: Exercise, entries: list[RosterEntry], *, parallel: int = 8,
                 timeout: float = 10.0) -> list[LabResult]:
    """Grade every lab, several at a time; a lab that fails to answer becomes an error row."""

    def one(entry: RosterEntry) -> LabResult:
        try:
            if entry.cib is not None:
                return LabResult(entry, check_cib_file(exercise, entry.cib), None)
            report = check_nodes(exercise, entry.nodes, identity=entry.identity, timeout=timeout)
            return LabResult(entry, report, None)
        except LabError as exc:
            return LabResult(entry, None, one_line(" ".join(str(exc).split()), 500))
        except Exception as exc:  # whatever one lab did, every other lab still gets its row
            return LabResult(entry, None, f"grading failed: {type(exc).__name__}: "
                                          f"{one_line(' '.join(str(exc).split()), 300)}")

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return list(pool.map(one, entries))


def roster_json(exercise: Exercise, results: list[LabResult]) -> str:
    rows = []
    for result in results:
        row = {"lab": result.entry.name, "error": result.error}
        row.update(report_dict(result.report) if result.report else
                   {"exercise": exercise.id, "passed": False, "score": 0,
                    "max_score": exercise.max_score, "checks": []})
        rows.append(row)
    return json.dumps({"exercise": exercise.id, "labs": rows})


def roster_csv(exercise: Exercise, results: list[LabResult]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["lab", "exercise", "passed", "score", "max_score", "error"])
    for r in results:
        writer.writerow([one_line(r.entry.name, 0), exercise.id, bool(r.report and r.report.passed),
                         r.report.score if r.report else 0, exercise.max_score, one_line(r.error or "", 0)])
    return out.getvalue()


def roster_text(exercise: Exercise, results: list[LabResult]) -> str:
    names = {id(r): one_line(r.entry.name, 0) for r in results}  # escaped: one row stays one line
    width = max(len(name) for name in names.values())
    lines = [f"Exercise {exercise.id}: {len(results)} lab(s)"]
    for r in results:
        name = names[id(r)]
        if r.report is None:
            lines.append(f"  {name:<{width}}  ERROR   {one_line(r.error or 'no report', 0)}")
            continue
        verdict = "PASSED" if r.report.passed else "FAILED"
        failed = ", ".join(o.id for o in r.report.outcomes if o.passed is False)
        lines.append(f"  {name:<{width}}  {verdict}  {r.report.score}/{r.report.max_score}"
                     + (f"  failed: {failed}" if failed else ""))
    passed = sum(1 for r in results if r.report and r.report.passed)
    lines.append(f"{passed}/{len(results)} passed")
    return "\n".join(lines)
