"""What `lab grade` writes: results.json (signed on request), gradebook.csv, junit.xml,
report.html and feedback/<id>.md, all from one ClassResults.

results.json is the record (schema 1, lab.workflows.resultsfile: signing, reading it back);
every other file is a view of it. Nothing here
knows the CLI. Messages come from checks over student-made XML: every writer escapes them
for its format, and control characters are shown escaped, never passed through.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.core.errors import UsageError
from lab.core.xmlsafe import one_line
from lab.engine.exercises import Exercise
from lab.workflows.classgrade import ClassResults, StudentResult
from lab.workflows.resultsfile import SignatureError as SignatureError  # callers name these here
from lab.workflows.resultsfile import read_key as read_key
from lab.workflows.resultsfile import read_results as read_results
from lab.workflows.resultsfile import results_document, sign_document, write_file
from lab.workflows.resultsfile import verify_dir as verify_dir

OUTPUTS = ("results.json", "gradebook.csv", "junit.xml", "report.html", "feedback/")


# --- gradebook.csv ----------------------------------------------------------------------------

def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ would be read as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _percent(score: int | None, maximum: int) -> str:
    return "" if score is None or not maximum else f"{100 * score / maximum:.1f}"


def gradebook_csv(results: ClassResults) -> str:
    """One row per student: id, name, email, a score per exercise, total, max, percent, status.
    An exercise that could not be graded is an empty cell (and the row's status is error)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "email", *results.exercises, "total", "max", "percent", "status"])
    for s in results.students:
        by = {e.exercise: e for e in s.exercises}
        scores = [by[x].score if x in by else None for x in results.exercises]
        writer.writerow([_cell(s.id), _cell(s.name), _cell(s.email), *("" if v is None else v for v in scores),
                         "" if s.score is None else s.score, s.max_score, _percent(s.score, s.max_score),
                         s.status])
    return out.getvalue()


# --- junit.xml --------------------------------------------------------------------------------

def _xml_text(text: str) -> str:
    """Text that XML 1.0 may hold: control characters escaped, cut to a sane length."""
    return one_line(text, 2000)


def junit_xml(results: ClassResults, exercises: Mapping[str, Exercise]) -> str:
    """One testsuite per student, one testcase per check of each exercise; a failed check is a
    <failure>, a check skipped is <skipped>, an exercise that could not be graded is an <error>
    on each of its checks."""
    drops = set(results.dropped)
    root = ET.Element("testsuites", name="lab grade")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in results.students:
        suite = ET.SubElement(root, "testsuite", name=s.id)
        props = ET.SubElement(suite, "properties")
        for key, value in (("name", s.name), ("status", s.status),
                           ("score", "" if s.score is None else str(s.score)), ("max_score", str(s.max_score))):
            ET.SubElement(props, "property", name=key, value=_xml_text(value))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for e in s.exercises:
            classname = f"{s.id}.{e.exercise}"
            if e.error is not None:
                known = exercises.get(e.exercise)
                ids = [c.id for c in known.checks if f"{e.exercise}:{c.id}" not in drops] if known else []
                for check_id in ids or ["grading"]:
                    case = ET.SubElement(suite, "testcase", classname=classname, name=check_id)
                    ET.SubElement(case, "error", message=_xml_text(e.error), type="grader-error")
                    counts["tests"] += 1
                    counts["errors"] += 1
                continue
            for c in e.checks:
                case = ET.SubElement(suite, "testcase", classname=classname, name=c.id)
                counts["tests"] += 1
                if c.passed is False:
                    node = ET.SubElement(case, "failure", message=_xml_text(c.message), type="check-failed")
                    node.text = _xml_text(c.message)
                    counts["failures"] += 1
                elif c.passed is None:
                    ET.SubElement(case, "skipped", message=_xml_text(c.message))
                    counts["skipped"] += 1
        close_junit_suite(suite, counts, totals)
    return junit_text(root, totals)


def close_junit_suite(suite: ET.Element, counts: Mapping[str, int], totals: dict[str, int]) -> None:
    """Write a testsuite's counts on it and add them to the whole document's."""
    for key, value in counts.items():
        suite.set(key, str(value))
        totals[key] += value


def junit_text(root: ET.Element, totals: Mapping[str, int]) -> str:
    """The <testsuites> document with its totals, indented, as text (the class and the exam share it)."""
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- feedback/<id>.md -------------------------------------------------------------------------

_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~")


def md_escape(text: str) -> str:
    """Untrusted text as literal Markdown: one line, every markup character escaped."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in one_line(text, 0))


def feedback_md(student: StudentResult, exercises: Mapping[str, Exercise]) -> str:
    """A student's feedback: each exercise's checks with their messages."""
    lines = [f"# Feedback for {md_escape(student.id)}" + (f" ({md_escape(student.name)})" if student.name else ""), ""]
    if student.score is None:
        lines.append(f"Total: not complete (some exercises could not be graded), out of {student.max_score}")
    else:
        lines.append(f"Total: {student.score}/{student.max_score} "
                     f"({_percent(student.score, student.max_score)} %), {student.status}")
    marks = {True: "[x]", False: "[ ]", None: "[-]"}
    for e in student.exercises:
        known = exercises.get(e.exercise)
        title = f"{md_escape(e.exercise)}: {md_escape(known.title)}" if known else md_escape(e.exercise)
        lines += ["", f"## {title}", ""]
        if e.error is not None:
            lines.append(f"Not graded: {md_escape(e.error)}")
            continue
        lines.append(f"Score {e.score}/{e.max_score}: {'passed' if e.passed else 'not passed'}")
        lines.append("")
        descriptions = {c.id: c.description for c in known.checks} if known else {}
        for c in e.checks:
            what = descriptions.get(c.id, c.id)
            lines.append(f"- {marks[c.passed]} {md_escape(what)} ({c.points} pt): {md_escape(c.message)}")
    return "\n".join(lines) + "\n"


# --- report.html ------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right}.pass{background:#e5f6e5}.fail{background:#fde8e8}
.error{background:#fff4d6}.skip{color:#777}.bar{background:#4a7fd0;height:.8em;display:inline-block}
small{color:#666}
"""


def _h(value: object) -> str:
    return html.escape(one_line(str(value), 0), quote=True)


def item_analysis(results: ClassResults, exercises: Mapping[str, Exercise] | None = None) -> list[dict[str, Any]]:
    """Per exercise and check: how many graded students passed it (skipped and error rows left
    out). Every check of a known exercise has a row, also when no student could be graded on it."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    dropped = set(results.dropped)
    for exercise_id in results.exercises:
        known = (exercises or {}).get(exercise_id)
        for ref in known.checks if known else ():
            if f"{exercise_id}:{ref.id}" not in dropped:
                rows[(exercise_id, ref.id)] = {"exercise": exercise_id, "check": ref.id, "points": ref.points,
                                               "passed": 0, "graded": 0}
    for s in results.students:
        for e in s.exercises:
            for c in e.checks:
                row = rows.setdefault((e.exercise, c.id), {"exercise": e.exercise, "check": c.id,
                                                           "points": c.points, "passed": 0, "graded": 0})
                if c.passed is not None:
                    row["graded"] += 1
                    row["passed"] += int(bool(c.passed))
    order = {x: i for i, x in enumerate(results.exercises)}
    return sorted(rows.values(), key=lambda r: order.get(r["exercise"], len(order)))  # stable: checks in order


def objective_scores(results: ClassResults, exercises: Mapping[str, Exercise]) -> list[tuple[str, int, int]]:
    """(objective, points scored, points possible) over every graded exercise of the class."""
    totals: dict[str, list[int]] = {}
    for s in results.students:
        for e in s.exercises:
            if e.score is None:
                continue
            known = exercises.get(e.exercise)
            objective = known.objective if known else "(unknown exercise)"
            pair = totals.setdefault(objective, [0, 0])
            pair[0] += e.score
            pair[1] += e.max_score
    return [(k, v[0], v[1]) for k, v in sorted(totals.items())]


def chart_svg(scores: Sequence[tuple[str, int, int]], label: str = "class score per objective") -> str:
    """An inline SVG bar chart: a score per row (the class's per objective; an exam's; one
    objective's attempts over time), in percent. LABEL names it for screen readers."""
    if not scores:
        return "<p>No exercise could be graded.</p>"
    label_w, bar_w, row_h = 430, 300, 26
    height = row_h * len(scores) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 70}" '
             f'height="{height}" aria-label="{_h(label)}">']
    for i, (objective, got, possible) in enumerate(scores):
        pct = 100 * got / possible if possible else 0.0
        y = 5 + i * row_h
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="13">{_h(objective)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="18" fill="#eee"/>')
        parts.append(f'<rect class="objective" x="{label_w}" y="{y + 3}" width="{bar_w * pct / 100:.1f}" '
                     f'height="18" fill="#4a7fd0" data-objective="{_h(objective)}" data-percent="{pct:.1f}"/>')
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 16}" font-size="13">{pct:.0f} %</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def report_html(results: ClassResults, exercises: Mapping[str, Exercise]) -> str:
    """One self-contained page (inline CSS and SVG, nothing fetched): the class table, the
    per-check pass rates (item analysis) and the class's score per objective."""
    counts = {"pass": 0, "fail": 0, "error": 0}
    for s in results.students:
        counts[s.status] += 1
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
           "<title>lab grade: class report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>Class report</h1>",
           f"<p>{len(results.students)} students, {len(results.exercises)} exercises: "
           f"{counts['pass']} passed, {counts['fail']} failed, {counts['error']} could not be graded.</p>"]
    if results.dropped:
        out.append(f"<p>Dropped checks (not graded): {_h(', '.join(results.dropped))}</p>")
    out.append('<h2>Students</h2><table id="students"><thead><tr><th>id</th><th>name</th>')
    out += [f"<th>{_h(x)}</th>" for x in results.exercises]
    out.append("<th>total</th><th>max</th><th>percent</th><th>status</th></tr></thead><tbody>")
    for s in results.students:
        by = {e.exercise: e for e in s.exercises}
        out.append(f'<tr data-student="{_h(s.id)}"><td>{_h(s.id)}</td><td>{_h(s.name)}</td>')
        for x in results.exercises:
            e = by.get(x)
            if e is None:
                out.append('<td class="skip"></td>')
            elif e.error is not None:
                out.append(f'<td class="error" title="{_h(e.error)}">error</td>')
            else:
                out.append(f'<td class="num {e.status}">{e.score}/{e.max_score}</td>')
        total = "" if s.score is None else str(s.score)
        out.append(f'<td class="num">{total}</td><td class="num">{s.max_score}</td>'
                   f'<td class="num">{_percent(s.score, s.max_score)}</td>'
                   f'<td class="{s.status}">{s.status}</td></tr>')
    out.append("</tbody></table>")
    out.append('<h2>Checks (item analysis)</h2><table id="checks"><thead><tr><th>exercise</th><th>check</th>'
               "<th>description</th><th>points</th><th>passed</th><th>graded</th><th>pass rate</th>"
               "</tr></thead><tbody>")
    for row in item_analysis(results, exercises):
        known = exercises.get(row["exercise"])
        description = next((c.description for c in known.checks if c.id == row["check"]), "") if known else ""
        rate = 100 * row["passed"] / row["graded"] if row["graded"] else None
        shown = "" if rate is None else f"{rate:.0f} %"
        bar = "" if rate is None else f'<span class="bar" style="width:{rate:.0f}px"></span> '
        out.append(f'<tr data-check="{_h(row["exercise"])}:{_h(row["check"])}"><td>{_h(row["exercise"])}</td>'
                   f'<td>{_h(row["check"])}</td><td>{_h(description)}</td><td class="num">{row["points"]}</td>'
                   f'<td class="num">{row["passed"]}</td><td class="num">{row["graded"]}</td>'
                   f'<td>{bar}{shown}</td></tr>')
    out.append("</tbody></table>")
    out.append("<h2>Score per objective</h2>")
    out.append(chart_svg(objective_scores(results, exercises)))
    errors = [(s.id, e.exercise, e.error) for s in results.students for e in s.exercises if e.error]
    if errors:
        out.append('<h2>Not graded</h2><table id="errors"><thead><tr><th>student</th><th>exercise</th>'
                   "<th>reason</th></tr></thead><tbody>")
        out += [f"<tr><td>{_h(a)}</td><td>{_h(b)}</td><td>{_h(c)}</td></tr>" for a, b, c in errors]
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --- writing DIR ------------------------------------------------------------------------------

def prepare_dir(directory: Path) -> None:
    """Make DIR (before grading: a class is not graded to find no place for its results)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the output folder {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into the output folder {directory}")


def write_all(directory: Path, results: ClassResults, exercises: Sequence[Exercise],
              key: bytes | None = None) -> None:
    """Every output file in DIR; results.json last, so it never describes files not yet written."""
    prepare_dir(directory)
    by_id = {e.id: e for e in exercises}
    feedback = directory / "feedback"
    write_file(directory / "gradebook.csv", gradebook_csv(results))
    write_file(directory / "junit.xml", junit_xml(results, by_id))
    write_file(directory / "report.html", report_html(results, by_id))
    current = {s.id for s in results.students}
    for student in results.students:
        write_file(feedback / f"{student.id}.md", feedback_md(student, by_id))
    for stale in feedback.glob("*.md"):  # students no longer on the roster
        if stale.stem not in current:
            stale.unlink(missing_ok=True)
    document = results_document(results)
    if key is not None:
        document = sign_document(document, key)
    write_file(directory / "results.json", json.dumps(document, indent=2, ensure_ascii=False) + "\n")
