"""Fact sections as objects: checks declare what they read, the gather runs exactly that.

The gather runs for real here: the rendered script (lab/scripts/gather/gather.sh plus the `sec`
lines) through a local runner whose CIB_file is a state made by the real pacemaker tools."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

import checks
from checks import REGISTRY, check
from lab.engine.exercises import load
from lab.engine.grading import sections_for
from lab.engine.offline import OfflineCluster
from lab.gather import probes
from lab.gather import sections as sec
from lab.gather.facts import NodeFacts, gather_node, gather_script
from lab.gather.probes import FENCE, Probe
from lab.transport import log, scripts
from lab.transport.local import LocalRunner
from lab.transport.runner import CommandResult
from tests.procs import command_lines

needs_tools = pytest.mark.skipif(shutil.which("crm_mon") is None or shutil.which("pcs") is None,
                                 reason="needs pacemaker-cli-utils and pcs")


def test_nothing_is_gathered_that_no_check_reads() -> None:
    read = frozenset().union(*(spec.sections for spec in REGISTRY.values()))
    unread = set(sec.SECTIONS) - read - {sec.HOSTNAME.name}
    assert not unread, f"gathered, but no check reads them: {sorted(unread)}"


def test_every_nodefacts_field_comes_from_one_section() -> None:
    filled = [f for s in sec.SECTIONS.values() for f in s.fields()]
    assert len(filled) == len(set(filled)), filled
    own = {"name", "error", "extra", "problems"}
    fields = {f.name for f in dataclasses.fields(NodeFacts)} - own
    assert set(filled) == fields
    assert "cfgtool" not in fields  # declared once, never gathered: gone


@pytest.mark.parametrize("bad", [
    sec.Section("quorm", "corosync-quorumtool -s", "quorum", None),  # never registered
    "quorum",  # a name, not the section
    Probe("teleport"),
])
def test_a_check_cannot_ask_for_a_section_that_does_not_exist(bad: object) -> None:
    before = dict(REGISTRY)
    with pytest.raises(ValueError, match="lab_test_bad"):
        @check("lab_test_bad", gathers=(bad,))  # type: ignore[arg-type]
        def _bad(facts: object) -> None: ...
    assert before == REGISTRY


def test_registered_objects_are_accepted_and_named() -> None:
    try:
        @check("lab_test_good", live=True, gathers=(sec.KNOWN_HOSTS, FENCE))
        def _good(facts: object) -> None: ...
        # KNOWN_HOSTS's parser also reads pcs 0.9's tokens: gathered with it
        assert REGISTRY["lab_test_good"].sections == {"known_hosts", "tokens", "probe:fence", "cib", "crm_mon"}
    finally:
        REGISTRY.pop("lab_test_good", None)


def test_section_registry_refuses_duplicates_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="twice"):
        sec.section("quorum", "true", "quorum", None)
    with pytest.raises(ValueError, match="no NodeFacts field"):
        sec.section("lab_test_field", "true", "cfgtool", None)
    assert "lab_test_field" not in sec.SECTIONS


def test_wanted_closes_over_needs_and_refuses_unknown_names() -> None:
    assert [s.name for s in sec.wanted({"known_hosts"})] == ["hostname", "tokens", "known_hosts"]
    assert [s.name for s in sec.wanted({"probe:fence", "cib"})] == ["hostname", "cib"]
    with pytest.raises(ValueError, match="no fact section quorm"):
        sec.wanted({"quorm"})


def test_exercise_sections_and_their_script() -> None:
    wanted = sections_for(load("cluster-setup"))
    assert {"known_hosts", "tokens"} <= wanted
    script = gather_script(frozenset(wanted))
    lines = [line.split()[1] for line in script.splitlines() if line.startswith("sec ")]
    assert set(lines) == (wanted | {"hostname"}) - {n for n in wanted if n.startswith("probe:")}
    assert script.rstrip().endswith("report")


def test_a_failing_parser_costs_only_its_section() -> None:
    answer = {
        "hostname": CommandResult("hostname", 0, "node1\n", ""),
        "cmap": CommandResult("cmap", 0, "totem.token (u32) = 3000\n", ""),
        "known_hosts": CommandResult("known_hosts", 0, "[" * 5000, ""),  # too deep to read safely
        "crm_mon": CommandResult("crm_mon", 102, "", "Connection to cluster failed"),
    }
    facts = sec.node_facts_from_sections("node1", answer)
    assert facts.hostname == "node1" and facts.cmap == {"totem.token": "3000"}
    assert facts.pcsd_known_hosts is None and "known_hosts" in facts.problems
    assert facts.status is None and "crm_mon" in facts.problems
    assert facts.cib is None and "cib" not in facts.problems  # not gathered: no problem
    # not gathered: no unit seen active (as before sections were objects)
    assert dict(facts.services) == dict.fromkeys(("corosync", "pacemaker", "pcsd"), False)


@needs_tools
def test_gather_runs_the_script_on_stdin(tmp_path: Path) -> None:
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    cluster.run("pcs resource create Web ocf:pacemaker:Dummy")
    cluster.simulate()
    runner = LocalRunner("node1", env={"CIB_file": str(cluster.path)})
    facts = gather_node(runner, {"marker": "echo extra-ran"}, sections=frozenset(checks.CIB_SECTIONS), timeout=30)
    assert facts.error is None, facts.error
    assert facts.cib is not None and "Web" in facts.cib.resources
    assert facts.status is not None and facts.status.running_nodes("Web")
    assert facts.extra["marker"].stdout == "extra-ran\n"
    assert facts.corosync_conf is None and not facts.problems  # only what was asked


@needs_tools
def test_a_hung_section_costs_only_that_section(tmp_path: Path) -> None:
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "crm_mon").write_text("#!/bin/sh\ntrap '' TERM\nexec sleep 300\n")
    (fake / "crm_mon").chmod(0o755)
    runner = LocalRunner("node1", env={"CIB_file": str(cluster.path), "PATH": f"{fake}:{os.environ['PATH']}"})
    facts = gather_node(runner, sections=frozenset(checks.CIB_SECTIONS), timeout=14)
    assert facts.error is None and facts.cib is not None
    assert facts.status is None and "timed out" in facts.problems["crm_mon"]


# --- probes wait for nodes through the one retry policy ------------------------------------------

def _fake_node(tmp_path: Path) -> tuple[Path, LocalRunner]:
    """A 'node' on this host whose boot id and membership follow two flag files."""
    state, fake = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    fake.mkdir()
    tools = {
        "cat": f'if [ "$1" = /proc/sys/kernel/random/boot_id ]; then\n'
               f'  if [ -f {state}/rebooted ]; then echo new-id; else echo old-id; fi\n'
               f'else exec /bin/cat "$@"; fi\n',
        "sudo": 'shift; exec "$@"\n',
        "crm_node": f'if [ -f {state}/member ]; then echo "2 node2 member"; else echo "2 node2 lost"; fi\n'
                    'echo "1 node1 member"\n',
    }
    for name, body in tools.items():
        (fake / name).write_text("#!/bin/sh\n" + body)
        (fake / name).chmod(0o755)
    return state, LocalRunner("node", env={"PATH": f"{fake}:{os.environ['PATH']}"})


def test_wait_back_follows_the_reboot_and_the_rejoin(tmp_path: Path) -> None:
    state, runner = _fake_node(tmp_path)
    threading.Timer(1.0, (state / "rebooted").touch).start()
    threading.Timer(4.0, (state / "member").touch).start()
    began = time.monotonic()
    after, members = probes._wait_back(lambda _name: runner, ["node2"], {"node2": "old-id"},
                                       ["node1", "node2"], began + 60)
    assert after == {"node2": "new-id"} and members == ["node2"]
    assert 4.0 <= time.monotonic() - began < 15


def test_wait_back_gives_up_at_the_deadline_and_says_so(tmp_path: Path) -> None:
    _state, runner = _fake_node(tmp_path)
    began = time.monotonic()
    with log.logging_to(tmp_path / "commands.log") as path:
        after, members = probes._wait_back(lambda _name: runner, ["node2"], {"node2": "old-id"},
                                           ["node1", "node2"], began + 4)
    assert (after, members) == ({}, [])
    assert time.monotonic() - began < 8
    assert "node2 to come back with a new boot id: try 1 failed" in path.read_text()


# --- the sections of question and fencing exercises (checks/membership.py) -----------------------

def test_answers_and_fence_history_on_a_host_without_a_cluster(tmp_path: Path) -> None:
    """No answers folder is no answer, not a problem; the real stonith_admin without a fencer
    (exit 102, an error result) is no history, never an empty one."""
    facts = gather_node(LocalRunner("node1", env={}), sections=frozenset({"answers", "fence_history"}),
                        timeout=30, answers_dir=str(tmp_path / "none"))
    assert facts.error is None, facts.error
    assert dict(facts.answers) == {} and "answers" not in facts.problems
    if shutil.which("stonith_admin"):
        assert facts.fence_history is None
    assert sec.ANSWERS in REGISTRY["answer_names_dc"].gathers
    assert sec.FENCE_HISTORY in REGISTRY["fenced_by_hand"].gathers


def _run_sections(tmp_path: Path, lines: str, *, section_timeout: int = 10) -> dict[str, CommandResult]:
    return sec.parse_sections(_run_gather(tmp_path, lines, section_timeout=section_timeout))


def _run_gather(tmp_path: Path, lines: str, *, section_timeout: int = 10) -> str:
    script = (scripts.render("gather/gather.sh", BLOCKS=2048, SECTION_TIMEOUT=section_timeout,
                             ANSWERS_DIR=str(tmp_path))
              + lines + "report\n")
    done = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, timeout=60)
    return done.stdout


def test_one_output_stream_keeps_every_section_byte_for_byte(tmp_path: Path) -> None:
    """All outputs travel as one base64 split by sizes: empty output, no last newline, lines that
    look like the answer's own headers, bytes that are not UTF-8, a large output, a failed section
    with its stderr: each lands in its own section, unchanged."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(300_000).hex().encode())
    tricky = tmp_path / "tricky"
    tricky.write_bytes(b"==LAB== hostname 0 5\n==OUT==\nAAAA\n\xff\xfeend")
    found = _run_sections(tmp_path, f"sec empty true\nsec nolf printf abc\nsec tricky cat {tricky}\n"
                                    f"sec big cat {big}\nsec failed sh -c 'echo out; echo why >&2; exit 3'\n"
                                    "sec hostname node_name\n")
    assert found["empty"] == CommandResult("empty", 0, "", "")
    assert found["nolf"].stdout == "abc"
    assert found["tricky"].stdout == tricky.read_bytes().decode("utf-8", errors="replace")
    assert found["big"].stdout == big.read_text()
    assert found["failed"] == CommandResult("failed", 3, "out\n", "why\n")
    assert found["hostname"].stdout.strip() == Path("/proc/sys/kernel/hostname").read_text().strip()


