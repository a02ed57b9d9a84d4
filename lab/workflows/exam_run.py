"""The exam on the VM lab: build one start state for every task, prove it red, run the timer's
watcher, and submit (freeze evidence, grade, reboot every node with boot-id proof, grade again).

The steps reuse the lab lifecycle's own (revert, clocks, commands, faults, settle) under the
lab's lock. Scoring and the results files are lab.workflows.examscore's; the state and timer lab.workflows.exam's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lab.core.errors import LabError, NodeError, UsageError
from lab.core.progress import Progress
from lab.engine.exercises import Exercise
from lab.engine.grading import grade, sections_for
from lab.gather.facts import Facts, gather_live
from lab.gather.probes import BOOT_ID, probe_names, reboot_probe, run_probes, without_probes
from lab.transport import runner
from lab.transport.retry import GaveUp, retry
from lab.transport.runner import CommandResult
from lab.transport.ssh import SSHNode
from lab.vm import commands, fixtures, provision, startstate, steps, virt
from lab.vm import faults as faultlib
from lab.vm import nodes as vm_nodes
from lab.vm.labstate import Lab, current_lab, current_name
from lab.vm.network import has_second_network
from lab.workflows import exam, examfile, examscore, examstate, history
from lab.workflows.gradebook import read_key

SETTLE_TIMEOUT = 300
WATCHER_END_WAIT = 15.0  # s for the watcher to end after SIGTERM (it ends its ssh children first)


# --- gathering with the answers kept -------------------------------------------------------

class _Recorder:
    """A runner that keeps the node's raw answer: that text is the frozen evidence."""

    def __init__(self, node: SSHNode) -> None:
        self.node = node
        self.name = node.name
        self.answer: CommandResult | None = None

    def run(self, command: str | Sequence[str], *, timeout: float = 120.0,
            input_text: str | None = None, label: str | None = None) -> CommandResult:
        self.answer = self.node.run(command, timeout=timeout, input_text=input_text, label=label)
        return self.answer

    def close(self) -> None:
        self.node.close()


def _boot_ids(lab: Lab) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in lab.node_names:
        try:
            with vm_nodes.lab_node(lab, name, 5.0) as node:
                result = node.run(BOOT_ID, timeout=20)
            out[name] = result.stdout.strip() if result.ok else None
        except LabError:
            out[name] = None
    return out


def freeze(lab: Lab, exercises: Sequence[Exercise], folder: Path,
           say: Callable[[str], None]) -> tuple[Facts, dict[str, Any]]:
    """Gather every node once (the union of the tasks' sections), keep the answers and their
    hashes in FOLDER, and return the facts judged from them."""
    sections = frozenset().union(*(sections_for(e) for e in exercises))
    boots = _boot_ids(lab)
    nodes = []
    for name in lab.node_names:
        nodes.append(_Recorder(vm_nodes.lab_node(lab, name, 10.0)))
    try:
        # crm_mon from the node itself: the frozen answer is judged again later (lab exam
        # report, another host) and must hold every section, in one round trip per node.
        facts = gather_live(nodes, lab.node_names, sections=without_probes(sections), crm_mon_here=False)
    finally:
        for recorder in nodes:
            recorder.node.close()
    raw = {r.name: (r.answer.stdout if r.answer is not None and facts.nodes[r.name].reachable else None)
           for r in nodes}
    errors = {name: n.error for name, n in facts.nodes.items()}
    meta = examscore.write_evidence(folder, raw, errors, boots, time.time())
    wanted = probe_names(sections)  # the ACL probe: destructive ones never reach an exam
    if wanted and any(n.reachable for n in facts.nodes.values()):
        probed = run_probes(wanted, lab.node_names, lambda n: vm_nodes.lab_node(lab, n, 10.0), say)
        facts = dataclasses.replace(facts, probes=MappingProxyType(probed))
    return facts, meta


# --- lab exam start -----------------------------------------------------------------------------

def _archive(lab: Lab) -> None:
    """A finished exam's folder moves to exams/ (kept), so the new one starts empty."""
    folder = examfile.exam_dir(lab.dir)
    if folder.exists():
        target = lab.dir / "exams" / time.strftime("%Y%m%d-%H%M%S")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(target))


