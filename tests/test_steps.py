"""Lab commands as declared steps (lab/vm/steps.py) and their command log.

The runner works on a real lab folder and state file (a fresh Lab.load sees each mark, as a rerun
in a new process does); commands run on a real sshd on loopback (tests/sshd.py) through the same
provision.run_root that lab up uses, so a failed step's node and command are the real ones; the
CLI is the real `lab` (in process for the phrasing of a failed step, as a child for `lab log`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.cli import main as cli
from lab.core.errors import NodeError
from lab.core.paths import project_root
from lab.transport import log
from lab.transport.address import NodeAddress
from lab.transport.runner import run_local
from lab.transport.ssh import SSHNode
from lab.vm import commands, lifecycle, provision
from lab.vm.labstate import Lab, Owned, StepName
from lab.vm.nodes import connect_retry
from lab.vm.startstate import START_STEPS
from lab.vm.steps import Step, StepFailed, command_log, mutating, run_steps
from tests.sshd import Sshd, free_port, make_key, running_sshd


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAB_NAME", raising=False)
    return tmp_path / "home"


def new_lab(home: Path, name: str = "a", steps: dict | None = None) -> Lab:
    folder = home / "labs" / name
    folder.mkdir(parents=True, exist_ok=True)
    state = {"version": 2, "name": name, "nodes": 2, "box": "debian12", "box_name": "failover-lab/debian12",
             "memory": 768, "cpus": 1, "driver": "qemu", "uri": "test:///default", "pool": "default",
             "private_cidr": "10.231.42.0/24", "mgmt_cidr": "10.232.42.0/24", "steps": steps or {},
             "exercise": None, "pcs_version": None, "owned": Owned.derive(name, 2, "default").to_json()}
    (folder / "state.json").write_text(json.dumps(state))
    lab = Lab.load(name)
    lab.ensure_password()
    return lab


@dataclass
class Run:
    lab: Lab
    ran: list[str] = field(default_factory=list)
    fail_at: str | None = None
    undone: list[str] = field(default_factory=list)


def recording(name: str) -> object:
    def run(ctx: Run) -> None:
        ctx.ran.append(name)
        if ctx.fail_at == name:
            raise NodeError(f"node2: {name} failed (exit 7): boom")
    return run


SEQUENCE = [
    Step("root ssh", recording("root ssh"), mark=StepName.ROOT_SSH),
    Step("installed", recording("installed"), mark=StepName.INSTALLED_SNAPSHOT,
         undo=lambda ctx: ctx.undone.append("installed")),
    Step("always", recording("always")),
    Step("cluster", recording("cluster"), mark=StepName.CLUSTER_BUILT),
]


def test_a_rerun_continues_from_the_first_step_not_done(home: Path) -> None:
    lab = new_lab(home)
    first = Run(lab, fail_at="installed")
    with pytest.raises(StepFailed) as failed:
        run_steps("lab up", SEQUENCE, first)
    assert first.ran == ["root ssh", "installed"] and first.undone == ["installed"]
    assert failed.value.step == "installed" and failed.value.node == "node2"
    assert failed.value.command == "installed" and failed.value.exit_code == 1
    again = Lab.load("a")  # a new process sees what the first run recorded
    assert again.done(StepName.ROOT_SSH) and not again.done(StepName.INSTALLED_SNAPSHOT)
    second = Run(again)
    run_steps("lab up", SEQUENCE, second)
    assert second.ran == ["installed", "always", "cluster"]
    final = Lab.load("a")
    assert all(final.done(s) for s in (StepName.ROOT_SSH, StepName.INSTALLED_SNAPSHOT, StepName.CLUSTER_BUILT))
    assert json.loads(final.state_file.read_text())["steps"]["cluster_built"] is True


def test_an_interruption_is_not_wrapped_and_leaves_the_step_undone(home: Path) -> None:
    lab = new_lab(home)

    def interrupted(ctx: Run) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_steps("lab up", [SEQUENCE[0], Step("cluster", interrupted, mark=StepName.CLUSTER_BUILT)], Run(lab))
    again = Lab.load("a")
    assert again.done(StepName.ROOT_SSH) and not again.done(StepName.CLUSTER_BUILT)


def test_declared_done_tests_skip_steps_that_have_nothing_to_do(home: Path) -> None:
    """lab start's steps say when they have nothing to do (no fixtures, no commands, no faults)."""
    names = [s.name for s in START_STEPS]
    assert names[:2] == ["revert", "connect and set clocks"] and names[-1] == "faults took effect"

    class Start:
        class exercise:  # noqa: N801 - a stand-in exercise with an empty start state
            class start:  # noqa: N801
                fixtures: tuple = ()
                commands: tuple = ()
                baseline = "installed"
        faults: list = []
        on_cluster = False

    skipped = [s.name for s in START_STEPS if s.is_done(Start())]  # type: ignore[arg-type]
    assert skipped == ["cluster healthy", "host fixtures", "start state commands", "faults", "faults took effect"]


