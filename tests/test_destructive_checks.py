"""Checks that fence or reboot machines run on machines named by `--node` only with --yes.

Against a real sshd on 127.0.0.1 (tests/sshd.py) whose sessions read a CIB made by the real tools.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.engine.exercises import load_all
from lab.engine.grading import sections_for
from lab.engine.offline import OfflineCluster
from lab.gather.probes import destructive_probes
from tests.test_ssh import assert_one_line_error, lab, lab_home  # noqa: F401  (lab_home: a fixture; sshd comes from conftest)

DESTRUCTIVE = sorted(e.id for e in load_all() if destructive_probes(sections_for(e)))


def test_the_catalogue_has_destructive_checks() -> None:
    assert {"fencing", "cluster-enable"} <= set(DESTRUCTIVE)


@pytest.mark.parametrize("exercise_id", DESTRUCTIVE)
def test_text_mode_refuses_without_yes_before_connecting(exercise_id: str, sshd, lab_home: Path) -> None:  # noqa: ANN001, F811
    proc, _ = lab(lab_home, "check", exercise_id, "--node", sshd.spec("node1"), "--node", sshd.spec("node2"),
                  "--identity", str(sshd.client_key))
    assert_one_line_error(proc, "--yes", "--node")
    assert not (lab_home / "known_hosts").exists()  # no node was contacted


@pytest.mark.parametrize("exercise_id", DESTRUCTIVE)
def test_json_mode_skips_the_acting_checks_and_says_so(exercise_id: str, sshd, lab_home: Path,  # noqa: ANN001, F811
                                                       tmp_path: Path) -> None:
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    sshd.cib.write_text(cluster.path.read_text())
    proc, _ = lab(lab_home, "check", exercise_id, "--node", sshd.spec("node1"), "--node", sshd.spec("node2"),
                  "--identity", str(sshd.client_key), "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    checks = json.loads(proc.stdout)["checks"]
    skipped = [c for c in checks if c["passed"] is None]
    assert skipped, checks
    for check in skipped:
        assert "--yes" in check["message"] and "acts on the machines" in check["message"]
    assert any(c["passed"] is not None for c in checks)  # the rest was graded
