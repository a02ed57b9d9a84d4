"""One lock per lab: a command that changes a lab holds LABDIR/lock (flock) for its whole run.

A second one waits a bounded time, saying so once, then fails naming the holder (its command
line, pid and start time are written into the lock file). Readers never lock: the state file is
replaced atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lab.core.errors import LabError, UsageError
from lab.transport.retry import GaveUp, retry

DEFAULT_LOCK_WAIT = 30.0  # s a mutating command waits for another one on the same lab
_held: dict[str, list[Any]] = {}  # lock path -> [fd, depth]: re-entry in one process (reset -> start)
_held_guard = threading.Lock()


class _Held(Exception):
    """The lock is held (or was replaced meanwhile): a failed try of the lock wait."""


class LabBusy(LabError):
    """Another `lab` command holds the lab's lock."""


def lock_wait() -> float:
    raw = os.environ.get("LAB_LOCK_WAIT", "").strip()
    if not raw:
        return DEFAULT_LOCK_WAIT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:  # also rejects nan
        raise UsageError(f"LAB_LOCK_WAIT must be 0..86400 seconds, not '{raw[:20]}'")
    return value


def command_line() -> str:
    """This process's `lab` command as the lock's holder is shown to others."""
    words = [w for w in sys.argv[1:] if w.isprintable()][:6]
    return " ".join(["lab", *words])[:120]


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text()[:4096])
        return f"'{info['command']}' (pid {int(info['pid'])}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another lab command"



class Locking:
    """The lock of a lab folder (mixed into labstate.Lab, which gives name, dir and lock_file)."""

    name: str
    dir: Path

    @property
    def lock_file(self) -> Path:
        return self.dir / "lock"

    @contextlib.contextmanager
    def locked(self, *, create: bool = False, wait: float | None = None,
               say: Callable[[str], None] | None = None) -> Iterator[bool]:
        """Hold the lab's lock (flock on LABDIR/lock) while a command changes the lab.

        Another holder: wait up to `wait` s (LAB_LOCK_WAIT, default 30) saying so once, then
        LabBusy naming the command that holds it. Re-entrant within a process (reset runs start).
        Without the folder (and create False) there is nothing to lock: yields False. Readers
        never lock: the state file is replaced atomically.
        """
        key = str(self.lock_file)
        with _held_guard:
            entered = key in _held
            if entered:
                _held[key][1] += 1
        if entered:
            try:
                yield True
            finally:
                with _held_guard:
                    _held[key][1] -= 1
            return
        fd = self._acquire(create, lock_wait() if wait is None else wait,
                           say or (lambda text: print(text, file=sys.stderr, flush=True)))
        if fd is None:
            yield False
            return
        with _held_guard:
            _held[key] = [fd, 1]
        try:
            yield True
        finally:
            with _held_guard:
                del _held[key]
            os.close(fd)  # closing the last descriptor releases the flock

    def _acquire(self, create: bool, wait: float, say: Callable[[str], None]) -> int | None:
        """The locked descriptor, waiting through the one retry policy; None without a folder."""
        told: list[str] = []

        def attempt() -> int | None:
            if create:
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                return None  # no lab folder (or destroyed meanwhile): nothing to lock
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _holder(self.lock_file)
                if not told and wait > 0:
                    say(f"lab '{self.name}' is busy with {holder}: waiting up to {wait:.0f} s for it to end")
                told[:] = [holder]
                raise _Held(holder) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the folder was removed (lab destroy) while we waited: look again
                os.close(fd)
                raise _Held("a lab destroy that removed the folder")
            info = {"command": command_line(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            return fd

        try:
            return retry(attempt, what=f"lab '{self.name}': its lock", within=wait, every=0.2, retry_on=(_Held,))
        except GaveUp:
            holder = told[0] if told else "another lab command"
            raise LabBusy(f"lab '{self.name}' is busy: {holder} holds its lock; try again when "
                          f"it has ended (LAB_LOCK_WAIT=SECONDS waits longer)") from None
