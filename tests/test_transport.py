"""One transport: the Runner protocol, the command log and the one retry policy, on real parts.

Commands run for real on this host and over a real sshd on 127.0.0.1 (tests/sshd.py); the log
is read back from its file. The retry tests time real waits (short ones)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.core.errors import LabError
from lab.engine.offline import OfflineCluster
from lab.transport import log
from lab.transport import retry as retry_module
from lab.transport.address import NodeAddress
from lab.transport.base import Runner
from lab.transport.local import CibFileRunner, LocalRunner
from lab.transport.retry import GaveUp, retry
from lab.transport.ssh import SSHNode
from tests.sshd import Sshd, free_port

LINE = re.compile(r"^\S+ (?P<where>\S+)\s+exit=(?P<rc>-?\d+)\s+(?P<secs>\d+\.\d\d)s  (?P<what>.*)$")


def records(path: Path) -> list[dict[str, str]]:
    """The command lines of a log file, parsed (notes and output tails left out)."""
    found = []
    for line in path.read_text().splitlines():
        match = LINE.match(line)
        if match:
            found.append(match.groupdict())
    return found


@pytest.fixture
def logfile(tmp_path: Path) -> Iterator[Path]:
    with log.logging_to(tmp_path / "lab" / "commands.log") as path:
        yield path




def test_local_command_is_logged_with_status_and_duration(logfile: Path) -> None:
    runner = LocalRunner()
    assert runner.run("sleep 0.3; exit 3", label="a slow failing step").returncode == 3
    assert runner.run(["true"]).ok
    first, second = records(logfile)
    assert first["where"] == "host" and first["rc"] == "3" and first["what"] == "a slow failing step"
    assert float(first["secs"]) >= 0.3
    assert second["rc"] == "0" and second["what"] == "true"


def test_failed_command_logs_its_last_output_lines(logfile: Path) -> None:
    LocalRunner().run("for i in 1 2 3 4 5 6 7; do echo line$i; done; exit 1")
    text = logfile.read_text()
    assert "    | line7" in text and "    | line3" in text and "line2" not in text.split("exit=1")[1]


def test_ssh_command_is_logged_under_the_node_name(logfile: Path, sshd: Sshd, tmp_path: Path) -> None:
    with SSHNode(NodeAddress.parse(sshd.spec("node7")), identity=sshd.client_key,
                 known_hosts=tmp_path / "known_hosts") as node:
        result = node.run("cat; exit 4", input_text="from stdin\n", label="read stdin")
    assert result.returncode == 4 and result.stdout == "from stdin\n"
    (entry,) = records(logfile)
    assert entry["where"] == "node7" and entry["rc"] == "4" and entry["what"] == "read stdin"


def test_unreachable_node_is_logged_as_failed(logfile: Path, tmp_path: Path) -> None:
    node = SSHNode(NodeAddress.parse(f"gone=root@127.0.0.1:{free_port()}"), identity=None,
                   known_hosts=tmp_path / "known_hosts", connect_timeout=2)
    with pytest.raises(LabError):
        node.run("true", label="reach a node that is not there")
    (entry,) = records(logfile)
    assert entry["where"] == "gone" and entry["rc"] == "-1"
    assert "cannot connect" in logfile.read_text()


def test_secrets_never_reach_the_file(logfile: Path, sshd: Sshd, tmp_path: Path) -> None:
    secret = "hunter2-" + os.urandom(6).hex()
    log.redact(secret)
    LocalRunner().run(f"echo the password is {secret}; exit 1")
    with SSHNode(NodeAddress.parse(sshd.spec("node1")), identity=sshd.client_key,
                 known_hosts=tmp_path / "known_hosts") as node:
        node.run(f"echo {secret} >&2; exit 2")
    log.note("host", f"about to use {secret}")
    text = logfile.read_text()
    assert secret not in text
    assert text.count("***") >= 4  # both commands, the node's stderr, the note


def test_log_file_is_private(logfile: Path) -> None:
    LocalRunner().run("true")
    assert stat.S_IMODE(logfile.stat().st_mode) == 0o600


def test_log_blocks_nest_and_restore(tmp_path: Path) -> None:
    outer, inner = tmp_path / "outer.log", tmp_path / "inner.log"
    with log.logging_to(outer):
        with log.logging_to(inner):
            LocalRunner().run("echo inner")
        LocalRunner().run("echo outer")
    LocalRunner().run("echo nowhere")
    assert log.current() is None
    assert [r["what"] for r in records(inner)] == ["echo inner"]
    assert [r["what"] for r in records(outer)] == ["echo outer"]


def test_every_runner_answers_the_one_protocol(tmp_path: Path, sshd: Sshd) -> None:
    node = SSHNode(NodeAddress.parse(sshd.spec("n")), identity=sshd.client_key, known_hosts=tmp_path / "kh")
    for runner in (LocalRunner(), CibFileRunner(tmp_path / "cib.xml"), node):
        assert isinstance(runner, Runner)
    node.close()


@pytest.mark.skipif(shutil.which("pcs") is None or shutil.which("cibadmin") is None,
                    reason="needs pcs and pacemaker-cli-utils")
def test_cib_file_runner_works_on_the_file(tmp_path: Path, logfile: Path) -> None:
    """pcs becomes pcs -f FILE, cibadmin reads CIB_file: the same text as on a live node."""
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    runner = CibFileRunner(cluster.path)
    assert runner.run("pcs resource create Probe ocf:pacemaker:Dummy").ok
    query = runner.run(["cibadmin", "--query", "--scope", "resources"])
    assert query.ok and 'id="Probe"' in query.stdout
    assert 'id="Probe"' in cluster.path.read_text()
    assert any(r["what"].startswith("[cib.xml] pcs resource create") for r in records(logfile))


# --- the retry policy ----------------------------------------------------------------------------

def test_retry_returns_after_failed_tries(logfile: Path) -> None:
    tries = []

    def attempt() -> str:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise LabError(f"not yet ({len(tries)})")
        return "up"

    assert retry(attempt, what="the service to answer", within=10, every=0.2) == "up"
    assert len(tries) == 3 and tries[2] - tries[0] >= 0.4
    notes = [line for line in logfile.read_text().splitlines() if "---" in line]
    # The first failed try is logged; the next ones only LOG_EVERY seconds apart (0.4 s < 30 s).
    assert len(notes) == 1 and "the service to answer: try 1 failed" in notes[0] and "not yet (1)" in notes[0]


def test_a_long_wait_logs_one_line_per_interval_and_its_end(logfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_module, "LOG_EVERY", 0.5)

    def attempt() -> None:
        raise LabError("no lease yet")

    with pytest.raises(GaveUp):
        retry(attempt, what="node1: DHCP lease", within=1.6, every=0.1)
    notes = [line for line in logfile.read_text().splitlines() if "---" in line]
    assert "try 1 failed" in notes[0] and "gave up after" in notes[-1]
    assert 3 <= len(notes) <= 6, notes  # about 15 tries: the first, one per 0.5 s, the end


def test_gave_up_says_the_real_wait_and_the_tries() -> None:
    began = time.monotonic()

    def attempt() -> None:
        time.sleep(0.3)  # each try takes time of its own: the wait reported must include it
        raise LabError("connection refused")

    with pytest.raises(GaveUp) as caught:
        retry(attempt, what="SSH on node1", within=1.0, every=0.2)
    took = time.monotonic() - began
    err = caught.value
    assert err.what == "SSH on node1" and err.last == "connection refused"
    assert 2 <= err.tries <= 3
    # the real time from the first try to giving up: tries (0.3 s each) and pauses, not `within`
    assert 0.3 * err.tries + 0.2 * (err.tries - 1) - 0.05 <= err.waited <= took
    assert f"gave up after {err.waited:.0f} s ({err.tries} tries): connection refused" in str(err)
    assert took < 2.0


def test_final_error_stops_at_once() -> None:
    tries = []

    def attempt() -> None:
        tries.append(1)
        raise LabError("permission denied (publickey)")

    began = time.monotonic()
    with pytest.raises(LabError, match="permission denied") as caught:
        retry(attempt, what="SSH", within=30, every=1, final=lambda exc: "permission" in str(exc))
    assert not isinstance(caught.value, GaveUp)
    assert tries == [1] and time.monotonic() - began < 0.5


def test_other_exceptions_are_not_retried() -> None:
    tries = []

    def attempt() -> None:
        tries.append(1)
        raise KeyError("a bug, not a wait")

    with pytest.raises(KeyError):
        retry(attempt, what="x", within=30, every=1, retry_on=(LabError,))
    assert tries == [1]
