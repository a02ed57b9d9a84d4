"""Exercise parameters: drawn values give other start states and answers, judged by the real tools.

For every parameterised CIB-judged exercise and several draws, the start state (made by the
exercise's own start commands, as tests/conftest.py start_state does) grades red, and the pcs
and crmsh reference solutions with the same parameters grade green.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lab.core.errors import ExerciseSchemaError, UsageError
from lab.core.tomlfile import read_toml
from lab.engine.exercises import Exercise, load, load_all, parse_exercise
from lab.engine.grading import grade
from lab.engine.offline import OfflineCluster
from lab.gather.facts import facts_from_cib_file

PARAMETERISED = sorted(e.id for e in load_all() if e.params)
CIB_JUDGED = [i for i in PARAMETERISED if not load(i).live_only]
SEEDS = (3, 11)


def drawn(exercise_id: str, seed: int) -> Exercise:
    exercise = load(exercise_id)
    rng = random.Random(f"{exercise_id}:{seed}")
    return exercise.with_params({p.name: rng.choice(p.choices) for p in exercise.params})


def start_of(exercise: Exercise, tmp_path: Path) -> OfflineCluster:
    cluster = OfflineCluster.empty(tmp_path / "start.xml")
    cluster.run_all(exercise.start.commands)
    cluster.simulate()
    return cluster


def test_at_least_six_exercises_across_objectives_have_parameters() -> None:
    assert len(PARAMETERISED) >= 6
    assert len({load(i).objective for i in PARAMETERISED}) >= 3


def test_every_catalogue_file_declares_touches_and_persistent() -> None:
    for exercise in load_all():
        data = read_toml(exercise.path, "exercise", ExerciseSchemaError)
        assert "touches" in data and "persistent" in data, exercise.id


def test_defaults_render_the_exercise_as_loaded() -> None:
    for exercise_id in PARAMETERISED:
        exercise = load(exercise_id)
        again = exercise.with_params({})
        assert again == exercise
        for text in (exercise.task, exercise.title, *exercise.hints, *exercise.start.commands,
                     *exercise.solution_pcs, *exercise.solution_crmsh,
                     *(str(c.params) for c in exercise.checks)):
            assert not any("{" + p.name + "}" in text for p in exercise.params), (exercise_id, text)


def test_draws_differ_and_reach_every_text() -> None:
    exercise = load("location-prefer")
    other = exercise.with_params({"rsc": "db", "node": "node2", "score": 200})
    assert "db" in other.task and "node2" in other.title and "200" in other.hints[2]
    assert other.solution_pcs == ("pcs constraint location db prefers {node2}=200",)
    assert other.checks[0].params == {"resource": "db", "node": "node2", "score": "200"}
    assert other.touches.resources == ("db",) and other.touches.nodes == ("node2",)


def test_a_value_outside_the_choices_is_refused() -> None:
    with pytest.raises(UsageError, match="not one of"):
        load("location-prefer").with_params({"rsc": "x; rm -rf /"})
    with pytest.raises(UsageError, match="unknown parameter"):
        load("location-prefer").with_params({"nope": "web"})


@pytest.mark.parametrize(("table", "message"), [
    ({"x": {"default": "a", "choices": ["a"]}}, "at least two"),
    ({"x": {"default": "c", "choices": ["a", "b"]}}, "default"),
    ({"x": {"default": "a", "choices": ["a", "b c"]}}, "plain token"),
    ({"node1": {"default": "a", "choices": ["a", "b"]}}, "placeholder"),
    ({"x": {"default": "a", "choices": ["a", "b"], "kind": "other"}}, "kind"),
    ({"x": {"default": "node1", "choices": ["node1", "web"], "kind": "node"}}, "node1..node5"),
])
def test_bad_parameter_tables_are_one_line_errors(table: dict, message: str) -> None:
    exercise = load("resource-create")
    data = dict(read_toml(exercise.path, "exercise", ExerciseSchemaError), params=table)
    with pytest.raises(ExerciseSchemaError, match=message) as info:
        parse_exercise(data, exercise.path)
    assert "resource-create.toml: params" in str(info.value) and "\n" not in str(info.value)


def test_bad_touches_are_one_line_errors() -> None:
    exercise = load("resource-create")
    data = dict(read_toml(exercise.path, "exercise", ExerciseSchemaError), touches={"nodez": []})
    with pytest.raises(ExerciseSchemaError, match=r"resource-create.toml: touches.nodez: unknown key"):
        parse_exercise(data, exercise.path)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("exercise_id", CIB_JUDGED)
def test_drawn_start_is_red_and_both_solutions_green(exercise_id: str, seed: int, tmp_path: Path) -> None:
    exercise = drawn(exercise_id, seed)
    start = start_of(exercise, tmp_path)
    red = grade(exercise, facts_from_cib_file(start.path))
    assert not red.passed, (exercise.param_values, [(o.id, o.message) for o in red.outcomes])
    for tool, commands in (("pcs", exercise.solution_pcs), ("crmsh", exercise.solution_crmsh)):
        attempt = start.copy(tmp_path / f"{tool}.xml")
        attempt.run_all(commands)
        attempt.simulate()
        green = grade(exercise, facts_from_cib_file(attempt.path))
        assert green.passed, (tool, exercise.param_values, [(o.id, o.message) for o in green.outcomes])
