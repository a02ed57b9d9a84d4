"""`lab exam ...`: plan, start, status, mark, submit, review, regrade, verify. Thin: parse, call, print."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lab.cli.main import bounded
from lab.core.errors import UsageError

if TYPE_CHECKING:  # the workflows load when a subcommand runs: `lab --help` stays fast
    from lab.workflows.examstate import ExamState

_minutes = bounded(float, "a number of minutes", 1, 600)
_percent = bounded(float, "a percentage", 0, 100, above=True)


def _tasks(text: str) -> int:
    """--tasks: a whole number in the exam's range (phrased with the flag here, not in the workflow)."""
    from lab.workflows.exam import MAX_TASKS

    return bounded(int, "a whole number", 1, MAX_TASKS)(text)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exam", help="a mock exam: drawn tasks, a timer, grading with a reboot phase")
    ex = p.add_subparsers(dest="exam_command", metavar="SUBCOMMAND", parser_class=type(p))
    q = ex.add_parser("plan", help="draw the exam's tasks (no lab needed)")
    q.add_argument("--seed", type=int, help="the draw's seed (default: random, always printed)")
    q.add_argument("--tasks", type=_tasks, default=8, help="number of tasks (default 8)")
    q.add_argument("--format", choices=("text", "json"), default="text")
    q = ex.add_parser("start", help="build one lab state for every drawn task, prove it red, start the timer")
    q.add_argument("--seed", type=int)
    q.add_argument("--tasks", type=_tasks, default=8)
    q.add_argument("--minutes", type=_minutes, default=120.0)
    q.add_argument("--sign-key", type=Path, metavar="FILE", help="HMAC-SHA256 key: sign results.json")
    q = ex.add_parser("status", help="time left, the tasks and your marks")
    q.add_argument("--watch", action="store_true", help="refresh every few seconds until the exam ends")
    q = ex.add_parser("show", help="show one task of the running exam (the task text only)")
    q.add_argument("number", type=int)
    q = ex.add_parser("mark", help="mark a task done or to revisit (your own notes)")
    q.add_argument("number", type=int)
    q.add_argument("what", choices=("done", "revisit", "clear"))
    q = ex.add_parser("submit", help="freeze the evidence, grade, reboot every node, grade again")
    q.add_argument("--sign-key", type=Path, metavar="FILE")
    q.add_argument("--pass-mark", type=_percent, default=None, help="percent needed to pass (default 70)")
    ex.add_parser("review", help="after submit: each task, what was judged, the result, the reference solutions")
    q = ex.add_parser("regrade", help="grade an exam folder's frozen evidence again with the current grader")
    q.add_argument("dir", type=Path)
    q.add_argument("--sign-key", type=Path, metavar="FILE")
    q = ex.add_parser("verify", help="check the HMAC signature of an exam's results.json")
    q.add_argument("results", type=Path)
    q.add_argument("--sign-key", type=Path, metavar="FILE", required=True)


def _lab_dir() -> Path:
    """The lab's folder: status, marks and review read the exam's own file, not the lab's state."""
    from lab.vm.labstate import Lab, current_name

    return Lab(current_name()).dir


def _key(path: Path | None) -> bytes | None:
    from lab.workflows.gradebook import read_key

    return read_key(path) if path is not None else None


def _plan(args: argparse.Namespace) -> int:
    from lab.workflows import exam

    plan = exam.draw_plan(args.seed, args.tasks)
    print(json.dumps(plan.to_json()) if args.format == "json" else exam.plan_text(plan))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from lab.workflows import examscore

    examscore.verify(args.results, _key(args.sign_key))  # type: ignore[arg-type]
    print(f"{args.results}: signature OK")
    return 0


def _regrade(args: argparse.Namespace) -> int:
    from lab.workflows import examscore, history

    notes: list[str] = []

    def record(new: dict) -> str:
        charts, not_recorded = history.after_exam(new, regrade=True)
        notes.extend([not_recorded] if not_recorded else [])
        return charts

    doc = examscore.regrade(args.dir, _key(args.sign_key), record)
    for note in notes:
        print(f"lab exam regrade: {note}", file=sys.stderr)
    print(f"regraded {args.dir}: {doc['summary']['percent']} % ({doc['summary']['status']})")
    return 0


