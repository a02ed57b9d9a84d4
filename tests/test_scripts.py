"""The shell that runs on nodes (lab/scripts) is shellcheck-clean and renders with its parameters."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.transport import scripts

SCRIPTS = Path(__file__).resolve().parent.parent / "lab" / "scripts"


def _all() -> list[Path]:
    return sorted(SCRIPTS.rglob("*.sh"))


def test_shellcheck_is_installed() -> None:
    assert shutil.which("shellcheck"), "shellcheck is installed by .ci/host-deps.sh"


@pytest.mark.parametrize("path", _all(), ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_script_is_shellcheck_clean(path: Path) -> None:
    run = subprocess.run(["shellcheck", "--shell=bash", "--severity=style", "-x", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_render_quotes_parameters() -> None:
    text = scripts.assignments({"NAME": "it's $(bad)", "NODES": ["node1", "node2"]})
    out = subprocess.run(["bash", "-c", text + 'printf "%s|%s" "$NAME" "$NODES"'], capture_output=True, text=True)
    assert out.stdout == "it's $(bad)|node1 node2"
    with pytest.raises(ValueError):
        scripts.assignments({"lower": "x"})
