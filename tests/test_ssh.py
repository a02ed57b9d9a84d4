"""Grading over SSH against a real sshd on 127.0.0.1 whose sessions read a CIB file.

`lab check EX --node ...` must reach the same verdicts as `lab check EX --cib FILE`
on the same state, refuse a changed host key, and turn dead, closed or hanging nodes
into bounded failures (exit 2, or FAILED checks) and never into a pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.engine.exercises import load
from lab.engine.offline import OfflineCluster
from tests.sshd import Sshd, free_port, make_key, running_sshd, throwaway_user

pytestmark = pytest.mark.skipif(shutil.which("crm_mon") is None, reason="needs pacemaker-cli-utils")


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """resource-create's start state (failing) and its solved state (passing), made by the real tools."""
    base = tmp_path_factory.mktemp("states")
    failing = OfflineCluster.empty(base / "failing.xml")
    failing.run_all(load("resource-create").start.commands)
    failing.simulate()
    passing = failing.copy(base / "passing.xml")
    passing.run_all(load("resource-create").solution_pcs)
    passing.simulate()
    return {"failing": failing.path, "passing": passing.path}




@pytest.fixture
def lab_home(tmp_path: Path) -> Path:
    home = tmp_path / "lab-home"
    home.mkdir()
    return home


def lab(home: Path, *args: str, timeout: float = 90) -> tuple[subprocess.CompletedProcess, float]:
    """Run the real `lab` command line with LAB_HOME=home; return the process and its duration."""
    env = dict(os.environ, LAB_HOME=str(home))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def verdicts(proc: subprocess.CompletedProcess) -> dict[str, bool | None]:
    return {c["id"]: c["passed"] for c in json.loads(proc.stdout)["checks"]}


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("state", ["passing", "failing"])
def test_ssh_verdicts_match_cib_file(state: str, states: dict[str, Path], sshd: Sshd, lab_home: Path) -> None:
    shutil.copyfile(states[state], sshd.cib)
    offline, _ = lab(lab_home, "check", "resource-create", "--cib", str(states[state]), "--format", "json")
    live, took = lab(lab_home, "check", "resource-create", "--node", sshd.spec("node1"),
                     "--node", sshd.spec("node2"), "--identity", str(sshd.client_key), "--format", "json")
    assert live.returncode == offline.returncode == (0 if state == "passing" else 1), (live.stderr, offline.stderr)
    assert verdicts(live) == verdicts(offline)
    assert all(verdicts(live).values()) is (state == "passing")
    assert json.loads(live.stdout)["passed"] is (state == "passing")
    # Trust on first use: the host key was recorded in the lab's own known_hosts.
    known = (lab_home / "known_hosts").read_text()
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in known
    assert took < 30


def test_changed_host_key_is_refused(states: dict[str, Path], sshd: Sshd, tmp_path: Path,
                                     lab_home: Path) -> None:
    shutil.copyfile(states["passing"], sshd.cib)
    cib = tmp_path / "cib.xml"
    shutil.copyfile(states["passing"], cib)
    port = free_port()
    key = str(sshd.client_key)
    argv = ("check", "resource-create", "--node", f"node1=root@127.0.0.1:{port}", "--identity", key)
    honest_and_changed = ("check", "resource-create", "--node", sshd.spec("node1"),
                          "--node", f"node2=root@127.0.0.1:{port}", "--identity", key, "--format", "json")
    with running_sshd(tmp_path / "first", cib, port=port, client_key=sshd.client_key):
        first, _ = lab(lab_home, *argv, "--format", "json")
        both, _ = lab(lab_home, *honest_and_changed)
    assert first.returncode == 0, first.stderr
    assert both.returncode == 0, both.stderr
    known_before = (lab_home / "known_hosts").read_text()
    with running_sshd(tmp_path / "second", cib, port=port, client_key=sshd.client_key):  # a new host key
        second, took = lab(lab_home, *argv, "--format", "json")
        text, _ = lab(lab_home, *argv)
        # One impostor among honest nodes: still refused, even though node1 alone would pass.
        mixed, _ = lab(lab_home, *honest_and_changed)
    assert_one_line_error(second, "host key", "node1", str(port))
    assert_one_line_error(text, "host key")
    assert_one_line_error(mixed, "host key", "node2")
    assert (lab_home / "known_hosts").read_text() == known_before  # the impostor's key is not recorded
    assert took < 30


def test_closed_port_is_an_error_when_it_is_the_whole_lab(sshd: Sshd, lab_home: Path) -> None:
    dead = free_port()
    proc, took = lab(lab_home, "check", "resource-create", "--node", f"node1=root@127.0.0.1:{dead}",
                     "--identity", str(sshd.client_key))
    assert_one_line_error(proc, "node1", "reachable")
    assert took < 30


