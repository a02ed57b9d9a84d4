"""The start state cache (lab.vm.startcache): its key, what it refuses to cache (decided over the
real catalogue), the LRU eviction, its record, and `lab start` twice, `lab reset`, `--fresh`, a
fallback and `lab destroy` through libvirt's in-process test driver with stand-in nodes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lab.core.progress import Progress
from lab.engine.exercises import load, load_all
from lab.transport.address import NodeAddress
from lab.transport.runner import CommandResult
from lab.vm import faults as faultlib
from lab.vm import fixtures, lifecycle, provision, startcache, startstate, virt
from lab.vm.labstate import Lab

# The catalogue's decisions: every other exercise's start state is cached.
BASELINE_ONLY = {"clone", "cluster-enable", "cluster-setup", "corosync-token", "crm-shadow", "node-attribute",
                 "node-remove", "promotable", "quorum-wait-for-all", "resource-create", "resource-template",
                 "two-node-quorum"}
HOST_FIXTURE = {"sbd"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAB_NAME", "t1")
    monkeypatch.delenv("LAB_START_CACHE", raising=False)
    return tmp_path / "home"


def make_lab(nodes: int = 2, pool: str = "default-pool", **extra: Any) -> Lab:
    lab = Lab("t1")
    lab.state = {"name": "t1", "nodes": nodes, "box": "debian12", "box_name": "failover-lab/debian12",
                 "memory": 768, "cpus": 1, "driver": "qemu", "uri": "test:///default", "pool": pool,
                 "private_cidr": "10.231.42.0/24", "mgmt_cidr": "10.232.42.0/24",
                 "steps": {"installed_snapshot": True, "cluster_snapshot": True}, "pcs_version": "0.11.5", **extra}
    lab.dir.mkdir(parents=True, exist_ok=True)
    lab.ensure_password()
    lab.save()
    return lab


def domains(lab: Lab) -> list[str]:
    return [lab.domain_name(n) for n in lab.node_names]


# --- what is cached ------------------------------------------------------------------

def test_the_catalogues_decisions() -> None:
    decided = {}
    for exercise in load_all():
        faults = faultlib.resolve(exercise.start.faults, ["node1", "node2"])
        decided[exercise.id] = startcache.why_not_cacheable(exercise, faults)
    assert {e for e, why in decided.items() if why == "the start state is the baseline itself"} == BASELINE_ONLY
    assert {e for e, why in decided.items() if why and why.startswith("host fixture")} == HOST_FIXTURE
    cached = {e for e, why in decided.items() if why is None}
    assert cached == set(decided) - BASELINE_ONLY - HOST_FIXTURE
    assert {"resource-cleanup", "troubleshoot-offline", "troubleshoot-link", "troubleshoot-corosync-config",
            "node-add", "resource-update"} <= cached
    assert decided["fencing"] is None and decided["stonith-admin"] is None  # fence_virtd: restored
    assert "hot-plugged" in decided["sbd"]


def test_domain_faults_and_the_clock_are_not_cached() -> None:
    base = load("troubleshoot-offline")
    for kind in ("kill-node", "pause-node"):
        faults = faultlib.resolve([{"kind": kind}], ["node1", "node2"])
        assert "acts on the domain" in (startcache.why_not_cacheable(base, faults) or "")
    for command in ("pcs resource move web node1 lifetime=PT10M",
                    "pcs constraint location web rule date gt 2030-01-01",
                    "pcs resource meta web failure-timeout=60s",
                    "crm_resource --move -r web --lifetime PT5M"):
        exercise = base.__class__(**{**base.__dict__, "start": base.start.__class__(
            "cluster", (command,), ())})
        assert "depends on the clock" in (startcache.why_not_cacheable(exercise, []) or ""), command
    plain = base.__class__(**{**base.__dict__, "start": base.start.__class__(
        "cluster", ("pcs resource defaults update resource-stickiness=100",), ())})
    assert startcache.why_not_cacheable(plain, []) is None  # "update" is not "date"


def test_keep_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_START_CACHE", raising=False)
    assert startcache.keep_limit() == 4
    monkeypatch.setenv("LAB_START_CACHE", "0")
    assert startcache.keep_limit() == 0
    monkeypatch.setenv("LAB_START_CACHE", "-1")
    with pytest.raises(startcache.UsageError, match="LAB_START_CACHE must be"):
        startcache.keep_limit()


# --- the key ----------------------------------------------------------------------------

def _name(lab: Lab, exercise_id: str = "resource-update", times: dict[str, int] | None = None,
          exercise: Any = None) -> str:
    exercise = exercise or load(exercise_id)
    faults = faultlib.resolve(exercise.start.faults, lab.node_names)
    times = times if times is not None else {d: 100 for d in domains(lab)}
    return startcache.snapshot_name(exercise.id, startcache.key_material(lab, exercise, faults, times))


def test_the_key_changes_with_everything_the_state_depends_on(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = make_lab()
    first = _name(lab)
    assert first.startswith("start-resource-update-") and len(first) == len("start-resource-update-") + 8
    assert _name(lab) == first  # stable
    assert _name(Lab.load("t1")) == first  # and the same from the state file
    others = {
        "exercise": _name(lab, "resource-delete"),
        "params": _name(lab, exercise=load("resource-update").with_params({"interval": 45})),
        "baseline": _name(lab, times={d: 101 for d in domains(lab)}),
    }
    exercise = load("resource-update")
    changed = exercise.start.__class__("cluster", (*exercise.start.commands, "true"), ())
    others["commands"] = _name(lab, exercise=exercise.__class__(**{**exercise.__dict__, "start": changed}))
    with monkeypatch.context() as patched:
        patched.setattr(startcache, "scripts_digest", lambda: "0" * 64)
        others["scripts"] = _name(lab)
    for key, value in (("pcs_version", "0.10.8"), ("nodes", 3), ("box", "alma8"), ("memory", 1024)):
        state = {**lab.state.to_json(), key: value}
        state.pop("owned")
        other = Lab("t1", state)
        others[key] = _name(other, times={d: 100 for d in domains(other)})
    assert first not in others.values() and len(set(others.values())) == len(others), others


def test_a_fence_virtd_state_is_keyed_by_the_lab_fence_key(home: Path) -> None:
    """The cached fencing state's guests hold a copy of the lab's fence key: a new key must leave
    the snapshot unused, and the key itself is not in the material."""
    from lab.vm import fencehost

    lab = make_lab()
    first = _name(lab, "stonith-admin")
    key = fencehost.key_file(lab)
    assert key.stat().st_mode & 0o777 == 0o600  # the key was made for the digest, 0600
    assert _name(lab, "stonith-admin") == first
    material = json.dumps(startcache.key_material(lab, load("stonith-admin"), [], {"d": 1}))
    assert key.read_bytes().hex() not in material
    key.write_bytes(b"another key")
    assert _name(lab, "stonith-admin") != first
    assert startcache.key_material(lab, load("resource-update"), [], {"d": 1})["host"] is None


def test_the_key_leaves_the_password_out(home: Path) -> None:
    lab = make_lab()
    exercise = load("resource-update")
    material = startcache.key_material(lab, exercise, [], {"d": 1})
    assert lab.password() not in json.dumps(material)


def test_faults_are_in_the_key(home: Path) -> None:
    lab = make_lab()
    exercise = load("troubleshoot-offline")
    material = startcache.key_material(lab, exercise, faultlib.resolve(exercise.start.faults, lab.node_names),
                                       {"d": 1})
    assert material["faults"][0]["kind"] == "stop-cluster" and material["faults"][0]["node"] == "node2"
    assert material["faults"][0]["script"] == faultlib.REGISTRY["stop-cluster"].script({})  # type: ignore[misc]


def test_scripts_digest_covers_every_node_script() -> None:
    digest = startcache.scripts_digest()
    assert len(digest) == 64 and digest == startcache.scripts_digest()


# --- eviction and the record ---------------------------------------------------------------

def E(exercise: str, used: float, baseline: str = "cluster:d=1") -> startcache.Entry:  # noqa: N802
    return startcache.Entry(exercise, used, used, baseline)


def test_lru_eviction() -> None:
    current = {"cluster": "cluster:d=1", "installed": "installed:d=1"}
    present = {"start-a-1": 10.0, "start-b-1": 20.0, "start-c-1": 30.0, "start-d-1": 40.0, "start-x-1": 5.0}
    record = {"start-a-1": E("a", 100), "start-b-1": E("b", 50), "start-c-1": E("c", 60),
              "start-d-1": E("d", 70, "cluster:d=0")}  # d: made on an old baseline
    # start-x-1 is unknown to the record: its creation time (5) makes it the oldest.
    assert startcache.to_evict(present, record, 4, current=current) == ["start-d-1"]
    assert startcache.to_evict(present, record, 4, current=current, adding="start-e-1") == ["start-d-1", "start-x-1"]
    assert startcache.to_evict(present, record, 2, current=current, adding="start-e-1") == \
        ["start-d-1", "start-c-1", "start-b-1", "start-x-1"]
    # Re-taking one that is there does not count it twice.
    assert startcache.to_evict(present, record, 3, current=current, adding="start-a-1") == ["start-d-1", "start-x-1"]
    assert startcache.to_evict(present, record, 0, current=current) == \
        ["start-d-1", "start-a-1", "start-c-1", "start-b-1", "start-x-1"]


def test_the_record_is_only_bookkeeping(home: Path) -> None:
    lab = make_lab()
    assert startcache.load_record(lab) == {}
    startcache.save_record(lab, {"start-a-1": E("a", 1.5)})
    assert startcache.load_record(lab) == {"start-a-1": E("a", 1.5)}
    for damaged in ("{", "[]", '{"version": 9, "states": {}}', '{"version": 1, "states": {"x": {}}}'):
        startcache.record_path(lab).write_text(damaged)
        assert startcache.load_record(lab) == {}


def test_taken_text() -> None:
    now = time.mktime((2031, 5, 6, 14, 2, 0, 0, 0, -1))
    assert startcache.taken_text(now - 60, now) == "14:01"
    assert startcache.taken_text(now - 2 * 86400, now) == "May 04 14:02"
    assert startcache.taken_text(None) == "at an unknown time"


# --- through libvirt's test driver ---------------------------------------------------------------

def define(conn: Any, lab: Lab) -> None:
    """The lab's domains, running, with the baseline snapshots."""
    for name in domains(lab):
        dom = conn.defineXML(f"<domain type='test'><name>{name}</name><memory>262144</memory>"
                             f"<os><type>hvm</type></os></domain>")
        dom.create()
    virt.create_snapshot(domains(lab), "installed")
    virt.create_snapshot(domains(lab), "cluster")


