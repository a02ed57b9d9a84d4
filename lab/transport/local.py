"""Runners on this host: plain commands, and commands against a saved CIB (the offline cluster).

A saved-CIB runner runs on this host with CIB_file set to a copy, so pacemaker's tools (cibadmin,
crm_mon, crm) read and write that file, and `pcs` becomes `pcs -f FILE`: the same command text
serves a live node and a file. `crm_resource --wait` (let the cluster settle) becomes one
scheduler run on the file.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.transport.runner import CommandResult, run_local

# Put in front of every command a saved-CIB runner runs (shell functions shadow the tools).
CIB_FILE_PREAMBLE = (
    'pcs() { command pcs -f "$CIB_file" "$@"; }\n'
    'crm_resource() {\n'
    '  if [ "$1" = --wait ]; then\n'
    '    crm_simulate -x "$CIB_file" -S -q 1 -O "$CIB_file.settled" >/dev/null && mv "$CIB_file.settled" "$CIB_file"\n'
    '  else command crm_resource "$@"; fi\n'
    '}\n'
)


def _argv(command: str | Sequence[str], preamble: str = "") -> list[str]:
    """A shell string runs under sh -c (after PREAMBLE); an argv list as it is, unless a preamble
    must apply to it too."""
    if isinstance(command, str):
        return ["sh", "-c", preamble + command]
    if preamble:
        return ["sh", "-c", preamble + shlex.join(command)]
    return list(command)


class LocalRunner:
    """Commands on this host (children owned and ended with the lab, see lab.transport.runner)."""

    def __init__(self, name: str = "host", *, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.env = dict(env or {})

    def run(self, command: str | Sequence[str], *, timeout: float = 120.0,
            input_text: str | None = None, label: str | None = None) -> CommandResult:
        return run_local(_argv(command), env=self.env, input_text=input_text, timeout=timeout,
                         label=label or (command if isinstance(command, str) else shlex.join(command)))

    def close(self) -> None:
        """Nothing is held between commands."""


class CibFileRunner(LocalRunner):
    """Commands on this host against the CIB file PATH (CIB_file=PATH, pcs as pcs -f PATH)."""

    def __init__(self, path: Path, name: str = "cib-file") -> None:
        super().__init__(name, env={"CIB_file": str(path), "CIB_shadow": ""})
        self.path = path

    def run(self, command: str | Sequence[str], *, timeout: float = 120.0,
            input_text: str | None = None, label: str | None = None) -> CommandResult:
        text = command if isinstance(command, str) else shlex.join(command)
        return run_local(_argv(command, CIB_FILE_PREAMBLE), env=self.env, input_text=input_text,
                         timeout=timeout, label=label or f"[{self.path.name}] {text}")
