"""End to end on real Vagrant + libvirt + qemu: lab up, every seed exercise red -> solve -> green, destroy.

Uses the cached Debian 12 box (built with boxes/debian12/build.sh when absent). The
lab is named 'e2e' (libvirt prefix 'flab-e2e-'): leftovers of an earlier killed run
are removed first, and `lab destroy` must leave no domain, volume or network behind.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.core.paths import project_root
from lab.engine.exercises import load, load_all
from lab.engine.grading import sections_for
from lab.gather.probes import probe_names

pytestmark = pytest.mark.vm

LAB = "e2e"
PREFIX = f"flab-{LAB}-"
URI = "qemu:///system"
# The seven exercises of the course material; the whole catalogue runs live in
# tests/test_vm_catalogue.py (`make test-catalogue`).
SEED = ["cluster-setup", "resource-create", "resource-update", "resource-disable", "resource-enable",
        "resource-delete", "troubleshoot-offline"]
assert set(SEED) <= {e.id for e in load_all()}


def _libvirt_ok() -> bool:
    if shutil.which("virsh") is None or shutil.which("vagrant") is None:
        return False
    try:
        return subprocess.run(["virsh", "-c", URI, "uri"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def lab(*args: str, timeout: float = 900, text: bool = True) -> subprocess.CompletedProcess:
    """The real `lab` command line on the test lab; output as text, or as bytes (text=False)."""
    env = dict(os.environ, LAB_NAME=LAB)
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True,
                          text=text, timeout=timeout)


def virsh_names(*args: str, prefix: str = PREFIX) -> list[str]:
    out = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=60).stdout
    return [ln.strip() for ln in out.splitlines() if ln.strip().startswith(prefix)]


def leftovers(prefix: str = PREFIX) -> list[str]:
    """Domains, networks and volumes whose names start with a test lab's libvirt prefix."""
    return (virsh_names("list", "--all", "--name", prefix=prefix)
            + virsh_names("net-list", "--all", "--name", prefix=prefix)
            + virsh_names("vol-list", "--pool", "default", prefix=prefix))


