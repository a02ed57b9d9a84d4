"""Each CIB-judged exercise: its start state is red, both reference solutions turn it green."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.engine.exercises import load, load_all
from lab.engine.offline import OfflineCluster
from tests.conftest import failed_checks, grade_file, start_state

CIB_JUDGED = [e.id for e in load_all() if not e.live_only]


class StartStates:
    """Each exercise's start state, built once (pcs -f costs about a second per call)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.built: dict[str, OfflineCluster] = {}

    def fresh(self, exercise_id: str, tmp_path: Path) -> OfflineCluster:
        if exercise_id not in self.built:
            self.built[exercise_id] = start_state(exercise_id, self.directory)
        return self.built[exercise_id].copy(tmp_path / "cib.xml")


@pytest.fixture(scope="module")
def start_states(tmp_path_factory: pytest.TempPathFactory) -> StartStates:
    return StartStates(tmp_path_factory.mktemp("start-states"))


@pytest.mark.parametrize("exercise_id", CIB_JUDGED)
def test_start_state_is_red(exercise_id: str, start_states: StartStates, tmp_path: Path) -> None:
    cluster = start_states.fresh(exercise_id, tmp_path)
    report = grade_file(exercise_id, cluster.path)
    assert not report.passed
    assert failed_checks(report)


@pytest.mark.parametrize("tool", ["pcs", "crmsh"])
@pytest.mark.parametrize("exercise_id", CIB_JUDGED)
def test_reference_solution_is_green(exercise_id: str, tool: str, start_states: StartStates,
                                     tmp_path: Path) -> None:
    exercise = load(exercise_id)
    cluster = start_states.fresh(exercise_id, tmp_path)
    cluster.run_all(exercise.solution_pcs if tool == "pcs" else exercise.solution_crmsh)
    cluster.simulate()
    report = grade_file(exercise_id, cluster.path)
    assert report.passed, [(o.id, o.message) for o in report.outcomes]