def test_one_watchdog_bounds_every_section(tmp_path: Path) -> None:
    """A section still running at SECTION_TIMEOUT gets TERM and reports 124 (as `timeout` did); one
    that ignores TERM gets KILL 2 s later (137); the others answer as usual, and the gather ends
    then, not when the hung commands would have."""
    began = time.monotonic()
    found = _run_sections(tmp_path, "sec slow sleep 60\n"
                                    "sec stubborn sh -c 'trap \"\" TERM; while :; do sleep 1; done'\n"
                                    "sec quick echo fine\n", section_timeout=2)
    took = time.monotonic() - began
    assert found["slow"].returncode == 124 and found["stubborn"].returncode == 137
    assert found["quick"] == CommandResult("quick", 0, "fine\n", "")
    assert took < 10
    assert sec.section_problem("slow", found["slow"]) == "section 'slow' timed out on the node"


def test_a_timed_out_section_still_writing_does_not_tear_the_answer(tmp_path: Path) -> None:
    """The watchdog stops a late section's own process; a child it left keeps writing to the
    section's output. The sizes and the bytes must still agree (they are read at two moments),
    so the other sections stay readable and the late one is a timeout, not a torn answer that
    costs the node every fact."""
    marker = "runaway-writer-4711"
    try:
        found = _run_sections(tmp_path, f"sec runaway sh -c '(while :; do echo {marker}; sleep 0.001; done) & wait'\n"
                                        "sec quick echo fine\nsec hostname node_name\n", section_timeout=2)
        assert found.get("quick") == CommandResult("quick", 0, "fine\n", ""), found
        assert found["runaway"].returncode == 124
    finally:
        subprocess.run(["pkill", "-f", marker], check=False)