def running_lab(tmp_path_factory: pytest.TempPathFactory, nodes: int) -> Iterator[None]:
    """Bring up the test lab (after removing stale leftovers), yield, destroy and verify."""
    if not _libvirt_ok():
        if os.environ.get("CI"):  # CI starts libvirt itself (.ci/libvirt-up.sh): missing is a failure
            pytest.fail(f"libvirt ({URI}) or vagrant not available in CI")
        pytest.skip(f"libvirt ({URI}) or vagrant not available: start 'virtlogd -d; libvirtd -d'")
    home = Path(os.environ.get("LAB_E2E_HOME") or tmp_path_factory.mktemp("labhome"))
    os.environ["LAB_HOME"] = str(home)
    from lab.vm import libvirt_owned

    libvirt_owned.remove_leftovers(PREFIX)  # stale objects of a killed earlier run
    # build.sh returns at once when the cached box was built from the current recipe.
    subprocess.run(["bash", str(project_root() / "boxes" / "debian12" / "build.sh")], check=True, timeout=1800)
    began = time.monotonic()
    try:
        result = lab("up", "--nodes", str(nodes), timeout=1800)
        assert result.returncode == 0, result.stderr[-3000:]
        print(f"\nlab up: {time.monotonic() - began:.0f} s", file=sys.stderr)
        yield
    finally:
        # Also after a failed or interrupted `lab up`: nothing may stay behind.
        result = lab("destroy", timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        assert leftovers() == []
        # what went, even when vagrant destroy removed it before the removal by name
        assert f"removed: domains {PREFIX}node1" in result.stderr, result.stderr[-1000:]




def _password() -> str:
    return (Path(os.environ["LAB_HOME"]) / "labs" / LAB / "hacluster-password").read_text().strip()


def _node_logs(node: str) -> bytes:
    """Everything a node logged: the journal (sudo logs each command line there) and /var/log.

    Bytes: /var/log holds binary files (wtmp, lastlog) and the journal any byte a program wrote.
    """
    # ssh joins its arguments into one remote shell line: the script is quoted once, here.
    script = "journalctl -o cat --no-pager 2>&1; grep -rah . /var/log 2>/dev/null || true"
    result = lab("ssh", node, "sudo sh -c " + shlex.quote(script), timeout=300, text=False)
    assert result.returncode == 0, result.stderr[-1000:]
    assert b"pacemaker" in result.stdout or b"Started" in result.stdout  # the journal really was read
    return result.stdout


def assert_password_not_logged() -> None:
    password = _password().encode()
    for node in ("node1", "node2"):
        assert password not in _node_logs(node), f"the hacluster password is in {node}'s logs"


class ArgvSampler:
    """Reads every process's command line on the nodes over and over while a command runs.

    A pause between samples: sampling back to back kept each emulated guest busy enough that
    pcsd's `pcs cluster destroy` (22 s alone after a revert) missed pcs cluster setup's fixed 60 s
    request timeout, twice in a row. A process holding a password in its argv (pcs host auth with
    -p) lives for many seconds under emulation: one sample every few seconds still sees it."""

    PAUSE = 5.0

    def __init__(self) -> None:
        import threading

        self.stop = threading.Event()
        self.samples: list[str] = []
        self.threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in ("node1", "node2")]

    def _loop(self, node: str) -> None:
        while not self.stop.is_set():
            script = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <$f; echo; done 2>/dev/null"
            out = lab("ssh", node, "sudo sh -c " + shlex.quote(script), timeout=120)
            self.samples.append(out.stdout)
            self.stop.wait(self.PAUSE)

    def __enter__(self) -> ArgvSampler:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def red_solve_green(exercise_id: str, tool: str = "pcs") -> None:
    """lab start -> check fails -> lab solve -> check passes, on the live lab."""
    started = lab("start", exercise_id)
    assert started.returncode == 0, started.stderr[-2000:]
    probing = bool(probe_names(sections_for(load(exercise_id))))
    red = lab("check", exercise_id, timeout=900 if probing else 120)
    assert red.returncode == 1, red.stdout + red.stderr
    if probing:  # the check acted on the lab (fenced, rebooted): start from the start state again
        again = lab("reset")
        assert again.returncode == 0, again.stderr[-2000:]
    if exercise_id == "cluster-setup":  # the solution authenticates with the hacluster password
        with ArgvSampler() as sampler:
            solved = lab("solve", exercise_id, "--tool", tool)
        assert len(sampler.samples) >= 2 and any("sshd" in sample for sample in sampler.samples)
        assert not any(_password() in sample for sample in sampler.samples), "password in a process argument"
    else:
        solved = lab("solve", exercise_id, "--tool", tool)
    assert solved.returncode == 0, solved.stderr[-2000:]
    if exercise_id == "cluster-setup":
        assert_password_not_logged()
    green = lab("check", exercise_id, timeout=900 if probing else 120)
    assert green.returncode == 0, green.stdout + green.stderr


def test_password_not_in_any_log_after_lab_up(live_lab: None) -> None:
    assert_password_not_logged()


@pytest.mark.parametrize("exercise_id", SEED)
def test_exercise_red_solve_green(live_lab: None, exercise_id: str) -> None:
    red_solve_green(exercise_id)


def test_offline_fault_really_stops_the_node(live_lab: None) -> None:
    started = lab("start", "troubleshoot-offline")
    assert started.returncode == 0, started.stderr[-2000:]
    probe = lab("ssh", "node2", "systemctl", "is-active", "corosync", timeout=60)
    assert probe.stdout.strip() != "active"


def _qemu_pids() -> dict[str, int]:
    """The QEMU process of each of the test lab's domains, by domain name."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            for arg in argv:
                if arg.startswith(b"guest=" + PREFIX.encode()):
                    found[arg.split(b",")[0][len(b"guest="):].decode()] = int(proc.name)
    return found


def test_a_cached_start_reverts_in_place(live_lab: None) -> None:
    """From its cached start state an exercise starts in the domains' own QEMU (loadvm), not in a
    new QEMU that libvirt's revert would start; the cluster answers afterwards."""
    first = lab("start", "resource-update")
    assert first.returncode == 0, first.stderr[-2000:]
    before = _qemu_pids()
    again = lab("start", "resource-update")
    assert again.returncode == 0 and "from the cached start state" in again.stderr, again.stderr[-2000:]
    assert len(before) >= 2 and _qemu_pids() == before
    checked = lab("check", "resource-update", "--format", "json")
    assert checked.returncode == 1 and json.loads(checked.stdout)["passed"] is False  # the start state


