"""This host's processes as tests look for them: by a tag in their command line."""

from __future__ import annotations

from pathlib import Path


def command_lines(tag: str) -> dict[str, str]:
    """pid -> command line (NULs as spaces) of every process whose command line has TAG."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tag in cmdline:
            found[entry.name] = cmdline
    return found
