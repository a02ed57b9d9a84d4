"""One error family for the core: the CLI turns it into one line on stderr and an exit code."""

from __future__ import annotations


class LabError(Exception):
    """Something failed; the message says what, where, and what to do next."""

    exit_code = 1


class UsageError(LabError):
    """Bad usage or bad input (unknown exercise, malformed file, unreachable lab)."""

    exit_code = 2


class InputError(UsageError):
    """An input file cannot be used: unreadable, malformed, hostile or of the wrong kind."""


class ExerciseSchemaError(UsageError):
    """An exercise data file does not match the exercise schema."""


class PacemakerError(LabError):
    """A pacemaker tool could not answer (missing, crashed, refused the CIB, or printed an
    answer without the part asked for)."""


class NodeError(LabError):
    """A node could not be reached or a command on it failed; NODE and COMMAND (what ran, in
    words) say where, for the step that reports it."""

    def __init__(self, message: str, *, node: str | None = None, command: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.command = command
