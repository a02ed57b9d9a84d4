"""Progress lines on stderr: one line per node and step, with the time since the command began."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Thread-safe: provisioning threads of several nodes report at once."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.monotonic()
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, who: str, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            print(f"[{self.elapsed():6.1f}s] {who:<6} {text}", file=self.stream, flush=True)

    @contextmanager
    def step(self, who: str, text: str) -> Iterator[None]:
        """Report a step's start and its duration when done (or that it failed)."""
        began = time.monotonic()
        self.say(who, f"{text} ...")
        try:
            yield
        except BaseException:
            self.say(who, f"{text}: failed after {time.monotonic() - began:.1f} s")
            raise
        self.say(who, f"{text}: done in {time.monotonic() - began:.1f} s")
