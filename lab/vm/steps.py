"""Lab commands as data: an ordered list of named Steps and the one place that runs them.

A Step says what it is (name), whether it is already true (done: the mark recorded in the lab's
state, or a look at the lab itself), how to make it true (run) and, where it has one, how to take
back a half-done try (undo). run_steps skips what is done, records each step as it finishes (in
the state file, atomically: an interrupted run continues from the first step not done), writes
"step X start/end" to the command log, and turns a failure into a StepFailed that names the step,
the node and the command where they are known, and the log file.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from lab.core.errors import LabError
from lab.transport import log
from lab.vm.labstate import Lab, StepName, command_line, current_name

LOG_NAME = "commands.log"  # in the lab's folder: `lab log` shows it


class Context(Protocol):
    """What every step gets: the lab it works on (its state records the marks)."""

    lab: Lab


C = TypeVar("C", bound=Context)


@dataclass(frozen=True)
class Step(Generic[C]):
    """One named step of a lab command.

    mark: the state's record of it (StepName); a step without a mark is not recorded and decides
    by `done` alone (or always runs). done: overrides the mark as the test of "already true".
    where: the node (or "lab", "host") it works on, for the log and the error."""

    name: str
    run: Callable[[C], None]
    mark: StepName | None = None
    done: Callable[[C], bool] | None = None
    undo: Callable[[C], None] | None = None
    where: str = "lab"

    def is_done(self, ctx: C) -> bool:
        if self.done is not None:
            return self.done(ctx)
        return self.mark is not None and ctx.lab.done(self.mark)


_NODE_PREFIX = re.compile(r"^(node[0-9]+): ")
_COMMAND = re.compile(r"^(?:node[0-9]+: )?(.+?) failed \(exit -?[0-9]+\)")


class StepFailed(LabError):
    """A step of a lab command failed: which one, on which node, which command, and where the
    command log is. The message is the cause's; the CLI phrases the rest."""

    def __init__(self, sequence: str, step: str, cause: BaseException, *, node: str | None,
                 command: str | None) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.sequence, self.step, self.cause = sequence, step, cause
        self.node, self.command = node, command
        self.log_path = log.current()
        self.exit_code = cause.exit_code if isinstance(cause, LabError) else 1


def _blame(step: Step, cause: BaseException) -> tuple[str | None, str | None]:
    """The node and the command of a failure: the cause's own (node/command attributes), else
    read from the 'NODE: WHAT failed (exit N)' of provision.run_root, else the step's node."""
    text = str(cause)
    node = getattr(cause, "node", None)
    command = getattr(cause, "command", None)
    if node is None:
        match = _NODE_PREFIX.match(text)
        node = match.group(1) if match else (step.where if step.where not in ("lab", "host") else None)
    if command is None:
        match = _COMMAND.match(text)
        command = match.group(1) if match else None
    return node, command


def run_steps(sequence: str, steps: Sequence[Step[C]], ctx: C) -> None:
    """Run STEPS in order on CTX: skip the done ones, record each as it ends, undo and raise
    StepFailed on a failure (an interruption, Ctrl-C or SIGTERM, is raised as it is: a rerun
    continues)."""
    for step in steps:
        if step.is_done(ctx):
            # A recorded mark: done by an earlier run; a predicate alone: nothing to do this time.
            why = "already done" if step.mark is not None else "nothing to do"
            log.note(step.where, f"{sequence}: step {step.name}: {why}")
            continue
        log.note(step.where, f"{sequence}: step {step.name} start")
        timer = log.Timer()
        try:
            step.run(ctx)
        except Exception as exc:
            log.note(step.where, f"{sequence}: step {step.name} failed after {timer.seconds():.1f} s: {exc}")
            _undo(sequence, step, ctx)
            if isinstance(exc, StepFailed):  # a nested sequence (reset runs start) named it already
                raise
            node, command = _blame(step, exc)
            raise StepFailed(sequence, step.name, exc, node=node, command=command) from exc
        except BaseException:
            log.note(step.where, f"{sequence}: step {step.name} interrupted after {timer.seconds():.1f} s")
            raise
        if step.mark is not None:
            ctx.lab.mark(step.mark)
        log.note(step.where, f"{sequence}: step {step.name} end ({timer.seconds():.1f} s)")


def _undo(sequence: str, step: Step[C], ctx: C) -> None:
    if step.undo is None:
        return
    log.note(step.where, f"{sequence}: step {step.name}: undo")
    try:
        step.undo(ctx)
    except LabError as exc:  # the step's own failure is the one to report
        log.note(step.where, f"{sequence}: step {step.name}: undo failed: {exc}")


# --- one command at a time per lab, and its log ----------------------------------

def command_log(lab: Lab) -> Path:
    """The lab's command log (lab/transport/log.py writes it)."""
    return lab.dir / LOG_NAME


def mutating(create: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a command that changes the lab under the lab's lock (Lab.locked), logging every
    command it runs to the lab's command log: a second one waits a bounded time, then fails naming
    the holder. `create`: `lab up` makes the folder to lock it (and removes it again if it failed
    before anything but the lock and the log was there)."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            name = signature.bind_partial(*args, **kwargs).arguments.get("name") or current_name()
            lab = Lab(name)
            fresh = create and not lab.dir.exists()
            with lab.locked(create=create), contextlib.ExitStack() as stack:
                if lab.dir.is_dir():
                    stack.enter_context(log.logging_to(command_log(lab)))
                    if lab.password_file.exists():
                        lab.password()  # registers the hacluster password: never in the log
                    log.note("lab", f"{command_line()} (pid {os.getpid()}): {fn.__name__}")
                try:
                    return fn(*args, **kwargs)
                except BaseException:
                    if fresh and lab.dir.is_dir() and set(os.listdir(lab.dir)) <= {"lock", LOG_NAME}:
                        shutil.rmtree(lab.dir, ignore_errors=True)
                    raise
        return run
    return wrap
