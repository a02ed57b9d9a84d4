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
    def step(self, who: str, text: str, *, limit: float | None = None,
             every: float = 60.0) -> Iterator[None]:
        """Report a step's start and its duration when done (or that it failed).

        A step with a LIMIT (the longest it may wait, in s) says every EVERY s that it is still
        waiting and how long it may still wait: under software emulation a boot or a first pcsd
        start takes minutes, and silence looks like a hang.
        """
        began = time.monotonic()
        self.say(who, f"{text} ..." + (f" (waits up to {limit:.0f} s)" if limit else ""))
        stop = threading.Event()
        ticker = None
        if limit and not self.quiet:
            def tick() -> None:
                while not stop.wait(every):
                    spent = time.monotonic() - began
                    self.say(who, f"{text}: still waiting ({spent:.0f} s so far, "
                                  f"at most {max(0.0, limit - spent):.0f} s more)")
            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        try:
            yield
        except BaseException:
            self.say(who, f"{text}: failed after {time.monotonic() - began:.1f} s")
            raise
        finally:
            stop.set()
            if ticker is not None:
                ticker.join()
        self.say(who, f"{text}: done in {time.monotonic() - began:.1f} s")
