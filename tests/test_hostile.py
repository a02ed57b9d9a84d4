"""Hostile or broken nodes and input files never break grading.

Every case runs the real `lab` command line in a subprocess under a 2 GiB address-space
limit (`ulimit -v`) and a wall-clock timeout, and must end with exit 1 (a report whose
failed checks carry the reason) or exit 2 (exactly one `Error:` line), never with
"unexpected", a traceback, a hang or MemoryError.

Cluster states are made by the real tools (cibadmin --empty, pcs -f, crm_simulate,
crm_mon); only the hostile part is synthetic (deep nesting, giant sizes, odd digits), as
text mutations of those real files. Hostile nodes are a real sshd on 127.0.0.1: either
with `ForceCommand` (a node that answers anything at all), or with a PATH whose first
directory holds fake tools (cibadmin, crm_mon, cat ...) printing the hostile text.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.engine.exercises import load
from lab.engine.grading import grade
from lab.engine.offline import OfflineCluster
from lab.gather.facts import facts_from_cib_file, gather_node
from lab.transport.address import NodeAddress
from lab.transport.runner import run_local
from lab.transport.ssh import SSHNode
from tests.procs import command_lines
from tests.sshd import Sshd, running_sshd

pytestmark = pytest.mark.skipif(shutil.which("crm_mon") is None or shutil.which("pcs") is None,
                                reason="needs pacemaker-cli-utils and pcs")

ADDRESS_SPACE = 2 * 2**30  # ulimit -v for every `lab` run here
DEEP = 100_000  # nesting levels of the deep-XML cases (Python's recursion limit is 1000)
HUGE_NUMBER = "1" + "0" * 5000  # beyond Python's int-string limit (4300 digits)
SUPERSCRIPT_TWO = "\u00b2"  # str.isdigit() is True for it, int() refuses it
MON_ARGS = ["crm_mon", "--one-shot", "--inactive", "--output-as=xml"]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def lab(home: Path, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """The real `lab` CLI, memory- and time-bounded; returns the process and its duration."""
    env = dict(os.environ, LAB_HOME=str(home))
    env.pop("LAB_DEBUG", None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_limit_memory)
    return proc, time.perf_counter() - start


def assert_bounded_failure(proc: subprocess.CompletedProcess, *words: str, code: int | None = None) -> str:
    """Exit 1 with a complete report, or exit 2 with one Error line; never an unforeseen crash.

    Returns the error line (exit 2) or the report (exit 1), for more checks.
    """
    both = proc.stdout + proc.stderr
    assert "unexpected" not in proc.stderr.lower(), proc.stderr
    assert "Traceback" not in both and "MemoryError" not in both and "RecursionError" not in both, both[-2000:]
    assert proc.returncode in (1, 2), (proc.returncode, proc.stdout[-2000:], proc.stderr)
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr)
    if proc.returncode == 2:
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
        assert proc.stdout == ""
        text = lines[0]
    else:
        assert not [line for line in proc.stderr.splitlines() if not line.startswith("lab check: ")], proc.stderr
        text = proc.stdout
    for word in words:
        assert word.lower() in text.lower(), (word, text[-2000:])
    return text


def checks_of(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


# ---- real states and hostile mutations of them ------------------------------------------

@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real files: Dummy running (resource-create passes, resource-disable fails), the
    resource-create start state, crm_mon's view of the first and its error result on a CIB
    that fails schema validation."""
    base = tmp_path_factory.mktemp("hostile-states")
    running = OfflineCluster.empty(base / "running.xml")
    running.run("pcs resource create Dummy ocf:pacemaker:Dummy op monitor interval=30s")
    running.simulate()
    start = OfflineCluster.empty(base / "start.xml")
    start.run_all(load("resource-create").start.commands)
    start.simulate()
    mon = run_local(MON_ARGS, env={"CIB_file": str(running.path)})
    assert mon.ok and "<summary>" in mon.stdout
    (base / "running-mon.xml").write_text(mon.stdout)
    invalid = base / "invalid.xml"  # Dummy still runs in its status section
    invalid.write_text(running.path.read_text().replace("<primitive ", '<primitive bogus="1" ', 1))
    error = run_local(MON_ARGS, env={"CIB_file": str(invalid)})
    assert "does not conform" in error.stdout and "<summary>" not in error.stdout, error.stdout
    (base / "mon-error.xml").write_text(error.stdout)
    return {"running": running.path, "start": start.path, "running_mon": base / "running-mon.xml",
            "invalid": invalid, "mon_error": base / "mon-error.xml"}


