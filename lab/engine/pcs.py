"""Which pcs syntax a node speaks: the provisioning and the reference solutions both ask."""

from __future__ import annotations

import re


def pcs_generation(version: str | None) -> str:
    """'0.9' or '0.10+': the two pcs command syntaxes in the wild (unknown: the current one)."""
    if not version:
        return "0.10+"
    match = re.match(r"(\d+)\.(\d+)", version)
    if match and (int(match.group(1)), int(match.group(2))) < (0, 10):
        return "0.9"
    return "0.10+"


def is_pcs010(version: str | None) -> bool:
    """pcs 0.10.x, where a few commands differ from 0.11 (sbd's --device= became device=)."""
    return bool(version and re.match(r"0\.10\.", version))