def test_a_quick_gather_leaves_no_watchdog(tmp_path: Path) -> None:
    """Sections done long before the timeout: the watchdog and its sleep end with the gather."""
    marker = 7654
    began = time.monotonic()
    found = _run_sections(tmp_path, "sec quick echo fine\n", section_timeout=marker)
    assert found["quick"].stdout == "fine\n" and time.monotonic() - began < 10
    deadline = time.monotonic() + 5
    while command_lines(f"sleep {marker} ") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert command_lines(f"sleep {marker} ") == {}


def test_an_answer_whose_sizes_do_not_add_up_gives_no_section(tmp_path: Path) -> None:
    """A forged or torn answer (sizes that do not match the output, two outputs, bad base64) is
    not split at a guess: those sections are absent, so the node has no facts."""
    good = _run_gather(tmp_path, "sec hostname node_name\nsec a echo one\n")
    assert set(sec.parse_sections(good)) == {"hostname", "a"}
    lines = good.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("==LAB== a "))
    longer = lines.copy()
    longer[header] = longer[header][:-1] + str(int(longer[header][-1]) + 1)
    assert sec.parse_sections("\n".join(longer)) == {}
    assert sec.parse_sections(good + good) == {}  # two ==OUT== lines
    assert sec.parse_sections(good.replace("==OUT==\n", "==OUT==\n!")) == {}
    old_form = "==LAB== hostname 0\nbm9kZTE=\n"  # what earlier versions wrote (exam evidence)
    assert sec.parse_sections(old_form)["hostname"].stdout == "node1"