@pytest.mark.parametrize("exercise_id", ["cluster-setup", "troubleshoot-offline"])
def test_one_dead_node_fails_live_checks(exercise_id: str, states: dict[str, Path], sshd: Sshd,
                                         lab_home: Path) -> None:
    shutil.copyfile(states["passing"], sshd.cib)
    dead = free_port()
    proc, took = lab(lab_home, "check", exercise_id, "--node", sshd.spec("node1"),
                     "--node", f"node2=root@127.0.0.1:{dead}", "--identity", str(sshd.client_key),
                     "--format", "json")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert report["passed"] is False
    assert all(c["passed"] is False for c in report["checks"]), report
    by_id = {c["id"]: c for c in report["checks"]}
    assert "node2" in by_id["daemons"]["message"]
    assert all(c["message"] for c in report["checks"])
    assert took < 30


class SilentServer:
    """A TCP listener on 127.0.0.1 that accepts and then never completes SSH (a hung node)."""

    def __init__(self, banner: bytes = b"") -> None:
        self.banner = banner
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            if self.banner:
                conn.sendall(self.banner)
            self.held.append(conn)  # read nothing, answer nothing

    def __enter__(self) -> SilentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("banner", [b"", b"SSH-2.0-OpenSSH_9.2\r\n"], ids=["silent", "banner-then-silent"])
def test_hanging_node_times_out(banner: bytes, sshd: Sshd, states: dict[str, Path], lab_home: Path) -> None:
    with SilentServer(banner) as hung:
        alone, took = lab(lab_home, "check", "resource-create", "--node", f"node1=root@127.0.0.1:{hung.port}",
                          "--identity", str(sshd.client_key), "--timeout", "2")
        assert_one_line_error(alone, "node1")
        assert took < 20
        shutil.copyfile(states["passing"], sshd.cib)
        mixed, took = lab(lab_home, "check", "troubleshoot-offline", "--node", sshd.spec("node1"),
                          "--node", f"node2=root@127.0.0.1:{hung.port}", "--identity", str(sshd.client_key),
                          "--timeout", "2", "--format", "json")
    assert mixed.returncode == 1, mixed.stderr
    report = json.loads(mixed.stdout)
    assert all(c["passed"] is False for c in report["checks"])
    assert any("node2" in c["message"] for c in report["checks"])
    assert took < 20


@pytest.mark.parametrize("spec", [
    "node1",
    "node1=127.0.0.1",
    "=root@127.0.0.1",
    "node1=@127.0.0.1",
    "node1=root@",
    "node1=root@127.0.0.1:ssh",
    "node1=root@127.0.0.1:0",
    "node1=root@127.0.0.1:70000",
])
def test_bad_node_syntax_is_a_usage_error(spec: str, lab_home: Path, tmp_path: Path) -> None:
    key = make_key(tmp_path / "key")
    proc, took = lab(lab_home, "check", "resource-create", "--node", spec, "--identity", str(key))
    assert_one_line_error(proc, "--node")
    assert took < 10


def test_other_node_usage_errors(sshd: Sshd, lab_home: Path, tmp_path: Path) -> None:
    twice, _ = lab(lab_home, "check", "resource-create", "--node", sshd.spec("node1"), "--node",
                   sshd.spec("node1"), "--identity", str(sshd.client_key))
    assert_one_line_error(twice, "twice")
    missing, _ = lab(lab_home, "check", "resource-create", "--node", sshd.spec("node1"),
                     "--identity", str(tmp_path / "no-such-key"))
    assert_one_line_error(missing, "identity")
    wrong_key = make_key(tmp_path / "wrong_key")
    refused, _ = lab(lab_home, "check", "resource-create", "--node", sshd.spec("node1"),
                     "--identity", str(wrong_key))
    assert_one_line_error(refused, "authentication")


def test_non_root_user_without_sudo_fails_cleanly(states: dict[str, Path], tmp_path: Path, lab_home: Path) -> None:
    """Gathering uses `sudo -n` when not root; without (working) sudo the check fails, never passes."""
    cib = tmp_path / "cib.xml"
    shutil.copyfile(states["passing"], cib)
    cib.chmod(0o644)
    with throwaway_user("labsshtest") as user, \
            running_sshd(tmp_path / "sshd", cib, users=("root", user)) as server:
        proc, took = lab(lab_home, "check", "resource-create", "--node", server.spec("node1", user),
                         "--identity", str(server.client_key), "--format", "json")
    if shutil.which("sudo") is not None:
        pytest.skip("sudo is installed: the non-root outcome depends on its policy")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert report["passed"] is False
    assert all(c["passed"] is False for c in report["checks"]), report
    assert all("readable CIB" in c["message"] for c in report["checks"])
    assert took < 30


