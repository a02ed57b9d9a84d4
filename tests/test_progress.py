"""lab progress: the history file (appends, bounds, hostile lines), the real CLI recording each
`lab check` and printing the table, the exam's report charting the history; and, during a
running exam, the commands that would wipe it refused and `lab destroy` ending its watcher.
All offline: CIBs made by the real pacemaker tools, the real CLI in a subprocess."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.engine.exercises import load
from lab.workflows import exam, examscore, examstate, history
from tests.test_exam_score import _evidence_from, _Refs, _start_and_solved

OBJECTIVE = load("resource-create").objective


def _lab(home: Path, *args: str, name: str = "progtest") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LAB_HOME=str(home), LAB_NAME=name, LIBVIRT_DEFAULT_URI="test:///default")
    env.pop("LAB_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def cibs(tmp_path: Path) -> tuple[Path, Path]:
    start, solved = _start_and_solved(load("resource-create"), tmp_path)
    return start.path, solved.path


def test_lab_check_records_and_lab_progress_shows_it(tmp_path: Path, cibs: tuple[Path, Path]) -> None:
    home = tmp_path / "home"
    empty = _lab(home, "progress")
    assert empty.returncode == 0 and "no progress recorded yet" in empty.stdout
    for cib in (cibs[0], cibs[1], cibs[0]):
        _lab(home, "check", "resource-create", "--cib", str(cib))
    json_check = _lab(home, "check", "resource-create", "--cib", str(cibs[1]), "--format", "json")
    assert json_check.returncode == 0 and json.loads(json_check.stdout)["passed"] is True
    lines = (home / "progress.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["kind"] == "check" for line in lines)
    assert oct((home / "progress.jsonl").stat().st_mode & 0o777) == "0o600"
    shown = _lab(home, "progress")
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout.splitlines()
    assert table[0].split() == ["objective", "attempts", "last", "best", "trend"]
    row = next(line for line in table if line.startswith(OBJECTIVE))
    assert row[len(OBJECTIVE):].split()[:5] == ["4", "100", "%", "100", "%"] and row.endswith("+100")
    assert "4 records (4 checks, 0 exams)" in shown.stdout
    doc = json.loads(_lab(home, "progress", "--format", "json").stdout)
    (series,) = doc["objectives"]
    assert [a["percent"] for a in series["history"]] == [0.0, 100.0, 0.0, 100.0]
    assert series["attempts"] == 4 and series["best"] == 100.0 and doc["skipped"] == 0


def test_garbage_lines_are_skipped_and_counted_never_run(tmp_path: Path, cibs: tuple[Path, Path]) -> None:
    home = tmp_path / "home"
    _lab(home, "check", "resource-create", "--cib", str(cibs[1]))
    marker = tmp_path / "pwned"
    good = json.loads((home / "progress.jsonl").read_text())
    hostile = [b"not json", b"\xff\xfe binary", b"[" * 5000 + b"]" * 5000, b'{"v": 1}',
               json.dumps({**good, "v": 2}).encode(), json.dumps({**good, "time": "yesterday"}).encode(),
               json.dumps({**good, "items": [{**good["items"][0], "score": 9, "max": 5}]}).encode(),
               json.dumps({**good, "items": [{**good["items"][0], "objective": "x\x1b[31m"}]}).encode(),
               json.dumps({**good, "label": f"__import__('os').system('touch {marker}')",
                           "items": "__import__('os')"}).encode(),
               b'{"v": 1, "kind": "check", "time": 1e999, "items": []}', b"x" * (history.MAX_LINE_BYTES + 10),
               json.dumps(good).encode()[:40]]
    with (home / "progress.jsonl").open("ab") as handle:
        handle.write(b"\n".join(hostile) + b"\n")
    _lab(home, "check", "resource-create", "--cib", str(cibs[0]))  # still appends after the garbage
    shown = _lab(home, "progress")
    assert shown.returncode == 0, shown.stderr
    assert f"{len(hostile)} lines of" in shown.stdout and "were skipped" in shown.stdout
    assert "2 records (2 checks" in shown.stdout and "\x1b" not in shown.stdout and not marker.exists()
    assert json.loads(_lab(home, "progress", "--format", "json").stdout)["skipped"] == len(hostile)


def test_an_unwritable_home_costs_the_line_not_the_check(tmp_path: Path, cibs: tuple[Path, Path]) -> None:
    home = tmp_path / "home"
    (home / "progress.jsonl").mkdir(parents=True)  # a folder where the file should be
    run = _lab(home, "check", "resource-create", "--cib", str(cibs[1]))
    assert run.returncode == 0 and "PASS" in run.stdout
    assert "progress not recorded" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_the_file_stays_bounded_and_keeps_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "MAX_BYTES", 8192)
    path = tmp_path / "progress.jsonl"
    for i in range(200):
        history.append(history.check_record(f"ex{i}", "O", i % 6, 5, source="cib", when=1000.0 + i), path)
        assert path.stat().st_size <= 8192
    found = history.read(path)
    assert found.skipped == 0 and found.entries[-1].label == "ex199"
    times = [e.time for e in found.entries]
    assert times == sorted(times) and times[0] > 1000.0 and len(times) > 20


def _append_many(path: str, worker: int) -> None:
    for i in range(40):
        history.append(history.check_record(f"w{worker}-{i}", "O", 1, 2, source="cib"), Path(path))


def test_concurrent_appends_never_interleave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "progress.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    found = history.read(path)
    assert found.skipped == 0 and len({e.label for e in found.entries}) == 160


def _exam_doc(seed: int, started: float, scores: list[int]) -> dict:
    plan = exam.draw_plan(seed, 3)
    tasks = []
    for number, (task, score) in enumerate(zip(plan.tasks, scores, strict=True), 1):
        tasks.append({"number": number, "exercise": task.exercise, "title": task.exercise,
                      "objective": task.objective, "weight": task.weight, "params": task.params,
                      "persistent": task.persistent,
                      "checks": [{"id": f"c{i}", "description": "d", "points": 1, "pre": s, "pre_message": "",
                                  "post": None, "post_message": None, "final": s}
                                 for i, s in enumerate(["PASS"] * score + ["FAIL"] * (2 - score) + ["ERROR"])]})
    return examscore.results_document(plan=plan.to_json(), tasks=tasks, pass_mark=70, practice=False,
                                      times={"started": started}, boot_ids={}, evidence={}, reboot={})


def test_exams_are_recorded_a_regrade_replaces_and_the_report_charts_the_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    first = _exam_doc(11, 100.0, [0, 1, 2])
    charts, note = history.after_exam(first)
    assert note is None and charts.count("<svg") == len({t["objective"] for t in first["tasks"]})
    regraded = _exam_doc(11, 100.0, [2, 2, 2])
    history.after_exam(regraded, regrade=True)
    second = _exam_doc(12, 200.0, [1, 1, 1])
    charts, _ = history.after_exam(second)
    found = history.read()
    assert [e.kind for e in found.entries] == ["exam"] * 3
    series = {s.objective: s for s in history.objective_series(found.entries)}
    one = first["tasks"][0]["objective"]
    assert series[one].attempts[0].percent == 100.0  # the regrade's points (2 of 2 judged), not 0
    examscore.write_results(tmp_path / "exam", second, None, charts)
    text = (tmp_path / "exam" / "report.html").read_text()
    parser = _Refs()  # every src/href/... an element has: none may point outside the page
    parser.feed(text)
    assert parser.refs == [] and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    labels = re.findall(r'<svg [^>]*aria-label="([^"]*)"', text)
    assert 'id="progress"' in text and labels.count(f"progress: {one}") == 1
    assert len([x for x in labels if x.startswith("progress: ")]) == len(series)


def test_an_exam_that_judged_nothing_is_a_note_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    doc = _exam_doc(13, 1.0, [0, 0, 0])
    for task in doc["tasks"]:
        task["judged"] = 0
    charts, note = history.after_exam(doc)
    assert charts == "" and "progress not recorded" in (note or "")


# --- during a running exam --------------------------------------------------------------------

def _running_exam(home: Path, name: str = "progtest", watcher: int | None = None) -> Path:
    lab_dir = home / "labs" / name
    state = examstate.ExamState(plan=exam.draw_plan(4, 3), minutes=60, started_wall=time.time(),
                                started_monotonic=time.monotonic(), host_boot=examstate.host_boot_id(),
                                watcher_pid=watcher)
    examstate.write_state(lab_dir, state)
    return lab_dir


def test_start_reset_and_solve_are_refused_during_an_exam(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _running_exam(home)
    for argv in (("start", "resource-create"), ("reset",), ("solve", "resource-create"),
                 ("solve", "resource-create", "--tool", "crmsh")):
        run = _lab(home, *argv)
        errors = [line for line in run.stderr.splitlines() if line.startswith("Error: ")]
        assert run.returncode == 2 and len(errors) == 1 and "not allowed during an exam" in errors[0], run.stderr
        assert "Traceback" not in run.stderr
    wipes = _lab(home, "start", "resource-create").stderr
    assert "revert" in wipes and "--practice" not in wipes  # no flag can make a wiped exam fair
    assert "--practice" in _lab(home, "solve", "resource-create").stderr


def test_destroy_ends_the_exam_watcher_first_and_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # A stand-in watcher: its command line names the watcher's module, as the real one's does.
    watcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "lab.workflows.exam_run",
                                "watch"])
    try:
        _running_exam(home, watcher=watcher.pid)
        run = _lab(home, "destroy")
        assert watcher.wait(timeout=5) is not None
        assert f"deadline watcher (pid {watcher.pid})" in run.stderr and "not submitted" in run.stderr
        assert run.returncode == 0, run.stderr
        assert not (home / "labs" / "progtest").exists()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()


def test_destroy_leaves_a_stranger_with_a_recorded_pid_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _running_exam(home, watcher=stranger.pid)
        run = _lab(home, "destroy")
        assert stranger.poll() is None and "deadline watcher" not in run.stderr
    finally:
        stranger.kill()
        stranger.wait()


def test_lab_exam_regrade_records_the_exam_and_charts_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    exercise = load("location-prefer").with_params({"rsc": "db", "node": "node2", "score": 75})
    _, solved = _start_and_solved(exercise, tmp_path)
    folder = tmp_path / "exam"
    for phase in ("pre", "post"):
        _evidence_from(solved, folder / "evidence" / phase, ["node1", "node2"])
    plan = exam.Plan(7, (exam.PlannedTask(exercise.id, exercise.objective, 3, dict(exercise.param_values), True),),
                     {}, ("node1", "node2"))
    examscore.write_results(folder, examscore.results_document(
        plan=plan.to_json(), tasks=[], pass_mark=70, practice=False, times={"started": 5.0}, boot_ids={},
        evidence={}, reboot={}))
    for _ in range(2):
        run = _lab(home, "exam", "regrade", str(folder))
        assert run.returncode == 0 and "100.0 %" in run.stdout, run.stderr
    lines = [json.loads(line) for line in (home / "progress.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["regrade"], e["key"]) for e in lines] == [("exam", True, "7@5.0")] * 2
    shown = _lab(home, "progress").stdout
    assert any(line.startswith(exercise.objective) and line[len(exercise.objective):].split()[0] == "1"
               for line in shown.splitlines())  # one exam regraded twice is one attempt
    report = (folder / "report.html").read_text()
    assert f'aria-label="progress: {exercise.objective}"' in report


def test_a_practice_check_during_an_exam_is_recorded_as_practice(tmp_path: Path, cibs: tuple[Path, Path]) -> None:
    home = tmp_path / "home"
    _lab(home, "check", "resource-create", "--cib", str(cibs[1]))
    _running_exam(home)
    assert _lab(home, "check", "resource-create", "--cib", str(cibs[1])).returncode == 2  # refused: no line
    assert _lab(home, "check", "resource-create", "--cib", str(cibs[1]), "--practice").returncode == 0
    lines = [json.loads(line) for line in (home / "progress.jsonl").read_text().splitlines()]
    assert [e["practice"] for e in lines] == [False, True]


def test_a_cut_last_line_costs_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    history.append(history.check_record("a", "O", 1, 2, source="cib"), path)
    with path.open("ab") as handle:
        handle.write(b'{"v":1,"time":3,"kind":"ch')  # a write cut short
    history.append(history.check_record("b", "O", 2, 2, source="cib"), path)
    found = history.read(path)
    assert [e.label for e in found.entries] == ["a", "b"] and found.skipped == 1


def test_show_during_an_exam_speaks_of_the_task_as_drawn(tmp_path: Path) -> None:
    """`lab show TASK` (and check/solve --practice, through the same arguments) during an exam use
    the task's drawn parameters, not the exercise's defaults: the practice help is about the
    candidate's own task."""
    home = tmp_path / "home"
    seed, task = next((s, t) for s in range(1, 200) for t in exam.draw_plan(s, 3).tasks
                      if any(v != p.default for p in load(t.exercise).params
                             for k, v in t.params.items() if k == p.name))
    lab_dir = home / "labs" / "progtest"
    state = examstate.ExamState(plan=exam.draw_plan(seed, 3), minutes=60, started_wall=time.time(),
                                started_monotonic=time.monotonic(), host_boot=examstate.host_boot_id())
    examstate.write_state(lab_dir, state)
    drawn = load(task.exercise).with_params(task.params)
    default = load(task.exercise)
    assert drawn.task != default.task  # the seed was chosen so that the texts differ
    shown = _lab(home, "show", task.exercise)
    assert shown.returncode == 0, shown.stderr
    differing = [(d, o) for d, o in zip(drawn.task.splitlines(), default.task.splitlines(), strict=False) if d != o]
    assert differing
    assert all(d.strip() in shown.stdout and o.strip() not in shown.stdout for d, o in differing)


def test_the_deadline_watcher_ends_quietly_on_sigterm(tmp_path: Path) -> None:
    """The real watcher process (python -m lab.workflows.exam_run watch), ended the way submit and
    destroy end it: exit 0 and one line in its log, no traceback."""
    home = tmp_path / "home"
    _running_exam(home)
    env = dict(os.environ, LAB_HOME=str(home), LAB_NAME="progtest")
    watcher = subprocess.Popen([sys.executable, "-m", "lab.workflows.exam_run", "watch"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2.0)  # in its sleep until the deadline, an hour away
    assert watcher.poll() is None
    watcher.send_signal(signal.SIGTERM)
    out, _ = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, out
    assert "ended by SIGTERM" in out and "Traceback" not in out, out
