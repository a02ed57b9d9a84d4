"""The `lab` command line: parse, call the core, print. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lab import __version__
from lab.core.errors import LabError, UsageError

if TYPE_CHECKING:  # the engine and workflows load when a command runs: `lab --help` stays fast
    from lab.engine.exercises import Exercise
    from lab.engine.grading import Report
    from lab.transport.ssh import SSHNode
    from lab.workflows.history import History, Series


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


MAX_TIMEOUT = 3600.0


def bounded(parse: Callable[[str], float], what: str, low: float, high: float, *,
            above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number WHAT in [LOW, HIGH] (in (LOW, HIGH] when ABOVE). Comparisons are
    false for nan and inf is beyond any HIGH: a timeout of nan or inf would wait forever."""
    def convert(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
        if not (low < value <= high if above else low <= value <= high):
            span = f"more than {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"'{text}' must be {span}")
        return value
    return convert


_seconds = bounded(float, "a number of seconds", 0, MAX_TIMEOUT, above=True)
_positive_int = bounded(int, "a whole number", 1, 256)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lab", description="Failover Lab: practise LPIC-3 361.3 on a real "
                     "Pacemaker/Corosync cluster and get graded on the real cluster state.")
    parser.add_argument("--version", action="version", version=f"lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("exercises", help="list the exercises")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("show", help="show an exercise's task (hints and solution on request)")
    p.add_argument("exercise")
    p.add_argument("--hint", nargs="?", type=int, const=1, choices=(1, 2, 3), metavar="LEVEL",
                   help="show hints up to LEVEL (1 concept, 2 command shape, 3 full); default 1")
    p.add_argument("--solution", action="store_true", help="show the reference solutions")
    p.add_argument("--pcs-version", help="pcs version to write commands for "
                   "(default: the lab's, else the local pcs, else 0.10+)")
    p.add_argument("--practice", action="store_true", help="during an exam: show hints anyway (marks it practice)")

    p = sub.add_parser("check", help="grade an exercise on the lab, on given nodes, or on a saved CIB")
    p.add_argument("exercise")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--cib", type=Path, metavar="FILE", help="grade a saved CIB (cibadmin --query)")
    src.add_argument("--node", action="append", metavar="NAME=USER@HOST[:PORT]",
                     help="grade these nodes over SSH (repeatable)")
    p.add_argument("--identity", type=Path, metavar="KEYFILE", help="SSH private key for --node")
    p.add_argument("--timeout", type=_seconds, default=10.0, help="SSH connect timeout in seconds")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--yes", action="store_true",
                   help="with --node: allow checks that fence or reboot those machines")
    p.add_argument("--practice", action="store_true", help="during an exam: check anyway (marks it practice)")

    p = sub.add_parser("progress", help="your scores per objective over time (every lab check and exam)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("report", help="grade many labs at once from a roster (instructors)")
    p.add_argument("exercise")
    p.add_argument("roster", type=Path, help="TOML file: [[lab]] name = ..., nodes = [...] or cib = ...")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text")
    p.add_argument("--parallel", type=_positive_int, default=8, help="labs graded at the same time")
    p.add_argument("--timeout", type=_seconds, default=10.0, help="SSH connect timeout in seconds")

    p = sub.add_parser("grade", help="grade a class: a roster of students on several exercises (instructors)",
                       description="lab grade ROSTER (--exercises A,B,C | --exam PLAN.json) --out DIR; "
                       "lab grade verify DIR --sign-key FILE")
    p.add_argument("roster", metavar="ROSTER", help="roster TOML or CSV ([[student]] id, evidence or nodes); "
                   "or 'verify' to check a signed DIR")
    p.add_argument("verify_dir", nargs="?", type=Path, metavar="DIR", help="with verify: the output folder")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--exercises", metavar="A,B,C", help="exercise ids, comma-separated")
    what.add_argument("--exam", type=Path, metavar="PLAN.json", help='an exam plan: {"tasks": [{"exercise": ID}]}')
    p.add_argument("--out", type=Path, metavar="DIR", help="where results.json, gradebook.csv, junit.xml, "
                   "report.html and feedback/ go")
    p.add_argument("--parallel", type=_positive_int, default=4, help="students graded at the same time")
    p.add_argument("--drop-check", action="append", default=[], metavar="EXERCISE:CHECK_ID",
                   help="grade without this check (repeatable; recorded in results.json)")
    p.add_argument("--only-errors", action="store_true",
                   help="grade again only the students whose row in DIR/results.json is an error, and merge")
    p.add_argument("--sign-key", type=Path, metavar="FILE", help="HMAC-SHA256 key: sign (or verify) results.json")
    p.add_argument("--timeout", type=_seconds, default=10.0, help="SSH connect timeout in seconds")
    p.add_argument("--yes", action="store_true", help="allow checks that fence or reboot the students' machines")

    from lab.cli import vm as cli_vm

    cli_vm.add_commands(sub)
    from lab.cli import exam as cli_exam

    cli_exam.add_commands(sub)
    return parser


def cmd_exercises(args: argparse.Namespace) -> int:
    from lab.engine.exercises import load_all

    exercises = load_all()
    if args.format == "json":
        print(json.dumps([{"id": e.id, "title": e.title, "objective": e.objective,
                           "live_only": e.live_only} for e in exercises]))
        return 0
    width = max(len(e.id) for e in exercises)
    by_objective: dict[str, list] = {}
    for ex in exercises:
        by_objective.setdefault(ex.objective, []).append(ex)
    for objective, items in by_objective.items():
        print(f"{objective}:")
        for ex in items:
            live = "  (live lab only)" if ex.live_only else ""
            print(f"  {ex.id:<{width}}  {ex.title}{live}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from lab.cli.showing import render_exercise
    from lab.engine.exercises import load

    exercise = load(args.exercise).with_params(getattr(args, "exam_params", None) or {})
    print(render_exercise(exercise, hint_level=args.hint or 0, solution=args.solution,
                          pcs_version=args.pcs_version))
    return 0


def _note(text: str) -> None:
    """Progress for the person waiting, on stderr: stdout stays the report alone."""
    print(f"lab check: {text} ...", file=sys.stderr, flush=True)


def cmd_check(args: argparse.Namespace) -> int:
    opened = None
    if args.cib is None and not args.node:  # the current lab: connect while the rest loads
        from lab.workflows.connections import current_lab_ahead

        opened = current_lab_ahead()
    try:
        return _check(args, opened)
    finally:
        for node in opened or ():
            node.close()


def _check(args: argparse.Namespace, opened: Sequence[SSHNode] | None) -> int:
    from lab.engine import report
    from lab.engine.exercises import load
    from lab.engine.grading import sections_for
    from lab.gather.probes import ANNOUNCE, destructive_probes
    from lab.workflows.checking import check_cib_file, check_current_lab, check_nodes

    exercise = load(args.exercise)
    if args.identity is not None and not args.node:
        raise UsageError("--identity only applies with --node")
    source = "cib" if args.cib is not None else "nodes" if args.node else "lab"
    if source == "lab":  # during an exam: the task as drawn (a saved CIB or other nodes: the defaults)
        exercise = exercise.with_params(getattr(args, "exam_params", None) or {})
    if args.cib is not None:
        result = check_cib_file(exercise, args.cib)
    elif args.node:
        acts = destructive_probes(sections_for(exercise))
        if acts and not args.yes and args.format == "text":
            what = " and ".join(ANNOUNCE[a].split(",")[0] for a in acts)
            raise UsageError(f"checking '{exercise.id}' on the machines given by --node means {what}: "
                             "add --yes to allow it "
                             "(--format json grades the rest and marks those checks skipped)")
        result = check_nodes(exercise, args.node, identity=args.identity, timeout=args.timeout, say=_note,
                             allow_destructive=args.yes)
    else:
        from lab.cli.labinfo import logged

        with logged():
            result = check_current_lab(exercise, say=_note, opened=opened)
    print(report.to_json(result) if args.format == "json" else report.to_text(result), flush=True)
    _record_check(exercise, result, source, practice=getattr(args, "exam_practice", False))
    return result.exit_code


def _record_check(exercise: Exercise, result: Report, source: str, *, practice: bool) -> None:
    """The check goes to the progress history (lab progress); a home that cannot be written
    costs the history a line, never the check its report or exit status."""
    from lab.workflows import history

    judged = sum(o.points for o in result.outcomes if o.passed is not None)
    if not judged:  # every check skipped: nothing was judged
        return
    try:
        history.append(history.check_record(exercise.id, exercise.objective, result.score, judged,
                                            source=source, practice=practice))
    except (OSError, LabError) as exc:
        print(f"lab check: progress not recorded: {' '.join(str(exc).split())}", file=sys.stderr)


def cmd_progress(args: argparse.Namespace) -> int:
    from lab.workflows import history

    found = history.read()
    series = history.objective_series(found.entries)
    if args.format == "json":
        print(json.dumps({"file": str(found.path), "records": len(found.entries), "skipped": found.skipped,
                          "objectives": [{"objective": s.objective, "attempts": len(s.attempts), "last": s.last,
                                          "best": s.best, "trend": history.trend(s),
                                          "history": [{"time": a.time, "percent": a.percent, "kind": a.kind,
                                                       "label": a.label, "practice": a.practice}
                                                      for a in s.attempts]} for s in series]}))
        return 0
    print("\n".join(progress_lines(found, series)))
    return 0


def progress_lines(found: History, series: Sequence[Series]) -> list[str]:
    """The table: objective, attempts, last score, best, trend (sparkline and last change)."""
    from lab.workflows import history

    lines = []
    if not series:
        lines.append(f"no progress recorded yet: 'lab check EXERCISE' and 'lab exam submit' add to it "
                     f"({found.path})")
    else:
        width = max(len("objective"), *(len(s.objective) for s in series))
        lines.append(f"{'objective':<{width}}  attempts   last   best  trend")
        lines += [f"{s.objective:<{width}}  {len(s.attempts):>8}  {s.last:>3.0f} %  {s.best:>3.0f} %  "
                  f"{history.trend(s)}" for s in series]
        kinds = [e.kind for e in found.entries]
        lines.append(f"{len(kinds)} records ({kinds.count('check')} checks, {kinds.count('exam')} exams) "
                     f"in {found.path}")
    if found.skipped:
        many = found.skipped > 1
        lines.append(f"{found.skipped} line{'s' if many else ''} of {found.path} could not be read and "
                     f"{'were' if many else 'was'} skipped")
    return lines


def cmd_report(args: argparse.Namespace) -> int:
    from lab.engine.exercises import load
    from lab.workflows import reports

    exercise = load(args.exercise)
    entries = reports.load_roster(args.roster)
    results = reports.grade_roster(exercise, entries, parallel=args.parallel, timeout=args.timeout)
    render = {"text": reports.roster_text, "json": reports.roster_json, "csv": reports.roster_csv}
    print(render[args.format](exercise, results).rstrip("\n"))
    return 0 if all(r.report and r.report.passed for r in results) else 1


def cmd_grade(args: argparse.Namespace) -> int:
    from lab.workflows import classgrade, gradebook

    key = gradebook.read_key(args.sign_key) if args.sign_key is not None else None
    if args.roster == "verify":
        if args.verify_dir is None or key is None:
            raise UsageError("usage: lab grade verify DIR --sign-key FILE")
        print(f"{gradebook.verify_dir(args.verify_dir, key)}: signature OK")
        return 0
    if args.verify_dir is not None:
        raise UsageError(f"unexpected argument '{args.verify_dir}' (lab grade ROSTER ... --out DIR)")
    if args.out is None or (args.exercises is None and args.exam is None):
        raise UsageError("lab grade needs --exercises A,B,C (or --exam PLAN.json) and --out DIR")
    ids = args.exercises.split(",") if args.exercises is not None else classgrade.load_plan(args.exam)
    exercises = classgrade.exercises_from_ids(ids)
    options = classgrade.GradeOptions(parallel=args.parallel, timeout=args.timeout, allow_destructive=args.yes,
                                      drops=classgrade.parse_drops(args.drop_check, exercises))
    students = classgrade.load_roster(Path(args.roster))
    previous = gradebook.read_results(args.out / "results.json", key) if args.only_errors else None
    gradebook.prepare_dir(args.out)
    results = classgrade.grade_class(students, exercises, options, previous=previous,
                                     say=lambda text: print(f"lab grade: {text}", file=sys.stderr, flush=True))
    gradebook.write_all(args.out, results, exercises, key)
    counts = classgrade.summary(results)
    print(f"{len(results.students)} students x {len(exercises)} exercises: {counts['pass']} passed, "
          f"{counts['fail']} failed, {counts['error']} not graded (errors); wrote {args.out}/"
          + ", ".join(gradebook.OUTPUTS))
    return 0 if counts["pass"] == len(results.students) else 1

COMMANDS = {"exercises": cmd_exercises, "show": cmd_show, "check": cmd_check, "progress": cmd_progress,
            "report": cmd_report, "grade": cmd_grade}


def _phrase(exc: LabError) -> str:
    """One line: the error's message; the VM layer's errors (a failed step, no lab up, ...) are
    phrased by lab.cli.labinfo, which adds the flags and commands that help next."""
    if type(exc).__module__.startswith("lab.vm."):
        from lab.cli.labinfo import phrase

        return phrase(exc)
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    """Run one command; whatever it started locally ends with it (success, error, Ctrl-C, SIGTERM)."""
    from lab.transport import runner

    with runner.owned_children():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    from lab.transport.runner import Terminated

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        from lab.cli import exam as cli_exam
        from lab.cli import vm as cli_vm

        cli_exam.enforce(args)  # during an exam: its warnings, and no aids without --practice
        handler = COMMANDS.get(args.command) or cli_vm.COMMANDS.get(args.command) or cli_exam.COMMANDS[args.command]
        return handler(args)
    except LabError as exc:
        print(f"Error: {_phrase(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (Terminated): children are ended already
        how = f"Stopped by {exc}" if isinstance(exc, Terminated) else "Interrupted"
        print(f"{how}; run the same command again to continue.", file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Terminated) else 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug or an unforeseen failure: still one line, traceback on request
        if os.environ.get("LAB_DEBUG"):
            raise
        detail = " ".join(str(exc).split()) or "no message"
        print(f"Error: unexpected {type(exc).__name__}: {detail} "
              "(a bug in lab? LAB_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