@needs_tools
def test_conf_file_reads_what_cat_reads_and_never_blocks(tmp_path: Path) -> None:
    """corosync.conf is read in the shell (no process): byte for byte what cat gives for a file
    pcs wrote (and one without its last newline, with backslashes and spaces kept); a FIFO, a
    directory or a missing file is a failed section at once, not a hang."""
    conf = tmp_path / "corosync.conf"
    subprocess.run(["pcs", "cluster", "setup", "my_cluster", "node1", "addr=192.0.2.11", "node2", "addr=192.0.2.12",
                    "--corosync_conf", str(conf), "--no-cluster-uuid"], check=True, capture_output=True)
    odd = tmp_path / "odd.conf"
    odd.write_text("totem {\n\tcrypto_cipher: aes256 \\\\ x  \n  token: 3000\n}")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    began = time.monotonic()
    found = _run_sections(tmp_path, f"sec real conf_file {conf}\nsec odd conf_file {odd}\n"
                                    f"sec fifo conf_file {fifo}\nsec dir conf_file {tmp_path}\n"
                                    f"sec gone conf_file {tmp_path / 'none'}\n")
    assert time.monotonic() - began < 20
    assert found["real"].returncode == 0 and found["real"].stdout == conf.read_text()
    assert found["odd"].stdout == odd.read_text() + "\n"
    assert all(found[name].returncode != 0 and found[name].stdout == "" for name in ("fifo", "dir", "gone"))
