"""The start state cache: `lab start EX` built once is a snapshot of every node, and the next
start (or `lab reset`) of EX with the same key reverts to it in seconds.

A start snapshot is taken like the baselines (every domain paused, checkpointed with its memory,
resumed together) and named `start-<exercise>-<8 hex>` from a key: a digest of everything the
built state could depend on, so a snapshot with that name is that state by construction.

- The key: the exercise's id, its whole start spec and parameter values, its commands as they run
  here (placeholders filled, the password left out) and its faults' scripts; the lab's settings
  (nodes, box, memory, networks, pcs version: its state file less the steps and the current
  exercise); a digest of the node scripts (lab/scripts/**); and the creation time of the baseline
  snapshot on every node, so a new `lab up` baseline leaves every start snapshot unused.
- Cached only when the whole start state is inside the guests' RAM and disks, or is a host
  fixture started again before the revert (fence_virtd; see why_not_cacheable): the SBD disk,
  faults that act on a domain, states that depend on the wall clock and states that are just the
  baseline are built every time.
- At most LAB_START_CACHE (default 4; 0: none) per lab, the least recently used evicted first
  (use times in <lab dir>/start-cache.json; a snapshot the file does not know counts by its
  libvirt creation time); none is taken when the lab's storage pool is short of space.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from lab.core.errors import LabError, UsageError
from lab.core.progress import Progress
from lab.engine.commands import render_command
from lab.engine.exercises import Exercise
from lab.transport import log
from lab.vm import faults as faultlib
from lab.vm import fixtures, virt
from lab.vm.commands import context
from lab.vm.labstate import Lab, write_atomic

PREFIX = "start-"
DEFAULT_KEEP = 4
RECORD_NAME = "start-cache.json"
FORMAT = 1  # bump when the way a start state is built changes in a way the key does not see
MIB = 1 << 20
# Room a start snapshot needs per node beyond the guest's RAM (disk blocks written since), and
# what the pool keeps free for the lab's disks to grow: below that, no snapshot is taken.
PER_NODE_EXTRA_MIB = 128
POOL_RESERVE_MIB = 2048
_MAX_RECORD_BYTES = 1 << 16
# Start commands whose meaning depends on the wall clock: a cached state would be read later,
# when "now" has moved (a constraint lifetime, a date rule, an expiring failure).
_CLOCK_WORDS = re.compile(r"\b(lifetime|date|date-spec|date_spec|in_range|failure-timeout|failure_timeout|"
                          r"expires?|cluster-recheck-interval)\b", re.I)
# Fixtures a snapshot cannot hold: the SBD disk is a raw file hot-plugged into the domains (an
# internal snapshot holds neither it nor a domain that has it). fence-virtd is cached: its guest
# half (the key) is in the snapshot, its host half (the lab's fence_virtd, with the lab's key,
# made once) is started again before the revert (fixtures.restore_host); the key's digest is
# in the snapshot's key, so a new key leaves the snapshot unused.
UNCACHED_FIXTURES = {"sbd-disk": "the shared disk is hot-plugged into the domains"}


def keep_limit() -> int:
    """LAB_START_CACHE: how many start snapshots a lab keeps (default 4; 0: no cache)."""
    raw = os.environ.get("LAB_START_CACHE", "").strip()
    if not raw:
        return DEFAULT_KEEP
    if not raw.isdigit() or int(raw) > 100:
        raise UsageError(f"LAB_START_CACHE must be a number of start snapshots 0..100, not '{raw[:20]}'")
    return int(raw)


# --- what may be cached ----------------------------------------------------------

def is_baseline_itself(exercise: Exercise, faults: Sequence[faultlib.Fault]) -> bool:
    """The start state is a baseline snapshot as lab up took it: nothing is built on top."""
    start = exercise.start
    return not (start.fixtures or start.commands or faults)


def why_not_cacheable(exercise: Exercise, faults: Sequence[faultlib.Fault]) -> str | None:
    """Why this start state is built every time (None: it may be cached)."""
    start = exercise.start
    if is_baseline_itself(exercise, faults):
        return "the start state is the baseline itself"
    for name in start.fixtures:
        if name not in fixtures.RESTORABLE:
            return f"host fixture {name}: {UNCACHED_FIXTURES.get(name, 'not inside the guests')}"
    for fault in faults:
        action = faultlib.REGISTRY[fault.kind].domain_action
        if action is not None:
            return f"fault {fault.kind} acts on the domain ({action}), which a snapshot does not hold"
    for command in start.commands:
        match = _CLOCK_WORDS.search(command)
        if match:
            return f"a start command depends on the clock ({match.group(0)})"
    return None


# --- the key -----------------------------------------------------------------------

@cache
def scripts_digest() -> str:
    """A digest of every node script (lab/scripts/**): what runs on the nodes to build states."""
    digest = hashlib.sha256()
    root = resources.files("lab").joinpath("scripts")
    stack = [(root, "")]
    files = []
    while stack:
        node, path = stack.pop()
        for child in node.iterdir():
            if child.is_dir():
                stack.append((child, f"{path}{child.name}/"))
            elif child.name.endswith(".sh"):
                files.append((f"{path}{child.name}", child))
    for path, child in sorted(files, key=lambda item: item[0]):
        digest.update(path.encode() + b"\0" + child.read_bytes() + b"\0")
    return digest.hexdigest()


def lab_facts(lab: Lab) -> dict[str, Any]:
    """The lab's settings a built state depends on: its state file less what changes as it runs."""
    return {k: v for k, v in lab.state.to_json().items() if k not in ("steps", "exercise")}


def key_material(lab: Lab, exercise: Exercise, faults: Sequence[faultlib.Fault],
                 baseline_times: Mapping[str, int]) -> dict[str, Any]:
    """Everything the built start state could depend on (the key is its digest)."""
    values = context(lab)
    values["password"] = "{password}"  # the lab's own, the same for all its states: not in a digest
    start = exercise.start
    fault_scripts = []
    for fault in faults:
        kind = faultlib.REGISTRY[fault.kind]
        fault_scripts.append({"kind": fault.kind, "node": fault.node, "params": dict(fault.params),
                              "script": kind.script(fault.params) if kind.script else kind.domain_action})
    return {
        "format": FORMAT, "exercise": exercise.id,
        "start": {"baseline": start.baseline, "fixtures": list(start.fixtures), "commands": list(start.commands),
                  "faults": [dict(f) for f in start.faults], "min_nodes": start.min_nodes,
                  "max_nodes": start.max_nodes},
        "params": dict(exercise.param_values),
        "commands": [render_command(c, values) for c in start.commands],
        "faults": fault_scripts,
        "lab": lab_facts(lab), "nodes": list(lab.node_names),
        "baseline": {"name": start.baseline, "created": dict(sorted(baseline_times.items()))},
        "scripts": scripts_digest(),
        "host": fixtures.host_digest(lab, start.fixtures),
    }


def snapshot_name(exercise_id: str, material: Mapping[str, Any]) -> str:
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return f"{PREFIX}{exercise_id}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def baseline_id(baseline: str, times: Mapping[str, int]) -> str:
    """The identity of a baseline snapshot across the lab's domains (its creation times)."""
    return f"{baseline}:" + ",".join(f"{d}={t}" for d, t in sorted(times.items()))


# --- the record of use ---------------------------------------------------------------

@dataclass
class Entry:
    """One start snapshot: which exercise, when taken, when last used, on which baseline."""

    exercise: str
    taken: float
    used: float
    baseline: str = ""

    @classmethod
    def read(cls, raw: Any) -> Entry | None:
        try:
            return cls(str(raw["exercise"]), float(raw["taken"]), float(raw["used"]), str(raw.get("baseline", "")))
        except (TypeError, KeyError, ValueError):
            return None


def record_path(lab: Lab) -> Path:
    return lab.dir / RECORD_NAME


def load_record(lab: Lab) -> dict[str, Entry]:
    """The use record; a missing or damaged one is empty (it is only a cache's bookkeeping)."""
    try:
        with record_path(lab).open("rb") as handle:
            data = json.loads(handle.read(_MAX_RECORD_BYTES).decode("utf-8"))
        states = data["states"] if isinstance(data, dict) and data.get("version") == 1 else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out = {}
    for name, raw in (states.items() if isinstance(states, dict) else ()):
        entry = Entry.read(raw)
        if entry is not None and isinstance(name, str) and name.startswith(PREFIX):
            out[name] = entry
    return out


def save_record(lab: Lab, record: Mapping[str, Entry]) -> None:
    states = {n: {"exercise": e.exercise, "taken": e.taken, "used": e.used, "baseline": e.baseline}
              for n, e in sorted(record.items())}
    write_atomic(record_path(lab), json.dumps({"version": 1, "states": states}, indent=2) + "\n")


def to_evict(present: Mapping[str, float], record: Mapping[str, Entry], keep: int, *,
             current: Mapping[str, str], adding: str | None = None) -> list[str]:
    """Which start snapshots go so that at most KEEP remain once ADDING (if any) is taken.

    present: every start snapshot on any node, with its libvirt creation time. One made on a
    baseline that is no longer CURRENT (baseline name -> id) goes first; then the least recently
    used (the record's use time, else the creation time) beyond the newest keep (less one for ADDING)."""
    stale, live = [], []
    for name in present:
        if name == adding:
            continue
        entry = record.get(name)
        if entry is not None and entry.baseline:
            base = entry.baseline.split(":", 1)[0]
            if current.get(base) != entry.baseline:
                stale.append(name)
                continue
        live.append(name)
    live.sort(key=lambda n: (record[n].used if n in record else present[n], n), reverse=True)
    room = max(0, keep - (1 if adding else 0))
    return sorted(stale) + live[room:]


# --- one start's plan ---------------------------------------------------------------

@dataclass
class Plan:
    """What the cache has for one `lab start`: the snapshot name its state has (None: not cached,
    `why` says why), whether every node has it (hit) and when it was taken."""

    name: str | None
    exercise: str = ""
    why: str | None = None
    hit: bool = False
    taken: float | None = None
    baseline: str = ""
    current: dict[str, str] = field(default_factory=dict)
    present: dict[str, float] = field(default_factory=dict)

    @property
    def taken_text(self) -> str:
        return taken_text(self.taken)


def taken_text(when: float | None, now: float | None = None) -> str:
    """HH:MM today, else 'Mon DD HH:MM'."""
    if when is None:
        return "at an unknown time"
    stamp, today = time.localtime(when), time.localtime(now if now is not None else time.time())
    same_day = stamp[:3] == today[:3]
    return time.strftime("%H:%M" if same_day else "%b %d %H:%M", stamp)


def _present(times: Mapping[str, Mapping[str, int]]) -> tuple[dict[str, float], set[str]]:
    """Start snapshots on any domain (with the earliest creation time) and those on every one."""
    anywhere: dict[str, float] = {}
    for snaps in times.values():
        for name, created in snaps.items():
            if name.startswith(PREFIX):
                anywhere[name] = min(anywhere.get(name, created), created)
    everywhere = set(anywhere)
    for snaps in times.values():
        everywhere &= set(snaps)
    return anywhere, everywhere


def plan(lab: Lab, exercise: Exercise, faults: Sequence[faultlib.Fault], domains: Sequence[str], *,
         fresh: bool = False) -> Plan:
    """Look the start state up: its key, and whether every node has its snapshot."""
    keep = keep_limit()
    times = virt.snapshot_times(domains)
    anywhere, everywhere = _present(times)
    current = {}
    for base in ("installed", "cluster"):
        if all(base in times[d] for d in domains):
            current[base] = baseline_id(base, {d: times[d][base] for d in domains})
    base = exercise.start.baseline
    why = "LAB_START_CACHE=0" if keep == 0 else why_not_cacheable(exercise, faults)
    if why is None and base not in current:
        why = f"not every node has the '{base}' snapshot"
    if why is not None:
        return Plan(None, exercise.id, why, current=current, present=anywhere)
    try:
        name = snapshot_name(exercise.id, key_material(lab, exercise, faults,
                                                        {d: times[d][base] for d in domains}))
    except LabError as exc:  # the ordinary build says it better
        return Plan(None, exercise.id, f"no key: {exc}", current=current, present=anywhere)
    record = load_record(lab)
    hit = name in everywhere and not fresh
    taken = record[name].taken if name in record else anywhere.get(name)
    return Plan(name, exercise.id, None, hit, taken, current[base], current, anywhere)


def used(lab: Lab, cached: Plan) -> None:
    """Record that a start came from this snapshot (its place in the LRU order)."""
    if cached.name is None:
        return
    record = load_record(lab)
    now = time.time()
    entry = record.get(cached.name) or Entry(cached.exercise, cached.taken or now, now, cached.baseline)
    entry.used = now
    record[cached.name] = entry
    save_record(lab, _known(record, cached.present))


def _known(record: Mapping[str, Entry], present: Iterable[str]) -> dict[str, Entry]:
    names = set(present)
    return {n: e for n, e in record.items() if n in names}


def evict(lab: Lab, cached: Plan, domains: Sequence[str], progress: Progress, *, adding: bool) -> None:
    """Delete the start snapshots beyond the limit (and those of an old baseline)."""
    record = load_record(lab)
    gone = to_evict(cached.present, record, keep_limit(), current=cached.current,
                    adding=cached.name if adding else None)
    for name in gone:
        with progress.step("lab", f"drop the cached start state '{name}' (least recently used)"):
            virt.delete_snapshot(domains, name)
        cached.present.pop(name, None)
    if gone or set(record) - set(cached.present):
        save_record(lab, _known(record, cached.present))


def room_for(lab: Lab, nodes: int) -> tuple[bool, str]:
    """Whether the lab's pool has room for one more start snapshot of every node, and what it has."""
    free = virt.pool_free_bytes(lab.state.pool)
    if free is None:
        return False, f"storage pool '{lab.state.pool}' not found or not active"
    need = (nodes * (lab.state.memory + PER_NODE_EXTRA_MIB) + POOL_RESERVE_MIB) * MIB
    text = f"{free / (1 << 30):.1f} GiB free in storage pool '{lab.state.pool}', {need / (1 << 30):.1f} GiB needed"
    return free >= need, text


def take(lab: Lab, cached: Plan, domains: Sequence[str], progress: Progress) -> bool:
    """After a built start: snapshot every node as this start state (paused together), evicting
    first what the limit leaves no room for. False (and a line saying why) when it is not taken;
    a failure to take it never fails the start."""
    if cached.name is None:
        log.note("lab", f"start state not cached: {cached.why}")
        if cached.present and cached.why == "LAB_START_CACHE=0":
            evict(lab, cached, domains, progress, adding=False)
        return False
    try:
        evict(lab, cached, domains, progress, adding=True)
        enough, space = room_for(lab, len(domains))
        if not enough:
            progress.say("lab", f"start state not cached: {space}")
            return False
        with progress.step("lab", f"cache this start state for the next start: snapshot '{cached.name}' "
                                  f"of every node (paused together)"):
            virt.create_snapshot(domains, cached.name)
    except LabError as exc:
        progress.say("lab", f"start state not cached: {exc}")
        return False
    now = time.time()
    record = load_record(lab)
    record[cached.name] = Entry(cached.exercise, now, now, cached.baseline)
    cached.present[cached.name] = now
    cached.taken = now
    save_record(lab, _known(record, cached.present))
    return True


def forget(lab: Lab, cached: Plan, domains: Sequence[str]) -> None:
    """A cached start state that did not come up: its snapshot goes (the build replaces it)."""
    if cached.name is None:
        return
    try:
        virt.delete_snapshot(domains, cached.name)
    except LabError as exc:
        log.note("lab", f"could not delete {cached.name}: {exc}")
    cached.present.pop(cached.name, None)
    cached.hit = False
    save_record(lab, _known(load_record(lab), cached.present))


def cached_states(lab: Lab) -> list[tuple[str, Entry | None]]:
    """The start snapshots on every node of the lab, most recently used first (lab status, info)."""
    domains = [lab.domain_name(n) for n in lab.node_names]
    anywhere, everywhere = _present(virt.snapshot_times(domains))
    record = load_record(lab)
    names = sorted(everywhere, key=lambda n: record[n].used if n in record else anywhere[n], reverse=True)
    return [(n, record.get(n)) for n in names]
