"""The lab's command log: every command run on this host or on a node, where, for how long, and
its exit status, one line each (a failure adds its last output lines).

A failed `lab up` used to leave only its last progress line to debug from; now the command that
failed and everything before it are in `<lab dir>/commands.log` (`lab log` shows it). One log is
open per process (a lab command works on one lab); nodes are worked on in threads, so writes are
serialised. Secret values registered with `redact` never reach the file.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

MAX_COMMAND_CHARS = 300  # a command longer than this is shortened in the log
TAIL_LINES = 5
MAX_LOG_BYTES = 4 << 20  # past this the log is rotated once to commands.log.1

_lock = threading.Lock()
_path: Path | None = None
_secrets: set[str] = set()


def redact(*secrets: str) -> None:
    """Never write these values (passwords, keys) to the log; they appear as '***'."""
    with _lock:
        _secrets.update(s for s in secrets if s and len(s) >= 4)


def _clean(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


def _short(command: str) -> str:
    lines = command.strip().splitlines() or [""]
    first = lines[0] if len(lines) == 1 else f"{lines[0]} … ({len(lines)} lines)"
    return first if len(first) <= MAX_COMMAND_CHARS else first[:MAX_COMMAND_CHARS] + " …"


def _write(text: str) -> None:
    with _lock:
        if _path is None:
            return
        text = _clean(text)
        with contextlib.suppress(OSError):
            if _path.exists() and _path.stat().st_size > MAX_LOG_BYTES:
                _path.replace(_path.with_name(_path.name + ".1"))
            fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(text)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())


def record(where: str, command: str, status: int, seconds: float, *, output_tail: str = "") -> None:
    """One finished command: where it ran, its exit status, its duration, what it was."""
    line = f"{_stamp()} {where:<8} exit={status:<3} {seconds:7.2f}s  {_short(command)}\n"
    if status != 0 and output_tail.strip():
        line += "".join(f"    | {row}\n" for row in output_tail.strip().splitlines()[-TAIL_LINES:])
    _write(line)


def note(where: str, text: str) -> None:
    """A line of context (the step that starts, what a script is for)."""
    _write(f"{_stamp()} {where:<8} --- {_short(text)}\n")


def current() -> Path | None:
    """The file commands are logged to now, if any."""
    return _path


@contextlib.contextmanager
def logging_to(path: Path) -> Iterator[Path]:
    """Log every command run in this block to PATH (created 0600, appended to)."""
    global _path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        previous, _path = _path, path
    try:
        yield path
    finally:
        with _lock:
            _path = previous


class Timer:
    """Seconds since creation: the duration a command record carries."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.start
