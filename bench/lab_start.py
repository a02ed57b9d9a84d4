"""Benchmark: `lab start EX` after another exercise vs a rebuild; `lab check` latency; qemu RAM.

Uses (or creates) lab 'bench2'. The rebuild time is a fresh `lab up` measured here unless
--rebuild-seconds gives it (for example from bench/lab_up.py of the same run).

    python bench/lab_start.py [--rebuild-seconds S] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _vmbench import lab, qemu_rss_kib  # noqa: E402

NAME = "bench2"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rebuild-seconds", type=float)
    parser.add_argument("--keep", action="store_true", help="keep the lab afterwards")
    parser.add_argument("--name", default=NAME, help="lab to use (an existing one is reused)")
    args = parser.parse_args()
    name = args.name
    rebuild = args.rebuild_seconds
    if rebuild is None:
        lab("destroy", name=name)
        rebuild = lab("up", name=name)
    else:
        lab("up", name=name)
    lab("start", "resource-delete", name=name)
    starts = [lab("start", ex, name=name) for ex in ("resource-create", "resource-update", "troubleshoot-offline")]
    checks = [lab("check", "resource-update", name=name) for _ in range(5)]
    rss = qemu_rss_kib(f"guest=flab-{name}-")
    best = min(starts)
    print(f"rebuild (lab up from nothing): {rebuild:.1f} s")
    print(f"lab start after another exercise: {', '.join(f'{s:.1f}' for s in starts)} s "
          f"(median {statistics.median(starts):.1f} s)")
    print(f"ratio start / rebuild: {best / rebuild:.3f} best, {statistics.median(starts) / rebuild:.3f} median "
          f"(goal <= 0.02)")
    print(f"lab check latency: median {statistics.median(checks):.2f} s, max {max(checks):.2f} s (goal <= 1 s)")
    print(f"host RAM (RSS) of the qemu processes now: {rss / 1024:.0f} MiB")
    if not args.keep:
        lab("destroy", name=name)


if __name__ == "__main__":
    main()
