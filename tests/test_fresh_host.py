"""A fresh host and a slow guest: doctor on a host without libvirt's pool 'default', and the unit
start retry that lab up relies on when systemd gives up on a slow start.

libvirt runs here through its in-process test driver (test:///...): the real libvirt API with no
daemon, as on a fresh machine. systemd cannot run on this host (no systemd as PID 1), so the retry
test puts a stand-in `systemctl` first on PATH; the real units are exercised by the VM tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.transport import scripts
from lab.vm import libvirt_host, provision

ROOT = Path(__file__).resolve().parent.parent

NODE_XML = """<node>
  <pool type='dir'>
    <name>{name}</name>
    <target><path>{path}</path></target>
  </pool>
</node>"""


def _doctor(uri: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIBVIRT_DEFAULT_URI=uri, LAB_HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "lab.cli", "doctor"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _libvirt_line(out: str) -> str:
    return next(line for line in out.splitlines() if " libvirt:" in line)


def test_doctor_accepts_a_host_without_pool_default(tmp_path: Path) -> None:
    line = _libvirt_line(_doctor("test:///default", tmp_path).stdout)
    assert line.startswith("ok"), line
    assert "no storage pool 'default' yet" in line and "lab up" in line


def test_doctor_reports_an_existing_pool_with_its_path(tmp_path: Path) -> None:
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(name="default", path=tmp_path))  # the test driver starts it
    line = _libvirt_line(_doctor(f"test://{node}", tmp_path).stdout)
    assert line.startswith("ok") and f"pool 'default' active ({tmp_path})" in line, line


def test_doctor_still_fails_when_libvirt_does_not_answer(tmp_path: Path) -> None:
    result = _doctor("qemu+unix:///system?socket=/nonexistent/libvirt-sock", tmp_path)
    line = _libvirt_line(result.stdout)
    assert line.startswith("FAIL") and result.returncode == 1, line


def _open(uri: str):  # noqa: ANN202
    import libvirt

    return libvirt.open(uri)


def test_ensure_pool_defines_starts_and_is_idempotent(tmp_path: Path) -> None:
    conn = _open("test:///default")
    try:
        assert not libvirt_host.pool_state(conn=conn).exists
        made = libvirt_host.ensure_pool(directory=str(tmp_path / "images"), conn=conn)
        assert "defined pool 'default'" in made and "started" in made
        state = libvirt_host.pool_state(conn=conn)
        assert state.exists and state.active and state.path == str(tmp_path / "images")
        assert libvirt_host.ensure_pool(directory=str(tmp_path / "images"), conn=conn) == ""
        conn.storagePoolLookupByName("default").destroy()
        assert libvirt_host.ensure_pool(conn=conn) == "started pool 'default'"
    finally:
        conn.close()


# --- unit starts that systemd gives up on -------------------------------------------------------

FAKE_SYSTEMCTL = """#!/bin/sh
# Stand-in for systemctl (no systemd on this host): 'start' fails FAILS times, then succeeds.
log={log}
case "$1" in
  is-active) [ -e {state}/active-"$3" ] ;;
  start) n=$(cat {state}/tries 2>/dev/null || echo 0); n=$((n+1)); echo $n >{state}/tries
         echo "start $2" >>$log
         if [ $n -le {fails} ]; then
           echo "Job for $2.service failed because a timeout was exceeded." >&2; exit 1
         fi
         touch {state}/active-"$2" ;;
  show) echo timeout ;;
  reset-failed) echo "reset-failed $*" >>$log ;;
  *) exit 0 ;;
