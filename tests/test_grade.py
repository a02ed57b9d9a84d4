"""`lab grade`: a class of students graded from handed-in evidence and over SSH.

Every CIB here is made by the real tools (each exercise's own start commands and its pcs or
crmsh reference solution, through OfflineCluster); a corrupt hand-in is a real CIB cut short.
Live students are a real sshd on 127.0.0.1 whose sessions read a CIB file (tests/sshd.py).
Outputs are parsed (json, csv, ElementTree, html.parser), never grepped.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lab.engine.exercises import load
from tests.conftest import start_state
from tests.sshd import Sshd, free_port, running_sshd

pytestmark = pytest.mark.skipif(shutil.which("crm_mon") is None or shutil.which("pcs") is None,
                                reason="needs pacemaker-cli-utils, pcs and crmsh")

EXERCISES = ("resource-create", "resource-update", "group", "location-prefer", "default-stickiness")
STUDENT_FIELDS = {"id", "name", "status", "score", "max_score", "exercises"}
EXERCISE_FIELDS = {"exercise", "status", "passed", "score", "max_score", "checks", "error"}
CHECK_FIELDS = {"id", "passed", "points", "message"}


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(exercise, 'start' | 'pcs' | 'crmsh') -> a CIB file made by the real tools."""
    base = tmp_path_factory.mktemp("states")
    out = {}
    for exercise_id in EXERCISES:
        exercise = load(exercise_id)
        start = start_state(exercise_id, base)
        out[(exercise_id, "start")] = start.path
        for tool, commands in (("pcs", exercise.solution_pcs), ("crmsh", exercise.solution_crmsh)):
            solved = start.copy(base / f"{exercise_id}-{tool}.xml")
            solved.run_all(commands)
            solved.simulate()
            out[(exercise_id, tool)] = solved.path
    return out


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory, states: dict[tuple[str, str], Path]) -> Iterator[Sshd]:
    """A loopback sshd whose sessions see resource-create solved with pcs."""
    work = tmp_path_factory.mktemp("sshd")
    cib = work / "remote-cib.xml"
    shutil.copyfile(states[("resource-create", "pcs")], cib)
    with running_sshd(work, cib) as server:
        yield server


