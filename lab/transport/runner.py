"""One way to run local commands: argv lists, C locale, never raising on exit codes, and no orphans.

Callers name the exit codes they care about (e.g. crm_mon 102 = not connected),
in the manner of pcs's own runner.

Every child starts in a session of its own and is recorded in a registry until it and
everything it started (vagrant spawns ruby, ssh, qemu-img ...) are gone: a timeout, an
exception, Ctrl-C or SIGTERM ends the whole session (SIGTERM, a short grace, SIGKILL).
A child of its own session does not get the terminal's Ctrl-C, so the lab decides when
it ends; a failed `lab up` once left its `vagrant up` running for 13 minutes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from lab.core.errors import LabError
from lab.transport import log

GRACE = 3.0  # seconds between SIGTERM and SIGKILL of a child's session


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


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP as an exception: the same unwinding (finally blocks, cleanup) as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupted(LabError):
    """A child was asked for while the lab command is being stopped."""


# --- the registry of live children -------------------------------------------

_lock = threading.RLock()  # re-entrant: the signal handler runs in the main thread, maybe inside a `with`
_live: dict[int, subprocess.Popen] = {}  # session id (= the child's pid) -> the child
_closing = False  # set by a signal: no new children from now on
_defer = 0  # >0 while the main thread is between fork and registration (see spawn)
_pending: BaseException | None = None  # a signal that arrived meanwhile
_cleaning = False  # a second Ctrl-C during cleanup must not abort the cleanup


def stopping() -> bool:
    """True once Ctrl-C/SIGTERM arrived: loops in worker threads (waiting for a boot, retrying SSH)
    can end early instead of holding the command's exit until their own deadline."""
    return _closing


def live_sessions() -> list[int]:
    """Session ids of the children still recorded (tests and cleanup)."""
    with _lock:
        return list(_live)


def session_members(sid: int) -> list[int]:
    """Every live process of session SID (read from /proc: a grandchild may have made its own group)."""
    members = []
    want = str(sid).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # after "pid (comm) ": state ppid pgrp session ...
        fields = stat[stat.rfind(b")") + 2:].split(None, 4)
        if len(fields) > 3 and fields[3] == want and fields[0] != b"Z":
            members.append(int(name))
    return members


