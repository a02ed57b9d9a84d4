"""Read a TOML file of ours (exercises, rosters), turning every failure into one error type."""

from __future__ import annotations

import tomllib
from pathlib import Path

from lab.core.errors import LabError


def read_toml(path: Path, what: str, error: type[LabError]) -> dict:
    """The parsed file, or `error` naming what the file is and why it cannot be used."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path.name} is not valid TOML: {exc}") from None
