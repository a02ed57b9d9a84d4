"""Benchmark: `lab start EX` built from the baseline vs from its cached start state, `lab reset`,
each against a rebuild (`lab up`); `lab check` latency; qemu RAM.

Uses (or creates) lab 'bench2'. The rebuild time is a fresh `lab up` measured here unless
--rebuild-seconds gives it (for example from bench/lab_up.py of the same run). Each exercise is
started with --fresh first (built, then cached); once all are built, each is started again after
another exercise (from the cache), then reset. A start that fails is reported and the run goes on.

    python bench/lab_start.py [--rebuild-seconds S] [--keep] [--exercises A,B,...|all]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _vmbench import disk_mib, lab, qemu_rss_kib  # noqa: E402

NAME = "bench2"
# Cached: a command, a fault, a slow settle; resource-create's start state is the baseline itself.
EXERCISES = ("resource-update", "troubleshoot-offline", "resource-cleanup", "resource-create")
CACHED_MARK = "from the cached start state"


def timed(*args: str, name: str) -> tuple[float, bool, str]:
    """Run `lab ARGS` (a start or reset): its wall time, whether it came from the cache, and its
    error's last line ('' when it succeeded): one exercise that cannot start is a row, not the end."""
    env = dict(os.environ, LAB_NAME=name)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, text=True,
                            capture_output=True, timeout=1800)
    seconds = time.monotonic() - began
    error = ""
    if result.returncode:
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        error = lines[-1][:200]
    return seconds, CACHED_MARK in result.stderr, error


def catalogue(nodes: int) -> list[str]:
    """Every exercise a lab of NODES nodes can start (min_nodes), in catalogue order."""
    from lab.engine.exercises import load_all
    return [ex.id for ex in load_all() if ex.start.fits(nodes)]


def say(text: str) -> None:
    print(text, flush=True)


def report(rebuild: float, rows: list[tuple], built: dict[str, tuple[float, str]],
           checks: list[float], rss: int, disk: tuple[float, float]) -> None:
    """The table and the ratios against the rebuild."""
    def cell(seconds: float, hit: bool) -> str:
        return f"{seconds:6.1f} s {'cached' if hit else 'built '}"

    say(f"\nrebuild (lab up from nothing): {rebuild:.1f} s")
    say(f"{'exercise':<30} {'first start':>16} {'second start':>16} {'lab reset':>16} {'second/up':>10}")
    for ex, first, cached, hit, reset, reset_hit in rows:
        say(f"{ex:<30} {cell(first, False):>16} {cell(cached, hit):>16} {cell(reset, reset_hit):>16} "
            f"{cached / rebuild:10.3f}")
    for ex, (_, error) in built.items():
        if error:
            say(f"{ex:<30} could not start: {error}")
    hits = [r[2] for r in rows if r[3]] + [r[4] for r in rows if r[5]]
    missed = [r[0] for r in rows if not r[3]]
    if hits:
        say(f"ratio cached start / rebuild: {min(hits) / rebuild:.3f} best, "
            f"{statistics.median(hits) / rebuild:.3f} median, {max(hits) / rebuild:.3f} worst (goal <= 0.02); "
            f"over 0.02: {sum(h / rebuild > 0.02 for h in hits)} of {len(hits)}")
    if missed:
        say(f"second start not from the cache: {', '.join(missed)}")
    if rows:
        say(f"ratio built start / rebuild: {statistics.median(r[1] for r in rows) / rebuild:.3f} median")
    say(f"lab check latency: median {statistics.median(checks):.2f} s, max {max(checks):.2f} s (goal <= 1 s)")
    say(f"host RAM (RSS) of the qemu processes now: {rss / 1024:.0f} MiB")
    kept = sum(1 for r in rows if r[3])
    say(f"the lab's disks: {disk[0]:.0f} MiB before the starts, {disk[1]:.0f} MiB after"
        + (f" ({(disk[1] - disk[0]) / kept:.0f} MiB per cached start state)" if kept else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rebuild-seconds", type=float)
    parser.add_argument("--keep", action="store_true", help="keep the lab afterwards")
    parser.add_argument("--name", default=NAME, help="lab to use (an existing one is reused)")
    parser.add_argument("--exercises", default=",".join(EXERCISES),
                        help="comma-separated exercise ids, or 'all' (every one a 2-node lab can start)")
    args = parser.parse_args()
    name = args.name
    exercises = catalogue(2) if args.exercises == "all" else args.exercises.split(",")
    # Every start state is kept, so the second pass starts each one after another exercise from
    # its cache (the default keeps the 4 most recent per lab).
    os.environ.setdefault("LAB_START_CACHE", str(len(exercises) + 1))
    rebuild = args.rebuild_seconds
    if rebuild is None:
        lab("destroy", name=name)
        rebuild = lab("up", name=name)
    else:
        lab("up", name=name)
    say(f"rebuild (lab up from nothing): {rebuild:.1f} s; {len(exercises)} exercises")
    lab("start", "resource-delete", name=name)
    disk_before = disk_mib(name)
    built: dict[str, tuple[float, str]] = {}
    for ex in exercises:  # pass 1: every start state built from the baseline (then cached)
        seconds, _, error = timed("start", "--fresh", ex, name=name)
        built[ex] = (seconds, error)
        say(f"built  {ex:<30} {seconds:6.1f} s {error}")
    rows = []
    for ex in exercises:  # pass 2: each started after another exercise, then reset
        if built[ex][1]:
            continue
        cached, hit, error = timed("start", ex, name=name)
        reset, reset_hit, reset_error = timed("reset", name=name)
        rows.append((ex, built[ex][0], cached, hit, reset, reset_hit))
        say(f"second {ex:<30} {cached:6.1f} s {'cached' if hit else 'built '} {error}  "
            f"reset {reset:6.1f} s {'cached' if reset_hit else 'built '} {reset_error}  "
            f"{cached / rebuild:.3f} of lab up")
    checks = [lab("check", "resource-update", name=name) for _ in range(5)]
    rss = qemu_rss_kib(f"guest=flab-{name}-")

    report(rebuild, rows, built, checks, rss, (disk_before, disk_mib(name)))
    if not args.keep:
        lab("destroy", name=name)


if __name__ == "__main__":
    main()
