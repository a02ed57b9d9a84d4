"""`lab exam plan`: the draw is a function of the seed, stratified, and never combines tasks
that touch the same objects; the combined start state leaves every CIB-judged task red."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.core.errors import UsageError
from lab.engine.exercises import load_all
from lab.engine.grading import grade
from lab.engine.offline import OfflineCluster
from lab.gather.facts import facts_from_cib_file
from lab.workflows import exam

SEEDS = range(1, 121)


@pytest.fixture(scope="module")
def catalogue() -> list:
    return load_all()


def test_same_seed_same_plan(catalogue: list) -> None:
    for seed in SEEDS:
        first, again = exam.draw_plan(seed, catalogue=catalogue), exam.draw_plan(seed, catalogue=catalogue)
        assert first.to_json() == again.to_json()


def test_different_seeds_give_different_tasks_or_parameters(catalogue: list) -> None:
    plans = {json.dumps([t.to_json() for t in exam.draw_plan(seed, catalogue=catalogue).tasks]) for seed in SEEDS}
    assert len(plans) == len(SEEDS)
    a, b = exam.draw_plan(1, catalogue=catalogue), exam.draw_plan(2, catalogue=catalogue)
    assert [t.to_json() for t in a.tasks] != [t.to_json() for t in b.tasks]


def test_eight_tasks_cover_five_objectives_and_never_conflict(catalogue: list) -> None:
    for seed in SEEDS:
        plan = exam.draw_plan(seed, 8, catalogue=catalogue)
        assert len(plan.tasks) == 8
        assert len({t.objective for t in plan.tasks}) >= 5, seed
        exercises = plan.exercises()
        assert exam.conflicts(exercises) == [], seed
        assert len({e.id for e in exercises}) == 8
        assert all(exam.exam_eligible(e) is None for e in exercises)


def test_parameters_are_drawn(catalogue: list) -> None:
    drawn = [t.params for seed in SEEDS for t in exam.draw_plan(seed, catalogue=catalogue).tasks if t.params]
    assert drawn and len({json.dumps(p, sort_keys=True) for p in drawn}) > 10


def test_plan_json_shape_and_round_trip(catalogue: list) -> None:
    plan = exam.draw_plan(42, 5, catalogue=catalogue)
    doc = plan.to_json()
    assert doc["seed"] == 42 and len(doc["tasks"]) == 5
    assert set(doc["tasks"][0]) == {"exercise", "objective", "weight", "params", "persistent"}
    assert doc["catalogue"]["hash"].startswith("sha256:") and doc["catalogue"]["version"]
    assert exam.plan_from_json(doc, "plan").to_json() == doc


def test_too_many_tasks_is_one_line(catalogue: list) -> None:
    with pytest.raises(UsageError, match="an exam has 1 to 16 tasks, not 0"):
        exam.draw_plan(1, 0, catalogue=catalogue)
    with pytest.raises(UsageError, match="fit together"):  # 5 exercises cannot give 6 tasks
        exam.draw_plan(1, 6, catalogue=[e for e in catalogue if exam.exam_eligible(e) is None][:5])


def test_cli_plan_prints_the_seed_and_json(tmp_path: Path) -> None:
    env = dict(os.environ, LAB_HOME=str(tmp_path))
    run = subprocess.run([sys.executable, "-m", "lab.cli", "exam", "plan", "--seed", "9", "--tasks", "4",
                          "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["seed"] == 9 and len(doc["tasks"]) == 4
    text = subprocess.run([sys.executable, "-m", "lab.cli", "exam", "plan"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert text.returncode == 0 and "seed" in text.stdout
    bad = subprocess.run([sys.executable, "-m", "lab.cli", "exam", "plan", "--tasks", "99"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: ") and bad.stderr.count("\n") == 1
    assert "'99' must be from 1 to 16" in bad.stderr


@pytest.mark.parametrize("seed", (1, 5, 17))
def test_combined_start_leaves_every_cib_task_red(seed: int, tmp_path: Path, catalogue: list) -> None:
    exercises = [e for e in exam.draw_plan(seed, 8, catalogue=catalogue).exercises() if not e.live_only]
    cluster = OfflineCluster.empty(tmp_path / "exam.xml")
    cluster.run_all(exam.combined_start(exercises).commands)
    cluster.simulate()
    facts = facts_from_cib_file(cluster.path)
    green = [e.id for e in exercises if grade(e, facts).passed]
    assert green == [], (seed, green)


def test_an_exercise_is_drawn_only_for_lab_sizes_it_fits() -> None:
    """two-node-quorum is corosync's two_node mode: a task on a 3-node lab would be impossible."""
    from lab.engine.exercises import load

    two_node = load("two-node-quorum")
    assert two_node.start.max_nodes == 2 and two_node.start.fits(2) and not two_node.start.fits(3)
    assert exam.exam_eligible(two_node, 3) == "works on at most 2 nodes"
    assert exam.exam_eligible(two_node, 2) is None
    three = ("node1", "node2", "node3")
    for seed in range(40):
        assert "two-node-quorum" not in [t.exercise for t in exam.draw_plan(seed, 8, nodes=three).tasks]


def test_a_lab_without_the_second_network_is_never_given_a_task_that_needs_it() -> None:
    """Labs made before the third network (state without link1_cidr) cannot do corosync-second-link."""
    from lab.engine.exercises import load
    from lab.vm.network import needs_second_network

    link = load("corosync-second-link")
    assert needs_second_network(link)
    assert exam.exam_eligible(link, 2, second_network=False) is not None
    drawn_with = {t.exercise for seed in range(60) for t in exam.draw_plan(seed, 8).tasks}
    drawn_without = {t.exercise for seed in range(60) for t in exam.draw_plan(seed, 8, second_network=False).tasks}
    assert "corosync-second-link" in drawn_with, "the exercise is drawable on a lab that has the network"
    assert "corosync-second-link" not in drawn_without


def test_an_exam_holds_the_fence_daemon_but_not_the_shared_disk() -> None:
    """stonith-admin (fence_virtd on the host) can be an exam task, its fixture set up once before
    the start commands; sbd (a shared disk blanked per start) cannot."""
    from lab.engine.exercises import load

    admin, sbd = load("stonith-admin"), load("sbd")
    assert list(admin.start.fixtures) == ["fence-virtd"] and "sbd-disk" in sbd.start.fixtures
    assert exam.exam_eligible(admin) is None
    assert "cannot hold (sbd-disk)" in (exam.exam_eligible(sbd) or "")
    plans = [exam.draw_plan(seed, 6) for seed in range(80)]
    drawn = [p for p in plans if "stonith-admin" in [t.exercise for t in p.tasks]]
    assert drawn, "stonith-admin is drawn for some seed"
    combined = exam.combined_start(drawn[0].exercises())
    assert combined.fixtures == ("fence-virtd",)
    assert not exam.conflicts(drawn[0].exercises())
    others = [e for e in drawn[0].exercises() if e.id != "stonith-admin"]
    assert exam.combined_start(others).fixtures == ()
