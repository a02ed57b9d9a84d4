"""The import graph of lab/ runs one way: each subpackage imports only the layers below it.

Read from the source (every import statement, also those inside functions), so a new import
that points upwards fails here before it becomes a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parent.parent / "lab"
# Lowest first. The top-level `checks` package is pure check functions: engine level.
LAYERS = ["core", "transport", "gather", "engine", "vm", "workflows", "cli"]
MAX_LINES = 400


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "checks":
        return "engine"
    if parts[0] != "lab" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "lab":
                found += [(node.lineno, f"lab.{alias.name}") for alias in node.names]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in LAB.rglob("*.py"))


def test_every_module_lives_in_a_layer() -> None:
    loose = [p.name for p in LAB.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}]
    assert not loose, f"modules outside a layer subpackage: {loose}"
    assert sorted(p.name for p in LAB.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(LAYERS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(LAB)))
def test_imports_point_down(path: Path) -> None:
    own = _layer("lab." + ".".join(path.relative_to(LAB).with_suffix("").parts))
    if own is None:  # lab/__init__.py, lab/__main__.py: the entry points, above everything
        own = "cli"
    upward = []
    for line, module in _imports(path):
        target = _layer(module)
        if target and LAYERS.index(target) > LAYERS.index(own):
            upward.append(f"line {line}: {module} ({target} is above {own})")
    assert not upward, "\n".join(upward)


def test_checks_import_only_the_model_and_gathered_facts() -> None:
    for path in (LAB.parent / "checks").glob("*.py"):
        for line, module in _imports(path):
            target = _layer(module)
            assert target in (None, "core", "gather", "engine"), f"{path.name}:{line} imports {module}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(LAB)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(LAB)} has {lines} lines (at most {MAX_LINES})"
