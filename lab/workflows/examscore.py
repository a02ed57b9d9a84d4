"""Exam scoring and results: pure functions from graded phases to results.json and its views.

Each check gets PASS / FAIL / ERROR (or SKIP) before and after the reboot; ERROR means the
grader could not judge (node unreachable, a tool failed, a check crashed): it is shown apart,
never counted as the candidate's fail, and `lab exam regrade` judges the frozen evidence again.
results.json is the record; results.md, report.html and junit.xml are views of it. The HMAC
signing is lab grade's (lab.workflows.resultsfile). Nothing here knows the CLI or touches a VM.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from checks import get_check
from lab import __version__
from lab.core.errors import LabError, UsageError
from lab.core.xmlsafe import loads_untrusted_json, one_line, parse_untrusted, read_untrusted_file
from lab.engine.exercises import Exercise
from lab.engine.grading import CheckOutcome, grade
from lab.gather.facts import (  # _cluster_view: the same choice of view as a live gather
    Facts,
    NodeFacts,
    _cluster_view,
    node_facts_from_sections,
    parse_sections,
)
from lab.vm.labstate import write_atomic
from lab.workflows.exam import plan_from_json
from lab.workflows.gradebook import chart_svg, close_junit_suite, junit_text, md_escape
from lab.workflows.resultsfile import sign_document, verify_document, write_file

SCHEMA = "failover-lab-exam/1"
PASS, FAIL, ERROR, SKIP = "PASS", "FAIL", "ERROR", "SKIP"
# 70 %: the pass mark of the hands-on Red Hat exams (210 of 300); LPI publishes only a scaled
# score (500 on 200..800), not a percentage. Configurable with --pass-mark.
DEFAULT_PASS_MARK = 70.0
EVIDENCE_PHASES = ("pre", "post")


# --- judging one phase -------------------------------------------------------------------------

@dataclass(frozen=True)
class Judged:
    status: str
    message: str


def classify(outcome: CheckOutcome, check: str, facts: Facts | None) -> Judged:
    """PASS/FAIL/SKIP as graded, except what the grader could not judge: ERROR."""
    if outcome.passed is None:
        return Judged(SKIP, outcome.message)
    if outcome.passed:
        return Judged(PASS, outcome.message)
    if outcome.message.startswith("check error:"):
        return Judged(ERROR, outcome.message)
    if facts is not None and facts.live:
        spec = get_check(check)
        down = [n for n in facts.nodes.values() if not n.reachable]
        tool = [f"{n.name}: {n.problems[s]}" for n in facts.nodes.values() if n.reachable
                for s in sorted(spec.sections & set(n.problems))]
        if down and spec.needs_cib and facts.cib is None:
            return Judged(ERROR, "no node answered: " + "; ".join(n.error or n.name for n in down))
        if tool and facts.cib is None and spec.needs_cib:
            return Judged(ERROR, "a tool failed: " + "; ".join(tool))
    return Judged(FAIL, outcome.message)


def judge_phase(exercises: Sequence[Exercise], facts: Facts | None, error: str | None = None) -> list[list[Judged]]:
    """Every task's checks on one phase's facts; no facts at all (error): every check ERROR."""
    out = []
    for exercise in exercises:
        if facts is None:
            out.append([Judged(ERROR, error or "no facts") for _ in exercise.checks])
            continue
        try:
            report = grade(exercise, facts)
        except LabError as exc:
            out.append([Judged(ERROR, one_line(str(exc), 300)) for _ in exercise.checks])
            continue
        out.append([classify(o, ref.check, facts) for o, ref in zip(report.outcomes, exercise.checks, strict=True)])
    return out


def final_status(pre: str, post: str | None, persistent: bool) -> str:
    """A persistent task's check scores only if it passes before and after the reboot; a
    runtime-only one is scored before. A FAIL the candidate made before the reboot stays a FAIL."""
    if not persistent or post is None:
        return pre
    if pre == FAIL or post == FAIL:
        return FAIL
    if ERROR in (pre, post):
        return ERROR
    if SKIP in (pre, post):
        return SKIP
    return PASS


# --- the results document ----------------------------------------------------------------------

def task_entries(exercises: Sequence[Exercise], weights: Sequence[int], pre: Sequence[Sequence[Judged]],
                 post: Sequence[Sequence[Judged]] | None) -> list[dict[str, Any]]:
    tasks = []
    for index, exercise in enumerate(exercises):
        checks = []
        for c_index, ref in enumerate(exercise.checks):
            before = pre[index][c_index]
            after = post[index][c_index] if post is not None else None
            checks.append({"id": ref.id, "description": ref.description, "points": ref.points,
                           "pre": before.status, "pre_message": before.message,
                           "post": after.status if after else None, "post_message": after.message if after else None,
                           "final": final_status(before.status, after.status if after else None, exercise.persistent)})
        tasks.append({"number": index + 1, "exercise": exercise.id, "title": exercise.title,
                      "objective": exercise.objective, "weight": weights[index],
                      "params": dict(exercise.param_values), "persistent": exercise.persistent,
                      "checks": checks})
    return tasks


def score_tasks(tasks: list[dict[str, Any]], pass_mark: float = DEFAULT_PASS_MARK) -> dict[str, Any]:
    """Fill each task's score and the exam's total in place; return the summary.

    A task's share is its points over the points that could be judged, times its weight.
    ERROR checks count neither way: the status is 'incomplete' when they could still decide it."""
    total_w = sum(t["weight"] for t in tasks) or 1
    got = low = high = 0.0
    objectives: dict[str, list[float]] = {}
    for task in tasks:
        points = sum(c["points"] for c in task["checks"] if c["final"] != SKIP)
        scored = sum(c["points"] for c in task["checks"] if c["final"] == PASS)
        unjudged = sum(c["points"] for c in task["checks"] if c["final"] == ERROR)
        judged = points - unjudged
        task.update(score=scored, max_score=points, judged=judged, errors=unjudged,
                    percent=round(100 * scored / judged, 1) if judged else None)
        share = task["weight"] / total_w
        got += share * (scored / judged if judged else 0.0)
        low += share * (scored / points if points else 0.0)
        high += share * ((scored + unjudged) / points if points else 0.0)
        pair = objectives.setdefault(task["objective"], [0.0, 0.0])
        pair[0] += task["weight"] * (scored / points if points else 0.0)
        pair[1] += task["weight"]
    if 100 * low >= pass_mark:
        status = "pass"
    elif 100 * high < pass_mark:
        status = "fail"
    else:
        status = "incomplete"
    return {"percent": round(100 * got, 1), "worst_percent": round(100 * low, 1),
            "best_percent": round(100 * high, 1), "pass_mark": pass_mark, "status": status,
            "errors": sum(t["errors"] for t in tasks),
            "objectives": [{"objective": k, "percent": round(100 * v[0] / v[1], 1) if v[1] else 0.0,
                            "weight": v[1]} for k, v in sorted(objectives.items())]}


def results_document(*, plan: Mapping[str, Any], tasks: list[dict[str, Any]], pass_mark: float,
                     practice: bool, times: Mapping[str, Any], boot_ids: Mapping[str, Any],
                     evidence: Mapping[str, Any], reboot: Mapping[str, Any]) -> dict[str, Any]:
    summary = score_tasks(tasks, pass_mark)
    return {"schema": SCHEMA, "tool_version": __version__, "seed": plan.get("seed"),
            "catalogue": plan.get("catalogue", {}), "nodes": plan.get("nodes", []), "plan": dict(plan),
            "practice": practice, "times": dict(times), "reboot": dict(reboot),
            "boot_ids": dict(boot_ids), "evidence": dict(evidence), "summary": summary, "tasks": tasks}


# --- frozen evidence -----------------------------------------------------------------------------

def sha256_text(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def cib_version(cib_xml: str | None) -> dict[str, str | None]:
    """admin_epoch/epoch/num_updates of a CIB (which write of the configuration was judged)."""
    if not cib_xml:
        return {"admin_epoch": None, "epoch": None, "num_updates": None}
    try:
        root = parse_untrusted(cib_xml, "CIB")
    except LabError:
        return {"admin_epoch": None, "epoch": None, "num_updates": None}
    return {k: root.get(k) for k in ("admin_epoch", "epoch", "num_updates")}


def write_evidence(folder: Path, raw: Mapping[str, str | None], errors: Mapping[str, str | None],
                   boot_ids: Mapping[str, str | None], when: float) -> dict[str, Any]:
    """One phase's evidence: each node's gathered answer as it came, and meta.json with hashes,
    boot ids, CIB versions and the time. Returns meta."""
    folder.mkdir(parents=True, exist_ok=True)
    nodes: dict[str, Any] = {}
    for name, text in raw.items():
        entry: dict[str, Any] = {"boot_id": boot_ids.get(name), "error": errors.get(name)}
        if text is not None:
            write_atomic(folder / f"{name}.out", text, mode=0o600)
            sections = parse_sections(text)
            cib = sections.get("cib")
            entry.update(sha256=sha256_text(text), cib=cib_version(cib.stdout if cib and cib.ok else None))
        nodes[name] = entry
    meta = {"time": when, "nodes": nodes}
    write_atomic(folder / "meta.json", json.dumps(meta, indent=2) + "\n", mode=0o600)
    return meta


def facts_from_evidence(folder: Path, expected: Sequence[str]) -> Facts:
    """The phase's Facts again from its frozen answers (the hashes must still match)."""
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{meta_path} cannot be read: {exc}") from None
    nodes: dict[str, NodeFacts] = {}
    for name in expected:
        entry = (meta.get("nodes") or {}).get(name) or {}
        path = folder / f"{name}.out"
        if not path.exists():
            nodes[name] = NodeFacts(name=name, error=entry.get("error") or f"{name}: no evidence")
            continue
        text = path.read_text()
        if entry.get("sha256") != sha256_text(text):
            raise UsageError(f"{path}: its hash is not the one recorded in {meta_path}: the evidence was changed")
        found = parse_sections(text)
        extra = {k[2:]: v for k, v in found.items() if k.startswith("x_")}
        nodes[name] = node_facts_from_sections(name, found, extra)
    view = _cluster_view(list(nodes.values()))
    return Facts(live=True, expected_nodes=tuple(expected), cib=view.cib if view else None,
                 cib_xml=view.cib_xml if view else None, status=view.status if view else None,
                 nodes=MappingProxyType(nodes), source=f"evidence {folder}")