@steps.mutating()  # the lab's own lock, as every lifecycle step
def start(plan: exam.Plan, *, minutes: float, sign_key: Path | None = None,
          progress: Progress | None = None) -> examstate.ExamState:
    """Build one lab state for every task, prove every task red, then start the timer."""
    progress = progress or Progress()
    lab = current_lab()
    old = examstate.read_state(lab.dir)
    if old is not None and old.status != "submitted":
        raise UsageError("an exam is already running on this lab: 'lab exam submit' first")
    exercises = plan.exercises()
    if tuple(lab.node_names[:len(plan.nodes)]) != tuple(plan.nodes) or len(plan.nodes) != len(lab.node_names):
        raise UsageError(f"the plan was drawn for nodes {', '.join(plan.nodes)}; this lab has "
                         f"{', '.join(lab.node_names)}")
    bad = [f"{e.id}: {why}" for e in exercises if (why := exam.exam_eligible(
        e, len(lab.node_names), has_second_network(lab)))]
    bad += exam.conflicts(exercises, lab.node_names)
    if bad:
        raise UsageError(f"the plan cannot be one lab state: {'; '.join(bad)}")
    if not lab.done(f"{startstate.SNAP_CLUSTER}_snapshot"):
        raise UsageError("the lab has no 'cluster' snapshot yet: run 'lab up' to finish it")
    _archive(lab)
    combined = exam.combined_start(exercises)
    faults = faultlib.resolve(combined.faults, lab.node_names)
    began = time.monotonic()
    domains = [lab.domain_name(n) for n in lab.node_names]
    with progress.step("lab", f"revert every node to '{startstate.SNAP_CLUSTER}'"):
        virt.revert(domains, startstate.SNAP_CLUSTER)
    lab.state["exercise"] = None
    lab.save()
    nodes = vm_nodes.connect_all(lab)
    try:
        vm_nodes.sync_clocks(lab, nodes)
        first = nodes[lab.node_names[0]]
        with progress.step(first.name, "cluster healthy (all online, quorate)", limit=300):
            provision.run_root(first, provision.wait_healthy_script(len(domains), settle=False), "health")
        fixtures.apply(lab, combined.fixtures, nodes, progress)  # before the commands that use them
        if combined.commands:
            what = f"start state of {len(exercises)} tasks ({len(combined.commands)} commands)"
            with progress.step(first.name, what):
                commands.run_commands(nodes, first.name, combined.commands, commands.context(lab),
                                 "exam start state")
        startstate.apply_faults(lab, faults, nodes, progress)
        startstate.settle_after_faults(lab, faults, nodes, progress)
    finally:
        vm_nodes.close(nodes)
    folder = examfile.exam_dir(lab.dir)
    with progress.step("lab", "baseline: every task grades red"):
        facts, _meta = freeze(lab, exercises, folder / "evidence" / "baseline", lambda t: progress.say("lab", t))
        green = [f"{i}. {e.id}" for i, e in enumerate(exercises, 1) if grade(e, facts).passed]
    if green:
        raise LabError(f"exam build error: task(s) {', '.join(green)} grade green at start (a task solved "
                       "before the exam is a broken start state, not a gift); 'lab exam start' again draws anew")
    state = examstate.ExamState(plan=plan, minutes=minutes, started_wall=time.time(),
                           started_monotonic=time.monotonic(), host_boot=examstate.host_boot_id(),
                           build_seconds=round(time.monotonic() - began, 1),
                           sign_key=str(sign_key.resolve()) if sign_key else None)
    examstate.write_state(lab.dir, state)
    state.watcher_pid = start_watcher(lab)
    examstate.write_state(lab.dir, state)
    progress.say("lab", f"exam started: {len(exercises)} tasks, {minutes:g} minutes (built in "
                        f"{state.build_seconds:g} s); 'lab exam status', 'lab exam review' after submit")
    return state


# --- the deadline watcher ------------------------------------------------------------------------

