"""Where a lab's exam lives on the host (its folder and exam.json): paths only, so that every
`lab` command can ask "is an exam running here?" without loading the catalogue."""

from __future__ import annotations

from pathlib import Path

from lab.vm.labstate import Lab, current_name


def exam_dir(lab_dir: Path) -> Path:
    return lab_dir / "exam"


def state_path(lab_dir: Path) -> Path:
    return exam_dir(lab_dir) / "exam.json"


def current_state_file() -> Path | None:
    """The current lab's exam.json when there is one (running or not), else None; never raises."""
    try:
        path = state_path(Lab(current_name()).dir)
    except Exception:  # noqa: BLE001 - a bad lab name: no exam to look for
        return None
    return path if path.exists() else None