def _signal_session(sid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signum)
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _exited(proc: subprocess.Popen) -> bool:
    """Has the child exited? Without reaping it (WNOWAIT), so its pid stays ours."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped meanwhile by a thread waiting on it
        return True


def end_sessions(procs: Sequence[subprocess.Popen], grace: float = GRACE) -> None:
    """End every process of these children's sessions: SIGTERM, up to GRACE s, then SIGKILL.

    The leaders are reaped only after the last signal: while a leader is unreaped its pid
    (= the session id) cannot be reused by an unrelated process.
    """
    # Only sessions with something left in them are signalled (the usual end: nothing left).
    sids = [p.pid for p in procs if not _exited(p) or session_members(p.pid)]
    for sid in sids:
        _signal_session(sid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if all(_exited(p) for p in procs) and not any(session_members(sid) for sid in sids):
            break
        time.sleep(0.05)
    for sid in sids:
        if not all(_exited(p) for p in procs if p.pid == sid) or session_members(sid):
            _signal_session(sid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    with _lock:
        for proc in procs:
            _live.pop(proc.pid, None)


def kill_all(grace: float = GRACE) -> None:
    """End every recorded child and all it started (the CLI's exit, a signal, atexit)."""
    global _cleaning
    with _lock:
        procs = list(_live.values())
    if not procs:
        return
    _cleaning = True
    try:
        end_sessions(procs, grace)
    finally:
        _cleaning = False


atexit.register(kill_all)


def spawn(argv: Sequence[str], **popen: Any) -> subprocess.Popen:
    """Popen in a session of its own, recorded until finish() (or a signal) ends it."""
    global _defer, _pending
    main = threading.current_thread() is threading.main_thread()
    if main:
        _defer += 1  # a signal now would leave a child that nobody recorded: defer it
    try:
        if _closing:
            raise Interrupted("the lab command is being stopped")
        proc = subprocess.Popen(list(argv), start_new_session=True, **popen)
        with _lock:
            _live[proc.pid] = proc
            late = _closing
        if late:  # another thread is already cleaning up
            end_sessions([proc])
            raise Interrupted("the lab command is being stopped")
        return proc
    finally:
        if main:
            _defer -= 1
            if _defer == 0 and _pending is not None:
                exc, _pending = _pending, None
                _shutdown()
                raise exc


def finish(proc: subprocess.Popen, grace: float = GRACE) -> None:
    """The child is done with (exited, timed out, or its caller failed): end what is left of its session."""
    end_sessions([proc], 0.5 if _exited(proc) else grace)


def _shutdown() -> None:
    global _closing
    _closing = True
    kill_all()


def _on_signal(signum: int, _frame: object) -> None:
    global _pending
    exc: BaseException = KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
    if _cleaning:
        return  # already ending every child; let that finish
    if _defer:
        _pending = exc
        return
    _shutdown()
    raise exc


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def owned_children() -> Iterator[None]:
    """For a command's whole run: SIGINT, SIGTERM and SIGHUP end every child first, then unwind as
    KeyboardInterrupt (Terminated for SIGTERM/SIGHUP); on any exit no child is left."""
    global _closing
    installed: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _SIGNALS:
            installed[signum] = signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        try:
            kill_all()
        finally:
            for signum, previous in installed.items():
                signal.signal(signum, previous)
            _closing = False


# --- running a command to its end --------------------------------------------

def run_owned(argv: Sequence[str], *, input_data: str | bytes | None = None, timeout: float | None = None,
              stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
              stderr: int | IO[Any] | None = None, **popen: Any) -> tuple[int, Any, Any]:
    """Run argv to its end as an owned child: (exit code, stdout, stderr).

    Whatever the child started is ended with it; a timeout ends the child's whole session
    and raises subprocess.TimeoutExpired (with the output so far); any other exception
    (KeyboardInterrupt too) ends the session before it propagates.
    """
    if input_data is not None:
        stdin = subprocess.PIPE
    proc = spawn(argv, stdin=stdin, stdout=stdout, stderr=stderr, **popen)
    try:
        try:
            out, err = proc.communicate(input_data, timeout=timeout)
        except subprocess.TimeoutExpired:
            end_sessions([proc])
            out, err = b"", b""
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
                out, err = proc.communicate(timeout=5)
            raise subprocess.TimeoutExpired(list(argv), timeout or 0, output=out, stderr=err) from None
        return proc.returncode, out, err
    finally:
        finish(proc)


def run_local(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 120,
    label: str | None = None,
) -> CommandResult:
    """Run argv locally with LC_ALL=C; a missing binary is exit 127, a timeout 124.

    Recorded in the command log as LABEL (what it is for) or else as the command itself."""
    full_env = dict(os.environ)
    full_env["LC_ALL"] = "C"
    if env:
        full_env.update(env)
    command = " ".join(argv)
    timer = log.Timer()
    try:
        rc, out, err = run_owned(argv, env=full_env, input_data=input_text, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, timeout=timeout,
                                 stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        result = CommandResult(command, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired as exc:
        result = CommandResult(command, 124, _text(exc.stdout), f"timed out after {timeout:g} s")
    else:
        result = CommandResult(command, rc, _text(out), _text(err))
    log.record("host", label or command, result.returncode, timer.seconds(), output_tail=result.tail())
    return result


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def require_ok(result: CommandResult, what: str) -> CommandResult:
    """Raise a LabError naming the command, its exit code and its last output lines."""
    if not result.ok:
        raise LabError(
            f"{what} failed (exit {result.returncode}): {result.command}: {result.tail(3)}"
        )
    return result
