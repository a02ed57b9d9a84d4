"""`lab exercises` and `lab show`: the catalogue, version-aware solutions, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lab.engine.exercises import load_all


def lab(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LAB_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_exercises_json_lists_the_whole_catalogue(tmp_path: Path) -> None:
    listed = json.loads(lab("exercises", "--format", "json", home=tmp_path).stdout)
    assert {e["id"] for e in listed} == {e.id for e in load_all()}
    assert all(e["objective"] and e["title"] for e in listed)


def test_solution_follows_the_pcs_generation(tmp_path: Path) -> None:
    new = lab("show", "cluster-setup", "--solution", "--pcs-version", "0.11.5", home=tmp_path).stdout
    old = lab("show", "cluster-setup", "--solution", "--pcs-version", "0.9.169", home=tmp_path).stdout
    first_new = new.split("Solution with pcs", 1)[1].splitlines()[1]
    first_old = old.split("Solution with pcs", 1)[1].splitlines()[1]
    # What `lab solve` runs, as shown: the password goes to pcs on a pipe, never as -p (argv).
    assert first_new.strip() == "printf '%s\\n' PASSWORD | pcs host auth node1 node2 -u hacluster --request-timeout=180"
    assert first_old.strip() == "printf '%s\\n' PASSWORD | pcs cluster auth node1 node2 -u hacluster"
    assert "Why the syntax differs" in new and "{" not in first_new


def test_hints_come_in_levels_and_placeholders_are_filled(tmp_path: Path) -> None:
    one = lab("show", "location-avoid", "--hint", home=tmp_path).stdout
    three = lab("show", "location-avoid", "--hint", "3", home=tmp_path).stdout
    assert "Hint 1:" in one and "Hint 2:" not in one
    assert "Hint 3:" in three
    solution = lab("show", "location-avoid", "--solution", home=tmp_path).stdout
    assert "{node2}" not in solution and "node2" in solution


def test_show_never_prints_a_password(tmp_path: Path) -> None:
    out = lab("show", "cluster-setup", "--solution", home=tmp_path).stdout
    assert "-p PASSWORD" in out and "lab info --secrets" in out