class FakeNode:
    """A node that answers every command (crm_mon fails when told to)."""

    def __init__(self, name: str, log: list[str], fail: set[str], user: str = "vagrant") -> None:
        self.name, self.log, self.fail = name, log, fail
        self.address = NodeAddress(name, user, "127.0.0.1")

    def run(self, command: str, **_: Any) -> CommandResult:
        self.log.append(f"{self.name}: {command}")
        bad = any(word in command for word in self.fail)
        return CommandResult(command, 1 if bad else 0, "", "not connected" if bad else "")

    def close(self) -> None:
        pass


@pytest.fixture
def nodes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stand-ins for SSH: every command and script run is logged (ran), crm_mon can fail (fail)."""
    ran: list[str] = []
    fail: set[str] = set()
    def connect_all(lab: Lab, *, as_root: bool = False) -> dict[str, FakeNode]:
        ran.append(f"connect as {'root' if as_root else 'vagrant'}")
        return {n: FakeNode(n, ran, fail, "root" if as_root else "vagrant") for n in lab.node_names}

    monkeypatch.setattr(startstate, "connect_all", connect_all)
    # the real sync_clocks: its commands reach the FakeNodes (the clock, crm_mon's answer)
    monkeypatch.setattr(startstate, "run_commands", lambda nodes, default, commands, values, what:
                        ran.extend(f"command: {c}" for c in commands))
    monkeypatch.setattr(provision, "run_root", lambda node, script, what, **_: ran.append(f"{node.name}: {what}"))
    return {"ran": ran, "fail": fail}


def quiet() -> Progress:
    return Progress(quiet=True)


def test_start_twice_reset_fresh(home: Path, test_driver: Any, nodes: dict[str, Any]) -> None:
    lab = make_lab()
    define(test_driver, lab)
    ran = nodes["ran"]
    first = startstate.start("resource-update", quiet())
    assert not first.cached and "command: pcs resource create Dummy ocf:pacemaker:Dummy op monitor interval=30s" in ran
    name = _name(lab, times={d: t["cluster"] for d, t in virt.snapshot_times(domains(lab)).items()})
    assert all(name in virt.snapshot_names(d) for d in domains(lab))
    assert startcache.load_record(lab)[name].exercise == "resource-update"
    ran.clear()
    second = startstate.start("resource-update", quiet())
    assert second.cached and not any(r.startswith("command:") for r in ran)
    assert any("date -s @" in r for r in ran) and any("crm_mon" in r for r in ran)
    assert "connect as root" in ran and not any("sudo" in r for r in ran)  # no sudo per command
    assert Lab.load("t1").state.exercise == "resource-update"
    ran.clear()
    assert startstate.reset(quiet()).cached
    ran.clear()
    fresh = startstate.start("resource-update", quiet(), fresh=True)
    assert not fresh.cached and any(r.startswith("command:") for r in ran)
    assert all(virt.snapshot_names(d).count(name) == 1 for d in domains(lab))  # replaced, not doubled
    assert startcache.cached_states(lab)[0][0] == name


def test_progress_says_which_path(home: Path, test_driver: Any, nodes: dict[str, Any], tmp_path: Path) -> None:
    lab = make_lab()
    define(test_driver, lab)
    lines = []
    for _ in range(2):
        out = tmp_path / "progress.txt"
        with out.open("w") as stream:
            startstate.start("resource-delete", Progress(stream))
        lines.append(out.read_text())
    assert "built, and cached for the next start" in lines[0] and "cache this start state" in lines[0]
    assert "from the cached start state (taken " in lines[1]
    assert "revert every node to the cached start state of resource-delete" in lines[1]


def test_not_cacheable_states_are_built_every_time(home: Path, test_driver: Any, nodes: dict[str, Any],
                                                    tmp_path: Path) -> None:
    lab = make_lab()
    define(test_driver, lab)
    out = tmp_path / "progress.txt"
    for exercise in ("resource-create", "resource-create"):
        with out.open("w") as stream:
            assert not startstate.start(exercise, Progress(stream)).cached
    text = out.read_text()
    assert "cache" not in text and "not cached" not in text  # nothing alarming, nothing at all
    assert not [s for d in domains(lab) for s in virt.snapshot_names(d) if s.startswith("start-")]


def test_a_cached_state_that_does_not_answer_is_built_again(home: Path, test_driver: Any,
                                                            nodes: dict[str, Any]) -> None:
    lab = make_lab()
    define(test_driver, lab)
    startstate.start("troubleshoot-offline", quiet())
    nodes["fail"].add("crm_mon")
    nodes["ran"].clear()
    again = startstate.start("troubleshoot-offline", quiet())
    assert not again.cached
    ran = nodes["ran"]
    # the check ran on the node the fault left alone, with its clock in one round trip
    answers = [r for r in ran if "crm_mon" in r]
    assert len(answers) == 1 and answers[0].startswith("node1: date -s @")
    assert all("crm_mon" not in r for r in ran if r.startswith("node2: "))
    assert "node2: fault stop-cluster" in ran  # then the ordinary build
    assert [s for s in virt.snapshot_names(domains(lab)[0]) if s.startswith("start-")]  # cached again


def test_a_snapshot_missing_on_one_node_is_a_miss(home: Path, test_driver: Any, nodes: dict[str, Any]) -> None:
    lab = make_lab()
    define(test_driver, lab)
    startstate.start("resource-update", quiet())
    name = startcache.cached_states(lab)[0][0]
    virt.delete_snapshot(domains(lab)[1:], name)
    assert not startstate.start("resource-update", quiet()).cached
    assert all(name in virt.snapshot_names(d) for d in domains(lab))


def test_a_new_baseline_invalidates_and_the_old_one_is_evicted(home: Path, test_driver: Any,
                                                               nodes: dict[str, Any]) -> None:
    lab = make_lab()
    define(test_driver, lab)
    startstate.start("resource-update", quiet())
    old = startcache.cached_states(lab)[0][0]
    time.sleep(1.05)  # libvirt's creation times are in whole seconds
    virt.create_snapshot(domains(lab), "cluster")  # what a new `lab up` baseline does
    assert not startstate.start("resource-update", quiet()).cached
    names = [n for n, _ in startcache.cached_states(lab)]
    assert old not in names and len(names) == 1 and names[0] != old


def test_the_limit_and_lru(home: Path, test_driver: Any, nodes: dict[str, Any],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    lab = make_lab()
    define(test_driver, lab)
    monkeypatch.setenv("LAB_START_CACHE", "2")
    for exercise in ("resource-update", "resource-delete"):
        startstate.start(exercise, quiet())
    assert startstate.start("resource-update", quiet()).cached  # resource-delete is now the older use
    startstate.start("resource-enable", quiet())
    cached = {e.exercise for _, e in startcache.cached_states(lab) if e}
    assert cached == {"resource-update", "resource-enable"}
    monkeypatch.setenv("LAB_START_CACHE", "0")
    assert not startstate.start("resource-update", quiet()).cached
    assert startcache.cached_states(lab) == []  # 0: none kept
    assert set(startcache.load_record(lab)) == set()


def test_no_snapshot_when_the_pool_is_short(home: Path, test_driver: Any, nodes: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lab = make_lab(pool="nosuchpool")
    define(test_driver, lab)
    out = tmp_path / "progress.txt"
    with out.open("w") as stream:
        assert not startstate.start("resource-update", Progress(stream)).cached
    assert "start state not cached: storage pool 'nosuchpool' not found" in out.read_text()
    monkeypatch.setattr(virt, "pool_free_bytes", lambda pool: 3 << 30)
    assert startcache.room_for(lab, 2) == (False, "3.0 GiB free in storage pool 'nosuchpool', 3.8 GiB needed")
    assert startcache.cached_states(lab) == []


def test_destroy_removes_domains_with_start_snapshots(home: Path, test_driver: Any,
                                                      nodes: dict[str, Any]) -> None:
    lab = make_lab()
    define(test_driver, lab)
    for exercise in ("resource-update", "resource-delete", "resource-enable"):
        startstate.start(exercise, quiet())
    assert len(startcache.cached_states(lab)) == 3
    removed = lifecycle.destroy("t1", quiet())
    assert set(removed.domains) == set(domains(lab))
    assert virt.domain_states(domains(lab)) == {d: "absent" for d in domains(lab)}
    assert not lab.dir.exists()


def test_forget_snapshots_only_takes_start_snapshots(home: Path, test_driver: Any) -> None:
    lab = make_lab()
    define(test_driver, lab)
    virt.create_snapshot(domains(lab), "start-x-00000000")
    assert virt.forget_snapshots([*domains(lab), "flab-t1-node9"], startcache.PREFIX) == 2
    assert all(sorted(virt.snapshot_names(d)) == ["cluster", "installed"] for d in domains(lab))


def test_cli_start_and_reset_take_fresh() -> None:
    import argparse

    from lab.cli.vm import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["start", "--fresh", "acl"]).fresh
    assert not parser.parse_args(["start", "acl"]).fresh
    assert parser.parse_args(["reset", "--fresh"]).fresh


def test_a_baseline_with_an_uncacheable_fixture_waits_for_nothing_new(home: Path, test_driver: Any,
                                                                       nodes: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """sbd's start state is the 'cluster' baseline plus the shared disk (which no snapshot can
    hold): the revert, the clocks and crm_mon's answer as for the baseline itself, then the
    fixture; no health wait, no settling. When crm_mon does not answer it is built step by step;
    --fresh builds it too. An exercise with commands besides a fixture is never on this path."""
    ran = nodes["ran"]
    monkeypatch.setattr(fixtures, "apply", lambda lab, names, nodes, progress: ran.append(f"fixtures {list(names)}"))
    lab = make_lab()
    define(test_driver, lab)
    sbd = load("sbd")
    assert startstate.is_baseline_with_host_fixtures(sbd, [])
    assert not startstate.is_baseline_with_host_fixtures(load("fencing"), [])
    assert not any(startstate.is_baseline_with_host_fixtures(e, []) for e in load_all()
                   if e.start.commands or not e.start.fixtures)
    startstate.start("sbd", quiet())
    assert any("crm_mon" in r for r in ran) and "fixtures ['sbd-disk']" in ran
    assert not any(r.endswith(": health") or "crm_resource --wait" in r for r in ran), ran
    for fresh, fail in ((False, {"crm_mon"}), (True, set())):
        ran.clear()
        nodes["fail"].clear()
        nodes["fail"].update(fail)
        startstate.start("sbd", quiet(), fresh=fresh)
        assert any(r.endswith(": health") for r in ran) and "fixtures ['sbd-disk']" in ran, (fresh, ran)
        assert any("crm_resource --wait" in r for r in ran), (fresh, ran)
