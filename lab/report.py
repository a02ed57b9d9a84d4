"""Render grading reports: the JSON contract and a human text form."""

from __future__ import annotations

import json

from lab.grading import Report


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
    marks = {True: "PASS", False: "FAIL", None: "SKIP"}
    lines = [f"Exercise {report.exercise} ({report.source})"]
    for o in report.outcomes:
        lines.append(f"  [{marks[o.passed]}] {o.description} ({o.points} pt)")
        lines.append(f"         {o.message}")
    verdict = "PASSED" if report.passed else "NOT PASSED"
    lines.append(f"Score {report.score}/{report.max_score}: {verdict}")
    if report.partial:
        skipped = sum(1 for o in report.outcomes if o.passed is None)
        lines.append(f"Partial result: {skipped} check(s) skipped, they need a live lab.")
    return "\n".join(lines)
