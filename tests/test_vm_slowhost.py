"""`lab up` on a slow host, interrupted: real Vagrant + libvirt + qemu guests throttled by libvirt.

Every vCPU of the lab is held to THROTTLE_PCT % of a core (libvirt `schedinfo` vcpu_quota, applied
as soon as a domain runs, again after any restart), on top of software emulation: the pcsd-ruby start
that systemd's default 90 s timeout killed on busy hosts takes longer still here. `lab up` is
interrupted with SIGINT at several points (during boot, during pcsd's start, during the cluster
start); after each, no process of the lab may be left, and the next `lab up` continues. The last
run must converge without help and leave a healthy cluster. Long (about 25-40 minutes): marker
`slowhost`, not in the default run (`make test-slowhost`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.core.paths import project_root
from tests.test_vm_e2e import leftovers

pytestmark = [pytest.mark.vm, pytest.mark.slowhost]

LAB = "slow"
PREFIX = f"flab-{LAB}-"
URI = "qemu:///system"
THROTTLE_PCT = int(os.environ.get("LAB_THROTTLE_PCT", "25"))
PERIOD_US = 100_000


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, LAB_NAME=LAB, LAB_HOME=str(home))


def _virsh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=60, check=False)


class Throttle:
    """Holds every running domain of the lab to THROTTLE_PCT % of a core per vCPU."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.applied: dict[str, str] = {}  # domain -> id of the qemu process throttled
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        quota = PERIOD_US * THROTTLE_PCT // 100
        while not self.stop.wait(2):
            for line in _virsh("list", "--name").stdout.split():
                if not line.startswith(PREFIX):
                    continue
                ident = _virsh("domid", line).stdout.strip()
                if self.applied.get(line) == ident:
                    continue
                done = _virsh("schedinfo", line, "--live", f"vcpu_period={PERIOD_US}", f"vcpu_quota={quota}")
                if done.returncode == 0:
                    self.applied[line] = ident

    def __enter__(self) -> Throttle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _lab_processes(home: Path) -> list[str]:
    """Processes that a `lab` command of this lab started (they inherit LAB_HOME), except ours."""
    marker = f"LAB_HOME={home}".encode()
    mine = {os.getpid()}
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name}: {command[:200]}")
        except OSError:
            continue
    return found


def _up_until(home: Path, trigger: str | None, log: list[str], timeout: float = 3600) -> int:
    """Run `lab up`; when a progress line contains TRIGGER, send SIGINT. Returns its exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "up", "--nodes", "2"], env=_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    interrupted = False
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line.rstrip())
            print(line.rstrip(), file=sys.stderr)
            if trigger and not interrupted and trigger in line:
                time.sleep(5)  # well inside the step
                proc.send_signal(signal.SIGINT)
                interrupted = True
        return proc.wait(timeout=300)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()


def _assert_nothing_left(home: Path) -> None:
    deadline = time.monotonic() + 30
    while (left := _lab_processes(home)) and time.monotonic() < deadline:
        time.sleep(1)
    assert left == [], "processes of the interrupted lab are still running:\n" + "\n".join(left)


@pytest.fixture
def slow_home(tmp_path: Path) -> Iterator[Path]:
    from tests.test_vm_e2e import _libvirt_ok

    if not _libvirt_ok():
        pytest.skip(f"libvirt ({URI}) or vagrant not available")
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "lab.cli", "destroy", "--force", LAB], env=_env(home),
                   capture_output=True, timeout=600, check=False)  # a killed earlier run's objects
    subprocess.run(["bash", str(project_root() / "boxes" / "debian12" / "build.sh")], check=True, timeout=1800)
    try:
        yield home
    finally:
        done = subprocess.run([sys.executable, "-m", "lab.cli", "destroy"], env=_env(home),
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert leftovers(PREFIX) == []


# Progress lines of `lab up` (lab/vm/lifecycle.py) at which the run is interrupted, in order.
INTERRUPTS = ["boot and first SSH contact ...", "pcsd enabled and answering ...",
              "corosync and pacemaker started on every node ..."]


def test_lab_up_converges_on_throttled_guests_after_interruptions(slow_home: Path) -> None:
    log: list[str] = []
    began = time.monotonic()
    with Throttle() as throttle:
        for trigger in INTERRUPTS:
            rc = _up_until(slow_home, trigger, log)
            assert any(trigger in line for line in log), f"lab up never reached '{trigger}'"
            assert rc != 0, f"lab up finished before the interrupt at '{trigger}'"
            _assert_nothing_left(slow_home)
            print(f"\ninterrupted at '{trigger}' after {time.monotonic() - began:.0f} s", file=sys.stderr)
        rc = _up_until(slow_home, None, log)
        assert rc == 0, "\n".join(log[-30:])
        _assert_nothing_left(slow_home)
        assert throttle.applied, "no domain was throttled"
    print(f"\nthrottled lab up with {len(INTERRUPTS)} interruptions: {time.monotonic() - began:.0f} s",
          file=sys.stderr)
    mon = subprocess.run([sys.executable, "-m", "lab.cli", "ssh", "node1", "sudo", "crm_mon", "-1",
                          "--output-as=xml"], env=_env(slow_home), capture_output=True, text=True,
                         timeout=300, check=False)
    assert mon.returncode == 0, mon.stderr
    assert mon.stdout.count('online="true"') >= 2 and 'with_quorum="true"' in mon.stdout
