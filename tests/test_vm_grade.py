"""`lab grade` on the real VM lab: the lab's two nodes as two students (each by its address,
with the lab's own key), plus one evidence student whose hand-in is node1's real
`cibadmin --query` output. All three must reach the verdicts `lab check` reaches on the lab.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.test_vm_e2e import LAB, lab

pytestmark = pytest.mark.vm

EXERCISES = ("resource-create", "resource-update")


def test_grade_live_lab_as_two_students_and_one_evidence_student(live_lab: None, tmp_path: Path) -> None:
    from lab.vm.labstate import SSH_USER, Lab

    for step in (("start", "resource-create"), ("solve", "resource-create")):
        done = lab(*step)
        assert done.returncode == 0, done.stderr[-2000:]
    expected = {}
    for exercise_id in EXERCISES:
        check = lab("check", exercise_id, "--format", "json", timeout=300)
        assert check.returncode in (0, 1), check.stderr
        expected[exercise_id] = {c["id"]: c["passed"] for c in json.loads(check.stdout)["checks"]}
    assert all(expected["resource-create"].values()) and not all(expected["resource-update"].values())

    # The evidence student hands in what cibadmin --query prints on node1.
    dump = lab("ssh", "node1", "sudo cibadmin --query", timeout=120)
    assert dump.returncode == 0 and dump.stdout.lstrip().startswith("<cib"), dump.stderr[-1000:]
    handin = tmp_path / "handins" / "e01"
    handin.mkdir(parents=True)
    for exercise_id in EXERCISES:
        (handin / f"{exercise_id}.xml").write_text(dump.stdout)

    # Where the lab's identity key and node addresses live: the lab folder and its state file.
    state = Lab.load(LAB)
    ips = {node.name: node.ip for node in state.nodes}
    roster = tmp_path / "roster.toml"
    roster.write_text(
        f'identity = "{state.identity}"\n'
        f'[[student]]\nid = "n1"\nname = "node1 by address"\nnodes = ["node1={SSH_USER}@{ips["node1"]}"]\n'
        f'[[student]]\nid = "n2"\nname = "node2 by address"\nnodes = ["node2={SSH_USER}@{ips["node2"]}:22"]\n'
        '[[student]]\nid = "e01"\nname = "evidence"\nevidence = "handins/e01"\n')
    out = tmp_path / "out"
    graded = lab("grade", str(roster), "--exercises", ",".join(EXERCISES), "--out", str(out), timeout=600)
    assert graded.returncode == 1, graded.stderr[-2000:]  # resource-update is not solved
    assert any("[3/3]" in line for line in graded.stderr.splitlines())

    document = json.loads((out / "results.json").read_text())
    assert [s["id"] for s in document["students"]] == ["n1", "n2", "e01"]
    for student in document["students"]:
        rows = {e["exercise"]: e for e in student["exercises"]}
        for exercise_id in EXERCISES:
            row = rows[exercise_id]
            assert row["error"] is None, (student["id"], row["error"])
            assert {c["id"]: c["passed"] for c in row["checks"]} == expected[exercise_id], (student["id"], row)
        assert rows["resource-create"]["status"] == "pass" and rows["resource-update"]["status"] == "fail"
        assert student["status"] == "fail" and student["score"] is not None
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["n1", "n2", "e01"]
    assert all(s.get("errors") == "0" for s in suites)
