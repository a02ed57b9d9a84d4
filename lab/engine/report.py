"""Render grading reports: the JSON contract and a human text form."""

from __future__ import annotations

import json

from lab.core.xmlsafe import one_line
from lab.engine.grading import Report


def report_dict(report: Report) -> dict:
    return {
        "exercise": report.exercise,
        "passed": report.passed,
        "score": report.score,
        "max_score": report.max_score,
        "checks": [
            {"id": o.id, "description": o.description, "passed": o.passed,
             "points": o.points, "message": o.message}
            for o in report.outcomes
        ],
    }


def to_json(report: Report) -> str:
    return json.dumps(report_dict(report))


def to_text(report: Report) -> str:
    """The human report; every value is escaped onto its line (a newline entity in a CIB
    attribute must not print a forged '[PASS]' line)."""
    marks = {True: "PASS", False: "FAIL", None: "SKIP"}
    lines = [f"Exercise {one_line(report.exercise, 0)} ({one_line(report.source, 0)})"]
    for o in report.outcomes:
        lines.append(f"  [{marks[o.passed]}] {one_line(o.description, 0)} ({o.points} pt)")
        lines.append(f"         {one_line(o.message, 0)}")
    verdict = "PASSED" if report.passed else "NOT PASSED"
    lines.append(f"Score {report.score}/{report.max_score}: {verdict}")
    if report.partial:
        skipped = sum(1 for o in report.outcomes if o.passed is None)
        lines.append(f"Partial result: {skipped} check(s) skipped, they need a live lab.")
    return "\n".join(lines)
