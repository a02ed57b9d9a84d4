"""Process ownership: whatever a `lab` command starts locally ends with it.

A real child tree (a shell with grandchildren, some in process groups of their own, as
vagrant's detached children are) is started through lab.transport.runner inside a `lab`-like process
(the real `lab.cli.main` with one command replaced); the test then interrupts it the way a
terminal does (SIGINT to its process group), or sends SIGTERM, or lets a command time out or
fail, and asserts that no process of the tree is left. No VM is started here: a fake `vagrant`
stands in for the real one (see fake_vagrant).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab.core.paths import project_root
from lab.transport import runner

# The `lab`-like process: lab.cli.main runs a command that starts the tree in one of several ways.
DRIVER = textwrap.dedent("""
    import os, sys, threading, time
    from lab.cli import main as cli
    from lab.transport import runner
    from lab.core.errors import LabError

    mode, ready = sys.argv[1], sys.argv[2]
    tree = sys.argv[3:]

    def wait_ready():
        while not os.path.exists(ready):
            time.sleep(0.02)

    def command(_args):
        if mode == "foreground":
            runner.run_local(tree, timeout=600)
        elif mode == "thread-then-fail":
            # as `lab up` runs vagrant in a thread and fails in the main thread
            threading.Thread(target=lambda: runner.run_local(tree, timeout=600), daemon=True).start()
            wait_ready()
            raise LabError("node1: pcsd setup failed")
        elif mode == "vagrant":
            from lab.vm import vagrant as vg
            from lab.vm.labstate import Lab
            if os.environ.get("UP_TIMEOUT"):
                vg.UP_TIMEOUT = float(os.environ["UP_TIMEOUT"])
            lab = Lab("t1")
            lab.dir.mkdir(parents=True, exist_ok=True)
            vg.up(lab)
        print("command returned", flush=True)
        return 0

    cli.COMMANDS["exercises"] = command
    sys.exit(cli.main(["exercises"]))
""")


def tag() -> str:
    """A sleep duration no other process on the machine uses: it names the tree's processes."""
    return str(random.randint(10**6, 10**7 - 1))


def tree_argv(n: str, ready: Path, *, ignore_term: bool = False) -> list[str]:
    """bash with three grandchildren: one in bash's group, two in groups of their own (set -m)."""
    trap = "trap '' TERM; " if ignore_term else ""
    return ["bash", "-c", f"{trap}sleep {n} & set -m; sleep {n} & sh -c 'sleep {n}; :' & "
                          f"touch {ready}; wait"]


