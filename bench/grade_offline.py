"""How fast is grading a saved CIB, compared with the crm_mon call it cannot avoid?

    python bench/grade_offline.py [--n 40] [--dir DIR] [--rounds 3]

Makes N real CIB states with OfflineCluster (Dummy resources with several monitor
intervals, disabled, deleted, groups, empty) in a temporary directory, or reuses the
*.xml files of --dir (creating them there when it has none). Then measures, best of
--rounds after a warm-up:

  grade  all N files through lab.workflows.checking.check_cib_file, for each CIB-judged exercise
         in turn, in this one process;
  floor  `crm_mon --one-shot --inactive --output-as=xml` with CIB_file=FILE alone on
         the same files, sequentially (the real tool every grading must run once).

It prints files/s both ways and the ratio grade/floor (time per file); the goal is <= 1.3.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.engine.exercises import Exercise, load_all
from lab.engine.offline import OfflineCluster, require_tools
from lab.gather.facts import CRM_MON_ARGS
from lab.workflows.checking import check_cib_file

GOAL = 1.3
INTERVALS = ("10s", "20s", "30s", "45s", "60s", "2min")


def _commands(index: int) -> list[str]:
    """The pcs commands that make state number index (five kinds, varied intervals)."""
    interval = INTERVALS[index % len(INTERVALS)]
    kind = index % 5
    create = f"pcs resource create Dummy ocf:pacemaker:Dummy op monitor interval={interval}"
    if kind == 0:
        return [create]
    if kind == 1:
        return [create + " --disabled"]
    if kind == 2:
        return [create, "pcs resource delete Dummy"]
    if kind == 3:
        return [create + " --group grp",
                f"pcs resource create Dummy2 ocf:pacemaker:Dummy op monitor interval={interval} --group grp"]
    return []  # the empty cluster


def make_state(directory: Path, index: int) -> Path:
    cluster = OfflineCluster.empty(directory / f"state-{index:03d}.xml")
    cluster.run_all(_commands(index))
    cluster.simulate()
    return cluster.path


def make_states(directory: Path, n: int) -> list[Path]:
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        return list(pool.map(lambda i: make_state(directory, i), range(n)))


def best_of(rounds: int, function: Callable[[], object]) -> float:
    function()  # warm-up: imports, page cache, pacemaker's own first-run costs
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def grade_all(exercises: Sequence[Exercise], files: Sequence[Path]) -> None:
    for exercise in exercises:
        for path in files:
            check_cib_file(exercise, path)


def crm_mon_all(files: Sequence[Path], times: int) -> None:
    base = dict(os.environ, LC_ALL="C")
    for _ in range(times):
        for path in files:
            subprocess.run(CRM_MON_ARGS, env={**base, "CIB_file": str(path)}, capture_output=True,
                           text=True, check=True, timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="number of CIB states (default 40)")
    parser.add_argument("--dir", type=Path, help="reuse (or fill) this directory of *.xml states")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds (default 3)")
    args = parser.parse_args(argv)
    require_tools()

    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        directory = args.dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        files = sorted(p for p in directory.glob("*.xml") if not p.name.endswith(".sim.xml"))[: args.n]
        if not files:
            start = time.perf_counter()
            files = make_states(directory, args.n)
            print(f"made {len(files)} CIB states in {directory} in {time.perf_counter() - start:.1f} s")
        exercises = [e for e in load_all() if not e.live_only]
        gradings = len(files) * len(exercises)

        grade_s = best_of(args.rounds, lambda: grade_all(exercises, files))
        floor_s = best_of(args.rounds, lambda: crm_mon_all(files, len(exercises)))

    grade_rate, floor_rate = gradings / grade_s, gradings / floor_s
    ratio = grade_s / floor_s
    print(f"{len(files)} files x {len(exercises)} exercises ({', '.join(e.id for e in exercises)}), "
          f"best of {args.rounds}")
    print(f"grade (check_cib_file):  {grade_rate:7.1f} files/s  ({1000 * grade_s / gradings:.2f} ms/file)")
    print(f"floor (crm_mon alone):   {floor_rate:7.1f} files/s  ({1000 * floor_s / gradings:.2f} ms/file)")
    print(f"ratio grade/floor: {ratio:.3f} (goal <= {GOAL})")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
