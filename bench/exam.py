"""Benchmark: the mock exam on a 2-node lab, next to one `lab start` in the same run.

- exam build: `lab exam start` from the command to the timer running (revert, every drawn task's
  start commands and faults, settle, the baseline proven red, the watcher started), and the
  build_seconds the exam records itself (revert .. baseline proven);
- persistence phase of `lab exam submit`: reboot every node, boot-id proof, cluster back and
  settled, grade again (results.json's times: reboot, settle, post-grade, persistence), and the
  whole submit (freeze and grade before, the phase, results files);
- `lab start` of each drawn task after the exam (the exam refuses it while it runs), and the
  slowest of them: the ratios say what building K tasks as one state and the reboot phase cost
  against one exercise's start. `lab start` uses an exercise's default parameters, the exam its
  drawn ones (the same commands, other values).

Uses (or creates) lab 'benchexam'; destroys it at the end unless --keep.

    python bench/exam.py [--seed N] [--tasks K] [--name NAME] [--reuse] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _vmbench import lab  # noqa: E402

NAME = "benchexam"


def timed(*args: str, name: str, ok: tuple[int, ...] = (0,), timeout: float = 3600) -> float:
    """Run `lab ARGS` for lab NAME (exit status in OK); return its wall time; fail loudly."""
    env = dict(os.environ, LAB_NAME=name)
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, text=True,
                            capture_output=True, timeout=timeout)
    seconds = time.monotonic() - began
    if result.returncode not in ok:
        sys.exit(f"lab {' '.join(args)} failed ({result.returncode}): {result.stderr[-1500:]}")
    return seconds


def exam_folder(name: str) -> Path:
    from lab.core.paths import lab_home

    return lab_home() / "labs" / name / "exam"


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"cannot read {path}: {exc}")


def fmt(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, int | float) else "n/a"


def ratio(a: float | None, b: float) -> str:
    return f"{a / b:.2f}" if isinstance(a, int | float) and b > 0 else "n/a"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1, help="the exam's seed (default 1: the same draw each run)")
    parser.add_argument("--tasks", type=int, default=8, help="tasks drawn (default 8, the exam's default)")
    parser.add_argument("--minutes", type=float, default=120.0,
                        help="the exam's time (only needs to outlast the build; submit ends it)")
    parser.add_argument("--name", default=NAME, help=f"lab to use (default {NAME}, 2 nodes)")
    parser.add_argument("--reuse", action="store_true", help="reuse an existing lab instead of a fresh lab up")
    parser.add_argument("--keep", action="store_true", help="keep the lab afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    name = args.name
    if not args.reuse:
        lab("destroy", name=name)
    up = lab("up", "--nodes", "2", name=name)
    state_file = exam_folder(name) / "exam.json"
    if state_file.exists() and read_json(state_file).get("status") != "submitted":
        sys.exit(f"lab '{name}' has an exam that is not submitted ({state_file}): "
                 "'lab exam submit' it first, or run without --reuse")

    build = timed("exam", "start", "--seed", str(args.seed), "--tasks", str(args.tasks),
                  "--minutes", f"{args.minutes:g}", name=name)
    state = read_json(state_file)
    if state.get("status") != "running" or not state.get("watcher_pid"):
        sys.exit(f"after lab exam start the exam is not running with its watcher: {state_file}")
    tasks = [t["exercise"] for t in state["plan"]["tasks"]]

    submit = timed("exam", "submit", name=name, ok=(0, 1))  # 1: the exam (left undone) is failed
    results = read_json(exam_folder(name) / "results.json")
    times = results.get("times") or {}
    reboot = results.get("reboot") or {}
    if "persistence_seconds" not in times:
        print(f"note: no persistence phase ran (no persistent task drawn, or an older lab): {reboot}")

    starts = {task: lab("start", task, name=name) for task in tasks}
    slowest = max(starts, key=lambda t: starts[t])
    one = starts[slowest]

    print(f"lab '{name}', 2 nodes, seed {args.seed}, {len(tasks)} tasks: {', '.join(tasks)}")
    print(f"lab up ({'reused' if args.reuse else 'fresh'}): {up:.1f} s")
    print(f"exam build (lab exam start -> timer running): {build:.1f} s "
          f"(recorded build: {fmt(state.get('build_seconds'))})")
    print(f"persistence phase: {fmt(times.get('persistence_seconds'))} (reboot {fmt(times.get('reboot_seconds'))}, "
          f"settle {fmt(times.get('settle_seconds'))}, grade again {fmt(times.get('post_grade_seconds'))}); "
          f"reboot: {reboot.get('summary', 'n/a')}")
    print(f"whole submit (freeze and grade {fmt(times.get('freeze_grade_seconds'))}, the phase, results): "
          f"{submit:.1f} s")
    print("lab start of each drawn task: " + ", ".join(f"{t} {s:.1f} s" for t, s in starts.items()))
    print(f"slowest drawn task's lab start: {slowest} {one:.1f} s")
    print(f"ratio exam build / that lab start: {ratio(build, one)} ({len(tasks)} tasks in one state)")
    print(f"ratio persistence phase / that lab start: {ratio(times.get('persistence_seconds'), one)}")
    print(f"ratio whole exam machinery (build + submit) / that lab start: {ratio(build + submit, one)}")
    if not args.keep:
        lab("destroy", name=name)


if __name__ == "__main__":
    main()
