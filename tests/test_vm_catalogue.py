"""The whole catalogue live on a 3-node lab: every exercise red at start, green after its
reference solution. Long (about a minute per exercise and tool under software emulation): run it
with `make test-catalogue` (pytest -m catalogue); the default run covers the seed set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lab.exercises import load_all
from tests.test_vm_e2e import red_solve_green, running_lab

pytestmark = pytest.mark.catalogue


# Enough nodes for every exercise; LAB_CATALOGUE_NODES=2 makes a lighter lab for a partial run
# (then select exercises that need only two nodes).
NODES = int(os.environ.get("LAB_CATALOGUE_NODES") or max(e.start.min_nodes for e in load_all()))


@pytest.fixture(scope="module")
def catalogue_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from running_lab(tmp_path_factory, nodes=NODES)


@pytest.mark.parametrize("tool", ["pcs", "crmsh"])
@pytest.mark.parametrize("exercise_id", [e.id for e in load_all()])
def test_catalogue_red_solve_green(catalogue_lab: None, exercise_id: str, tool: str) -> None:
    red_solve_green(exercise_id, tool)


def test_fencing_with_swapped_map_fails(catalogue_lab: None) -> None:
    """A near miss only a real fence reveals: the host map sends node1 and node2 to each other's
    VM. The device is started and 'covers' every node, yet fencing node2 resets node1."""
    from tests.test_vm_e2e import PREFIX, lab

    started = lab("start", "fencing")
    assert started.returncode == 0, started.stderr[-2000:]
    swapped = ";".join([f"node1:{PREFIX}node2", f"node2:{PREFIX}node1"]
                       + [f"node{i}:{PREFIX}node{i}" for i in range(3, NODES + 1)])
    # One string: the remote shell would otherwise split the map at its semicolons.
    made = lab("ssh", "node1", "--", f"sudo pcs stonith create xvm fence_xvm pcmk_host_map='{swapped}' "
               "timeout=120 pcmk_reboot_timeout=180 && sudo pcs property set stonith-enabled=true", timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    checked = lab("check", "fencing", "--format", "json", timeout=900)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    import json

    outcomes = {o["id"]: o for o in json.loads(checked.stdout)["checks"]}
    assert outcomes["fences"]["passed"] is False
    assert "node1" in outcomes["fences"]["message"], outcomes["fences"]["message"]