def hand_in(folder: Path, files: dict[str, Path]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for exercise_id, source in files.items():
        shutil.copyfile(source, folder / f"{exercise_id}.xml")
    return folder.name


def lab(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LAB_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "lab-home"
    path.mkdir()
    return path


@pytest.fixture
def classroom(tmp_path: Path, states: dict[tuple[str, str], Path]) -> Path:
    """Evidence students: all solved (pcs), crmsh but group left at its start, all at the start
    state, no folder at all, and one with a corrupt and a missing hand-in."""
    root = tmp_path / "class"
    hand_in(root / "s01", {e: states[(e, "pcs")] for e in EXERCISES})
    hand_in(root / "s02", {e: states[(e, "crmsh" if e != "group" else "start")] for e in EXERCISES})
    hand_in(root / "s03", {e: states[(e, "start")] for e in EXERCISES})
    hand_in(root / "s05", {e: states[(e, "pcs")] for e in EXERCISES if e != "default-stickiness"})
    real = (root / "s05" / "group.xml").read_bytes()
    (root / "s05" / "group.xml").write_bytes(real[: len(real) // 2])  # a hand-in cut short
    return root


def evidence_roster(root: Path, extra: str = "") -> Path:
    roster = root / "roster.toml"
    roster.write_text(
        '[[student]]\nid = "s01"\nname = "Ada Lovelace"\nemail = "ada@example.org"\nevidence = "s01"\n'
        '[[student]]\nid = "s02"\nname = "Bob"\nevidence = "s02"\n'
        '[[student]]\nid = "s03"\nevidence = "s03"\n'
        '[[student]]\nid = "s04"\nname = "Dan (no hand-in)"\nevidence = "s04"\n'
        '[[student]]\nid = "s05"\nevidence = "s05"\n' + extra)
    return roster


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def by_student(document: dict) -> dict[str, dict]:
    return {s["id"]: s for s in document["students"]}


def exercise_rows(student: dict) -> dict[str, dict]:
    return {e["exercise"]: e for e in student["exercises"]}


class Tables(HTMLParser):
    """Every <table id=...> of a page as rows of cell texts, plus the attributes of every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_html(path: Path) -> Tables:
    page = Tables()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_grades_a_class_from_evidence_and_over_ssh(classroom: Path, sshd: Sshd, home: Path,
                                                    states: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    roster = evidence_roster(classroom, (
        f'[[student]]\nid = "s06"\nname = "Eve (lab down)"\nnodes = ["node1=root@127.0.0.1:{free_port()}"]\n'
        f'identity = "{sshd.client_key}"\n'
        f'[[student]]\nid = "s07"\nname = "Fay (live)"\nnodes = ["{sshd.spec("node1")}", "{sshd.spec("node2")}"]\n'
        f'identity = "{sshd.client_key}"\n'))
    out = tmp_path / "out"
    logins_before = sshd.log.read_text().count("Accepted publickey")
    proc = lab(home, "grade", str(roster), "--exercises", ",".join(EXERCISES), "--out", str(out),
               "--parallel", "3", "--timeout", "3")
    assert proc.returncode == 1, proc.stderr  # not everyone passed
    # s07's two nodes were each reached once for all five exercises (one login, one gather).
    assert sshd.log.read_text().count("Accepted publickey") - logins_before == 2
    progress = proc.stderr.strip().splitlines()
    assert progress and all(line.startswith("lab grade: ") for line in progress), proc.stderr
    assert any("[7/7]" in line for line in progress)

    # results.json: exactly the contract's fields
    document = results(out)
    assert set(document) == {"schema", "exercises", "dropped", "students"}
    assert document["schema"] == 1 and document["exercises"] == list(EXERCISES) and document["dropped"] == []
    assert [s["id"] for s in document["students"]] == [f"s0{i}" for i in range(1, 8)]
    maximum = sum(load(e).max_score for e in EXERCISES)
    for student in document["students"]:
        assert set(student) == STUDENT_FIELDS
        assert student["max_score"] == maximum
        assert [e["exercise"] for e in student["exercises"]] == list(EXERCISES)
        for row in student["exercises"]:
            assert set(row) == EXERCISE_FIELDS
            assert all(set(c) == CHECK_FIELDS for c in row["checks"])
            if row["status"] == "error":
                assert row["passed"] is None and row["score"] is None and row["checks"] == [] and row["error"]
            else:
                assert row["error"] is None and row["passed"] is (row["status"] == "pass")
                assert row["score"] == sum(c["points"] for c in row["checks"] if c["passed"])
                assert [c["id"] for c in row["checks"]] == [c.id for c in load(row["exercise"]).checks]
    rows = by_student(document)
    assert rows["s01"]["status"] == "pass" and rows["s01"]["score"] == maximum
    assert rows["s01"]["name"] == "Ada Lovelace"
    s02 = exercise_rows(rows["s02"])
    assert rows["s02"]["status"] == "fail"
    assert s02["group"]["status"] == "fail" and s02["group"]["score"] == 0
    assert all(s02[e]["status"] == "pass" for e in EXERCISES if e != "group")
    assert rows["s02"]["score"] == maximum - load("group").max_score
    assert rows["s03"]["status"] == "fail" and rows["s03"]["score"] < maximum
    assert all(e["status"] == "fail" for e in rows["s03"]["exercises"])
    # No hand-in at all: error rows with the reason, never a 0.
    assert rows["s04"]["status"] == "error" and rows["s04"]["score"] is None
    assert all(e["status"] == "error" and "does not exist" in e["error"] for e in rows["s04"]["exercises"])
    s05 = exercise_rows(rows["s05"])
    assert rows["s05"]["status"] == "error" and rows["s05"]["score"] is None
    assert s05["group"]["status"] == "error" and "well-formed" in s05["group"]["error"]
    assert s05["default-stickiness"]["status"] == "error"
    assert "default-stickiness.xml" in s05["default-stickiness"]["error"]
    assert all(s05[e]["status"] == "pass" for e in ("resource-create", "resource-update", "location-prefer"))
    # An unreachable lab is an error row too.
    assert rows["s06"]["status"] == "error"
    assert all("node1" in e["error"] and "reachable" in e["error"] for e in rows["s06"]["exercises"])
    # The live student: the same verdicts as `lab check --cib` on the very state its nodes serve.
    s07 = exercise_rows(rows["s07"])
    for exercise_id in EXERCISES:
        offline = lab(home, "check", exercise_id, "--cib", str(states[("resource-create", "pcs")]),
                      "--format", "json")
        expected = {c["id"]: c["passed"] for c in json.loads(offline.stdout)["checks"]}
        assert {c["id"]: c["passed"] for c in s07[exercise_id]["checks"]} == expected, exercise_id
    assert s07["resource-create"]["status"] == "pass" and s07["group"]["status"] == "fail"

    # gradebook.csv
    with (out / "gradebook.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["id", "name", "email", *EXERCISES, "total", "max", "percent", "status"]
        book = {r["id"]: r for r in reader}
    assert list(book) == [f"s0{i}" for i in range(1, 8)]
    assert book["s01"]["email"] == "ada@example.org"
    assert (book["s01"]["total"], book["s01"]["max"], book["s01"]["percent"]) == (str(maximum), str(maximum), "100.0")
    assert book["s02"]["group"] == "0" and book["s02"]["status"] == "fail"
    assert book["s04"]["status"] == "error" and book["s04"]["total"] == "" and book["s04"]["percent"] == ""
    assert all(book["s04"][e] == "" for e in EXERCISES)
    assert book["s05"]["resource-create"] == str(load("resource-create").max_score) and book["s05"]["group"] == ""

    # junit.xml: a suite per student, a case per check; failures and grader errors
    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot().iter("testsuite")}
    assert list(suites) == [f"s0{i}" for i in range(1, 8)]
    checks_per_student = sum(len(load(e).checks) for e in EXERCISES)
    for suite in suites.values():
        assert len(suite.findall("testcase")) == checks_per_student == int(suite.get("tests"))
    assert suites["s01"].get("failures") == "0" and suites["s01"].get("errors") == "0"
    group_cases = [c for c in suites["s02"].findall("testcase") if c.get("classname") == "s02.group"]
    assert group_cases and all(c.find("failure") is not None for c in group_cases)
    assert all(c.find("error") is not None for c in suites["s04"].findall("testcase"))
    assert int(suites["s05"].get("errors")) == len(load("group").checks) + len(load("default-stickiness").checks)

    # report.html: class table, item analysis, the chart per objective, nothing fetched
    page = parse_html(out / "report.html")
    students = page.tables["students"]
    assert students[0] == ["id", "name", *EXERCISES, "total", "max", "percent", "status"]
    table = {r[0]: r for r in students[1:]}
    assert table["s01"][-1] == "pass" and table["s04"][-1] == "error" and table["s02"][-1] == "fail"
    item = {(r[0], r[1]): r for r in page.tables["checks"][1:]}
    assert set(item) == {(e, c.id) for e in EXERCISES for c in load(e).checks}
    # group 'members': graded for s01, s02, s03 and s07 (s04, s05, s06 errors); only s01 passed
    assert item[("group", "members")][4:7] == ["1", "4", "25 %"]
    bars = {a["data-objective"]: float(a["data-percent"] or 0) for t, a in page.tags
            if t == "rect" and a.get("class") == "objective"}
    assert set(bars) == {load(e).objective for e in EXERCISES}
    assert all(0 <= v <= 100 for v in bars.values())
    assert not [t for t, _ in page.tags if t in ("script", "link", "img", "iframe")]
    assert not [a for _, a in page.tags for k in ("src", "href") if a.get(k)]
    assert {r[0] for r in page.tables["errors"][1:]} == {"s04", "s05", "s06"}

    # feedback/<id>.md: each exercise's checks with their messages
    assert sorted(p.stem for p in (out / "feedback").glob("*.md")) == [f"s0{i}" for i in range(1, 8)]
    lines = (out / "feedback" / "s02.md").read_text().splitlines()
    marks = [line for line in lines if line.startswith("- [")]
    assert len(marks) == checks_per_student
    assert sum(line.startswith("- [ ]") for line in marks) == len(load("group").checks)
    s04 = (out / "feedback" / "s04.md").read_text().splitlines()
    assert sum(line.startswith("Not graded: ") for line in s04) == len(EXERCISES)


def test_csv_roster_grades_like_toml(classroom: Path, home: Path, tmp_path: Path) -> None:
    toml_out, csv_out = tmp_path / "toml", tmp_path / "csv"
    first = lab(home, "grade", str(evidence_roster(classroom)), "--exercises", "resource-create,group",
                "--out", str(toml_out))
    roster = classroom / "roster.csv"
    with roster.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "evidence"])
        writer.writerows([["s01", "Ada Lovelace", "ada@example.org", "s01"], ["s02", "Bob", "", "s02"],
                          ["s03", "", "", "s03"], ["s04", "Dan (no hand-in)", "", "s04"], ["s05", "", "", "s05"]])
    second = lab(home, "grade", str(roster), "--exercises", "resource-create,group", "--out", str(csv_out))
    assert first.returncode == second.returncode == 1, (first.stderr, second.stderr)
    assert results(toml_out)["students"] == results(csv_out)["students"]
    assert (toml_out / "gradebook.csv").read_text() == (csv_out / "gradebook.csv").read_text()


def test_drop_check_regrades_without_it(classroom: Path, home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = lab(home, "grade", str(evidence_roster(classroom)), "--exercises", "resource-create,resource-update",
               "--out", str(out), "--drop-check", "resource-update:monitor")
    assert proc.returncode == 1, proc.stderr
    document = results(out)
    assert document["dropped"] == ["resource-update:monitor"]
    update = load("resource-update")
    monitor = next(c for c in update.checks if c.id == "monitor")
    for student in document["students"]:
        row = exercise_rows(student)["resource-update"]
        assert row["max_score"] == update.max_score - monitor.points
        assert "monitor" not in [c["id"] for c in row["checks"]]
    # s03 is at resource-update's start state: only the dropped check failed, so it passes now.
    assert exercise_rows(by_student(document)["s03"])["resource-update"]["status"] == "pass"
    cases = [c for c in ET.parse(out / "junit.xml").getroot().iter("testcase")
             if c.get("classname", "").endswith(".resource-update")]
    assert cases and "monitor" not in {c.get("name") for c in cases}

    bad = lab(home, "grade", str(evidence_roster(classroom)), "--exercises", "resource-create",
              "--out", str(out), "--drop-check", "resource-create:nope")
    assert_one_line_error(bad, "--drop-check", "nope")


def test_only_errors_regrades_just_those_and_merges(classroom: Path, home: Path, tmp_path: Path,
                                                     states: dict[tuple[str, str], Path]) -> None:
    out = tmp_path / "out"
    roster = evidence_roster(classroom)
    args = ("grade", str(roster), "--exercises", ",".join(EXERCISES), "--out", str(out))
    first = lab(home, *args)
    assert first.returncode == 1, first.stderr
    before = by_student(results(out))
    assert [s for s, row in before.items() if row["status"] == "error"] == ["s04", "s05"]
    # s04 hands in, s05 fixes its files; s01's files change, but its row was no error: kept.
    hand_in(classroom / "s04", {e: states[(e, "pcs")] for e in EXERCISES})
    hand_in(classroom / "s05", {e: states[(e, "pcs")] for e in EXERCISES})
    hand_in(classroom / "s01", {e: states[(e, "start")] for e in EXERCISES})
    again = lab(home, *args, "--only-errors")
    assert again.returncode == 1, again.stderr  # s02 and s03 still fail
    assert any("2 student(s)" in line for line in again.stderr.splitlines())
    after = by_student(results(out))
    assert list(after) == list(before)
    for kept in ("s01", "s02", "s03"):
        assert after[kept] == before[kept]
    assert after["s04"]["status"] == after["s05"]["status"] == "pass"
    with (out / "gradebook.csv").open(newline="") as handle:
        book = {r["id"]: r for r in csv.DictReader(handle)}
    assert book["s04"]["status"] == "pass" and book["s04"]["percent"] == "100.0"
    assert book["s01"]["email"] == "ada@example.org"  # the roster's, for kept rows too
    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot().iter("testsuite")}
    assert suites["s04"].get("errors") == "0"
    # A merge under other rules would mix two gradings: refused in one line.
    mixed = lab(home, *args, "--only-errors", "--drop-check", "group:members")
    assert_one_line_error(mixed, "--only-errors", "drop")
    other = lab(home, "grade", str(roster), "--exercises", "group", "--out", str(out), "--only-errors")
    assert_one_line_error(other, "--only-errors")
    none = lab(home, *args[:-1], str(tmp_path / "empty"), "--only-errors")
    assert_one_line_error(none, "results.json")


def test_signed_results_verify_and_tampering_fails(classroom: Path, home: Path, tmp_path: Path) -> None:
    key = tmp_path / "class.key"
    key.write_text(os.urandom(24).hex() + "\n")
    out = tmp_path / "out"
    args = ("grade", str(evidence_roster(classroom)), "--exercises", "resource-create,group", "--out", str(out))
    signed = lab(home, *args, "--sign-key", str(key))
    assert signed.returncode == 1, signed.stderr
    document = results(out)
    assert set(document) == {"schema", "exercises", "dropped", "students", "signature"}
    assert document["signature"].startswith("hmac-sha256:")
    ok = lab(home, "grade", "verify", str(out), "--sign-key", str(key))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("signature OK")
    # Tampered: one student's score raised, the file rewritten.
    tampered = json.loads((out / "results.json").read_text())
    tampered["students"][2]["score"] = tampered["students"][2]["max_score"]
    (out / "results.json").write_text(json.dumps(tampered, indent=2))
    assert_one_line_error(lab(home, "grade", "verify", str(out), "--sign-key", str(key)), "signature", code=1)
    # --only-errors refuses to merge into a file whose signature fails.
    assert_one_line_error(lab(home, *args, "--sign-key", str(key), "--only-errors"), "signature", code=1)
    # Another key fails; an unsigned run fails verify; a short key is refused.
    other = tmp_path / "other.key"
    other.write_text(os.urandom(24).hex())
    lab(home, *args, "--sign-key", str(key))
    assert lab(home, "grade", "verify", str(out), "--sign-key", str(key)).returncode == 0
    assert_one_line_error(lab(home, "grade", "verify", str(out), "--sign-key", str(other)), "signature", code=1)
    assert_one_line_error(lab(home, *args, "--only-errors"), "--sign-key")
    unsigned = tmp_path / "unsigned"
    lab(home, *args[:-1], str(unsigned))
    assert_one_line_error(lab(home, "grade", "verify", str(unsigned), "--sign-key", str(key)), "not signed", code=1)
    short = tmp_path / "short.key"
    short.write_text("abc")
    assert_one_line_error(lab(home, *args, "--sign-key", str(short)), "at least 16")
    assert_one_line_error(lab(home, "grade", "verify", str(out)), "verify DIR --sign-key")


def test_exam_plan_names_the_exercises(classroom: Path, home: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"tasks": [{"exercise": "group"}, {"exercise": "resource-create", "points": 5}]}))
    out = tmp_path / "out"
    proc = lab(home, "grade", str(evidence_roster(classroom)), "--exam", str(plan), "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    assert results(out)["exercises"] == ["group", "resource-create"]
    plan.write_text(json.dumps({"tasks": [{"name": "x"}]}))
    assert_one_line_error(lab(home, "grade", str(evidence_roster(classroom)), "--exam", str(plan), "--out",
                              str(out)), "tasks[0]", "exercise")
    assert_one_line_error(lab(home, "grade", str(evidence_roster(classroom)), "--exam", str(tmp_path), "--out",
                              str(out)), "PLAN.json")


def test_roster_names_in_the_report_are_escaped(classroom: Path, home: Path, tmp_path: Path) -> None:
    roster = classroom / "roster.toml"
    roster.write_text('[[student]]\nid = "s01"\nname = "<script>alert(1)</script>"\nevidence = "s01"\n'
                      '[[student]]\nid = "s02"\nname = "=HYPERLINK(\\"http://x\\")"\nevidence = "s02"\n')
    out = tmp_path / "out"
    lab(home, "grade", str(roster), "--exercises", "resource-create", "--out", str(out))
    page = parse_html(out / "report.html")
    assert not [t for t, _ in page.tags if t == "script"]
    assert {r[1] for r in page.tables["students"][1:]} == {"<script>alert(1)</script>", '=HYPERLINK("http://x")'}
    with (out / "gradebook.csv").open(newline="") as handle:
        names = [r["name"] for r in csv.DictReader(handle)]
    assert names[1].startswith("'=")  # a spreadsheet shows it as text, not a formula


@pytest.mark.parametrize(("text", "words"), [
    ('[[student]]\nname = "x"\nevidence = "e"\n', ["student[0]", "'id'"]),
    ('[[student]]\nid = "../x"\nevidence = "e"\n', ["student[0]", "'id'"]),
    ('[[student]]\nid = "a"\nevidence = "e"\nnodes = ["n1=root@h"]\n', ["(a)", "'evidence'", "not both"]),
    ('[[student]]\nid = "a"\n', ["(a)", "'evidence'"]),
    ('[[student]]\nid = "a"\nnodes = ["node1"]\n', ["(a)", "'nodes'", "NAME=USER@HOST"]),
    ('[[student]]\nid = "a"\nnodes = ["n=r@h", "n=r@h2"]\n', ["(a)", "'nodes'", "twice"]),
    ('[[student]]\nid = "a"\nevidence = "e"\nevidance = "e"\n', ["(a)", "'evidance'"]),
    ('[[student]]\nid = "a"\nevidence = "e"\n[[student]]\nid = "a"\nevidence = "f"\n', ["student[1]", "twice"]),
    ('[[student]]\nid = "a"\nnodes = ["n=r@h"]\nidentity = "no-such-key"\n', ["(a)", "'identity'", "no-such-key"]),
    ('identity = "nokey"\n[[student]]\nid = "a"\nnodes = ["n=r@h"]\n', ["(a)", "identity (top level)"]),
    ('[[lab]]\nname = "a"\n', ["'lab'"]),
    ('[[student]\n', ["not valid TOML"]),
    ("id,evidance\na,e\n", ["column 'evidance'"]),
    ("name,evidence\nx,e\n", ["'id'"]),
    ("id,nodes\na,node1\n", ["line 2 (a)", "'nodes'"]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_bad_roster_is_one_line_naming_file_entry_and_key(text: str, words: list[str], home: Path,
                                                            tmp_path: Path) -> None:
    roster = tmp_path / ("roster.csv" if "," in text.splitlines()[0] and "=" not in text else "roster.toml")
    roster.write_text(text)
    proc = lab(home, "grade", str(roster), "--exercises", "resource-create", "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, roster.name, *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "words"), [
    (["--exercises", "resource-create"], ["--out"]),
    (["--out", "OUT"], ["--exercises"]),
    (["--exercises", "no-such-exercise", "--out", "OUT"], ["no-such-exercise"]),
    (["--exercises", "group,group", "--out", "OUT"], ["twice"]),
    (["--exercises", "group", "--exam", "p.json", "--out", "OUT"], ["not allowed"]),
    (["--exercises", "group", "--out", "OUT", "--parallel", "0"], ["--parallel"]),
    (["--exercises", "group", "--out", "roster.toml"], ["output folder"]),
])
def test_usage_errors(args: list[str], words: list[str], classroom: Path, home: Path) -> None:
    roster = evidence_roster(classroom)
    proc = lab(home, "grade", str(roster), *[a.replace("OUT", str(classroom / "o")).replace("roster.toml", str(roster))
                                             for a in args])
    assert_one_line_error(proc, *words)


def test_evidence_never_follows_a_symlink(home: Path, tmp_path: Path, states: dict[tuple[str, str], Path]) -> None:
    folder = tmp_path / "class" / "s01"
    folder.mkdir(parents=True)
    (folder / "group.xml").symlink_to(states[("group", "pcs")])
    roster = tmp_path / "class" / "roster.toml"
    roster.write_text('[[student]]\nid = "s01"\nevidence = "s01"\n')
    lab(home, "grade", str(roster), "--exercises", "group", "--out", str(tmp_path / "out"))
    row = exercise_rows(results(tmp_path / "out")["students"][0])["group"]
    assert row["status"] == "error" and "symbolic link" in row["error"]
    # No student could be graded on it: the item analysis still lists its checks, graded by nobody.
    item = {r[1]: r for r in parse_html(tmp_path / "out" / "report.html").tables["checks"][1:]}
    assert set(item) == {c.id for c in load("group").checks} and item["members"][4:7] == ["0", "0", ""]


def test_engine_grades_each_live_node_once_for_all_exercises(monkeypatch: pytest.MonkeyPatch,
                                                             states: dict[tuple[str, str], Path]) -> None:
    """In-process: one gather per student (all nodes in one call) with the union of sections."""
    from lab.engine.grading import sections_for
    from lab.gather.facts import facts_from_cib_file
    from lab.transport.address import NodeAddress
    from lab.workflows import classgrade

    calls = []

    def fake_gather(addresses, **kwargs):  # noqa: ANN001, ANN202 - the real signature, recorded
        calls.append((tuple(a.name for a in addresses), kwargs["sections"]))
        live = facts_from_cib_file(states[("resource-create", "pcs")])
        return dataclasses.replace(live, live=True)

    monkeypatch.setattr(classgrade, "gather_from_addresses", fake_gather)
    exercises = [load(e) for e in EXERCISES]
    student = classgrade.Student("s1", nodes=(NodeAddress.parse("node1=root@h"), NodeAddress.parse("node2=root@h")))
    result = classgrade.grade_student(student, exercises, classgrade.GradeOptions())
    assert calls == [(("node1", "node2"), frozenset().union(*(sections_for(e) for e in exercises)))]
    assert [e.exercise for e in result.exercises] == list(EXERCISES)
    assert result.exercises[0].status == "pass"


def test_destructive_probes_are_withheld_without_yes(monkeypatch: pytest.MonkeyPatch,
                                                     states: dict[tuple[str, str], Path]) -> None:
    """fencing and cluster-enable act on machines: skipped and saying so unless allowed."""
    from lab.gather.facts import facts_from_cib_file
    from lab.transport.address import NodeAddress
    from lab.workflows import classgrade

    asked: list[frozenset[str]] = []

    def fake_gather(addresses, **kwargs):  # noqa: ANN001, ANN202
        asked.append(kwargs["sections"])
        live = facts_from_cib_file(states[("resource-create", "pcs")])
        return dataclasses.replace(live, live=True)

    monkeypatch.setattr(classgrade, "gather_from_addresses", fake_gather)
    exercises = [load("fencing"), load("resource-create")]
    student = classgrade.Student("s1", nodes=(NodeAddress.parse("node1=root@h"),))
    held = classgrade.grade_student(student, exercises, classgrade.GradeOptions())
    assert "probe:fence" not in asked[-1]
    fencing = held.exercises[0]
    skipped = [c for c in fencing.checks if c.passed is None]
    assert skipped and all("--yes" in c.message for c in skipped)
    classgrade.grade_student(student, exercises, classgrade.GradeOptions(allow_destructive=True))
    assert "probe:fence" in asked[-1]
