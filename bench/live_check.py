"""Benchmark: a live `lab check` against its floor, measured in the same run.

The floor is one SSH round trip that reads the CIB on one node (`ssh node1 sudo -n cibadmin -Q`
with the OpenSSH client and the lab's own key, no Python start-up): no live check can be faster
than asking the cluster once. Then `lab check EX` (the whole command: start-up, connections,
gathering on every node, grading, the report), for a CIB-judged exercise and a live-only one.
Medians of --runs each, interleaved (floor, check A, check B, floor, ...) so that a change in the
host's load hits all three alike.

Uses (or creates) lab 'benchcheck'; destroys it at the end unless --keep or --name names a lab
that existed before.

With --compare DIR, each check is also run by the `lab` of another checkout (an older commit, say),
interleaved with the others: a change's effect as a ratio from one run.

    python bench/live_check.py [--name NAME] [--runs N] [--keep] [--compare DIR]
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
from _vmbench import lab  # noqa: E402

NAME = "benchcheck"
CIB_JUDGED = "resource-update"    # judged from the CIB and crm_mon
# Judged from corosync on every node (cmap, knet stats, corosync.conf); no check of it acts on the
# nodes (cluster-enable's, for one, reboots them).
LIVE_ONLY = "corosync-second-link"


def floor_once(name: str) -> float:
    """One `ssh node1 sudo -n cibadmin -Q` round trip, in seconds."""
    os.environ["LAB_NAME"] = name
    from lab.vm.sshclient import ssh_argv

    argv = ssh_argv("node1", ["sudo", "-n", "cibadmin", "-Q"])
    began = time.monotonic()
    result = subprocess.run(argv, capture_output=True, timeout=120)
    seconds = time.monotonic() - began
    if result.returncode != 0 or b"<cib" not in result.stdout:
        sys.exit(f"floor: {' '.join(argv)} failed: {result.stderr[-500:]!r}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=NAME, help=f"lab to use (default {NAME}; an existing one is reused)")
    parser.add_argument("--runs", type=int, default=7, help="measurements of each (median reported; default 7)")
    parser.add_argument("--keep", action="store_true", help="keep the lab afterwards")
    parser.add_argument("--compare", type=Path, help="another checkout whose `lab check` is timed too")
    args = parser.parse_args()
    from lab.core.paths import lab_home

    existed = (lab_home() / "labs" / args.name / "state.json").exists()
    lab("up", name=args.name)
    times: dict[str, list[float]] = {"floor": [], CIB_JUDGED: [], LIVE_ONLY: []}
    other: dict[str, list[float]] = {CIB_JUDGED: [], LIVE_ONLY: []}
    for exercise in (CIB_JUDGED, LIVE_ONLY):
        lab("start", exercise, name=args.name)
        lab("check", exercise, name=args.name)  # warm: the first check after a start waits for nothing else
        if args.compare:
            lab("check", exercise, name=args.name, tree=args.compare)  # its bytecode cache written
        for _ in range(args.runs):
            times["floor"].append(floor_once(args.name))
            times[exercise].append(lab("check", exercise, name=args.name))
            if args.compare:
                other[exercise].append(lab("check", exercise, name=args.name, tree=args.compare))
    floor = statistics.median(times["floor"])
    print(f"floor (ssh node1 sudo -n cibadmin -Q): median {floor:.2f} s, "
          f"min {min(times['floor']):.2f} s, max {max(times['floor']):.2f} s, {len(times['floor'])} runs")
    for exercise, kind in ((CIB_JUDGED, "CIB-judged"), (LIVE_ONLY, "live-only")):
        median = statistics.median(times[exercise])
        print(f"lab check {exercise} ({kind}): median {median:.2f} s, min {min(times[exercise]):.2f} s, "
              f"max {max(times[exercise]):.2f} s; ratio to the floor {median / floor:.2f} (goal <= 1.5)")
        if other[exercise]:
            theirs = statistics.median(other[exercise])
            print(f"  the same from {args.compare}: median {theirs:.2f} s, ratio to the floor "
                  f"{theirs / floor:.2f}; this checkout / that one {median / theirs:.2f}")
    if not args.keep and not existed:
        lab("destroy", name=args.name)


if __name__ == "__main__":
    main()
