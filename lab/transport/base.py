"""The one protocol for "run a command somewhere": on this host, on a node over SSH, or on this
host against a saved CIB. Gathering, probes and the offline cluster take any of them.

There used to be three shapes (facts.Runner, probes.Connection and OfflineCluster.run's own);
every implementation now answers the same call with a CommandResult and records it in the
command log (lab.transport.log) under its LABEL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from lab.transport.runner import CommandResult

__all__ = ["CommandResult", "Runner"]


@runtime_checkable
class Runner(Protocol):
    """Somewhere commands run: `name` is where (a node's name, "host"), used in the log."""

    name: str

    def run(self, command: str | Sequence[str], *, timeout: float = 120.0,
            input_text: str | None = None, label: str | None = None) -> CommandResult:
        """Run a shell string (or an argv list); never raises on a non-zero exit status."""
        ...

    def close(self) -> None:
        """Let go of what the runner holds (a connection); running again may reopen it."""
        ...
