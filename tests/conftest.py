"""Shared fixtures: real cluster states made by the real pacemaker tools."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.engine.exercises import load
from lab.engine.grading import Report, grade
from lab.engine.offline import OfflineCluster
from lab.gather.facts import facts_from_cib_file
from lab.vm import libvirt_conn
from tests.sshd import sshd  # noqa: F401 (the loopback sshd fixture, one per test module)


@pytest.fixture(autouse=True)
def _private_lab_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                      tmp_path_factory: pytest.TempPathFactory) -> None:
    """Offline tests never write the user's lab home (`lab check` appends to its progress
    history); the VM and catalogue tests set their own LAB_HOME and keep it for the whole session
    (a per-test value here would be undone after each test, and the next one finds no lab)."""
    if not any(request.node.get_closest_marker(m) for m in ("vm", "catalogue")):
        monkeypatch.setenv("LAB_HOME", str(tmp_path_factory.mktemp("lab-home")))


@pytest.fixture
def cluster(tmp_path: Path) -> OfflineCluster:
    """An empty two-node cluster (stonith disabled), online and quorate."""
    return OfflineCluster.empty(tmp_path / "cib.xml")


def grade_file(exercise_id: str, path: Path) -> Report:
    return grade(load(exercise_id), facts_from_cib_file(path))


def start_state(exercise_id: str, tmp_path: Path) -> OfflineCluster:
    """The exercise's start state, built from its own start commands."""
    cluster = OfflineCluster.empty(tmp_path / f"{exercise_id}.xml")
    cluster.run_all(load(exercise_id).start.commands)
    cluster.simulate()
    return cluster


def failed_checks(report: Report) -> list[str]:
    return [o.id for o in report.outcomes if o.passed is False]


@pytest.fixture(scope="session")
def live_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The 2-node VM lab of the default run, brought up once for every `vm` test module
    (tests/test_vm_e2e.py, tests/test_vm_grade.py) and destroyed at the end."""
    from tests.test_vm_e2e import running_lab

    yield from running_lab(tmp_path_factory, nodes=2)


@pytest.fixture
def test_driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """libvirt's in-process test driver (test:///default): its state lives while a connection
    to it is open. A real libvirt, for the VM layer's libvirt code where no VM can run."""
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///default")
    conn = libvirt_conn.connect()
    try:
        yield conn
    finally:
        conn.close()