def start_watcher(lab: Lab) -> int:
    """A host process of its own session (it outlives this command) that submits at the deadline."""
    log = (examfile.exam_dir(lab.dir) / "watcher.log").open("a")
    env = dict(os.environ, LAB_NAME=lab.name)
    proc = subprocess.Popen([sys.executable, "-m", "lab.workflows.exam_run", "watch"], env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    return proc.pid


def end_watcher(lab_dir: Path) -> int | None:
    """End the exam's watcher (submit and destroy do), by its recorded pid, never by name, and
    wait (bounded) until it is gone, so it cannot submit into a lab being destroyed. Returns
    the pid it ended, None when no watcher was running."""
    try:
        state = examstate.read_state(lab_dir)
    except UsageError:
        return None
    pid = state.watcher_pid if state is not None else None
    if not pid or pid == os.getpid() or not (examstate.pid_alive(pid) and _is_watcher(pid)):
        return None
    os.kill(pid, signal.SIGTERM)

    def gone() -> None:
        if examstate.pid_alive(pid) and _is_watcher(pid):
            raise LabError(f"pid {pid} still runs")
    try:
        retry(gone, what=f"the exam's watcher (pid {pid}) to end", within=WATCHER_END_WAIT, every=0.2,
              retry_on=(LabError,))
    except GaveUp:  # stuck (a node that does not answer): it must not outlive the exam
        if _is_watcher(pid):
            os.kill(pid, signal.SIGKILL)
    return pid


def _is_watcher(pid: int) -> bool:
    try:
        return b"lab.workflows.exam_run" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def watch() -> int:
    """The watcher's loop: sleep until the deadline (re-reading the state), then submit."""
    lab_dir = Lab(current_name()).dir
    while True:
        state = examstate.read_state(lab_dir)
        if state is None or state.status != "running":
            return 0
        left = state.seconds_left()
        if left <= 0:
            print(f"{time.ctime()}: deadline passed, submitting", flush=True)
            for _attempt in range(30):  # a lab command may hold the lab's lock: wait for it
                try:
                    submit(key=_key(state), by_watcher=True)
                    return 0
                except LabError as exc:
                    print(f"{time.ctime()}: submit failed, retrying: {exc}", flush=True)
                    time.sleep(10)
            return 1
        time.sleep(min(max(left, 0.5), 20.0))


def _key(state: examstate.ExamState) -> bytes | None:
    return read_key(Path(state.sign_key)) if state.sign_key else None


# --- lab exam submit -----------------------------------------------------------------------------

def _restart_cluster(lab: Lab, progress: Progress) -> dict[str, Any]:
    """After the reboot: the lab's baseline does not enable the cluster at boot (that is the
    cluster-enable exercise), so the examiner starts it where it did not come up by itself, and
    records where; then waits (bounded) for every node online and the cluster settled."""
    started: list[str] = []
    began = time.monotonic()
    nodes = vm_nodes.connect_all(lab, deadline_s=180)
    try:
        for name, node in nodes.items():
            result = node.run("sudo -n sh -c 'systemctl is-active -q pacemaker || { pcs cluster start "
                              ">/dev/null 2>&1 && echo started; }'", timeout=180)
            if "started" in result.stdout:
                started.append(name)
        first = nodes[lab.node_names[0]]
        healthy = True
        try:
            with progress.step(first.name, "cluster back after the reboot (bounded)", limit=SETTLE_TIMEOUT):
                provision.run_root(first, provision.wait_healthy_script(None, timeout=SETTLE_TIMEOUT),
                                   "settle", timeout=SETTLE_TIMEOUT + 30)
        except NodeError as exc:
            healthy = False
            progress.say(first.name, f"the cluster did not settle: {exc}")
    finally:
        vm_nodes.close(nodes)
    return {"started_by_examiner": started, "settled": healthy, "seconds": round(time.monotonic() - began, 1)}


@steps.mutating()

def _freeze_and_judge(lab: Lab, exercises: Sequence[Exercise], folder: Path,
                      say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """Freeze every node's evidence into FOLDER and judge it: (judgement, evidence meta). A lab that
    cannot be frozen is judged as ERROR with the reason, and gives no meta."""
    try:
        facts, meta = freeze(lab, exercises, folder, say)
        return examscore.judge_phase(exercises, facts), meta
    except LabError as exc:
        return examscore.judge_phase(exercises, None, str(exc)), {}


def submit(*, key: bytes | None = None, pass_mark: float = examscore.DEFAULT_PASS_MARK,
           progress: Progress | None = None, by_watcher: bool = False) -> dict[str, Any]:
    """Freeze and grade, reboot every node (boot ids prove it), wait for the cluster, grade again."""
    progress = progress or Progress()
    lab = current_lab()
    state = examstate.read_state(lab.dir)
    if state is None or state.status == "submitted":
        raise UsageError("no exam is running: 'lab exam start'")
    left = state.seconds_left()
    state.status = "submitting"
    examstate.write_state(lab.dir, state)
    if not by_watcher:
        end_watcher(lab.dir)
    exercises = state.plan.exercises()
    folder = examfile.exam_dir(lab.dir)
    say: Callable[[str], None] = lambda text: progress.say("lab", text)  # noqa: E731
    times: dict[str, Any] = {"started": state.started_wall, "submitted": time.time(),
                             "used_seconds": round(state.minutes * 60 - max(left, 0), 1),
                             "build_seconds": state.build_seconds, "by_deadline": by_watcher}
    t0 = time.monotonic()
    with progress.step("lab", "freeze the evidence of every node and grade it"):
        pre, pre_meta = _freeze_and_judge(lab, exercises, folder / "evidence" / "pre", say)
    times["freeze_grade_seconds"] = round(time.monotonic() - t0, 1)
    before = {n: (pre_meta.get("nodes") or {}).get(n, {}).get("boot_id") for n in lab.node_names}
    reboot: dict[str, Any] = {}
    post = None
    if any(e.persistent for e in exercises):
        t1 = time.monotonic()
        with progress.step("lab", "persistence phase: reboot every node", limit=600):
            result = reboot_probe(lab.node_names, lambda n: vm_nodes.lab_node(lab, n, 5.0))
        times["reboot_seconds"] = round(time.monotonic() - t1, 1)
        after = _boot_ids(lab)
        rebooted = sorted(n for n in lab.node_names if after.get(n) and after[n] != before.get(n))
        reboot = {"error": result.error, "rebooted": rebooted, "boot_ids_before": before, "boot_ids_after": after}
        if result.error or len(rebooted) != len(lab.node_names):
            missing = sorted(set(lab.node_names) - set(rebooted))
            reboot["error"] = result.error or f"no proof of a reboot (same or no boot id) on {', '.join(missing)}"
            reboot["summary"] = f"not proven: {reboot['error']}"
            post = examscore.judge_phase(exercises, None, f"persistence phase: {reboot['error']}")
        else:
            t2 = time.monotonic()
            reboot.update(_restart_cluster(lab, progress))
            times["settle_seconds"] = round(time.monotonic() - t2, 1)
            started = reboot["started_by_examiner"]
            reboot["summary"] = (f"every node rebooted (new boot id on {', '.join(rebooted)}); "
                                 + (f"cluster started by the examiner on {', '.join(started)}; " if started else "")
                                 + ("settled" if reboot["settled"] else "the cluster did not come back in time"))
            t3 = time.monotonic()
            with progress.step("lab", "grade again after the reboot"):
                post, _ = _freeze_and_judge(lab, exercises, folder / "evidence" / "post", say)
            times["post_grade_seconds"] = round(time.monotonic() - t3, 1)
        times["persistence_seconds"] = round(time.monotonic() - t1, 1)  # reboot, proof, settle, grade
    tasks = examscore.task_entries(exercises, [t.weight for t in state.plan.tasks], pre, post)
    evidence = {p: {n: e.get("sha256") for n, e in (_meta_of(folder / "evidence" / p).get("nodes") or {}).items()}
                for p in ("baseline", "pre", "post") if (folder / "evidence" / p / "meta.json").exists()}
    doc = examscore.results_document(plan=state.plan.to_json(), tasks=tasks, pass_mark=pass_mark,
                                     practice=state.practice, times=times,
                                     boot_ids={"before": before, "after": reboot.get("boot_ids_after")},
                                     evidence=evidence, reboot=reboot)
    charts, not_recorded = history.after_exam(doc)
    if not_recorded:
        progress.say("lab", not_recorded)
    examscore.write_results(folder, doc, key if key is not None else _key(state), charts)
    state.status = "submitted"
    state.results = str(folder / "results.json")
    examstate.write_state(lab.dir, state)
    summary = doc["summary"]
    progress.say("lab", f"exam submitted: {summary['percent']} % ({summary['status']}); results in {folder}")
    return doc


def _meta_of(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return {}


def _watch_main() -> int:
    """The watcher process: ended by SIGTERM when the exam is submitted by hand or the lab is
    destroyed, which is its ordinary end (a line in its log, not a traceback)."""
    try:
        with runner.owned_children():
            return watch()
    except runner.Terminated as exc:
        print(f"{time.ctime()}: ended by {exc}", flush=True)
        return 0


if __name__ == "__main__" and sys.argv[1:] == ["watch"]:
    sys.exit(_watch_main())
