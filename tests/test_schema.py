"""The schemas of our data files: exercises (and the JSON Schema authors get), box profiles,
rosters. Errors are one line naming the file, the key and what was expected; typos are errors."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lab.core.errors import ExerciseSchemaError, UsageError
from lab.core.tomlfile import read_toml
from lab.engine import schema
from lab.engine.commands import command_context
from lab.engine.exercises import exercises_dir, load, load_all, parse_exercise
from lab.engine.faultkinds import FAULT_KINDS
from lab.transport import scripts
from lab.vm import faults, profiles
from lab.workflows.roster import load_roster

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "exercises" / schema.SCHEMA_FILE


# ---- the JSON Schema for authors --------------------------------------------------------

def test_committed_json_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.read_text() == schema.schema_text(), "run: python -m lab.engine.schema"


def test_schema_module_writes_and_checks_the_file() -> None:
    run = subprocess.run([sys.executable, "-m", "lab.engine.schema", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "up to date" in run.stdout, run.stdout + run.stderr


def _toml_files() -> list[Path]:
    return sorted(exercises_dir().glob("*.toml"))


@pytest.mark.parametrize("path", _toml_files(), ids=lambda p: p.stem)
def test_every_exercise_validates_against_the_json_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(read_toml(path, "exercise", ExerciseSchemaError), json.loads(SCHEMA_PATH.read_text()))


def test_json_schema_refuses_what_the_loader_refuses() -> None:
    """The editor and the loader agree on typos, wrong types and unknown fault kinds."""
    jsonschema = pytest.importorskip("jsonschema")
    document = json.loads(SCHEMA_PATH.read_text())
    good = read_toml(exercises_dir() / "troubleshoot-link.toml", "exercise", ExerciseSchemaError)
    for broken in ({**good, "titel": "x"}, {**good, "live_only": "yes"},
                   {**good, "start": {**good["start"], "min_nodes": 9}},
                   {**good, "start": {**good["start"], "faults": [{"kind": "meteor"}]}},
                   {**good, "start": {**good["start"], "faults": [{"kind": "break-config", "file": "/f"}]}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, document)
        with pytest.raises(ExerciseSchemaError):
            parse_exercise(broken, exercises_dir() / "troubleshoot-link.toml")


def test_every_exercise_loads() -> None:
    assert len(load_all()) == len(_toml_files()) >= 30


# ---- one-line errors naming file, key path and what was expected ----------------------------

def _broken(exercise_id: str, change) -> str:
    path = exercises_dir() / f"{exercise_id}.toml"
    data = copy.deepcopy(read_toml(path, "exercise", ExerciseSchemaError))
    change(data)
    with pytest.raises(ExerciseSchemaError) as info:
        parse_exercise(data, path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{exercise_id}.toml: "), text
    return text.removeprefix(f"{exercise_id}.toml: ")


def test_messages_name_the_key_and_the_expectation() -> None:
    assert _broken("quorum-wait-for-all", lambda d: d["start"].update(min_nodes="two")) == \
        "start.min_nodes: expected an integer 1..5, got 'two'"
    assert _broken("resource-create", lambda d: d["checks"][0].update(points=True)) == \
        "checks[0].points: expected a positive integer, got True"
    assert _broken("resource-create", lambda d: d.update(live_only="no")) == \
        "live_only: expected true or false, got 'no'"
    assert _broken("resource-create", lambda d: d["start"].update(baseline="nothing")) == \
        "start.baseline: expected one of 'installed' or 'cluster', got 'nothing'"
    assert _broken("resource-create", lambda d: d.pop("task")) == "task: missing (a required key)"
    assert _broken("resource-create", lambda d: d["solution"].update(pcs09=["ok", ""])) == \
        "solution.pcs09[1]: expected a non-empty string, got ''"


@pytest.mark.parametrize(("where", "key"), [(lambda d: d, "titel"), (lambda d: d["start"], "fault"),
                                            (lambda d: d["solution"], "psc"), (lambda d: d["checks"][0], "point"),
                                            (lambda d: d["touches"], "node")])
def test_a_misspelt_key_is_an_error(where, key: str) -> None:
    message = _broken("troubleshoot-link", lambda d: where(d).update({key: []}))
    assert message.endswith(f"{key}: unknown key"), message


def test_fault_kinds_and_their_parameters_are_checked_when_the_catalogue_loads() -> None:
    def faults_are(items: list) -> str:
        return _broken("troubleshoot-link", lambda d: d["start"].update(faults=items))

    assert faults_are([{"kind": "meteor"}]).startswith(
        "start.faults[0].kind: unknown kind 'meteor' (known: stop-cluster")
    assert faults_are([{"node": "last"}]) == "start.faults[0].kind: missing (a required key)"
    assert faults_are([{"kind": "break-config", "file": "/f"}]) == "start.faults[0].sed: missing (a required key)"
    assert faults_are([{"kind": "cut-link", "daemon": "x"}]) == "start.faults[0].daemon: unknown key"
    assert faults_are([{"kind": "cut-link", "node": "node9"}]) == \
        "start.faults[0].node: expected first, last or node1..node5, got 'node9'"
    loaded = load("troubleshoot-corosync-config").start.faults
    assert loaded[1]["kind"] == "break-config" and loaded[1]["sed"].startswith("s/crypto_cipher")


def test_check_names_and_params_are_checked() -> None:
    assert _broken("resource-create", lambda d: d["checks"][0].update(check="nope")) == \
        "checks[0].check: unknown check function 'nope'"
    assert "params do not fit" in _broken("resource-create", lambda d: d["checks"][0].update(params={"zz": 1}))
    assert "duplicate check id" in _broken("resource-create",
                                           lambda d: d["checks"][1].update(id=d["checks"][0]["id"]))


def test_placeholders_the_schema_reserves_are_the_ones_commands_fill() -> None:
    assert set(command_context(["node1", "node2", "node3", "node4", "node5"])) == set(schema.PLACEHOLDERS)


# ---- fault kinds: declared in the engine, implemented in lab.vm.faults ---------------------

def test_vm_implements_exactly_the_declared_fault_kinds() -> None:
    assert set(faults.REGISTRY) == set(FAULT_KINDS)
    for name, kind in faults.REGISTRY.items():
        assert (kind.script is None) != (kind.domain_action is None), name
        assert kind.required == FAULT_KINDS[name].required
        assert kind.takes_node_out == FAULT_KINDS[name].takes_node_out


@pytest.mark.parametrize("name", [n for n, k in faults.REGISTRY.items() if k.script is not None])
def test_fault_scripts_parse(name: str) -> None:
    params = {p: "x" for p in FAULT_KINDS[name].required}
    text = faults.REGISTRY[name].script(params)
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_break_config_edits_the_file(tmp_path: Path) -> None:
    """The real script on a real file: sed's expression reaches sed whatever quotes it holds."""
    target = tmp_path / "corosync.conf"
    target.write_text("crypto_cipher: aes256\nname: it's\n")
    text = faults.REGISTRY["break-config"].script({"file": str(target), "sed": "s/aes256/aes257/; s/it's/x y/"})
    run = subprocess.run(["bash"], input=text, text=True, capture_output=True)
    assert run.returncode == 0, run.stderr
    assert target.read_text() == "crypto_cipher: aes257\nname: x y\n"
    failing = faults.REGISTRY["break-config"].script({"file": str(tmp_path / "nope"), "sed": "s/a/b/"})
    assert subprocess.run(["bash"], input=failing, text=True, capture_output=True).returncode != 0


