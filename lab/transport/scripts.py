"""The shell that runs on nodes lives in lab/scripts/*.sh, as files shellcheck can read.

A script takes its parameters as UPPERCASE shell variables: `render` puts one quoted assignment
per parameter in front of the file's text (shellcheck treats UPPERCASE names as set by the
environment), and scripts name the ones they need with `: "${NAME:?}"`. Functions shared by
several scripts live in lab/scripts/lib/*.sh and are put in front with `libs=`. The result is
sent on stdin (never in argv), so a secret parameter is not visible in the node's process list.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from importlib import resources

from lab.core.errors import LabError

_PARAM = re.compile(r"^[A-Z][A-Z0-9_]*\Z")


@cache
def source(name: str) -> str:
    """The text of lab/scripts/NAME (e.g. "provision/pcsd.sh"), read from the installed package."""
    path = resources.files("lab").joinpath("scripts", *name.split("/"))
    if not path.is_file():
        raise LabError(f"the script {name} is missing from the installed package (lab/scripts)")
    return path.read_text()


def assignments(params: dict[str, object]) -> str:
    """`NAME='value'` lines; a list or tuple becomes a space-separated word list."""
    lines = []
    for name, value in params.items():
        if not _PARAM.match(name):
            raise ValueError(f"script parameter {name!r} must be an UPPERCASE shell name")
        text = " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
        lines.append(f"{name}={shlex.quote(text)}\n")
    return "".join(lines)


def render(name: str, *, libs: tuple[str, ...] = (), **params: object) -> str:
    """The script NAME with its parameters set and the LIBS it uses in front."""
    parts = [assignments(params)]
    parts += [source(f"lib/{lib}") for lib in libs]
    parts.append(source(name))
    return "".join(part if part.endswith("\n") or not part else part + "\n" for part in parts)