def _start(args: argparse.Namespace) -> int:
    from lab.vm.labstate import current_lab
    from lab.vm.network import has_second_network
    from lab.workflows import exam, exam_run, examstate

    key = _key(args.sign_key)  # a bad key fails before minutes of building
    del key
    lab = current_lab()
    plan = exam.draw_plan(args.seed, args.tasks, nodes=lab.node_names,
                          second_network=has_second_network(lab))
    print(f"exam seed {plan.seed}", file=sys.stderr, flush=True)
    state = exam_run.start(plan, minutes=args.minutes, sign_key=args.sign_key)
    print("\n".join(examstate.status_lines(state)))
    return 0


def _status(args: argparse.Namespace, lab_dir: Path, state: ExamState) -> int:
    from lab.workflows import examstate

    while True:
        print("\n".join(examstate.status_lines(state)), flush=True)
        if not args.watch or state.status != "running":
            return 0
        time.sleep(5)
        print()
        state = examstate.read_state(lab_dir) or state


def _show(args: argparse.Namespace, lab_dir: Path, state: ExamState) -> int:
    from lab.workflows import exam

    if not 1 <= args.number <= len(state.plan.tasks):
        raise UsageError(f"task {args.number} does not exist (tasks 1..{len(state.plan.tasks)})")
    print(exam.task_text(args.number, state.plan.tasks[args.number - 1].load()), end="")
    return 0


def _mark(args: argparse.Namespace, lab_dir: Path, state: ExamState) -> int:
    from lab.workflows import examstate

    examstate.mark(lab_dir, args.number, args.what)
    print(f"task {args.number}: {args.what}")
    return 0


def _submit(args: argparse.Namespace, lab_dir: Path, state: ExamState) -> int:
    from lab.workflows import exam_run, examscore

    pass_mark = args.pass_mark if args.pass_mark is not None else examscore.DEFAULT_PASS_MARK
    doc = exam_run.submit(key=_key(args.sign_key), pass_mark=pass_mark)
    print(examscore.results_md(doc), end="")
    return 0 if doc["summary"]["status"] == "pass" else 1


def _review(args: argparse.Namespace, lab_dir: Path, state: ExamState) -> int:
    from lab.workflows import examscore

    if state.status != "submitted" or not state.results:
        raise UsageError("the exam is not submitted yet: review comes after 'lab exam submit'")
    print(review_text(examscore.read_results(Path(state.results))), end="")
    return 0


# Subcommands that need no exam yet, and those that act on this lab's exam.
_WITHOUT_EXAM = {"plan": _plan, "verify": _verify, "regrade": _regrade, "start": _start}
_ON_EXAM = {"status": _status, "show": _show, "mark": _mark, "submit": _submit, "review": _review}


def cmd_exam(args: argparse.Namespace) -> int:
    from lab.workflows import examstate

    what = args.exam_command
    if what is None:
        raise UsageError("lab exam needs a subcommand: plan, start, status, show, mark, submit, review, "
                         "regrade, verify")
    if what in _WITHOUT_EXAM:
        return _WITHOUT_EXAM[what](args)
    if what not in _ON_EXAM:
        raise UsageError(f"unknown exam subcommand '{what}'")
    lab_dir = _lab_dir()
    state = examstate.read_state(lab_dir)
    if state is None:
        raise UsageError("this lab has no exam: 'lab exam start'")
    return _ON_EXAM[what](args, lab_dir, state)


