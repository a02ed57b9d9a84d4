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
    """The source tree (boxes/, Vagrantfile.j2) this package was installed from."""
    return Path(__file__).resolve().parents[2]
