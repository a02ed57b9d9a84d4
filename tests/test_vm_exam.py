"""`lab exam` end to end on the VM lab: a short exam (3 tasks: pcs for two, crmsh for one, one
left undone) with baseline red, refusals, submit, reboot with boot-id proof and the results
files; and an exam whose deadline passes without submit (the watcher submits).

Marked vm and slowhost: not in the default run (each reboots every node).
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.workflows import exam
from tests.test_vm_e2e import LAB, lab

pytestmark = [pytest.mark.vm, pytest.mark.slowhost]


def _exam_dir() -> Path:
    return Path(os.environ["LAB_HOME"]) / "labs" / LAB / "exam"


def _seed_with(count: int, wanted: int = 3) -> int:
    """A seed whose draw has at least `count` CIB-judged persistent tasks (deterministic search)."""
    for seed in range(1, 500):
        plan = exam.draw_plan(seed, wanted)
        if sum(1 for e in plan.exercises() if not e.live_only and e.persistent) >= count:
            return seed
    raise AssertionError("no seed found")


def test_short_exam_end_to_end(live_lab: None) -> None:
    seed = _seed_with(3)
    started = lab("exam", "start", "--seed", str(seed), "--tasks", "3", "--minutes", "30", timeout=1800)
    assert started.returncode == 0, started.stderr[-3000:]
    state = json.loads((_exam_dir() / "exam.json").read_text())
    assert state["status"] == "running" and state["watcher_pid"]
    tasks = [t["exercise"] for t in state["plan"]["tasks"]]
    # The baseline was proved red before the timer started: every task's evidence is there.
    assert (_exam_dir() / "evidence" / "baseline" / "meta.json").exists()
    for argv in (("check", tasks[0]), ("solve", tasks[0]), ("show", tasks[0], "--solution"),
                 ("start", tasks[0]), ("reset",)):
        refused = lab(*argv)
        assert refused.returncode == 2 and "not allowed during an exam" in refused.stderr
    solved = lab("solve", tasks[0], "--practice")  # the candidate's work, as the reference does it
    assert solved.returncode == 0, solved.stderr[-2000:]
    solved = lab("solve", tasks[1], "--tool", "crmsh", "--practice")
    assert solved.returncode == 0, solved.stderr[-2000:]
    assert lab("exam", "mark", "1", "done").returncode == 0
    submitted = lab("exam", "submit", timeout=2400)
    assert submitted.returncode in (0, 1), submitted.stderr[-3000:]
    doc = json.loads((_exam_dir() / "results.json").read_text())
    assert doc["practice"] is True and doc["seed"] == seed
    before, after = doc["boot_ids"]["before"], doc["boot_ids"]["after"]
    assert all(before[n] and after[n] and before[n] != after[n] for n in before), doc["boot_ids"]
    by = {t["exercise"]: t for t in doc["tasks"]}
    for done in tasks[:2]:
        assert all(c["pre"] == "PASS" and c["final"] == c["post"] for c in by[done]["checks"]), by[done]
    assert any(c["final"] == "FAIL" for c in by[tasks[2]]["checks"])  # left undone
    assert ET.parse(_exam_dir() / "junit.xml").getroot().tag == "testsuites"
    html = (_exam_dir() / "report.html").read_text()
    assert "<svg" in html and 'id="progress"' in html
    history = (Path(os.environ["LAB_HOME"]) / "progress.jsonl").read_text().splitlines()
    assert any(json.loads(line).get("kind") == "exam" for line in history)
    review = lab("exam", "review")
    assert review.returncode == 0 and "pcs:" in review.stdout
    regraded = lab("exam", "regrade", str(_exam_dir()))
    assert regraded.returncode == 0, regraded.stderr


def test_deadline_passes_without_submit(live_lab: None) -> None:
    started = lab("exam", "start", "--seed", str(_seed_with(1, 1)), "--tasks", "1", "--minutes", "1", timeout=1800)
    assert started.returncode == 0, started.stderr[-3000:]
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        state = json.loads((_exam_dir() / "exam.json").read_text())
        if state["status"] == "submitted":
            break
        time.sleep(10)
    assert state["status"] == "submitted"
    doc = json.loads((_exam_dir() / "results.json").read_text())
    assert doc["times"]["by_deadline"] is True
