"""Where Failover Lab keeps its state: $LAB_HOME, else ~/.local/share/failover-lab."""

from __future__ import annotations

import os
from pathlib import Path


def lab_home() -> Path:
    home = os.environ.get("LAB_HOME")
    if home:
        return Path(home)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "failover-lab"


def project_root() -> Path:
    """Where boxes/ and Vagrantfile.j2 are: lab/data inside an installed wheel (pyproject maps
    them there as package data), else the source checkout this package runs from."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "data"
    if (installed / "Vagrantfile.j2").is_file():
        return installed
    return package.parent
