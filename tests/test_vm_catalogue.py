"""The whole catalogue live: every exercise red at start, green after its reference solution.

Each exercise runs on the smallest lab it allows (two nodes; three for the quorum exercise), one
lab at a time. Long (about a minute per exercise and tool under software emulation): run it with
`make test-catalogue` (pytest -m catalogue); the default run covers the seed set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.engine.exercises import load_all
from lab.gather.hostmon import CRM_MON_ARGS
from tests.test_vm_e2e import PREFIX, lab, red_solve_green, running_lab

pytestmark = pytest.mark.catalogue

# LAB_CATALOGUE_NODES=N runs every exercise that fits on one N-node lab instead.
ONLY = int(os.environ.get("LAB_CATALOGUE_NODES") or 0)
CASES = sorted(((ONLY or max(2, e.start.min_nodes), e.id, tool) for e in load_all()
                if not ONLY or e.start.fits(ONLY) for tool in ("pcs", "crmsh")),
               key=lambda case: case[0])  # stable: one lab size after the other


class LabPool:
    """One lab at a time, of the size a test asks for: a lab of another size is destroyed (and
    checked for leftovers) before the next one comes up."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.size = 0
        self.running: Iterator[None] | None = None

    def ensure(self, nodes: int) -> int:
        if self.size != nodes:
            self.close()
            self.running = running_lab(self.factory, nodes=nodes)
            next(self.running)
            self.size = nodes
        return nodes

    def close(self) -> None:
        running, self.running, self.size = self.running, None, 0
        if running is not None:
            next(running, None)  # runs running_lab's destroy and its leftover assertions


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPool]:
    pool = LabPool(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.close()


# First in the file, so it shares the first (two-node) lab with the catalogue.
def test_fencing_with_swapped_map_fails(labs: LabPool) -> None:
    """A near miss only a real fence reveals: the host map sends node1 and node2 to each other's
    VM. The device is started and 'covers' every node, yet fencing node2 resets node1."""
    nodes = labs.ensure(ONLY or 2)
    started = lab("start", "fencing")
    assert started.returncode == 0, started.stderr[-2000:]
    swapped = ";".join([f"node1:{PREFIX}node2", f"node2:{PREFIX}node1"]
                       + [f"node{i}:{PREFIX}node{i}" for i in range(3, nodes + 1)])
    # One string: the remote shell would otherwise split the map at its semicolons.
    made = lab("ssh", "node1", "--", f"sudo pcs stonith create xvm fence_xvm pcmk_host_map='{swapped}' "
               "timeout=120 pcmk_reboot_timeout=180 && sudo pcs property set stonith-enabled=true", timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    checked = lab("check", "fencing", "--format", "json", timeout=900)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    outcomes = {o["id"]: o for o in json.loads(checked.stdout)["checks"]}
    assert outcomes["fences"]["passed"] is False
    assert "node1" in outcomes["fences"]["message"], outcomes["fences"]["message"]


@pytest.mark.parametrize(("nodes", "exercise_id", "tool"), CASES,
                         ids=[f"{n}nodes-{ex}-{tool}" for n, ex, tool in CASES])
def test_catalogue_red_solve_green(labs: LabPool, nodes: int, exercise_id: str, tool: str) -> None:
    labs.ensure(nodes)
    red_solve_green(exercise_id, tool)
    if CAPTURE_DIR:
        capture_green(Path(CAPTURE_DIR) / f"{exercise_id}-{tool}", nodes)


# LAB_CAPTURE_DIR=DIR: after each green, save what corosync and the fencer answer on every node
# (DIR/<exercise>-<tool>/<tool>-<node>.txt), for tests that judge those answers offline.
CAPTURE_DIR = os.environ.get("LAB_CAPTURE_DIR", "")
CAPTURES = {"cmapctl": "corosync-cmapctl", "quorumtool": "corosync-quorumtool -s",
            "cfgtool": "corosync-cfgtool -s",
            "fence-history": "stonith_admin --history '*' --output-as=xml"}


# The CIB and crm_mon at one moment (tests/test_hostmon.py reads such pairs as
# tests/captures/live/cib-TAG.xml and crm-mon-TAG.xml).
PAIR = f"sudo sh -c 'cibadmin --query && echo ==CRM_MON== && {' '.join(CRM_MON_ARGS)}'"


def capture_green(folder: Path, nodes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, nodes + 1):
        for name, command in CAPTURES.items():
            answer = lab("ssh", f"node{index}", "--", f"sudo {command}", timeout=120)
            (folder / f"{name}-node{index}.txt").write_text(answer.stdout)
        pair = lab("ssh", f"node{index}", "--", PAIR, timeout=120)
        cib, marker, crm_mon = pair.stdout.partition("==CRM_MON==\n")
        if pair.returncode == 0 and marker:
            (folder / f"cib-node{index}.xml").write_text(cib)
            (folder / f"crm-mon-node{index}.xml").write_text(crm_mon)