def wait_living(n: str, count: int, but: int | None = None, timeout: float = 20.0) -> list[str]:
    """The tagged processes once COUNT of them run: the ready file is touched while the last
    forks may still be under way (seen on a loaded host), so the test waits for the whole tree."""
    deadline = time.monotonic() + timeout
    while len(found := living(n, but=but)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def living(n: str, but: int | None = None) -> list[str]:
    """Processes (not zombies) whose command line has the tag, except BUT (the lab-like process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(but):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if n in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def assert_none_left(n: str, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while living(n) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert living(n) == [], living(n)


def start_driver(mode: str, ready: Path, tree: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """The `lab`-like process, the leader of its own process group (like a command run from a shell)."""
    full = dict(os.environ, PYTHONPATH=str(project_root()), **(env or {}))
    return subprocess.Popen([sys.executable, "-c", DRIVER, mode, str(ready), *tree], env=full,
                            cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_file(path: Path, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the lab-like process exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, "the child tree did not start"
        time.sleep(0.02)


@pytest.mark.parametrize(("how", "rc", "said"), [
    ("ctrl-c", 130, "Interrupted"),
    ("sigterm", 143, "Stopped by SIGTERM"),
])
def test_an_interrupted_command_leaves_no_child(tmp_path: Path, how: str, rc: int, said: str) -> None:
    n, ready = tag(), tmp_path / "ready"
    proc = start_driver("foreground", ready, tree_argv(n, ready))
    wait_file(ready, proc)
    assert len(wait_living(n, 5, but=proc.pid)) == 5  # bash, its three children, the sleep of sh -c
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == rc, (out, err)
    assert said in err and "Traceback" not in err, err
    assert "command returned" not in out
    assert_none_left(n, within=0.5)  # ended before the command exited, not some time later


def test_a_failing_command_ends_the_children_of_its_threads(tmp_path: Path) -> None:
    """`lab up` failed in the main thread while `vagrant up` ran in a thread: it must not be orphaned."""
    n, ready = tag(), tmp_path / "ready"
    proc = start_driver("thread-then-fail", ready, tree_argv(n, ready))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and err.strip() == "Error: node1: pcsd setup failed", (out, err)
    assert_none_left(n, within=0.5)


def test_a_timed_out_command_leaves_no_child(tmp_path: Path) -> None:
    """Also children that ignore SIGTERM: after the grace they get SIGKILL."""
    n, ready = tag(), tmp_path / "ready"
    began = time.monotonic()
    result = runner.run_local(tree_argv(n, ready, ignore_term=True), timeout=1.5)
    took = time.monotonic() - began
    assert result.returncode == 124 and "timed out after 1.5 s" in result.stderr
    assert ready.exists()
    assert took < 1.5 + runner.GRACE + 3
    assert_none_left(n, within=0.5)
    assert runner.live_sessions() == []


def test_a_finished_command_leaves_no_background_child(tmp_path: Path) -> None:
    """A command that exits at once while its children go on: they end with it."""
    n = tag()
    result = runner.run_local(["bash", "-c", f"set -m; sleep {n} >/dev/null 2>&1 & echo started"], timeout=30)
    assert result.ok and result.stdout == "started\n"
    assert_none_left(n, within=0.5)
    assert runner.live_sessions() == []


# --- vagrant ---------------------------------------------------------------------

@pytest.fixture
def fake_vagrant(tmp_path: Path) -> Path:
    """A `vagrant` on PATH that stands in for the real one: real VMs are not allowed in this unit
    test. Like vagrant it starts children (ruby, ssh, qemu-img there), one of them in a process
    group of its own (vagrant's detached subprocesses), and runs until it is stopped; with
    FAKE_VAGRANT_FAIL=1 it fails at once and leaves its children behind."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "vagrant"
    script.write_text(textwrap.dedent("""\
        #!/bin/bash
        echo "fake vagrant $* in $VAGRANT_CWD"
        sleep "$FAKE_TAG" &
        set -m
        sh -c "sleep $FAKE_TAG; :" &
        touch "$FAKE_READY"
        if [ -n "${FAKE_VAGRANT_FAIL:-}" ]; then echo "Error while activating network: boom" >&2; exit 1; fi
        wait
        """))
    script.chmod(0o755)
    return bin_dir


def vagrant_env(bin_dir: Path, tmp_path: Path, n: str, ready: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "LAB_HOME": str(tmp_path / "home"),
            "FAKE_TAG": n, "FAKE_READY": str(ready), **extra}


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_vagrant_up_leaves_no_process(fake_vagrant: Path, tmp_path: Path, how: str) -> None:
    pytest.importorskip("vagrant")
    n, ready = tag(), tmp_path / "ready"
    proc = start_driver("vagrant", ready, [], env=vagrant_env(fake_vagrant, tmp_path, n, ready))
    wait_file(ready, proc)
    assert len(wait_living(n, 3)) == 3  # sleep, and sh with its sleep
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == (130 if how == "ctrl-c" else 143), (out, err)
    assert_none_left(n, within=0.5)
    log = (tmp_path / "home" / "labs" / "t1" / "vagrant.log")
    if log.exists():  # python-vagrant's output went to the lab's log, as before
        assert "fake vagrant up --no-provision --provider=libvirt" in log.read_text()


def test_failed_vagrant_up_leaves_no_process(fake_vagrant: Path, tmp_path: Path) -> None:
    pytest.importorskip("vagrant")
    n, ready = tag(), tmp_path / "ready"
    proc = start_driver("vagrant", ready, [], env=vagrant_env(fake_vagrant, tmp_path, n, ready,
                                                              FAKE_VAGRANT_FAIL="1"))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, (out, err)
    assert err.startswith("Error: vagrant up failed: ") and "boom" in err, err
    assert_none_left(n, within=0.5)


def test_timed_out_vagrant_up_leaves_no_process(fake_vagrant: Path, tmp_path: Path) -> None:
    pytest.importorskip("vagrant")
    n, ready = tag(), tmp_path / "ready"
    proc = start_driver("vagrant", ready, [], env=vagrant_env(fake_vagrant, tmp_path, n, ready,
                                                              UP_TIMEOUT="1.5"))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, (out, err)
    assert "vagrant up did not finish within 1.5 s" in err, err
    assert_none_left(n, within=0.5)
