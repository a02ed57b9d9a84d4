"""The lab's own state: typed state file, exact-name ownership of libvirt objects, the lab lock,
and the Vagrantfile template's quoting.

libvirt runs as its test driver, in-process and without a daemon: `test:///default` (one
state shared by the connections of a process) for in-process destroys, and `test:///FILE.xml`
(a `<node>` of our own domains, networks and pools, read afresh by every connection) for the
real CLI in a subprocess, which then reports by name what it removed. No real VM is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.core.paths import project_root
from lab.vm import vagrant as vg
from lab.vm.labstate import MAX_NODES, STATE_VERSION, Lab, LabBusy, Owned, StateError

pytest.importorskip("libvirt")

OTHER = "a-b"  # a lab whose name starts with lab "a"'s name: never lab a's


def good_state(name: str = "a", nodes: int = 2) -> dict:
    return {"version": STATE_VERSION, "name": name, "nodes": nodes, "box": "debian12",
            "box_name": "failover-lab/debian12", "memory": 768, "cpus": 1, "driver": "qemu",
            "uri": "test:///default", "pool": "default", "private_cidr": "10.231.42.0/24",
            "mgmt_cidr": "10.232.42.0/24", "link1_cidr": "10.233.42.0/24", "steps": {"system:node1": True},
            "exercise": None,
            "pcs_version": None, "owned": Owned.derive(name, nodes, "default").to_json()}


def write_state(home: Path, name: str, data: object) -> Path:
    folder = home / "labs" / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "state.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///default")
    monkeypatch.delenv("LAB_NAME", raising=False)
    return tmp_path / "home"


def lab_cli(home: Path, *args: str, name: str = "a", uri: str = "test:///default",
            timeout: float = 60, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LAB_HOME=str(home), LAB_NAME=name, LIBVIRT_DEFAULT_URI=uri,
               PYTHONPATH=str(project_root()), **(extra or {}))
    env.pop("LAB_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure is exactly one 'Error: ...' line, never an unforeseen one."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "unexpected" not in lines[0]
    return lines[0]


# --- libvirt's test driver ---------------------------------------------------

def _domain(name: str) -> str:
    return f"<domain type='test'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os></domain>"


def _network(name: str, third: int) -> str:
    return (f"<network><name>{name}</name><bridge name='virbr{third}'/>"
            f"<ip address='10.233.{third}.1' netmask='255.255.255.0'/></network>")


def node_xml(path: Path, labs: dict[str, int]) -> str:
    """A test-driver host with every object of each lab (name -> nodes) in pool 'default'."""
    domains, networks, volumes = [], [], []
    for i, (name, nodes) in enumerate(labs.items()):
        owned = Owned.derive(name, nodes, "default")
        domains += [_domain(d) for d in owned.domains]
        networks += [_network(n, 10 * i + j) for j, n in enumerate(owned.networks)]
        volumes += [f"<volume><name>{v}</name><capacity>1024</capacity></volume>" for v in owned.volumes]
    pool = (f"<pool type='dir'><name>default</name><target><path>/lab-test-pool</path></target>"
            f"{''.join(volumes)}</pool>")
    path.write_text(f"<node>{''.join(domains)}{''.join(networks)}{pool}</node>")
    return f"test://{path}"


@pytest.fixture
def shared_libvirt() -> Iterator[object]:
    """test:///default (shared by this process's connections) with a pool 'default'; every object
    a test makes is removed again afterwards."""
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open("test:///default")
    try:
        pool = conn.storagePoolLookupByName("default")
    except libvirt.libvirtError:
        pool = conn.storagePoolDefineXML("<pool type='dir'><name>default</name><target>"
                                         "<path>/lab-test-pool</path></target></pool>", 0)
    if not pool.isActive():
        pool.create(0)
    yield conn
    for dom in conn.listAllDomains():
        if dom.name().startswith("flab-"):
            if dom.isActive():
                dom.destroy()
            for snap in dom.listAllSnapshots():
                snap.delete(0)
            dom.undefine()
    for net in conn.listAllNetworks():
        if net.name().startswith("flab-"):
            if net.isActive():
                net.destroy()
            net.undefine()
    for vol in pool.listAllVolumes():
        vol.delete(0)
    conn.close()


def make_objects(conn: object, name: str, nodes: int, third: int) -> Owned:
    """Every libvirt object lab NAME makes, running, with its snapshots."""
    owned = Owned.derive(name, nodes, "default")
    for dname in owned.domains:
        dom = conn.defineXML(_domain(dname))
        dom.create()
        for snap in owned.snapshots:
            dom.snapshotCreateXML(f"<domainsnapshot><name>{snap}</name></domainsnapshot>", 0)
    for j, net in enumerate(owned.networks):
        conn.networkDefineXML(_network(net, third + j)).create()
    pool = conn.storagePoolLookupByName("default")
    for vol in owned.volumes:
        pool.createXML(f"<volume><name>{vol}</name><capacity>1024</capacity></volume>", 0)
    return owned


def existing(conn: object) -> set[str]:
    pool = conn.storagePoolLookupByName("default")
    return ({d.name() for d in conn.listAllDomains()} | {n.name() for n in conn.listAllNetworks()}
            | {f"default/{v}" for v in pool.listVolumes()})


def names_of(owned: Owned) -> set[str]:
    return set(owned.domains) | set(owned.networks) | {f"default/{v}" for v in owned.volumes}


# --- ownership ---------------------------------------------------------------

def test_owned_names_are_exact_and_never_another_labs() -> None:
    """Lab a's names are none of lab a-b's (nor of a-node1's, ...): a name decides its lab."""
    mine = Owned.anything_of("a")
    assert mine.domains == tuple(f"flab-a-node{i}" for i in range(1, MAX_NODES + 1))
    assert set(mine.networks) == {"flab-a-mgmt", "flab-a-priv", "flab-a-link1"}
    assert "flab-a-node1.img" in mine.volumes and "flab-a-sbd.img" in mine.volumes
    for other in (OTHER, "a-node1", "a-mgmt", "a-sbd"):
        theirs = Owned.anything_of(other)
        assert not names_of(mine) & names_of(theirs), other


def test_destroy_removes_exactly_the_recorded_names(home: Path, shared_libvirt: object) -> None:
    """A 1-node lab owns node1 and its networks/volumes: node2 of the same prefix (not recorded)
    and every object of lab a-b stay."""
    from lab.vm import lifecycle

    conn = shared_libvirt
    make_objects(conn, "a", 2, 10)
    theirs = make_objects(conn, OTHER, 2, 20)
    write_state(home, "a", good_state("a", nodes=1))
    lab = Lab.load("a")
    assert lab.owned.domains == ("flab-a-node1",)
    removed = lifecycle.destroy("a")
    assert removed.domains == ("flab-a-node1",)
    assert set(removed.networks) == {"flab-a-mgmt", "flab-a-priv", "flab-a-link1"}
    assert set(removed.volumes) == {"default/flab-a-node1.img", "default/flab-a-sbd.img"}
    left = existing(conn)
    assert names_of(theirs) <= left
    assert "flab-a-node2" in left and "flab-a-node1" not in left
    assert not lab.dir.exists()


def test_destroy_without_a_lab_removes_nothing_unless_forced(home: Path, shared_libvirt: object) -> None:
    from lab.vm import lifecycle

    conn = shared_libvirt
    mine = make_objects(conn, "a", 2, 30)
    theirs = make_objects(conn, OTHER, 1, 40)
    before = existing(conn)
    assert lifecycle.destroy("a").empty
    assert existing(conn) == before
    removed = lifecycle.destroy("a", force=True)
    assert set(removed.domains) == set(mine.domains)
    assert not names_of(mine) & existing(conn)
    assert names_of(theirs) <= existing(conn)


def test_destroy_cli_in_an_empty_home_touches_nothing(tmp_path: Path) -> None:
    """The real CLI on a test-driver host holding labs a and a-b (each connection reads the file
    afresh, so the CLI's own report says what it removed)."""
    uri = node_xml(tmp_path / "host.xml", {"a": 2, OTHER: 2})
    home = tmp_path / "home"
    plain = lab_cli(home, "destroy", uri=uri)
    assert plain.returncode == 0, plain.stderr
    assert "nothing removed" in plain.stderr and "destroyed" not in plain.stderr
    forced = lab_cli(home, "destroy", "--force", "a", uri=uri, name="zzz")
    assert forced.returncode == 0, forced.stderr
    report = forced.stderr.strip().splitlines()[-1]
    assert "removed: domains flab-a-node1, flab-a-node2;" in report
    assert "default/flab-a-node1.img" in report and "flab-a-mgmt" in report
    assert "flab-a-b-" not in forced.stderr
    error_line(lab_cli(home, "destroy", "--force", "A;rm", uri=uri))


# --- the typed state file ----------------------------------------------------

def test_state_round_trip_has_version_and_owned_names(home: Path) -> None:
    write_state(home, "a", good_state())
    lab = Lab.load("a")
    assert lab.state.nodes == 2 and lab.done("system:node1") and not lab.done("cluster_built")
    lab.mark("cluster_built")
    data = json.loads(lab.state_file.read_text())
    assert data["version"] == STATE_VERSION
    assert data["owned"]["domains"] == ["flab-a-node1", "flab-a-node2"]
    assert data["steps"] == {"system:node1": True, "cluster_built": True}
    assert Lab.load("a").state == lab.state


def test_version_1_state_is_read_and_written_back_as_current(home: Path) -> None:
    """A lab made before the typed state (no version, no owned) keeps working."""
    old = {k: v for k, v in good_state().items() if k not in ("version", "owned", "pcs_version", "link1_cidr")}
    old["steps"] = {"system:node1": True, "system:node2": True, "root_ssh": True, "installed_snapshot": True}
    write_state(home, "a", old)
    lab = Lab.load("a")
    assert lab.owned == Owned.derive("a", 2, "default", link1=False)  # it has no second cluster network
    assert lab.state.link1_cidr is None
    assert lab.done("installed_snapshot")
    lab.save()
    assert json.loads(lab.state_file.read_text())["version"] == STATE_VERSION


BAD_STATES = [
    ("not json", '{"nodes": 2', "not valid JSON"),
    ("not an object", "[1, 2]", "JSON object"),
    ("nodes float", {"nodes": 1e8}, "'nodes'"),
    ("nodes text", {"nodes": "2"}, "'nodes'"),
    ("nodes zero", {"nodes": 0}, "'nodes'"),
    ("nodes bool", {"nodes": True}, "'nodes'"),
    ("memory huge", {"memory": 10**30}, "'memory'"),
    ("cidr host bits", {"private_cidr": "10.231.42.7/24"}, "'private_cidr'"),
    ("cidr too small", {"private_cidr": "10.231.42.0/30"}, "'private_cidr'"),
    ("cidr type", {"mgmt_cidr": ["10.0.0.0/8"]}, "'mgmt_cidr'"),
    ("driver", {"driver": "xen"}, "'driver'"),
    ("steps list", {"steps": ["system:node1"]}, "'steps'"),
    ("step value", {"steps": {"root_ssh": {"x": 1}}}, "'steps.root_ssh'"),
    ("step name", {"steps": {"../x": True}}, "'steps."),
    ("exercise", {"exercise": "a b"}, "'exercise'"),
    ("name of another lab", {"name": "b"}, "'name'"),
    ("unknown field", {"evil": 1}, "'evil'"),
    ("newer version", {"version": 99}, "'version'"),
    ("owned other lab", {"owned": {**Owned.derive("a", 2, "default").to_json(),
                                   "domains": ["flab-a-b-node1"]}}, "'owned.domains'"),
    ("deep nesting", "[" * 100000 + "]" * 100000, "not valid JSON"),
    ("not utf-8", b'{"name": "\xff"}', "not valid JSON"),
    ("huge", " " * (2 << 20), "larger than"),
]


@pytest.mark.parametrize(("case", "change", "expected"), BAD_STATES, ids=[c[0] for c in BAD_STATES])
def test_bad_state_is_one_line_naming_file_and_field(home: Path, case: str, change: object,
                                                     expected: str) -> None:
    """In process: StateError (a UsageError) naming the file and the field; never a hang."""
    if isinstance(change, dict):
        write_state(home, "a", {**good_state(), **change})
    elif isinstance(change, bytes):
        (home / "labs" / "a").mkdir(parents=True)
        (home / "labs" / "a" / "state.json").write_bytes(change)
    else:
        write_state(home, "a", change)
    began = time.monotonic()
    with pytest.raises(StateError) as caught:
        Lab.load("a")
    assert time.monotonic() - began < 5
    message = str(caught.value)
    assert "\n" not in message and str(home / "labs" / "a" / "state.json") in message
    assert expected in message, message


@pytest.mark.parametrize("change", [{"nodes": 1e8}, {"nodes": "2"}, {"steps": []}, "{"],
                         ids=["nodes-1e8", "nodes-text", "steps-list", "truncated"])
def test_bad_state_cli_fails_in_one_line_and_destroy_still_works(tmp_path: Path, change: object) -> None:
    """The real CLI: status/start/up say what is wrong in one line; destroy removes the lab anyway
    (the names lab a makes; lab a-b's objects untouched) and its folder."""
    uri = node_xml(tmp_path / "host.xml", {"a": 2, OTHER: 1})
    home = tmp_path / "home"
    path = write_state(home, "a", {**good_state(), **change} if isinstance(change, dict) else change)
    for args in (("status",), ("up",), ("start", "resource-create")):
        line = error_line(lab_cli(home, *args, uri=uri))
        assert str(path) in line and "lab destroy" in line, line
    done = lab_cli(home, "destroy", uri=uri)
    assert done.returncode == 0, done.stderr
    assert "removed: domains flab-a-node1, flab-a-node2;" in done.stderr
    assert "flab-a-b-" not in done.stderr
    assert not path.parent.exists()


def test_state_values_set_in_code_are_validated(home: Path) -> None:
    write_state(home, "a", good_state())
    lab = Lab.load("a")
    lab.state["exercise"] = "resource-create"
    assert lab.state.exercise == "resource-create"
    with pytest.raises(StateError, match="'exercise'"):
        lab.state["exercise"] = "x; rm -rf /"
    with pytest.raises(StateError, match="'nodes'"):
        lab.state["nodes"] = 9
    with pytest.raises(StateError, match="'steps"):
        lab.mark("Bad Step")


def test_interrupted_steps_are_kept_and_continued(home: Path) -> None:
    """`lab up` records each step as it finishes: a new process sees them and goes on."""
    write_state(home, "a", {**good_state(), "steps": {}})
    first = Lab.load("a")
    first.mark("system:node1")
    first.mark("system:node2")
    again = Lab.load("a")
    assert again.done("system:node1") and again.done("system:node2") and not again.done("root_ssh")
    again.mark("root_ssh")
    again.unmark("system:node2")
    final = Lab.load("a")
    assert final.done("root_ssh") and not final.done("system:node2")


# --- one lock per lab --------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from lab.vm.labstate import Lab
    sys.argv = ["lab", "up"]
    with Lab("a").locked(create=True):
        Path(r"{ready}").write_text("held")
        time.sleep({hold})
""")


def hold_lock(home: Path, tmp_path: Path, hold: float) -> tuple[subprocess.Popen[str], Path]:
    ready = tmp_path / "ready"
    env = dict(os.environ, LAB_HOME=str(home), PYTHONPATH=str(project_root()))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(ready=ready, hold=hold)], env=env,
                            text=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, ready


def test_second_command_refuses_naming_the_holder(home: Path, tmp_path: Path) -> None:
    write_state(home, "a", {**good_state(), "steps": {"cluster_snapshot": True}})
    proc, _ = hold_lock(home, tmp_path, hold=30)
    try:
        began = time.monotonic()
        line = error_line(lab_cli(home, "destroy", extra={"LAB_LOCK_WAIT": "0"}))
        assert "lab 'a' is busy: 'lab up'" in line and f"pid {proc.pid}" in line, line
        waited = lab_cli(home, "start", "resource-create", extra={"LAB_LOCK_WAIT": "1"})
        assert waited.returncode == 1 and time.monotonic() - began < 15
        said, failed = waited.stderr.strip().splitlines()
        assert "waiting up to 1 s" in said and failed.startswith("Error: lab 'a' is busy: 'lab up'")
        # A reader does not wait for the lock.
        began = time.monotonic()
        status = lab_cli(home, "status", extra={"LAB_LOCK_WAIT": "30"})
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("lab a:") and time.monotonic() - began < 15
        assert (home / "labs" / "a" / "state.json").exists()
    finally:
        proc.kill()
        proc.wait()


def test_lab_up_holds_the_lock_for_its_whole_run(home: Path, tmp_path: Path) -> None:
    """lab up is one mutating command (not only its domain preparation): it refuses while
    another command holds the lab, before it reads or writes anything."""
    write_state(home, "a", good_state())
    before = (home / "labs" / "a" / "state.json").read_text()
    proc, _ = hold_lock(home, tmp_path, hold=30)
    try:
        line = error_line(lab_cli(home, "up", extra={"LAB_LOCK_WAIT": "0"}))
        assert "lab 'a' is busy: 'lab up'" in line, line
        assert (home / "labs" / "a" / "state.json").read_text() == before
        assert not (home / "labs" / "a" / "Vagrantfile").exists()  # nothing of lab up ran
    finally:
        proc.kill()
        proc.wait()


def test_a_first_lab_up_that_fails_at_once_leaves_no_folder(home: Path) -> None:
    """The lock and the command log were all there was: the folder goes again."""
    line = error_line(lab_cli(home, "up", "--box", "no-such-box"))
    assert "no-such-box" in line
    assert not (home / "labs" / "a").exists()


def test_second_command_waits_then_runs(home: Path, tmp_path: Path) -> None:
    write_state(home, "a", good_state())
    proc, _ = hold_lock(home, tmp_path, hold=1.5)
    try:
        done = lab_cli(home, "destroy", extra={"LAB_LOCK_WAIT": "30"})
        assert done.returncode == 0, done.stderr
        assert "lab 'a' is busy with 'lab up'" in done.stderr and "waiting up to 30 s" in done.stderr
        assert not (home / "labs" / "a").exists()
    finally:
        proc.kill()
        proc.wait()


def test_no_lost_updates_between_processes(home: Path) -> None:
    """Two processes mark steps at once, each read-modify-write under the lock: none is lost."""
    write_state(home, "a", {**good_state(), "steps": {}})
    script = textwrap.dedent("""
        import sys
        from lab.vm.labstate import Lab
        tag = sys.argv[1]
        for i in range(25):
            with Lab("a").locked(wait=60):
                Lab.load("a").mark(f"{tag}_{i}")
    """)
    env = dict(os.environ, LAB_HOME=str(home), PYTHONPATH=str(project_root()))
    procs = [subprocess.Popen([sys.executable, "-c", script, tag], env=env) for tag in ("p", "q")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    steps = Lab.load("a").state.steps
    assert set(steps) == {f"{t}_{i}" for t in ("p", "q") for i in range(25)}


def test_lock_is_reentrant_and_released(home: Path) -> None:
    lab = Lab("a")
    with lab.locked(create=True) as held, lab.locked() as again:
        assert held and again
    with Lab("a").locked(wait=0):
        pass
    assert not Lab("zz").dir.exists()
    with Lab("zz").locked() as held:
        assert held is False  # no folder: nothing to lock, nothing made


def test_lock_wait_busy_error_in_process(home: Path, tmp_path: Path) -> None:
    proc, _ = hold_lock(home, tmp_path, hold=30)
    try:
        with pytest.raises(LabBusy, match="'lab up'"), Lab("a").locked(wait=0.3, say=lambda _t: None):
            pass
    finally:
        proc.kill()
        proc.wait()


# --- the Vagrantfile ---------------------------------------------------------

RUBY_STUB = r"""
require 'json'
class Rec
  def initialize; @h = {}; end
  def method_missing(name, *args, **kw, &blk)
    key = name.to_s
    if key.end_with?('=')
      @h[key.chomp('=')] = args[0]
      return args[0]
    end
    if blk
      r = Rec.new
      blk.call(r)
      (@h[key] ||= []) << { 'args' => args, 'kw' => kw, 'body' => r }
      return nil
    end
    unless args.empty? && kw.empty?
      (@h[key] ||= []) << { 'args' => args, 'kw' => kw }
      return nil
    end
    @h[key] ||= Rec.new
  end
  def respond_to_missing?(*) = true
  def to_json(*a) = @h.to_json(*a)
end
module Vagrant
  def self.configure(_version)
    c = Rec.new
    yield c
    $config = c
  end
end
load ARGV[0]
puts $config.to_json
"""


@pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby not installed (it comes with vagrant)")
def test_vagrantfile_never_interpolates_lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A LAB_HOME with #{...}, ' and \\ ends up in the Vagrantfile as data: Ruby parses it, reads the
    same path back, and the code in it never runs."""
    marker = tmp_path / "pwned"
    home = tmp_path / f"h#{{File.write('{marker}','x')}}'q\\z\\'#{{`touch {marker}`}}"
    monkeypatch.setenv("LAB_HOME", str(home))
    write_state(home, "a", good_state())
    lab = Lab.load("a")
    vg.write_vagrantfile(lab)
    check = subprocess.run(["ruby", "-c", str(lab.vagrantfile)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    stub = tmp_path / "stub.rb"
    stub.write_text(RUBY_STUB)
    run = subprocess.run(["ruby", str(stub), str(lab.vagrantfile)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    config = json.loads(run.stdout)
    assert config["ssh"]["private_key_path"][0] == str(lab.identity)
    provider = config["vm"]["provider"][0]
    assert provider["args"] == ["libvirt"]
    assert provider["body"]["default_prefix"] == "flab-a-" and provider["body"]["memory"] == 768
    assert [d["args"] for d in config["vm"]["define"]] == [["node1"], ["node2"]]
    assert not marker.exists()
    assert "tojson" not in (project_root() / "Vagrantfile.j2").read_text()


def test_ruby_str_escapes_only_what_single_quotes_need() -> None:
    assert vg.ruby_str("plain") == "'plain'"
    assert vg.ruby_str("it's") == "'it\\'s'"
    assert vg.ruby_str("a\\b") == "'a\\\\b'"
    assert vg.ruby_str("#{x}") == "'#{x}'"
    with pytest.raises(TypeError):
        vg.ruby_str(5)
    with pytest.raises(TypeError):
        vg.ruby_int("5; system('id')")
