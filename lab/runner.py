"""One way to run local commands: argv lists, C locale, never raising on exit codes.

Callers name the exit codes they care about (e.g. crm_mon 102 = not connected),
in the manner of pcs's own runner.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lab.errors import LabError


@dataclass(frozen=True)
class CommandResult:
    """What a command did: the command as run, its exit code and its output."""

    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 5) -> str:
        """The last lines of output, for error messages."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


def run_local(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 120,
) -> CommandResult:
    """Run argv locally with LC_ALL=C; a missing binary is exit 127, a timeout 124."""
    full_env = dict(os.environ)
    full_env["LC_ALL"] = "C"
    if env:
        full_env.update(env)
    command = " ".join(argv)
    try:
        proc = subprocess.run(
            list(argv),
            env=full_env,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return CommandResult(command, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return CommandResult(command, 124, out, f"timed out after {timeout:g} s")
    return CommandResult(command, proc.returncode, proc.stdout, proc.stderr)


def require_ok(result: CommandResult, what: str) -> CommandResult:
    """Raise a LabError naming the command, its exit code and its last output lines."""
    if not result.ok:
        raise LabError(
            f"{what} failed (exit {result.returncode}): {result.command}: {result.tail(3)}"
        )
    return result