def test_report_grades_many_labs_and_isolates_a_dead_one(states: dict[str, Path], sshd: Sshd,
                                                          lab_home: Path, tmp_path: Path) -> None:
    """`lab report`: a live lab over SSH, a saved CIB and a dead lab, one row each."""
    shutil.copyfile(states["passing"], sshd.cib)
    shutil.copyfile(states["failing"], tmp_path / "bob.xml")
    roster = tmp_path / "roster.toml"
    roster.write_text(
        f'identity = "{sshd.client_key}"\n'
        f'[[lab]]\nname = "alice"\nnodes = ["{sshd.spec("node1")}", "{sshd.spec("node2")}"]\n'
        f'[[lab]]\nname = "bob"\ncib = "bob.xml"\n'
        f'[[lab]]\nname = "carol"\nnodes = ["node1=root@127.0.0.1:{free_port()}"]\n'
    )
    proc, elapsed = lab(lab_home, "report", "resource-create", str(roster), "--format", "json",
                        "--timeout", "3")
    assert proc.returncode == 1, proc.stderr
    rows = {row["lab"]: row for row in json.loads(proc.stdout)["labs"]}
    assert rows["alice"]["passed"] is True and rows["alice"]["error"] is None
    assert rows["bob"]["passed"] is False and rows["bob"]["score"] < rows["bob"]["max_score"]
    assert rows["carol"]["passed"] is False and "node1" in rows["carol"]["error"]
    assert elapsed < 60
    text, _ = lab(lab_home, "report", "resource-create", str(roster), "--timeout", "3")
    assert "alice" in text.stdout and "1/3 passed" in text.stdout


def test_report_rejects_a_bad_roster(lab_home: Path, tmp_path: Path) -> None:
    roster = tmp_path / "roster.toml"
    roster.write_text('[[lab]]\nname = "x"\n')
    proc, _ = lab(lab_home, "report", "resource-create", str(roster))
    assert_one_line_error(proc, "nodes")


def _descendants(pid: int) -> list[int]:
    """Every process below pid (sshd's per-connection monitor and session processes)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    children = [int(p) for p in found]
    return children + [d for c in children for d in _descendants(c)]


@pytest.fixture
def fast_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten the wait for a channel (30 s for slow emulated nodes) so the test takes seconds."""
    from lab.transport import ssh

    monkeypatch.setattr(ssh, "OPEN_TIMEOUT", 1.0)


def _node(sshd: Sshd, tmp_path: Path):  # noqa: ANN202 - lab.transport.ssh.SSHNode
    from lab.transport.address import NodeAddress
    from lab.transport.ssh import SSHNode

    return SSHNode(NodeAddress.parse(sshd.spec("node1")), identity=sshd.client_key,
                   known_hosts=tmp_path / "known_hosts", connect_timeout=1.0)


def test_stalled_session_is_replaced_by_a_fresh_connection(sshd: Sshd, tmp_path: Path, fast_open: None) -> None:
    """A connection whose sshd no longer answers channel requests (a node too busy to open a
    session in time) is replaced once; the command still runs."""
    node = _node(sshd, tmp_path)
    try:
        assert node.run("echo first").stdout == "first\n"
        stalled = _descendants(sshd.process.pid)
        assert stalled, "sshd forked no process for the connection"
        for pid in stalled:
            os.kill(pid, signal.SIGSTOP)
        try:
            again = node.run("echo second", timeout=10)
        finally:
            for pid in stalled:
                os.kill(pid, signal.SIGKILL)
        assert (again.returncode, again.stdout) == (0, "second\n")
    finally:
        node.close()


def test_server_that_stalls_everything_is_a_node_error(sshd: Sshd, tmp_path: Path, fast_open: None) -> None:
    """When neither the connection nor a new one answers, run() raises the one-line NodeError
    the CLI prints, not paramiko's exception."""
    from lab.core.errors import NodeError

    node = _node(sshd, tmp_path)
    assert node.run("true").returncode == 0
    stalled = [sshd.process.pid, *_descendants(sshd.process.pid)]
    for pid in stalled:
        os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(NodeError, match="node1"):
            node.run("true", timeout=10)
    finally:
        for pid in stalled[1:]:
            os.kill(pid, signal.SIGKILL)
        os.kill(sshd.process.pid, signal.SIGCONT)
        node.close()


