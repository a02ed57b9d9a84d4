"""The one retry policy: try until a deadline, wait between tries, stop at once when the lab
command is being stopped (Ctrl-C, SIGTERM) or the error says trying again cannot help.

Six hand-written loops had six stop rules (one said "no SSH after 600 s" when it had waited
120 s); this one always reports what it waited for, for how long it really waited, how many tries
it made and the last problem, and logs each failed try to the command log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from lab.core.errors import LabError
from lab.transport import log
from lab.transport.runner import stopping

T = TypeVar("T")
LOG_EVERY = 30.0  # s between command-log lines about the same wait (the first and last always)


class GaveUp(LabError):
    """The deadline passed (or the command was stopped) before a try succeeded."""

    def __init__(self, message: str, *, what: str, waited: float, tries: int, last: str) -> None:
        super().__init__(message)
        self.what, self.waited, self.tries, self.last = what, waited, tries, last


def retry(attempt: Callable[[], T], *, what: str, within: float, every: float = 1.0,
          retry_on: tuple[type[BaseException], ...] = (Exception,),
          final: Callable[[BaseException], bool] = lambda _exc: False,
          where: str = "host") -> T:
    """Call ATTEMPT until it returns, for at most WITHIN seconds, EVERY seconds apart.

    An exception in RETRY_ON is a failed try (unless FINAL says it is hopeless: then it is
    raised at once); any other exception propagates. On the deadline GaveUp says
    "WHAT: gave up after N s (K tries): last problem"."""
    began = time.monotonic()
    deadline = began + within
    tries = 0
    logged_at = 0.0
    while True:
        tries += 1
        try:
            return attempt()
        except retry_on as exc:
            if final(exc):
                raise
            last = str(exc) or type(exc).__name__
        waited = time.monotonic() - began
        if tries == 1 or waited - logged_at >= LOG_EVERY:  # a 0.5 s poll would log twice a second
            log.note(where, f"{what}: try {tries} failed after {waited:.0f} s: {last}")
            logged_at = waited
        if stopping():
            log.note(where, f"{what}: stopped after {waited:.0f} s ({tries} tries): {last}")
            raise GaveUp(f"{what}: stopped while waiting ({waited:.0f} s, {tries} tries): {last}",
                         what=what, waited=waited, tries=tries, last=last)
        if time.monotonic() + every > deadline:
            log.note(where, f"{what}: gave up after {waited:.0f} s ({tries} tries): {last}")
            raise GaveUp(f"{what}: gave up after {waited:.0f} s ({tries} tries): {last}",
                         what=what, waited=waited, tries=tries, last=last)
        time.sleep(every)