def encode_sections(sections: Mapping[str, tuple[int, str]]) -> str:
    """A gather answer in the gather's own format (tests, and hand-made evidence)."""
    lines = []
    for name, (rc, text) in sections.items():
        lines += [f"==LAB== {name} {rc}", base64.b64encode(text.encode()).decode()]
    return "\n".join(lines) + "\n"


# --- views ---------------------------------------------------------------------------------------

def _h(value: object) -> str:
    return html.escape(one_line(str(value), 0), quote=True)


def _md(text: object) -> str:
    return md_escape(str(text))


def results_md(doc: Mapping[str, Any]) -> str:
    s = doc["summary"]
    lines = [f"# Exam results (seed {doc['seed']})", "",
             f"Score: {s['percent']} % (pass mark {s['pass_mark']} %): **{s['status']}**"
             + (" (practice: aids were used)" if doc.get("practice") else ""), ""]
    if s["errors"]:
        lines += [f"Not judged (ERROR, not counted against you): {s['errors']} points; "
                  f"the score lies between {s['worst_percent']} and {s['best_percent']} %. "
                  "`lab exam regrade DIR` judges the frozen evidence again.", ""]
    reboot = doc.get("reboot") or {}
    if reboot:
        lines += [f"Reboot: {_md(reboot.get('summary', ''))}", ""]
    lines += ["| # | task | objective | weight | kind | score |", "|---|---|---|---|---|---|"]
    for t in doc["tasks"]:
        lines.append(f"| {t['number']} | {_md(t['title'])} | {_md(t['objective'])} | {t['weight']} | "
                     f"{'persistent' if t['persistent'] else 'runtime'} | {t['score']}/{t['judged']} |")
    for t in doc["tasks"]:
        lines += ["", f"## {t['number']}. {_md(t['title'])}", ""]
        for c in t["checks"]:
            lines.append(f"- {c['final']} {_md(c['description'])} ({c['points']} pt): before {c['pre']}"
                         + (f", after reboot {c['post']}" if c["post"] else "") + f": {_md(c['pre_message'])}")
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.PASS{background:#e5f6e5}.FAIL{background:#fde8e8}.ERROR{background:#fff4d6}.SKIP{color:#777}"""


def report_html(doc: Mapping[str, Any], progress_html: str = "") -> str:
    """One self-contained page: the per-task table, every check's pre/post/final, the score per
    objective as an inline SVG chart (lab grade's chart), and PROGRESS_HTML (the history's
    charts, lab.workflows.history). Nothing is fetched."""
    s = doc["summary"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
           f"<title>Exam results, seed {_h(doc['seed'])}</title><style>{_CSS}</style></head><body>",
           f"<h1>Exam results (seed {_h(doc['seed'])})</h1>",
           f'<p id="total">{_h(s["percent"])} % (pass mark {_h(s["pass_mark"])} %): '
           f'<strong>{_h(s["status"])}</strong>{" (practice)" if doc.get("practice") else ""}</p>']
    if s["errors"]:
        out.append(f"<p>Not judged (ERROR, not counted): {_h(s['errors'])} points.</p>")
    out.append('<table id="tasks"><thead><tr><th>#</th><th>task</th><th>objective</th><th>weight</th>'
               "<th>kind</th><th>score</th></tr></thead><tbody>")
    for t in doc["tasks"]:
        out.append(f'<tr data-task="{t["number"]}"><td>{t["number"]}</td><td>{_h(t["title"])}</td>'
                   f'<td>{_h(t["objective"])}</td><td>{t["weight"]}</td>'
                   f'<td>{"persistent" if t["persistent"] else "runtime"}</td><td>{t["score"]}/{t["judged"]}</td></tr>')
    out.append("</tbody></table>")
    out.append('<table id="checks"><thead><tr><th>task</th><th>check</th><th>points</th><th>before</th>'
               "<th>after reboot</th><th>final</th><th>message</th></tr></thead><tbody>")
    for t in doc["tasks"]:
        for c in t["checks"]:
            out.append(f'<tr><td>{t["number"]}</td><td>{_h(c["description"])}</td><td>{c["points"]}</td>'
                       f'<td class="{_h(c["pre"])}">{_h(c["pre"])}</td>'
                       f'<td class="{_h(c["post"] or "")}">{_h(c["post"] or "-")}</td>'
                       f'<td class="{_h(c["final"])}">{_h(c["final"])}</td><td>{_h(c["pre_message"])}</td></tr>')
    out.append("</tbody></table><h2>Score per objective</h2>")
    out.append(chart_svg([(o["objective"], int(round(o["percent"] * 10)), 1000) for o in s["objectives"]]))
    out += [progress_html, "</body></html>"] if progress_html else ["</body></html>"]
    return "\n".join(out) + "\n"


def junit_xml(doc: Mapping[str, Any]) -> str:
    """One testsuite per task, one testcase per check (final): FAIL a <failure>, ERROR an
    <error> (the grader's, not the candidate's), SKIP <skipped>."""
    root = ET.Element("testsuites", name=f"lab exam seed {doc['seed']}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for t in doc["tasks"]:
        suite = ET.SubElement(root, "testsuite", name=f"{t['number']}.{t['exercise']}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for c in t["checks"]:
            case = ET.SubElement(suite, "testcase", classname=f"exam.{t['exercise']}", name=c["id"])
            counts["tests"] += 1
            after = c["final"] != c["pre"] and c["post_message"]
            message = one_line(c["post_message"] if after else c["pre_message"], 2000)
            if c["final"] == FAIL:
                ET.SubElement(case, "failure", message=message, type="check-failed").text = message
                counts["failures"] += 1
            elif c["final"] == ERROR:
                ET.SubElement(case, "error", message=message, type="grader-error")
                counts["errors"] += 1
            elif c["final"] == SKIP:
                ET.SubElement(case, "skipped", message=message)
                counts["skipped"] += 1
        close_junit_suite(suite, counts, totals)
    return junit_text(root, totals)


OUTPUTS = ("results.json", "results.md", "report.html", "junit.xml")


def write_results(folder: Path, doc: dict[str, Any], key: bytes | None = None,
                  progress_html: str = "") -> dict[str, Any]:
    """Every view, then results.json (signed with the key, HMAC-SHA256, as lab grade signs)."""
    write_file(folder / "results.md", results_md(doc))
    write_file(folder / "report.html", report_html(doc, progress_html))
    write_file(folder / "junit.xml", junit_xml(doc))
    if key is not None:
        doc = sign_document(doc, key)
    write_file(folder / "results.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return doc


def read_results(path: Path) -> dict[str, Any]:
    data = loads_untrusted_json(read_untrusted_file(path, "exam results", limit=64 * 2**20).decode("utf-8", "replace"),
                                str(path))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{path} is not an exam results file (schema {SCHEMA})")
    return data


def verify(path: Path, key: bytes) -> None:
    verify_document(read_results(path), key, str(path))


def regrade(folder: Path, key: bytes | None = None,
            record: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Any]:
    """Judge an exam folder's frozen evidence again with the current grader; rewrite the results.
    RECORD (the progress history's) takes the new document and gives the report's progress charts."""
    path = folder / "results.json"
    doc = read_results(path)
    plan = plan_from_json(doc.get("plan"), str(path))
    exercises = plan.exercises()
    nodes = list(plan.nodes)
    phases: dict[str, list[list[Judged]] | None] = {}
    for phase in EVIDENCE_PHASES:
        where = folder / "evidence" / phase
        if (where / "meta.json").exists():
            phases[phase] = judge_phase(exercises, facts_from_evidence(where, nodes))
        else:
            recorded = (doc.get("reboot") or {}).get("error") if phase == "post" else None
            phases[phase] = None if phase == "post" and not recorded else judge_phase(
                exercises, None, recorded or f"no {phase} evidence in {where}")
    tasks = task_entries(exercises, [t.weight for t in plan.tasks], phases["pre"] or [], phases["post"])
    new = results_document(plan=plan.to_json() | {"catalogue": doc.get("catalogue", {})}, tasks=tasks,
                           pass_mark=float((doc.get("summary") or {}).get("pass_mark", DEFAULT_PASS_MARK)),
                           practice=bool(doc.get("practice")), times=doc.get("times") or {},
                           boot_ids=doc.get("boot_ids") or {}, evidence=doc.get("evidence") or {},
                           reboot=doc.get("reboot") or {})
    new["regraded"] = {"tool_version": __version__, "from": doc.get("tool_version")}
    return write_results(folder, new, key, record(new) if record else "")
