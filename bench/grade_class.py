"""How long does `lab grade` take for a class, next to one `lab check` in the same run?

    python bench/grade_class.py [--students 30] [--ssh-students 4] [--parallel 4] [--rounds 2]

Evidence: makes the start state and the pcs and crmsh solutions of five CIB-judged exercises
with OfflineCluster (the real tools), hands each of --students students one of those states per
exercise (a copy of its own: crm_mon reads every file), then times, best of --rounds:

  check     one `lab check EX --cib FILE --format json` (a whole process, as an instructor
            grading one hand-in at a time would run it);
  grade     `lab grade ROSTER --exercises (5) --out DIR --parallel P` over the whole class
            (a whole process too: imports, every crm_mon, every output file);
  engine    lab.workflows.classgrade.grade_class in this process (the grading alone).

SSH: a real sshd on 127.0.0.1 (tests/sshd.py) whose sessions read a CIB file; --ssh-students
students of two nodes each, all on it. Times one `lab check EX --node ... --node ...` and
`lab grade` of those students on the five exercises (each student's nodes gathered once).

Goal: the class from evidence (students x 5) in under 10 s with `lab grade`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this tree's lab, and tests/sshd.py (the SSH tests' loopback sshd)

from lab.engine.exercises import load  # noqa: E402
from lab.engine.offline import OfflineCluster, require_tools  # noqa: E402
from lab.workflows import classgrade  # noqa: E402

EXERCISES = ("resource-create", "resource-update", "group", "location-prefer", "default-stickiness")
KINDS = ("start", "pcs", "crmsh")
GOAL_S = 10.0


def make_state(directory: Path, exercise_id: str, kind: str) -> Path:
    exercise = load(exercise_id)
    cluster = OfflineCluster.empty(directory / f"{exercise_id}-{kind}.xml")
    cluster.run_all(exercise.start.commands)
    cluster.run_all({"start": (), "pcs": exercise.solution_pcs, "crmsh": exercise.solution_crmsh}[kind])
    cluster.simulate()
    return cluster.path


def make_class(root: Path, states: dict[tuple[str, str], Path], students: int) -> Path:
    """students folders of EXERCISE.xml copies, and their roster."""
    lines = []
    for i in range(students):
        sid = f"s{i + 1:03d}"
        folder = root / sid
        folder.mkdir(parents=True)
        for j, exercise_id in enumerate(EXERCISES):
            shutil.copyfile(states[(exercise_id, KINDS[(i + j) % len(KINDS)])], folder / f"{exercise_id}.xml")
        lines.append(f'[[student]]\nid = "{sid}"\nname = "Student {i + 1}"\nevidence = "{sid}"\n')
    roster = root / "roster.toml"
    roster.write_text("".join(lines))
    return roster


def lab(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LAB_HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=ROOT)


def best_of(rounds: int, function: Callable[[], object]) -> float:
    times = []
    for _ in range(max(1, rounds)):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def expect(proc: subprocess.CompletedProcess[str], codes: tuple[int, ...] = (0, 1)) -> None:
    if proc.returncode not in codes:
        raise SystemExit(f"{' '.join(proc.args[3:])} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def evidence_part(args: argparse.Namespace, work: Path, home: Path,
                  states: dict[tuple[str, str], Path]) -> float:
    roster = make_class(work / "class", states, args.students)
    out = work / "out"
    one = states[("resource-create", "pcs")]
    check_s = best_of(args.rounds, lambda: expect(lab(home, "check", "resource-create", "--cib", str(one),
                                                      "--format", "json")))
    grade_args = ("grade", str(roster), "--exercises", ",".join(EXERCISES), "--out", str(out),
                  "--parallel", str(args.parallel))
    grade_s = best_of(args.rounds, lambda: expect(lab(home, *grade_args)))
    exercises = [load(e) for e in EXERCISES]
    students = classgrade.load_roster(roster)
    options = classgrade.GradeOptions(parallel=args.parallel)
    engine_s = best_of(args.rounds, lambda: classgrade.grade_class(students, exercises, options))
    gradings = args.students * len(EXERCISES)
    print(f"evidence: {args.students} students x {len(EXERCISES)} exercises = {gradings} gradings, "
          f"--parallel {args.parallel}, best of {args.rounds}")
    print(f"  lab check --cib (one hand-in, one process): {check_s:6.2f} s")
    print(f"  lab grade (whole class, one process):       {grade_s:6.2f} s  "
          f"= {1000 * grade_s / args.students:.0f} ms per student, {1000 * grade_s / gradings:.0f} ms per grading")
    print(f"  engine alone (in process):                  {engine_s:6.2f} s  "
          f"= {1000 * engine_s / args.students:.0f} ms per student")
    print(f"  {gradings} x lab check --cib would take about {gradings * check_s:.1f} s "
          f"({gradings * check_s / grade_s:.0f}x lab grade)")
    return grade_s


def ssh_part(args: argparse.Namespace, work: Path, home: Path, states: dict[tuple[str, str], Path]) -> None:
    from tests.sshd import running_sshd

    cib = work / "remote-cib.xml"
    shutil.copyfile(states[("resource-create", "pcs")], cib)
    try:
        server_cm = running_sshd(work / "sshd", cib)
        server = server_cm.__enter__()
    except BaseException as exc:  # pytest.skip when openssh-server is missing
        print(f"ssh: skipped ({type(exc).__name__}: {exc})")
        return
    try:
        key = server.client_key
        nodes = [server.spec("node1"), server.spec("node2")]
        lines = [f'identity = "{key}"\n']
        for i in range(args.ssh_students):
            lines.append(f'[[student]]\nid = "live{i + 1:02d}"\nnodes = ["{nodes[0]}", "{nodes[1]}"]\n')
        roster = work / "live.toml"
        roster.write_text("".join(lines))
        check_argv = ("check", "resource-create", "--node", nodes[0], "--node", nodes[1], "--identity", str(key),
                      "--format", "json")
        expect(lab(home, *check_argv))  # first contact: host key recorded, sshd warm
        check_s = best_of(args.rounds, lambda: expect(lab(home, *check_argv)))
        grade_args = ("grade", str(roster), "--exercises", ",".join(EXERCISES), "--out", str(work / "live-out"),
                      "--parallel", str(args.parallel))
        grade_s = best_of(args.rounds, lambda: expect(lab(home, *grade_args)))
    finally:
        server_cm.__exit__(None, None, None)
    n = args.ssh_students
    print(f"ssh (loopback sshd): {n} students x 2 nodes x {len(EXERCISES)} exercises, best of {args.rounds}")
    print(f"  lab check --node x2 (one exercise, one process): {check_s:6.2f} s")
    print(f"  lab grade (all {n} students, 5 exercises):        {grade_s:6.2f} s  "
          f"= {grade_s / n:.2f} s per student (one gather per node for all 5)")
    print(f"  {n * len(EXERCISES)} x lab check --node would take about {n * len(EXERCISES) * check_s:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30, help="students graded from evidence (default 30)")
    parser.add_argument("--ssh-students", type=int, default=4, help="students graded over SSH (default 4; 0: none)")
    parser.add_argument("--parallel", type=int, default=4, help="lab grade --parallel (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many rounds (default 2)")
    args = parser.parse_args(argv)
    require_tools()
    with tempfile.TemporaryDirectory(prefix="lab-bench-grade-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        began = time.perf_counter()
        wanted = [(e, k) for e in EXERCISES for k in KINDS]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            paths = list(pool.map(lambda ek: make_state(work, *ek), wanted))
        states = dict(zip(wanted, paths, strict=True))
        print(f"made {len(states)} CIB states with the real tools in {time.perf_counter() - began:.1f} s")
        grade_s = evidence_part(args, work, home, states)
        if args.ssh_students > 0:
            ssh_part(args, work, home, states)
    met = grade_s < GOAL_S
    print(f"goal: {args.students} x {len(EXERCISES)} from evidence under {GOAL_S:g} s: "
          f"{'met' if met else 'missed'} ({grade_s:.2f} s)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