def test_stop_daemon_takes_its_default_from_the_declaration() -> None:
    assert "DAEMON=pacemaker" in faults.REGISTRY["stop-daemon"].script({})
    assert scripts.assignments({"DAEMON": "corosync"}) in faults.REGISTRY["stop-daemon"].script({"daemon": "corosync"})


# ---- box profiles -----------------------------------------------------------------------

def test_every_box_profile_loads() -> None:
    names = profiles.profile_names()
    assert "debian12" in names
    for name in names:
        assert profiles.load_profile(name).name == name


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d.pop("network"), "network: missing (a required key)"),
    (lambda d: d.update(pakages=[]), "pakages: unknown key"),
    (lambda d: d.update(offline="yes"), "offline: expected true or false, got 'yes'"),
    (lambda d: d.update(packages="pcs"), "packages: expected a list, got 'pcs'"),
])
def test_a_bad_box_profile_is_one_line(change, words: str) -> None:
    path = profiles.profiles_dir() / "debian12.toml"
    data = read_toml(path, "box profile", UsageError)
    change(data)
    with pytest.raises(UsageError) as info:
        profiles.parse_profile(data, path)
    assert str(info.value) == f"box profile debian12.toml: {words}"


# ---- rosters ------------------------------------------------------------------------------

def test_roster_entries_are_typed(tmp_path: Path) -> None:
    roster = tmp_path / "roster.toml"
    roster.write_text('[[student]]\nid = "a"\nnodes = ["n1=root@h:2222"]\n'
                      '[[student]]\nid = "b"\nname = "B"\nevidence = "b"\n')
    first, second = load_roster(roster)
    assert first.nodes[0].port == 2222 and first.evidence is None
    assert second.evidence == tmp_path / "b" and second.name == "B"
    roster.write_text('[[student]]\nid = "a"\nname = 3\nevidence = "e"\n')
    with pytest.raises(UsageError, match=r"student\[0\] \(a\): key 'name': expected a string, got 3$"):
        load_roster(roster)


def test_the_readme_example_is_a_valid_exercise() -> None:
    """README's "Writing an exercise" shows a file that the loader accepts (its ... filled in)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Writing an exercise"):]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    example = example.replace('"..."', '"x"').replace('"pcs resource create ..."', '"pcs resource create X"')
    exercise = parse_exercise(tomllib.loads(example), exercises_dir() / "resource-create.toml")
    assert exercise.checks[0].check == "primitive_agent" and exercise.start.faults[0]["kind"] == "stop-cluster"