def test_up_is_declared_in_order_with_typed_marks(home: Path) -> None:
    steps = lifecycle.UP_STEPS
    marks = [s.mark for s in steps if s.mark is not None]
    assert marks == [StepName.ROOT_SSH, StepName.INSTALLED_SNAPSHOT, StepName.CLUSTER_BUILT,
                     StepName.CLUSTER_SNAPSHOT]
    lab = new_lab(home, steps={"installed_snapshot": True})
    run = lifecycle.UpRun(lab, None, None, {})  # type: ignore[arg-type]
    done = [s.name for s in steps if s.is_done(run)]
    assert done == ["provision nodes", "root SSH", "snapshot installed"]  # an installed lab skips them
    assert next(s for s in steps if s.name == "snapshot cluster").undo is not None


# --- a real node: the command, the log, the secret ----------------------------------------



def node_at(server: Sshd, tmp_path: Path, name: str = "node1") -> SSHNode:
    return SSHNode(NodeAddress(name, "root", "127.0.0.1", server.port), identity=server.client_key,
                   known_hosts=tmp_path / "known_hosts", connect_timeout=5.0)


def test_a_failed_command_names_step_node_command_and_log_and_hides_the_password(
        home: Path, tmp_path: Path, sshd: Sshd) -> None:
    lab = new_lab(home)
    password = lab.password()
    node = node_at(sshd, tmp_path)

    def auth(ctx: Run) -> None:
        provision.run_root(node, f"echo 'pcs host auth -p {password}' >&2; exit 3", "pcs auth")

    try:
        with log.logging_to(command_log(lab)), pytest.raises(StepFailed) as failed:
            run_steps("lab up", [Step("cluster build", auth, mark=StepName.CLUSTER_BUILT)], Run(lab))
    finally:
        node.close()
    exc = failed.value
    assert (exc.step, exc.node, exc.command) == ("cluster build", "node1", "pcs auth")
    assert exc.log_path == command_log(lab)
    text = command_log(lab).read_text()
    assert "lab up: step cluster build start" in text and "lab up: step cluster build failed" in text
    assert "exit=3" in text and "root script: pcs auth" in text
    assert password not in text and "pcs host auth -p ***" in text


