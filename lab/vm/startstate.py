"""`lab start EX`, `lab reset` and `lab solve EX`: revert to the exercise's baseline snapshot and
build its start state (host fixtures, commands, faults) as declared steps, or revert to the start
state cached by an earlier start (startcache); apply a reference solution."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from lab.core.errors import LabError, UsageError
from lab.core.progress import Progress
from lab.engine.exercises import Exercise, load
from lab.transport.ssh import SSHNode
from lab.vm import faults as faultlib
from lab.vm import fixtures, provision, startcache, virt
from lab.vm.commands import context, run_commands
from lab.vm.labstate import Lab, StepName, current_lab
from lab.vm.network import NoSecondNetwork, has_second_network, needs_second_network
from lab.vm.nodes import close, connect_all, sudo, sync_clocks
from lab.vm.steps import Step, mutating, run_steps

SNAP_INSTALLED = "installed"
SNAP_CLUSTER = "cluster"
_SNAPSHOT_STEP = {SNAP_INSTALLED: StepName.INSTALLED_SNAPSHOT, SNAP_CLUSTER: StepName.CLUSTER_SNAPSHOT}


class TooFewNodes(UsageError):
    """The exercise needs more nodes than the lab has (the lab is made again with more)."""

    def __init__(self, exercise: str, needs: int, has: int) -> None:
        super().__init__(f"{exercise} needs {needs} nodes; this lab has {has}")
        self.exercise, self.needs, self.has = exercise, needs, has


class TooManyNodes(UsageError):
    """The exercise works only on a smaller lab (corosync's two_node mode: exactly 2 nodes)."""

    def __init__(self, exercise: str, at_most: int, has: int) -> None:
        super().__init__(f"{exercise} works on at most {at_most} nodes; this lab has {has}")
        self.exercise, self.at_most, self.has = exercise, at_most, has


class NoBaseline(UsageError):
    """The exercise's baseline snapshot is not made yet (lab up did not finish)."""

    def __init__(self, baseline: str) -> None:
        super().__init__(f"the lab has no '{baseline}' snapshot yet: run 'lab up' to finish it")
        self.baseline = baseline


class NoExercise(UsageError):
    """lab reset before any lab start."""

    def __init__(self) -> None:
        super().__init__("no exercise started yet: 'lab start EXERCISE'")


@dataclass(frozen=True)
class StartTimes:
    revert: float
    healthy: float
    total: float
    cached: bool = False  # from the cached start state (startcache)


@dataclass
class StartRun:
    """What the steps of `lab start` share: the lab, the exercise, its faults, the connections."""

    lab: Lab
    progress: Progress
    exercise: Exercise
    faults: list[faultlib.Fault]
    began: float = field(default_factory=time.monotonic)
    nodes: dict[str, SSHNode] = field(default_factory=dict)
    reverted: float = 0.0
    healthy: float = 0.0
    cache: startcache.Plan | None = None

    @property
    def on_cluster(self) -> bool:
        return self.exercise.start.baseline == SNAP_CLUSTER

    @property
    def first(self) -> SSHNode:
        return self.nodes[self.lab.node_names[0]]

    def domains(self) -> list[str]:
        return [self.lab.domain_name(n) for n in self.lab.node_names]


def _revert_to(run: StartRun, snapshot: str, what: str) -> None:
    with run.progress.step("lab", f"revert every node to {what}"):
        virt.revert(run.domains(), snapshot)
    run.reverted = time.monotonic() - run.began
    run.lab.state["exercise"] = run.exercise.id
    run.lab.save()


def _revert(run: StartRun) -> None:
    _revert_to(run, run.exercise.start.baseline, f"'{run.exercise.start.baseline}'")


def _connect(run: StartRun, then: dict[str, tuple[str, str]] | None = None) -> None:
    """Every node connected (as root where lab up allowed it) and its clock set, THEN's command
    in the same round trip (see sync_clocks)."""
    run.nodes = connect_all(run.lab, as_root=True)
    sync_clocks(run.lab, run.nodes, then=then)
    run.healthy = time.monotonic() - run.began


def _healthy(run: StartRun) -> None:
    with run.progress.step(run.first.name, "cluster healthy (all online, quorate)", limit=300):
        provision.run_root(run.first, provision.wait_healthy_script(len(run.nodes), settle=False), "health")
    run.healthy = time.monotonic() - run.began


def _commands(run: StartRun) -> None:
    with run.progress.step(run.first.name, "start state commands"):
        run_commands(run.nodes, run.first.name, run.exercise.start.commands, context(run.lab),
                     f"start state of {run.exercise.id}")


def _revert_cached(run: StartRun) -> None:
    assert run.cache is not None and run.cache.name is not None
    _revert_to(run, run.cache.name, f"the cached start state of {run.exercise.id} (taken {run.cache.taken_text})")


def _connect_and_answer(run: StartRun) -> None:
    """After a revert to a snapshot taken settled: the clocks, and a cheap look that it came up
    (every node answered SSH and, on a cluster baseline, pacemaker answers on the node the faults
    left alone), in one round trip per node: no commands, no waits."""
    node = settle_node(run.lab, run.faults)
    answer = {node: ("cluster answers (crm_mon)", "crm_mon -1 >/dev/null")} if run.on_cluster else {}
    with run.progress.step(node, "clocks set, cluster answers (crm_mon)" if answer else "clocks set", limit=60):
        _connect(run, answer)


# Such a snapshot is a cached start state, or a baseline that is the start state itself (lab up
# takes 'cluster' healthy and settled: build_cluster waits for both; 'installed' has no cluster).
_AS_REVERTED: list[Step[StartRun]] = [Step("connect, set clocks, state answers", _connect_and_answer)]
CACHED_STEPS: list[Step[StartRun]] = [Step("revert to the cached start state", _revert_cached), *_AS_REVERTED]
BASELINE_STEPS: list[Step[StartRun]] = [Step("revert", _revert), *_AS_REVERTED]

def _host_fixtures(run: StartRun) -> None:
    fixtures.apply(run.lab, run.exercise.start.fixtures, run.nodes, run.progress)


START_STEPS: list[Step[StartRun]] = [
    Step("revert", _revert),
    Step("connect and set clocks", _connect),
    Step("cluster healthy", _healthy, done=lambda r: not r.on_cluster),
    Step("host fixtures", _host_fixtures, done=lambda r: not r.exercise.start.fixtures),
    Step("start state commands", _commands, done=lambda r: not r.exercise.start.commands),
    Step("faults", lambda r: apply_faults(r.lab, r.faults, r.nodes, r.progress), done=lambda r: not r.faults),
    Step("faults took effect", lambda r: settle_after_faults(r.lab, r.faults, r.nodes, r.progress),
         done=lambda r: not r.on_cluster),
]


def is_baseline_with_host_fixtures(exercise: Exercise, faults: Sequence[faultlib.Fault]) -> bool:
    """The start state is a baseline snapshot as lab up took it plus host fixtures that a snapshot
    cannot hold (the SBD disk): nothing in the cluster is built, so it needs no waits beyond the
    baseline's own (a fixture outside the cluster: a disk, a watchdog module)."""
    start = exercise.start
    return bool(start.fixtures) and not (start.commands or faults) and \
        not set(start.fixtures) <= fixtures.RESTORABLE


def _ready_as_reverted(run: StartRun, steps: list[Step[StartRun]], what: str) -> bool:
    """A settled snapshot's state without building it; False (after saying why) when it did not
    come up: the caller builds it step by step."""
    try:
        run_steps("lab start", steps, run)
    except LabError as exc:
        run.progress.say("lab", f"{what} did not come up ({exc}): building the start state")
        close(run.nodes)
        run.nodes = {}
        return False
    return True


def _from_cache(run: StartRun) -> bool:
    """The start state from its snapshot; False when it did not come up (then it is forgotten)."""
    assert run.cache is not None
    # Outside the steps below: a host that cannot start fence_virtd now (its port taken) is the
    # user's error to fix, not a reason to drop a good snapshot and build it all again.
    fixtures.restore_host(run.lab, run.exercise.start.fixtures, run.progress)
    if not _ready_as_reverted(run, CACHED_STEPS, "the cached start state"):
        startcache.forget(run.lab, run.cache, run.domains())
        return False
    startcache.used(run.lab, run.cache)
    return True


def _build(run: StartRun) -> bool:
    """The start state built step by step, then cached for the next start; whether it was."""
    assert run.cache is not None
    run_steps("lab start", START_STEPS, run)
    if not startcache.take(run.lab, run.cache, run.domains(), run.progress):
        return False
    sync_clocks(run.lab, run.nodes)  # the guests' clocks stood still while they were paused
    return True


@mutating()
def start(exercise_id: str, progress: Progress | None = None, *, fresh: bool = False) -> StartTimes:
    """Start EXERCISE: from its cached start state when every node has it (unless FRESH), else
    built from the baseline and cached."""
    progress = progress or Progress()
    lab = current_lab()
    exercise = load(exercise_id)
    if exercise.start.min_nodes > len(lab.node_names):
        raise TooFewNodes(exercise.id, exercise.start.min_nodes, len(lab.node_names))
    if not exercise.start.fits(len(lab.node_names)):
        raise TooManyNodes(exercise.id, exercise.start.max_nodes or 0, len(lab.node_names))
    if not has_second_network(lab) and needs_second_network(exercise):
        raise NoSecondNetwork(lab.name)  # before the revert: the lab is left as it is
    faults = faultlib.resolve(exercise.start.faults, lab.node_names)
    baseline = exercise.start.baseline
    if not lab.done(_SNAPSHOT_STEP.get(baseline, f"{baseline}_snapshot")):
        raise NoBaseline(baseline)
    run = StartRun(lab, progress, exercise, faults)
    run.cache = startcache.plan(lab, exercise, faults, run.domains(), fresh=fresh)
    try:
        cached = False
        if not fresh and startcache.is_baseline_itself(exercise, faults) and \
                _ready_as_reverted(run, BASELINE_STEPS, f"the baseline '{baseline}'"):
            how = f" (the baseline '{baseline}', healthy and settled as lab up left it)"
        elif not fresh and is_baseline_with_host_fixtures(exercise, faults) and \
                _ready_as_reverted(run, BASELINE_STEPS, f"the baseline '{baseline}'"):
            _host_fixtures(run)
            how = f" (the baseline '{baseline}' as lab up left it, and {', '.join(exercise.start.fixtures)})"
        elif run.cache.hit and _from_cache(run):
            cached = True
            how = f" from the cached start state (taken {run.cache.taken_text})"
        else:
            how = " (built, and cached for the next start)" if _build(run) else ""
    finally:
        close(run.nodes)
    total = time.monotonic() - run.began
    progress.say("lab", f"{exercise.id} is ready in {total:.1f} s{how}: 'lab show {exercise.id}', "
                        f"'lab ssh node1', then 'lab check {exercise.id}'")
    return StartTimes(run.reverted, run.healthy, total, cached)


def settle_node(lab: Lab, faults: Sequence[faultlib.Fault]) -> str:
    """The first node no fault touched (the first node when every one is touched)."""
    faulted = {f.node for f in faults}
    return next((n for n in lab.node_names if n not in faulted), lab.node_names[0])


def settle_after_faults(lab: Lab, faults: Sequence[faultlib.Fault], nodes: dict[str, SSHNode],
                        progress: Progress) -> None:
    """Wait, on a node no fault touched, until the nodes a fault takes out are seen offline and
    the scheduler has nothing left to do: a start state is ready only once its faults took effect."""
    settle_on = settle_node(lab, faults)
    gone = sorted({f.node for f in faults if faultlib.REGISTRY[f.kind].takes_node_out})
    if gone:
        with progress.step(settle_on, f"{', '.join(gone)} seen offline", limit=90):
            provision.run_root(nodes[settle_on], provision.wait_offline_script(gone), "fault effect")
    with progress.step(settle_on, "cluster settled (crm_resource --wait)", limit=130):
        nodes[settle_on].run(f"{sudo(nodes[settle_on])}crm_resource --wait --timeout=120s", timeout=130)


def apply_faults(lab: Lab, faults: Sequence[faultlib.Fault], nodes: dict[str, SSHNode],
                 progress: Progress) -> None:
    for fault in faults:
        kind = faultlib.REGISTRY[fault.kind]
        with progress.step(fault.node, f"fault {fault.kind}"):
            if kind.script is not None:
                provision.run_root(nodes[fault.node], kind.script(fault.params), f"fault {fault.kind}")
            elif kind.domain_action == "kill":
                virt.destroy_domains([lab.domain_name(fault.node)])
            elif kind.domain_action == "pause":
                virt.suspend([lab.domain_name(fault.node)])


@mutating()
def reset(progress: Progress | None = None, *, fresh: bool = False) -> StartTimes:
    lab = current_lab()
    if not lab.state.get("exercise"):
        raise NoExercise
    return start(lab.state["exercise"], progress, fresh=fresh)


@dataclass
class SolveRun:
    """What the steps of `lab solve` share."""

    lab: Lab
    progress: Progress
    exercise: Exercise
    commands: Sequence[str]
    nodes: dict[str, SSHNode] = field(default_factory=dict)

    @property
    def first(self) -> SSHNode:
        return self.nodes[self.lab.node_names[0]]


def _solution(run: SolveRun) -> None:
    run.nodes = connect_all(run.lab)
    with run.progress.step(run.first.name, f"reference solution of {run.exercise.id}"):
        run_commands(run.nodes, run.first.name, run.commands, context(run.lab), f"solution of {run.exercise.id}")


def _settled(run: SolveRun) -> None:
    with run.progress.step(run.first.name, "cluster healthy and settled", limit=600):
        # Every node pacemaker lists, not every lab node: node-remove's solution leaves one out.
        provision.run_root(run.first, provision.wait_healthy_script(None), "settle")


SOLVE_STEPS: list[Step[SolveRun]] = [Step("reference solution", _solution), Step("cluster settled", _settled)]


@mutating()
def solve(exercise_id: str, progress: Progress | None = None, tool: str = "pcs",
          params: dict[str, str] | None = None) -> None:
    """Apply a reference solution on node1 (pcs: in the installed pcs's syntax), then wait.
    PARAMS: the exercise's parameter values (an exam's drawn task), else its defaults."""
    progress = progress or Progress()
    lab = current_lab()
    exercise: Exercise = load(exercise_id).with_params(params or {})
    commands = exercise.solution_crmsh if tool == "crmsh" else exercise.solution_for(lab.state.get("pcs_version"))
    run = SolveRun(lab, progress, exercise, commands)
    try:
        run_steps("lab solve", SOLVE_STEPS, run)
    finally:
        close(run.nodes)
