"""Benchmark: `lab start EX` built from the baseline vs from its cached start state, `lab reset`,
each against a rebuild (`lab up`); `lab check` latency; qemu RAM.

Uses (or creates) lab 'bench2'. The rebuild time is a fresh `lab up` measured here unless
--rebuild-seconds gives it (for example from bench/lab_up.py of the same run). Each exercise is
started with --fresh first (built, then cached), then again (from the cache), then reset.

    python bench/lab_start.py [--rebuild-seconds S] [--keep] [--exercises A,B,...]
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
from _vmbench import lab, qemu_rss_kib  # noqa: E402

NAME = "bench2"
# Cached: a command, a fault, a slow settle; resource-create's start state is the baseline itself.
EXERCISES = ("resource-update", "troubleshoot-offline", "resource-cleanup", "resource-create")
CACHED_MARK = "from the cached start state"


def timed(*args: str, name: str) -> tuple[float, bool]:
    """Run `lab ARGS` (a start or reset); its wall time and whether it came from the cache."""
    env = dict(os.environ, LAB_NAME=name)
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, text=True,
                            capture_output=True, timeout=1800)
    seconds = time.monotonic() - began
    if result.returncode:
        sys.exit(f"lab {' '.join(args)} failed ({result.returncode}): {result.stderr[-1500:]}")
    return seconds, CACHED_MARK in result.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rebuild-seconds", type=float)
    parser.add_argument("--keep", action="store_true", help="keep the lab afterwards")
    parser.add_argument("--name", default=NAME, help="lab to use (an existing one is reused)")
    parser.add_argument("--exercises", default=",".join(EXERCISES), help="comma-separated exercise ids")
    args = parser.parse_args()
    name = args.name
    rebuild = args.rebuild_seconds
    if rebuild is None:
        lab("destroy", name=name)
        rebuild = lab("up", name=name)
    else:
        lab("up", name=name)
    lab("start", "resource-delete", name=name)
    rows = []
    for ex in args.exercises.split(","):
        built, _ = timed("start", "--fresh", ex, name=name)
        cached, hit = timed("start", ex, name=name)
        reset, reset_hit = timed("reset", name=name)
        rows.append((ex, built, cached, hit, reset, reset_hit))
    checks = [lab("check", "resource-update", name=name) for _ in range(5)]
    rss = qemu_rss_kib(f"guest=flab-{name}-")

    def cell(seconds: float, hit: bool) -> str:
        return f"{seconds:6.1f} s {'cached' if hit else 'built '}"

    print(f"rebuild (lab up from nothing): {rebuild:.1f} s")
    print(f"{'exercise':<24} {'first start':>16} {'second start':>16} {'lab reset':>16} {'second/up':>10}")
    for ex, built, cached, hit, reset, reset_hit in rows:
        print(f"{ex:<24} {cell(built, False):>16} {cell(cached, hit):>16} {cell(reset, reset_hit):>16} "
              f"{cached / rebuild:10.3f}")
    hits = [r[2] for r in rows if r[3]] + [r[4] for r in rows if r[5]]
    built = [r[1] for r in rows]
    if hits:
        print(f"ratio cached start / rebuild: {min(hits) / rebuild:.3f} best, "
              f"{statistics.median(hits) / rebuild:.3f} median, {max(hits) / rebuild:.3f} worst (goal <= 0.02)")
    print(f"ratio built start / rebuild: {statistics.median(built) / rebuild:.3f} median")
    print(f"lab check latency: median {statistics.median(checks):.2f} s, max {max(checks):.2f} s (goal <= 1 s)")
    print(f"host RAM (RSS) of the qemu processes now: {rss / 1024:.0f} MiB")
    if not args.keep:
        lab("destroy", name=name)


if __name__ == "__main__":
    main()