esac
"""


def _run_start_unit(tmp_path: Path, fails: int) -> tuple[subprocess.CompletedProcess[str], str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "log"
    fake = bindir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(log=log, state=state, fails=fails))
    fake.chmod(0o755)
    script = (scripts.assignments({"START_TRIES": provision.START_TRIES}) + scripts.source("lib/start_unit.sh")
              + "set -eu\nstart_unit pcsd\necho started\n")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                            timeout=30, check=False)
    return result, log.read_text() if log.exists() else ""


def test_a_timed_out_start_is_retried_after_reset_failed_with_the_reason(tmp_path: Path) -> None:
    result, log = _run_start_unit(tmp_path, fails=provision.START_TRIES - 1)
    assert result.returncode == 0 and result.stdout.strip() == "started", result.stderr
    assert log.count("start pcsd") == provision.START_TRIES
    assert log.count("reset-failed pcsd") == provision.START_TRIES - 1
    retries = [ln for ln in result.stderr.splitlines() if ln.startswith("failover-lab: retry pcsd")]
    assert len(retries) == provision.START_TRIES - 1
    assert "timeout was exceeded" in retries[0]


def test_a_unit_that_never_starts_fails_the_script_with_its_reason(tmp_path: Path) -> None:
    result, log = _run_start_unit(tmp_path, fails=99)
    assert result.returncode != 0 and "started" not in result.stdout
    assert log.count("start pcsd") == provision.START_TRIES
    assert f"pcsd did not start after {provision.START_TRIES} tries" in result.stderr
    assert "timeout was exceeded" in result.stderr


def test_the_start_timeout_goes_to_every_lab_unit_once(tmp_path: Path) -> None:
    """Run into a scratch root with a stand-in systemctl: a drop-in per lab unit and one reload;
    a second run (lab up again, or a box that ships them) writes nothing and reloads nothing."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "log"
    (bindir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >>{log}\n')
    (bindir / "systemctl").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    root = tmp_path / "root"
    for _ in range(2):
        done = subprocess.run(["bash", "-c", provision.unit_timeouts_script(str(root))], env=env,
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
    units = sorted(p.name for p in (root / "etc/systemd/system").iterdir())
    assert units == sorted(f"{u}.service.d" for u in provision.LAB_UNITS)
    for unit in provision.LAB_UNITS:
        dropin = root / "etc/systemd/system" / f"{unit}.service.d" / "50-failover-lab-timeout.conf"
        assert dropin.read_text() == provision.unit_timeout_dropin()
    assert log.read_text() == "daemon-reload\n"


@pytest.mark.parametrize("script", [provision.pcsd_script("pw"), provision.start_cluster_script()])
def test_unit_scripts_install_the_start_timeout_before_starting_units(script: str) -> None:
    assert script.index("\ninstall_unit_timeouts\n") < script.index("\nstart_unit ")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_the_box_ships_the_same_start_timeouts() -> None:
    customize = (ROOT / "boxes" / "debian12" / "customize.sh").read_text()
    assert f"for u in {' '.join(provision.LAB_UNITS)}; do" in customize
    assert f"TimeoutStartSec={provision.UNIT_START_TIMEOUT}" in customize
    assert provision.PCSD_SETUP_TIMEOUT >= provision.START_TRIES * provision.UNIT_START_TIMEOUT


def _pcs_timeout_call(call: str) -> subprocess.CompletedProcess[str]:
    script = scripts.source("lib/pcs_timeout.sh") + "\n" + call + "\n"
    return subprocess.run(["bash", "-euc", script], capture_output=True, text=True, check=True)


def _settings_timeout(path: Path) -> object:
    """default_request_timeout as pcs would read it from the settings file at PATH."""
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - pcs's own settings.py
    return namespace["default_request_timeout"]


def test_the_lab_finds_the_settings_of_the_pcs_on_path() -> None:
    """Through pcs's own interpreter (its #! line), as on Debian's python3 and EL8's platform-python."""
    found = Path(_pcs_timeout_call("pcs_settings_file").stdout.strip())
    interpreter = Path(shutil.which("pcs") or "pcs").read_text().splitlines()[0].removeprefix("#!").split()[0]
    imported = subprocess.run([interpreter, "-c", "import pcs.settings as s; print(s.__file__)"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert found.name == "settings.py" and found.parent.name == "pcs" and found == Path(imported)


def test_pcs_request_timeout_is_raised_once_and_restored(tmp_path: Path) -> None:
    """A copy of the real pcs settings.py: the lab's line wins over pcs's 60, re-running replaces it,
    and an empty timeout gives back pcs as shipped."""
    shipped = Path(_pcs_timeout_call("pcs_settings_file").stdout.strip()).read_text()
    settings = tmp_path / "settings.py"
    settings.write_text(shipped)
    assert _settings_timeout(settings) == 60
    for seconds in (180, 180, 240):
        _pcs_timeout_call(f"set_pcs_request_timeout {settings} {seconds}")
        assert _settings_timeout(settings) == seconds
        assert settings.read_text().count("failover-lab") == 1
    _pcs_timeout_call(f"set_pcs_request_timeout {settings} ''")
    assert settings.read_text() == shipped
    _pcs_timeout_call(f"set_pcs_request_timeout {tmp_path / 'absent.py'} 180")  # no pcs: nothing
    assert not (tmp_path / "absent.py").exists()


def test_only_emulated_labs_change_pcs_request_timeout() -> None:
    assert provision.pcs_request_timeout("kvm") is None
    assert provision.pcs_request_timeout("qemu") == provision.PCS_REQUEST_TIMEOUT > 60
    assert "PCS_REQUEST_TIMEOUT=''" in provision.pcsd_script("pw")
    assert f"PCS_REQUEST_TIMEOUT={provision.PCS_REQUEST_TIMEOUT}" in provision.pcsd_script("pw", 180)