def deep_groups(cib: str, depth: int = DEEP) -> str:
    """A primitive inside `depth` nested groups."""
    opens = "".join(f'<group id="g{i}">' for i in range(depth))
    inner = '<primitive id="Deep" class="ocf" provider="pacemaker" type="Dummy"/>'
    return cib.replace("<resources>", "<resources>" + opens + inner + "</group>" * depth, 1)


def deep_rules(cib: str, depth: int = DEEP) -> str:
    """A location constraint whose rule holds `depth` nested rules."""
    opens = "".join(f'<rule id="r{i}" score="100" boolean-op="and">' for i in range(depth))
    inner = '<expression id="e" attribute="#uname" operation="eq" value="node1"/>'
    location = f'<rsc_location id="deep-loc" rsc="Dummy">{opens}{inner}{"</rule>" * depth}</rsc_location>'
    return _with_constraints(cib, location)


def _with_constraints(cib: str, xml: str) -> str:
    if "<constraints/>" in cib:
        return cib.replace("<constraints/>", f"<constraints>{xml}</constraints>", 1)
    return cib.replace("</constraints>", f"{xml}</constraints>", 1)


def deep_mon_groups(mon: str, depth: int = DEEP) -> str:
    """crm_mon's view with its resources inside `depth` nested groups."""
    opens = "".join(f'<group id="mg{i}" number_resources="1">' for i in range(depth))
    start = mon.index("<resources>") + len("<resources>")
    end = mon.index("</resources>")
    return mon[:start] + opens + mon[start:end] + "</group>" * depth + mon[end:]


def giant(cib: str, size: int) -> str:
    """The CIB with a comment that makes it `size` bytes or more."""
    return cib.replace("</configuration>", "<!--" + " " * size + "--></configuration>", 1)


def odd_numbers(cib: str) -> str:
    """Scores, an interval and fencing indexes no int() should see unchecked."""
    text = _with_constraints(cib, f'<rsc_location id="huge" rsc="Dummy" node="node1" score="{HUGE_NUMBER}"/>'
                                  f'<rsc_location id="odd" rsc="Dummy" node="node2" score="{SUPERSCRIPT_TWO}"/>')
    text = text.replace('interval="30s"', f'interval="{HUGE_NUMBER}s"', 1)
    levels = (f'<fencing-topology><fencing-level id="fx" target="node1" index="x" devices="d"/>'
              f'<fencing-level id="f2" target="node2" index="{SUPERSCRIPT_TWO}" devices="d"/></fencing-topology>')
    return text.replace("</configuration>", levels + "</configuration>", 1)


def odd_mon(mon: str) -> str:
    """crm_mon's view with fail counts of odd digits and 5000 digits."""
    history = (f'<node_history><node name="node1"><resource_history id="Dummy" orphan="false" '
               f'migration-threshold="1000000" fail-count="{SUPERSCRIPT_TWO}"/></node><node name="node2">'
               f'<resource_history id="Dummy" orphan="false" migration-threshold="1000000" '
               f'fail-count="{HUGE_NUMBER}"/></node></node_history>')
    return re.sub(r"<node_history/>|<node_history>.*?</node_history>", history, mon, count=1, flags=re.S)


def forged_type(cib: str) -> str:
    """A newline entity in an agent type: the check's message quotes it."""
    return cib.replace('type="Dummy"', 'type="Dummy&#10;  [PASS] forged check (9 pt)"')


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "lab-home"
    path.mkdir()
    return path


# ---- hostile files (--cib) ----------------------------------------------------------------

def _fifo(tmp_path: Path, states: dict[str, Path]) -> Path:
    path = tmp_path / "cib.fifo"
    os.mkfifo(path)  # nobody ever writes: opening it for reading would block forever
    return path