def test_output_after_the_exit_status_is_read_to_its_end(sshd: Sshd, tmp_path: Path) -> None:
    """OpenSSH sends the exit status when the command exits, which can be before it has read the
    command's output from the pipe: a big answer came back cut with exit 0 (2 of 50 runs of
    533 KB). Here a child writes after its shell has exited, so the exit status comes first every
    time: the output must still be whole, and so must a big answer, every time."""
    node = _node(sshd, tmp_path)
    try:
        late = node.run("(sleep 1; echo late; sleep 1; echo later) & echo early; exit 3", timeout=30)
        assert (late.returncode, late.stdout) == (3, "early\nlate\nlater\n")
        big = "head -c 400000 /dev/zero | base64 -w 0; echo"
        expected = len(subprocess.run(big, shell=True, capture_output=True, check=True).stdout)
        sizes = {len(node.run(big, timeout=60).stdout) for _ in range(20)}
        assert sizes == {expected}
    finally:
        node.close()


def test_a_process_holding_the_output_open_ends_the_read_after_a_grace(
        sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that leaves a process holding its stdout (a daemon that did not close it) ends
    the read EOF_GRACE after its exit status and its last byte, not at the timeout."""
    from lab.transport import ssh

    monkeypatch.setattr(ssh, "EOF_GRACE", 1.0)
    node = _node(sshd, tmp_path)
    try:
        started = time.monotonic()
        result = node.run("sleep 15 & echo started; exit 0", timeout=40)
        took = time.monotonic() - started
        assert (result.returncode, result.stdout) == (0, "started\n")
        assert took < 10, f"read until {took:.1f} s: the grace did not end it"
    finally:
        node.close()


class _CountingForwarder:
    """A TCP forwarder on loopback in front of the test sshd that counts the connections it
    accepts: an early connection that is really the one the handshake uses shows as one."""

    def __init__(self, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def _early_node(sshd: Sshd, tmp_path: Path, port: int):  # noqa: ANN202 - (SSHNode, EarlyConnection)
    from lab.transport.address import NodeAddress
    from lab.transport.early import EarlyConnection
    from lab.transport.ssh import SSHNode

    address = NodeAddress("node1", "root", "127.0.0.1", port)
    early = EarlyConnection(address.host, address.port, timeout=5.0)
    return SSHNode(address, identity=sshd.client_key, known_hosts=tmp_path / "known_hosts",
                   connect_timeout=5.0, early=early), early


def test_an_early_tcp_connection_is_the_one_the_ssh_handshake_uses(sshd: Sshd, tmp_path: Path) -> None:
    """`lab check` opens the TCP connections before paramiko loads: the handshake must run on
    that socket (one connection seen by the server), and a replaced connection opens its own."""
    forwarder = _CountingForwarder(sshd.port)
    node, _early = _early_node(sshd, tmp_path, forwarder.port)
    try:
        assert node.run("echo through").stdout == "through\n"
        assert node.run("echo again").stdout == "again\n"
        assert forwarder.accepted == 1
        node.close()
        assert node.run("echo anew").stdout == "anew\n"  # a new connection, not the spent socket
        assert forwarder.accepted == 2
    finally:
        node.close()
        forwarder.close()


def test_an_early_connection_that_is_refused_is_the_nodes_one_line_error(sshd: Sshd, tmp_path: Path) -> None:
    """The early attempt's failure is reported as the SSH layer's own error, at once (no second
    attempt, no traceback)."""
    from lab.core.errors import NodeError

    node, _early = _early_node(sshd, tmp_path, free_port())
    started = time.monotonic()
    with pytest.raises(NodeError, match=r"node1: cannot connect to .*refused"):
        node.run("true")
    assert time.monotonic() - started < 3
    node.close()


def test_an_early_connection_never_used_is_closed_with_the_node(sshd: Sshd, tmp_path: Path) -> None:
    """A check that ends before it asks a node anything (a usage error after the knock) leaves
    no connection open."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        node, early = _early_node(sshd, tmp_path, listener.getsockname()[1])
        listener.settimeout(5)
        accepted, _ = listener.accept()
        early._thread.join(5)
        node.close()
        accepted.settimeout(5)
        assert accepted.recv(10) == b"", "the unused connection is still open"
        accepted.close()
    finally:
        listener.close()


def test_the_ssh_layer_loads_paramiko_without_invoke_and_leaves_invoke_importable() -> None:
    """invoke is half of paramiko's import time on every `lab check` and serves only ssh_config's
    `Match exec`: the SSH layer loads paramiko without it, and hides nothing from later importers."""
    import subprocess
    import sys

    probe = ("import sys; import lab.transport.ssh as s; loaded = 'invoke' in sys.modules; "
             "import invoke; print(loaded, s.paramiko.SSHClient.__name__, invoke.Context.__name__)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "SSHClient", "Context"]
