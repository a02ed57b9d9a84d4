"""The whole catalogue live on a 3-node lab: every exercise red at start, green after its
reference solution. Long (about a minute per exercise and tool under software emulation): run it
with `make test-catalogue` (pytest -m catalogue); the default run covers the seed set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.exercises import load_all
from tests.test_vm_e2e import red_solve_green, running_lab

pytestmark = pytest.mark.catalogue


@pytest.fixture(scope="module")
def catalogue_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from running_lab(tmp_path_factory, nodes=3)


@pytest.mark.parametrize("tool", ["pcs", "crmsh"])
@pytest.mark.parametrize("exercise_id", [e.id for e in load_all()])
def test_catalogue_red_solve_green(catalogue_lab: None, exercise_id: str, tool: str) -> None:
    red_solve_green(exercise_id, tool)