def test_a_start_after_the_sbd_disk_reverts_in_place(live_lab: None) -> None:
    """sbd's start hot-plugs a shared disk the snapshots do not have; the next start unplugs it
    and reverts in the domains' own QEMU (not a new QEMU from libvirt's forced revert), and the
    disk is gone from the guests until sbd starts again."""
    sbd = lab("start", "sbd")
    assert sbd.returncode == 0 and "sbd-disk" in sbd.stderr, sbd.stderr[-2000:]
    seen = lab("ssh", "node2", "test -b /dev/vdb && echo present", timeout=120)
    assert seen.stdout.strip() == "present", seen.stderr[-1000:]  # the control: the disk was there
    before = _qemu_pids()
    after = lab("start", "resource-create")
    assert after.returncode == 0, after.stderr[-2000:]
    assert len(before) >= 2 and _qemu_pids() == before
    gone = lab("ssh", "node2", "test -b /dev/vdb && echo present || echo absent", timeout=120)
    assert gone.stdout.strip() == "absent", gone.stderr[-1000:]
    assert "vdb" not in subprocess.run(["virsh", "-c", URI, "domblklist", f"{PREFIX}node2"],
                                       capture_output=True, text=True, check=True).stdout


def test_status_info_and_secrets(live_lab: None) -> None:
    started = lab("start", "resource-create")  # its start state is the 'cluster' baseline itself
    assert started.returncode == 0 and "healthy and settled as lab up left it" in started.stderr, \
        started.stderr[-2000:]
    status = lab("status", timeout=120)
    assert status.returncode == 0 and "node1" in status.stdout
    node_lines = [line for line in status.stdout.splitlines() if "snapshots:" in line]
    assert len(node_lines) == 2 and all("cluster" in line and "start-" not in line for line in node_lines)
    assert "cached start states:" in status.stdout and "resource-create" in status.stdout, status.stdout
    info = lab("info", timeout=60)
    secret = lab("info", "--secrets", timeout=60)
    password = _password()
    assert password not in info.stdout and password in secret.stdout


def test_an_ssh_session_runs_no_motd_scripts(live_lab: None) -> None:
    """Debian's dynamic pam_motd runs /etc/update-motd.d on every session (0.2 s each under
    emulation): the box drops it, so a new session does not write /run/motd.dynamic again."""
    removed = lab("ssh", "node1", "sudo rm -f /run/motd.dynamic", timeout=120)
    assert removed.returncode == 0, removed.stderr[-1000:]
    probe = lab("ssh", "node1", "test -e /run/motd.dynamic && echo written || echo absent", timeout=120)
    assert probe.returncode == 0 and probe.stdout.strip() == "absent", (probe.stdout, probe.stderr[-1000:])


def test_each_node_has_its_own_pcsd_key_and_pcsd_serves_it(live_lab: None) -> None:
    """The box makes pcsd's TLS key per clone (EC, before pcsd's own RSA-3072 start-up would):
    two nodes never share one, and pcsd answers TLS with the certificate of that key (lab up's
    pcs host auth went through it already)."""
    digests = []
    for node in ("node1", "node2"):
        got = lab("ssh", node, "sudo sh -c 'openssl pkey -in /var/lib/pcsd/pcsd.key -pubout | sha256sum; "
                  "openssl s_client -connect 127.0.0.1:2224 </dev/null 2>/dev/null | openssl x509 -pubkey -noout "
                  "| sha256sum; openssl pkey -in /var/lib/pcsd/pcsd.key -noout -text | head -1'", timeout=180)
        assert got.returncode == 0, got.stderr[-1000:]
        key, served, kind = got.stdout.splitlines()[:3]
        assert key == served, (node, got.stdout)
        assert "Private-Key: (256 bit" in kind, (node, kind)
        digests.append(key)
    assert digests[0] != digests[1]