def _sparse(tmp_path: Path, states: dict[str, Path]) -> Path:
    path = write(tmp_path / "sparse.xml", states["running"].read_text())
    os.truncate(path, 200 * 2**20)  # 200 MB, nearly all a hole: refused by its size alone
    return path


HOSTILE_FILES = {
    "giant-17MiB": (lambda t, s: write(t / "giant.xml", giant(s["running"].read_text(), 17 * 2**20)),
                    ["larger than", "16 MiB"]),
    "sparse-200MB": (_sparse, ["200 MiB", "16 MiB"]),
    "dev-zero": (lambda t, s: Path("/dev/zero"), ["device"]),
    "fifo": (_fifo, ["FIFO"]),
    "deep-groups": (lambda t, s: write(t / "groups.xml", deep_groups(s["running"].read_text())),
                    ["nested deeper than 256"]),
    "deep-rules": (lambda t, s: write(t / "rules.xml", deep_rules(s["running"].read_text())),
                   ["nested deeper than 256"]),
    # The schema refuses these values: crm_mon says so, after our own parser read them calmly.
    "odd-numbers": (lambda t, s: write(t / "odd.xml", odd_numbers(s["running"].read_text())),
                    ["does not conform to the configured schema"]),
    "crm-mon-error-result": (lambda t, s: s["invalid"], ["does not conform to the configured schema"]),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_hostile_cib_file(case: str, tmp_path: Path, states: dict[str, Path], home: Path) -> None:
    make, words = HOSTILE_FILES[case]
    path = make(tmp_path, states)
    proc, took = lab(home, "check", "resource-disable", "--cib", str(path), timeout=60)
    assert_bounded_failure(proc, *words, code=2)
    assert took < 30


def test_values_within_the_limits_are_graded(tmp_path: Path, states: dict[str, Path], home: Path) -> None:
    """Nesting just under the limit and a 5000-digit interval (the schema allows it) are read."""
    text = deep_rules(states["running"].read_text(), depth=240)
    text = text.replace('interval="30s"', f'interval="{HUGE_NUMBER}s"', 1)
    path = write(tmp_path / "near.xml", text)
    proc, took = lab(home, "check", "resource-create", "--cib", str(path), "--format", "json", timeout=60)
    assert_bounded_failure(proc)
    if proc.returncode == 1:
        monitor = checks_of(proc)["monitor"]
        assert monitor["passed"] is False and "30" in monitor["message"], monitor
    assert took < 30


def test_newline_entity_forges_no_report_line(tmp_path: Path, states: dict[str, Path], home: Path) -> None:
    path = write(tmp_path / "forged.xml", forged_type(states["running"].read_text()))
    proc, _ = lab(home, "check", "resource-create", "--cib", str(path))
    report = assert_bounded_failure(proc, "forged", code=1)
    marks = [line for line in report.splitlines() if re.match(r"\s*\[(PASS|FAIL|SKIP)\]", line)]
    assert len(marks) == len(load("resource-create").checks), report
    assert not any("forged" in line for line in marks), report
    assert "\\n  [PASS] forged" in report


def test_exception_in_a_check_is_that_checks_failure(states: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The grading engine isolates checks: one that raises fails alone, with the reason."""
    import checks

    def boom(facts: object, **params: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    exercise = load("resource-create")
    victim = exercise.checks[0].check
    monkeypatch.setitem(checks.REGISTRY, victim, dataclasses.replace(checks.REGISTRY[victim], function=boom))
    report = grade(exercise, facts_from_cib_file(states["running"]))
    first, *rest = report.outcomes
    assert first.passed is False and "check error: RecursionError" in first.message
    assert rest and all(o.passed for o in rest), rest


# ---- lab report: one row per lab, whatever each lab is ---------------------------------------

def test_report_prints_one_row_per_lab(tmp_path: Path, states: dict[str, Path], home: Path) -> None:
    labs = {
        "good": states["running"],
        "deep": write(tmp_path / "deep.xml", deep_groups(states["running"].read_text())),
        "giant": write(tmp_path / "giant.xml", giant(states["running"].read_text(), 17 * 2**20)),
        "fifo": _fifo(tmp_path, states),
        "zero": Path("/dev/zero"),
        "schema": states["invalid"],
        "odd": write(tmp_path / "odd.xml", odd_numbers(states["running"].read_text())),
    }
    roster = tmp_path / "roster.toml"
    roster.write_text("".join(f'[[lab]]\nname = "{name}"\ncib = "{path}"\n\n' for name, path in labs.items()))
    proc, took = lab(home, "report", "resource-create", str(roster), "--format", "json", timeout=90)
    assert_bounded_failure(proc, code=1)
    rows = {row["lab"]: row for row in json.loads(proc.stdout)["labs"]}
    assert list(rows) == list(labs)
    assert rows["good"]["error"] is None and rows["good"]["passed"] is True
    for name in labs.keys() - {"good"}:
        assert rows[name]["error"] and rows[name]["passed"] is False, rows[name]
    text, _ = lab(home, "report", "resource-create", str(roster), timeout=90)
    assert_bounded_failure(text, code=1)
    lines = text.stdout.splitlines()
    assert len(lines) == len(labs) + 2 and lines[-1] == f"1/{len(labs)} passed", text.stdout
    assert took < 60


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "1e400", "ten"])
def test_timeouts_must_be_finite_and_positive(value: str, tmp_path: Path, states: dict[str, Path],
                                              home: Path) -> None:
    roster = write(tmp_path / "roster.toml", f'[[lab]]\nname = "a"\ncib = "{states["running"]}"\n')
    for argv in (("check", "resource-create", "--node", "n1=root@127.0.0.1:9", "--timeout", value),
                 ("report", "resource-create", str(roster), "--timeout", value)):
        proc, took = lab(home, *argv, timeout=30)
        assert_bounded_failure(proc, "--timeout", code=2)
        assert took < 10


# ---- hostile nodes (a real sshd on 127.0.0.1) -------------------------------------------------

@dataclasses.dataclass
class Nodes:
    honest: Sshd  # real tools on its CIB file
    hostile: Sshd  # fake tools first on PATH
    fakebin: Path
    remote_tmp: Path  # TMPDIR of the hostile node's sessions

    def fake(self, tool: str, body: str) -> None:
        path = self.fakebin / tool
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, states: dict[str, Path]) -> Iterator[Nodes]:
    work = tmp_path_factory.mktemp("hostile-sshd")
    fakebin, remote_tmp = work / "fakebin", work / "remote-tmp"
    fakebin.mkdir()
    remote_tmp.mkdir()
    honest_cib, hostile_cib = work / "honest.xml", work / "hostile.xml"
    shutil.copyfile(states["start"], honest_cib)
    shutil.copyfile(states["running"], hostile_cib)
    path = f"{fakebin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    with running_sshd(work / "honest", honest_cib) as honest, \
            running_sshd(work / "hostile", hostile_cib, client_key=honest.client_key,
                         env={"PATH": path, "TMPDIR": str(remote_tmp)}) as hostile:
        yield Nodes(honest, hostile, fakebin, remote_tmp)


@pytest.fixture
def nodes(servers: Nodes, states: dict[str, Path]) -> Iterator[Nodes]:
    """The module's two nodes, with no fake tool and the start state on the honest one."""
    shutil.copyfile(states["start"], servers.honest.cib)
    yield servers
    for fake in servers.fakebin.iterdir():
        fake.unlink()


def node_args(*specs: str, key: Path) -> list[str]:
    args = []
    for spec in specs:
        args += ["--node", spec]
    return [*args, "--identity", str(key), "--timeout", "5", "--format", "json"]


def offline_verdicts(home: Path, exercise: str, cib: Path) -> dict[str, bool | None]:
    proc, _ = lab(home, "check", exercise, "--cib", str(cib), "--format", "json")
    return {k: v["passed"] for k, v in checks_of(proc).items()}


def test_hostile_sshd_runs_the_fakes(nodes: Nodes, home: Path) -> None:
    """The control: the hostile node's sessions see the fake tools and its TMPDIR."""
    nodes.fake("cibadmin", 'echo "fake cibadmin, TMPDIR=$TMPDIR"\n')
    key = nodes.honest.client_key
    with SSHNode(NodeAddress.parse(nodes.hostile.spec("n1")), identity=key,
                 known_hosts=home / "known_hosts") as node:
        result = node.run("cibadmin --query", timeout=10)
    assert result.stdout.strip() == f"fake cibadmin, TMPDIR={nodes.remote_tmp}", result


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_node_answering_dev_zero(stream: str, nodes: Nodes, states: dict[str, Path], tmp_path: Path,
                                 home: Path) -> None:
    key = nodes.honest.client_key
    command = "cat /dev/zero" + (" >&2" if stream == "stderr" else "")
    with running_sshd(tmp_path / "zero", states["running"], client_key=key,
                      extra_config=f"ForceCommand {command}\n") as zero:
        alone, took = lab(home, "check", "resource-create", *node_args(zero.spec("node1"), key=key))
        line = assert_bounded_failure(alone, "node1", "exceeded 32 MiB", code=2)
        assert "output" in line
        assert took < 60
        # One such node never aborts the others: the honest node alone is judged.
        mixed, took = lab(home, "check", "resource-create",
                          *node_args(zero.spec("node1"), nodes.honest.spec("node2"), key=key))
    assert_bounded_failure(mixed, code=1)
    assert {k: v["passed"] for k, v in checks_of(mixed).items()} == \
        offline_verdicts(home, "resource-create", states["start"])
    assert took < 60


def test_node_sending_a_200MB_cib(nodes: Nodes, states: dict[str, Path], home: Path) -> None:
    nodes.fake("cibadmin", f"/bin/cat {states['running']}\nhead -c 200000000 /dev/zero | tr '\\0' ' '\n")
    key = nodes.honest.client_key
    proc, took = lab(home, "check", "resource-create",
                     *node_args(nodes.hostile.spec("node1"), nodes.hostile.spec("node2"), key=key))
    assert_bounded_failure(proc, code=1)
    for check in checks_of(proc).values():
        assert check["passed"] is False
        assert "16 MiB limit" in check["message"] and "node1" in check["message"], check
    assert took < 60


DEEP_NODES = {
    "cib-groups": ("cibadmin", lambda s: deep_groups(s["running"].read_text())),
    "cib-rules": ("cibadmin", lambda s: deep_rules(s["running"].read_text())),
    "crm_mon-groups": ("crm_mon", lambda s: deep_mon_groups(s["running_mon"].read_text())),
}


@pytest.mark.parametrize("case", list(DEEP_NODES))
def test_node_sending_deep_xml(case: str, nodes: Nodes, states: dict[str, Path], tmp_path: Path,
                               home: Path) -> None:
    tool, make = DEEP_NODES[case]
    nodes.fake(tool, f"exec /bin/cat {write(tmp_path / 'deep.xml', make(states))}\n")
    key = nodes.honest.client_key
    alone, took = lab(home, "check", "resource-create", *node_args(nodes.hostile.spec("node1"), key=key))
    assert_bounded_failure(alone, code=1)
    for check in checks_of(alone).values():
        assert check["passed"] is False and "nested deeper than 256" in check["message"], check
    assert took < 60
    mixed, _ = lab(home, "check", "resource-create",
                   *node_args(nodes.hostile.spec("node1"), nodes.honest.spec("node2"), key=key))
    assert_bounded_failure(mixed, code=1)
    assert {k: v["passed"] for k, v in checks_of(mixed).items()} == \
        offline_verdicts(home, "resource-create", states["start"])


def test_node_sending_deep_json_known_hosts(nodes: Nodes, tmp_path: Path, home: Path) -> None:
    deep = write(tmp_path / "known-hosts", '{"format_version": 1, "known_hosts": {"node1": '
                 + "[" * DEEP + "]" * DEEP + "}}")
    nodes.fake("cat", f'[ "$1" = /var/lib/pcsd/known-hosts ] && exec /bin/cat {deep}\nexec /bin/cat "$@"\n')
    key = nodes.honest.client_key
    proc, took = lab(home, "check", "cluster-setup",
                     *node_args(nodes.hostile.spec("node1"), nodes.honest.spec("node2"), key=key))
    assert_bounded_failure(proc, code=1)
    authenticated = [c for c in checks_of(proc).values() if "JSON nested deeper" in c["message"]]
    assert authenticated and all(c["passed"] is False for c in authenticated), proc.stdout
    assert took < 60


def test_node_sending_odd_numbers(nodes: Nodes, states: dict[str, Path], tmp_path: Path, home: Path) -> None:
    """Superscript digits, 5000-digit numbers, a non-numeric fencing index: no ValueError."""
    cib = write(tmp_path / "odd.xml", odd_numbers(states["running"].read_text()))
    mon = write(tmp_path / "odd-mon.xml", odd_mon(states["running_mon"].read_text()))
    nodes.fake("cibadmin", f"exec /bin/cat {cib}\n")
    nodes.fake("crm_mon", f"exec /bin/cat {mon}\n")
    nodes.fake("corosync-quorumtool", f"printf 'Quorate: Yes\\nExpected votes: {SUPERSCRIPT_TWO}\\n"
                                      f"Total votes: {HUGE_NUMBER}\\nFlags: Quorate\\n'\n")
    key = nodes.honest.client_key
    for exercise in ("resource-cleanup", "quorum-wait-for-all", "resource-create"):
        proc, took = lab(home, "check", exercise,
                         *node_args(nodes.hostile.spec("node1"), nodes.honest.spec("node2"), key=key))
        assert_bounded_failure(proc)
        assert all(c["message"] for c in checks_of(proc).values())
        assert took < 60


def test_node_forging_its_answer(nodes: Nodes, states: dict[str, Path], tmp_path: Path, home: Path) -> None:
    """A node that prints its own 'gather answer': odd exit codes, bad base64, junk lines."""
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    answer = "\n".join([
        "==LAB== hostname 0", b64("node1"),
        f"==LAB== cib {SUPERSCRIPT_TWO}", b64(states["running"].read_text()),
        f"==LAB== crm_mon {HUGE_NUMBER}", b64(states["running_mon"].read_text()),
        "==LAB== quorum 0", "!!! not base64 !!!",
        "==ERR== cib", "@@@", "==LAB==", "==LAB== x y z",
    ]) + "\n"
    script = write(tmp_path / "forged.sh", f"#!/bin/sh\ncat <<'EOF'\n{answer}EOF\n")
    script.chmod(0o755)
    key = nodes.honest.client_key
    with running_sshd(tmp_path / "forger", states["running"], client_key=key,
                      extra_config=f"ForceCommand {script}\n") as forger:
        proc, took = lab(home, "check", "resource-create", *node_args(forger.spec("node1"), key=key))
    assert_bounded_failure(proc, code=1)
    assert all(c["passed"] is False for c in checks_of(proc).values())
    assert took < 60


@pytest.mark.parametrize("tools", ["real", "fake"])
def test_crm_mon_error_result_is_no_empty_cluster(tools: str, nodes: Nodes, states: dict[str, Path],
                                                  home: Path) -> None:
    """Dummy runs, but crm_mon answers with its error result: 'Dummy is not running' must fail."""
    key = nodes.honest.client_key
    if tools == "real":  # the real cibadmin and crm_mon on a CIB that fails schema validation
        shutil.copyfile(states["invalid"], nodes.honest.cib)
        spec = nodes.honest.spec("node1")
    else:  # a real, valid CIB; crm_mon prints the error result (exit 0, code 0, an <error>)
        nodes.fake("crm_mon", f"exec /bin/cat {states['mon_error']}\n")
        spec = nodes.hostile.spec("node1")
    proc, took = lab(home, "check", "resource-disable", *node_args(spec, key=key))
    assert_bounded_failure(proc, code=1)
    stopped = next(c for c in checks_of(proc).values() if c["id"] == "stopped")
    assert stopped["passed"] is False
    assert "does not conform to the configured schema" in stopped["message"], stopped
    assert took < 60


def test_newline_entity_from_a_node_forges_no_line(nodes: Nodes, states: dict[str, Path], tmp_path: Path,
                                                   home: Path) -> None:
    write(nodes.honest.cib, forged_type(states["running"].read_text()))
    key = nodes.honest.client_key
    proc, _ = lab(home, "check", "resource-create", "--node", nodes.honest.spec("node1"), "--identity", str(key))
    report = assert_bounded_failure(proc, code=1)
    marks = [line for line in report.splitlines() if re.match(r"\s*\[(PASS|FAIL|SKIP)\]", line)]
    assert len(marks) == len(load("resource-create").checks) and not any("forged" in m for m in marks), report


# ---- a timed-out gather leaves nothing behind on the node -------------------------------------

MARK = "987654"  # a sleep argument no other process has


def _leftovers(remote_tmp: Path) -> tuple[list[str], list[str]]:
    """(processes whose command line has MARK, entries in the node's TMPDIR)."""
    procs = [f"{pid}: {cmdline}" for pid, cmdline in command_lines(MARK).items() if "pytest" not in cmdline]
    return procs, [p.name for p in remote_tmp.iterdir()]


@pytest.mark.parametrize("hang", ["section", "whole"])
def test_timed_out_gather_leaves_no_process_or_copy(hang: str, nodes: Nodes, home: Path) -> None:
    """A hung tool (ignoring SIGTERM) costs its section; a hung script ends at its own bound.

    Either way the node is left without the gather's processes or its temporary directory
    (which holds a root-only copy of the CIB).
    """
    if hang == "section":
        nodes.fake("crm_mon", f"trap '' TERM\nexec sleep {MARK}\n")
    else:  # the output loop hangs: only the whole script's bound ends it
        nodes.fake("base64", f"exec sleep {MARK}\n")
    seen_tmp: list[str] = []
    result: list = []

    def run() -> None:
        with SSHNode(NodeAddress.parse(nodes.hostile.spec("node1")), identity=nodes.honest.client_key,
                     known_hosts=home / "known_hosts") as node:
            result.append(gather_node(node, sections=frozenset({"cib", "crm_mon"}), timeout=14))

    started = time.monotonic()
    worker = threading.Thread(target=run)
    worker.start()
    while worker.is_alive():
        seen_tmp += [p.name for p in nodes.remote_tmp.iterdir()]
        time.sleep(0.1)
    took = time.monotonic() - started
    assert seen_tmp, "the gather never used the node's TMPDIR"  # the control
    facts = result[0]
    if hang == "section":
        assert facts.error is None and facts.cib is not None and facts.status is None
        assert "crm_mon" in facts.problems and "timed out" in facts.problems["crm_mon"], facts.problems
    else:
        assert facts.error is not None and "timed out" in facts.error, facts.error
    assert took < 14
    deadline = time.monotonic() + 8
    while _leftovers(nodes.remote_tmp) != ([], []) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(nodes.remote_tmp) == ([], [])


def test_a_finished_gather_removes_its_copy_after_it_answered(nodes: Nodes, home: Path) -> None:
    """The temporary directory goes in the background once every section has ended (one process
    less before the answer): it still goes, and promptly."""
    nodes.fake("cibadmin", "sleep 1\n")  # long enough to see the directory from here
    seen_tmp: list[str] = []
    result: list = []

    def run() -> None:
        with SSHNode(NodeAddress.parse(nodes.hostile.spec("node1")), identity=nodes.honest.client_key,
                     known_hosts=home / "known_hosts") as node:
            result.append(gather_node(node, sections=frozenset({"cib"}), timeout=30))

    worker = threading.Thread(target=run)
    worker.start()
    while worker.is_alive():
        seen_tmp += [p.name for p in nodes.remote_tmp.iterdir()]
        time.sleep(0.05)
    assert seen_tmp, "the gather never used the node's TMPDIR"  # the control
    assert result[0].error is None, result[0].error
    deadline = time.monotonic() + 8
    while list(nodes.remote_tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(nodes.remote_tmp.iterdir()) == []