def review_text(doc: dict) -> str:
    """Each task with its parameters, every check judged, and the reference solutions for them."""
    from lab.cli.showing import display_context
    from lab.engine.commands import render_command
    from lab.engine.exercises import load

    context = display_context()
    lines = [examscore_header(doc)]
    for task in doc["tasks"]:
        exercise = load(task["exercise"]).with_params(task.get("params") or {})
        params = ", ".join(f"{k}={v}" for k, v in (task.get("params") or {}).items())
        kind = ("persistent (judged before and after the reboot)" if task["persistent"]
                else "runtime only (judged before the reboot)")
        lines += ["", f"{task['number']}. {exercise.title}  [{exercise.id}{'; ' + params if params else ''}]",
                  f"   {task['score']}/{task['judged']} points, {kind}"]
        for check in task["checks"]:
            after = f" / after reboot {check['post']}" if check.get("post") else ""
            lines.append(f"   {check['final']:<5} {check['description']} (before {check['pre']}{after}): "
                         f"{check['pre_message']}")
        lines.append("   pcs:   " + "; ".join(render_command(c, context) for c in exercise.solution_pcs))
        lines.append("   crmsh: " + "; ".join(render_command(c, context) for c in exercise.solution_crmsh))
    return "\n".join(lines) + "\n"


def examscore_header(doc: dict) -> str:
    s = doc["summary"]
    return (f"exam seed {doc['seed']}: {s['percent']} % (pass mark {s['pass_mark']} %): {s['status']}"
            + (f"; {s['errors']} points not judged (ERROR)" if s["errors"] else ""))


# Why a command is refused during an exam. start and reset revert the nodes to a snapshot (the
# exam's tasks and the candidate's work gone): refused, --practice or not. solve does the work.
_WIPES = {"start": "it reverts the nodes to a snapshot: the exam's tasks and your work would be gone",
          "reset": "it reverts the nodes to a snapshot: the exam's tasks and your work would be gone"}
_WHY = {"solve": "it applies the reference solution, your work done for you"}


def refusal(command: str, why: str | None = None, *, practice: bool = True) -> str:
    """The one line a refused command prints (the flags are the CLI's words, not the workflow's)."""
    text = f"'lab {command}' is not allowed during an exam" + (f" ({why})" if why else "")
    if not practice:
        return text + "; 'lab exam submit' ends the exam"
    return text + "; add --practice to use it anyway (the exam is then marked as practice; 'lab exam status')"


def enforce(args: argparse.Namespace) -> None:
    """During an exam: warnings on every command; start/reset refused (they would wipe it);
    check/solve/hints/solutions refused unless --practice (which marks the exam as practice);
    destroy ends the exam's watcher first and says so."""
    from lab.workflows import examfile

    command = args.command
    if command == "destroy":
        _end_watcher_of(args.force)
    if examfile.current_state_file() is None:
        return  # the common case: no exam here, and nothing of the catalogue loaded to know it
    from lab.workflows import examstate

    found = examstate.current_exam()
    if found is None:
        return
    lab_dir, state = found
    task = next((t for t in state.plan.tasks if t.exercise == getattr(args, "exercise", None)), None)
    if task is not None:  # show, check and solve speak of the task as drawn, not its defaults
        args.exam_params = dict(task.params)
    if state.status == "running":
        note = examstate.warning(state.seconds_left())
        if note:
            print(note, file=sys.stderr, flush=True)
    if command in _WIPES:
        raise UsageError(refusal(command, _WIPES[command], practice=False))
    aided = command in ("check", "solve") or (command == "show" and (args.hint or args.solution))
    if not aided:
        return
    if not getattr(args, "practice", False):
        shown = "show --hint/--solution" if command == "show" else command
        raise UsageError(refusal(shown, _WHY.get(command)))
    examstate.practice_used(lab_dir, state)
    args.exam_practice = True  # lab check records the attempt as practice


def _end_watcher_of(name: str | None) -> None:
    """Before `lab destroy`: the destroyed lab's exam watcher ends first (it must not submit
    into a lab being removed), and the candidate reads that the exam was not submitted."""
    from lab.core.errors import LabError
    from lab.vm.labstate import Lab, current_name
    from lab.workflows import exam_run

    try:
        lab_dir = Lab(name or current_name()).dir
    except LabError:
        return  # a bad name: destroy itself says so
    pid = exam_run.end_watcher(lab_dir)
    if pid:
        print(f"exam: ended the running exam's deadline watcher (pid {pid}) before destroying the lab; "
              "the exam was not submitted", file=sys.stderr, flush=True)


COMMANDS = {"exam": cmd_exam}