def test_the_cli_prints_one_line_naming_step_node_command_and_log(
        home: Path, tmp_path: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    node = node_at(sshd, tmp_path, "node2")

    @mutating()
    def command(_args: object) -> int:
        lab = Lab.load("default")
        run_steps("lab up", [Step("pcsd", lambda _c: provision.run_root(node, "exit 4", "pcsd setup"))], Run(lab))
        return 0

    new_lab(home, "default")
    monkeypatch.setitem(cli.COMMANDS, "exercises", command)
    try:
        assert cli.main(["exercises"]) == 1
    finally:
        node.close()
    err = capsys.readouterr().err.strip().splitlines()
    path = home / "labs" / "default" / "commands.log"
    assert len(err) == 1, err
    assert err[0].startswith("Error: lab up: step 'pcsd' failed on node2 (command: pcsd setup): "
                             "node2: pcsd setup failed (exit 4)"), err
    assert err[0].endswith(f"; see {path}") and path.exists(), err


def test_mutating_commands_log_to_the_lab_and_never_make_a_folder(home: Path) -> None:
    lab = new_lab(home)

    @mutating()
    def change(name: str) -> None:
        run_local(["sh", "-c", f"echo {lab.password()} >/dev/null; exit 2"])

    change("a")
    text = command_log(lab).read_text()
    assert "exit=2" in text and "***" in text and lab.password() not in text
    assert oct(command_log(lab).stat().st_mode & 0o777) == "0o600"
    assert log.current() is None  # the log is the command's, not the process's

    @mutating()
    def nothing(name: str) -> None:
        run_local(["true"])

    nothing("b")
    assert not (home / "labs" / "b").exists()


def lab_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LAB_HOME=str(home), LAB_NAME="a", PYTHONPATH=str(project_root()))
    env.pop("LAB_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_lab_log_shows_the_tail_or_everything(home: Path) -> None:
    lab = new_lab(home)
    missing = lab_cli(home, "log")
    assert missing.returncode == 1 and missing.stderr.startswith("Error: lab 'a' has no command log yet")
    with log.logging_to(command_log(lab)):
        for i in range(60):
            log.note("node1", f"line {i}")
    tail = lab_cli(home, "log").stdout.splitlines()
    assert len(tail) == 40 and tail[-1].endswith("line 59") and tail[0].endswith("line 20")
    everything = lab_cli(home, "log", "--all").stdout.splitlines()
    assert len(everything) == 60 and everything[0].endswith("line 0")


# --- waiting for a node, through the one retry policy ---------------------------------------

def test_connect_retry_waits_for_a_node_that_comes_up(tmp_path: Path) -> None:
    port = free_port()
    holder: dict[str, object] = {}
    started = threading.Event()
    stop = threading.Event()

    def late_sshd() -> None:
        time.sleep(1.5)
        cib = tmp_path / "cib.xml"
        cib.write_text("<cib/>")
        with running_sshd(tmp_path / "late", cib, port=port, client_key=key) as server:
            holder["server"] = server
            started.set()
            stop.wait(30)

    (tmp_path / "late").mkdir()
    key = make_key(tmp_path / "late" / "client_key")
    thread = threading.Thread(target=late_sshd, daemon=True)
    thread.start()
    began = time.monotonic()
    try:
        node = connect_retry(lambda: SSHNode(NodeAddress("node1", "root", "127.0.0.1", port), identity=key,
                                             known_hosts=tmp_path / "kh", connect_timeout=2.0),
                             time.monotonic() + 30, "node1")
        assert node.run("echo up").stdout.strip() == "up"
        node.close()
        assert time.monotonic() - began >= 1.5 and started.is_set()
    finally:
        stop.set()
        thread.join(10)


def test_connect_retry_says_how_long_it_really_waited(tmp_path: Path) -> None:
    port = free_port()
    began = time.monotonic()
    with pytest.raises(NodeError, match=r"node1: SSH: gave up after [12] s \(\d+ tries\)"):
        connect_retry(lambda: SSHNode(NodeAddress("node1", "root", "127.0.0.1", port), identity=tmp_path / "k",
                                      known_hosts=tmp_path / "kh", connect_timeout=1.0),
                      time.monotonic() + 2, "node1")
    assert time.monotonic() - began < 5


def test_a_changed_host_key_fails_at_once(tmp_path: Path, sshd: Sshd) -> None:
    known = tmp_path / "known_hosts"
    kind, key = make_key(tmp_path / "other").with_suffix(".pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")  # not the key the server shows
    began = time.monotonic()
    with pytest.raises(NodeError, match="changed"):
        connect_retry(lambda: SSHNode(NodeAddress("node1", "root", "127.0.0.1", sshd.port),
                                      identity=sshd.client_key, known_hosts=known, connect_timeout=5.0),
                      time.monotonic() + 60, "node1")
    assert time.monotonic() - began < 10


# --- the `on NODE:` command language --------------------------------------------------------

def test_commands_for_the_same_targets_share_one_script() -> None:
    plan = commands.plan(["a", "b", "on node2: c", "on node2: d", "on all: e", "f"], ["node1", "node2"],
                         "node1", {}, "start state")
    assert plan == [(("node1",), "set -e\na\nb\n"), (("node2",), "set -e\nc\nd\n"),
                    (("node1", "node2"), "set -e\ne\n"), (("node1",), "set -e\nf\n")]
    with pytest.raises(commands.UnknownNode, match="command for unknown node 'node9'"):
        commands.plan(["on node9: x"], ["node1", "node2"], "node1", {}, "start state")


def test_no_lab_up_names_the_other_ways_to_grade(home: Path) -> None:
    """The VM layer says there is no lab; the CLI adds the flags that grade something else."""
    result = lab_cli(home, "status")
    assert result.returncode == 2
    assert result.stderr.strip() == ("Error: no lab 'a' is up: run 'lab up' first, or grade other nodes with "
                                     "--node or a saved CIB with --cib")
    assert not (home / "labs" / "a").exists()


def test_a_failed_lab_start_says_its_step_and_log_in_one_line(home: Path) -> None:
    """The real CLI on libvirt's test driver, where the lab's domains do not exist: the revert step
    fails, the line names it and the log, and the log has the step's start and failure."""
    pytest.importorskip("libvirt")
    lab = new_lab(home, steps={"installed_snapshot": True, "cluster_snapshot": True})
    env = dict(os.environ, LAB_HOME=str(home), LAB_NAME="a", LIBVIRT_DEFAULT_URI="test:///default",
               PYTHONPATH=str(project_root()))
    env.pop("LAB_DEBUG", None)
    result = subprocess.run([sys.executable, "-m", "lab.cli", "start", "resource-create"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error == (f"Error: lab start: step 'revert' failed: domain flab-a-node1 does not exist; run 'lab up'; "
                     f"see {command_log(lab)}"), result.stderr
    text = command_log(lab).read_text()
    assert "lab start: step revert start" in text and "lab start: step revert failed" in text
    assert Lab.load("a").state.exercise is None  # the step did not get as far as recording it
