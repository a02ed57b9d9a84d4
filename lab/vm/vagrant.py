"""Vagrant through python-vagrant: render the lab's Vagrantfile, up/halt/destroy, the box.

Vagrant only creates, boots, halts and destroys domains here; everything inside the
nodes is done by lab.vm.provision over paramiko (faster, parallel, and idempotent).
"""

from __future__ import annotations

import functools
import glob
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jinja2

from lab.core.errors import LabError, UsageError
from lab.core.paths import project_root
from lab.transport import runner
from lab.transport.runner import run_local
from lab.vm.labstate import Lab, write_atomic
from lab.vm.libvirt_host import prune_box_volumes
from lab.vm.network import link1_addresses

T = TypeVar("T")
# From `vagrant up` to a node's first SSH answer. Measured under software emulation on a 2-core
# host: 200-500 s, and beyond 500 s while the host was busy: 20 minutes tells a stuck boot from a
# slow one (the wait reports every minute how long it may still take).
BOOT_TIMEOUT = 1200
# How long each vagrant command may run before it is stopped with everything it started: up
# creates and boots every node (minutes under software emulation), halt waits for shutdowns.
UP_TIMEOUT = 3 * BOOT_TIMEOUT
HALT_TIMEOUT = 900


class VagrantError(LabError):
    """A vagrant command failed; the message has the tail of its log, log_file the whole of it."""

    def __init__(self, message: str, log_file: Path | None = None) -> None:
        super().__init__(message)
        self.log_file = log_file


def _python_vagrant() -> Any:
    """python-vagrant, imported on first use: grading-only installs run without it."""
    try:
        import vagrant  # noqa: PLC0415  (optional: only the VM lab needs python-vagrant)
    except ImportError:
        raise UsageError("python-vagrant is not installed: pip install python-vagrant") from None
    return vagrant


def insecure_keys() -> list[Path]:
    """Vagrant's public insecure private key(s): the box trusts them until provisioning."""
    found = [Path(p) for p in sorted(glob.glob("/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant"))]
    home = Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")
    found += [p for p in (home / "insecure_private_key",) if p.exists()]
    found += [Path(p) for p in sorted(glob.glob("/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant"))]
    return found


def ruby_str(value: object) -> str:
    """A Ruby single-quoted literal: only \\ and \' are escapes there, and nothing is interpolated
    (a double-quoted string would run the Ruby in a LAB_HOME such as /tmp/#{`id`})."""
    if not isinstance(value, str):
        raise TypeError(f"ruby_str takes a string, not {type(value).__name__}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ruby_int(value: object) -> str:
    """A Ruby integer literal, from an int only (never a string that could hold code)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"ruby_int takes an integer, not {type(value).__name__}")
    return str(value)


def ruby_comment(value: object) -> str:
    """Text for a Ruby comment: printable characters only, so a line break cannot end the comment."""
    return "".join(c for c in str(value) if c.isprintable())


def template_env() -> jinja2.Environment:
    """Jinja for Ruby: no filter but ours puts a value into the Vagrantfile safely (no tojson:
    JSON strings are double-quoted, which Ruby interpolates)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    env.filters.update(ruby_str=ruby_str, ruby_int=ruby_int, ruby_comment=ruby_comment)
    return env


# qemu's TCG translation cache per guest under software emulation (qemu's own default: 1 GiB,
# which a busy guest fills: 3 nodes took 5.4 GiB of host RAM with 768 MiB guests, 2026-12-01).
# LAB_TB_CACHE_MIB overrides it; 0 leaves qemu's default.
TB_CACHE_MIB = 128


def tb_cache_mib(driver: str) -> int:
    """The translation cache size to give each guest; 0 = qemu's default (always under KVM)."""
    if driver != "qemu":
        return 0
    raw = os.environ.get("LAB_TB_CACHE_MIB", "").strip()
    if not raw:
        return TB_CACHE_MIB
    if not raw.isdigit() or not (int(raw) == 0 or 32 <= int(raw) <= 4096):
        raise UsageError(f"LAB_TB_CACHE_MIB must be 0 (qemu's default) or 32..4096 MiB, not {raw!r}")
    return int(raw)


def render_vagrantfile(lab: Lab) -> str:
    """The lab's Vagrantfile from Vagrantfile.j2 (pure: no files written, no libvirt asked)."""
    text = (project_root() / "Vagrantfile.j2").read_text()
    st = lab.state
    net = ipaddress.IPv4Network(st.private_cidr)
    link1 = link1_addresses(lab)  # None: a lab made before the second cluster network
    keys = [str(lab.identity)] + [str(p) for p in insecure_keys()[:1]]
    return template_env().from_string(text).render(
        name=lab.name,
        box=st.box_name,
        boot_timeout=BOOT_TIMEOUT,
        ssh_keys=keys,
        uri=st.uri,
        driver=st.driver,
        memory=st.memory,
        cpus=st.cpus,
        tb_cache_mib=tb_cache_mib(st.driver),
        prefix=lab.prefix,
        pool=st.pool,
        mgmt_cidr=st.mgmt_cidr,
        netmask=str(net.netmask),
        nodes=[{"name": n.name, "ip": n.ip, "link1_ip": (link1 or {}).get(n.name)} for n in lab.nodes],
        link1_netmask=str(ipaddress.IPv4Network(st.link1_cidr).netmask) if st.link1_cidr else "",
    )


def write_vagrantfile(lab: Lab) -> None:
    write_atomic(lab.vagrantfile, render_vagrantfile(lab))


def _env(lab: Lab) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        "VAGRANT_CHECKPOINT_DISABLE": "1",      # no phoning home
        "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
        "VAGRANT_NO_COLOR": "1",
        "VAGRANT_CWD": str(lab.dir),
        "LC_ALL": "C.UTF-8",
    })
    env.pop("VAGRANT_VAGRANTFILE", None)
    return env


@functools.cache
def _tracked_vagrant_class() -> type:
    """python-vagrant's client with its two subprocess calls run as owned children (lab.transport.runner).

    python-vagrant calls subprocess.check_call/check_output itself; through them a `vagrant up`
    outlived a failed `lab up` (its ruby, ssh and qemu-img children too). These overrides keep
    python-vagrant's command building and output parsing and change only how the process runs:
    in a session of its own, ended with everything it started on a timeout, an exception, Ctrl-C
    or SIGTERM. (python-vagrant 1.0: _call_vagrant_command and _run_vagrant_command are the only
    places that start vagrant for the methods used here.)
    """
    vagrant = _python_vagrant()

    class TrackedVagrant(vagrant.Vagrant):
        timeout: float | None = None

        def _call_vagrant_command(self, args: list[str | None]) -> None:
            command = self._make_vagrant_command(args)
            with self.out_cm() as out_fh, self.err_cm() as err_fh:
                rc, _, _ = runner.run_owned(command, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=out_fh, stderr=err_fh, timeout=self.timeout)
            if rc != 0:
                raise subprocess.CalledProcessError(rc, command)

        def _run_vagrant_command(self, args: list[str | None]) -> str:
            command = self._make_vagrant_command(args)
            with self.err_cm() as err_fh:
                rc, out, _ = runner.run_owned(command, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.PIPE, stderr=err_fh, timeout=self.timeout)
            if rc != 0:
                raise subprocess.CalledProcessError(rc, command, output=out)
            return out.decode(errors="replace")

        def _stream_vagrant_command(self, args: list[str | None]) -> Iterator[str]:
            raise NotImplementedError("the lab does not stream vagrant's output (it logs to a file)")

    return TrackedVagrant


def _client(lab: Lab, timeout: float | None = None):  # noqa: ANN202
    vagrant = _python_vagrant()
    if shutil.which("vagrant") is None:
        raise UsageError("vagrant is not installed (Debian/Ubuntu: apt-get install vagrant vagrant-libvirt)")
    log = vagrant.make_file_cm(str(lab.log_file), "a")
    client = _tracked_vagrant_class()(root=str(lab.dir), env=_env(lab), out_cm=log, err_cm=log)
    client.timeout = timeout
    return client


def _log_offset(lab: Lab) -> int:
    try:
        return lab.log_file.stat().st_size
    except OSError:
        return 0


def _fail(lab: Lab, what: str, offset: int) -> VagrantError:
    try:
        with lab.log_file.open(errors="replace") as handle:
            handle.seek(offset)
            tail = [ln for ln in handle.read().splitlines() if ln.strip()][-4:]
    except OSError:
        tail = []
    return VagrantError(f"vagrant {what} failed: {' / '.join(tail) or 'no output'} "
                        f"(full log: {lab.log_file}; 'lab doctor' checks the host)", lab.log_file)


def _timed_out(lab: Lab, what: str, timeout: float | None) -> VagrantError:
    return VagrantError(f"vagrant {what} did not finish within {timeout:g} s and was stopped with every "
                        f"process it started (full log: {lab.log_file}; 'lab doctor' checks the host)", lab.log_file)


def _vagrant(lab: Lab, what: str, timeout: float, call: Callable[[Any], T]) -> T:
    """Run one python-vagrant call; a failure or a timeout is a VagrantError with the log's tail."""
    offset = _log_offset(lab)
    try:
        return call(_client(lab, timeout))
    except subprocess.CalledProcessError:
        raise _fail(lab, what, offset) from None
    except subprocess.TimeoutExpired:
        raise _timed_out(lab, what, timeout) from None


def up(lab: Lab, names: Sequence[str] | None = None) -> None:
    """vagrant up of the named nodes (default: every node), in parallel (vagrant-libvirt supports
    it), no provisioners. python-vagrant's up() takes one machine name at most, so the command is
    built here the same way (`vagrant up NAME... --no-provision --provider=libvirt`)."""
    if names is None:
        _vagrant(lab, "up", UP_TIMEOUT, lambda c: c.up(no_provision=True, provider="libvirt"))
        return
    args: list[str | None] = ["up", *names, "--no-provision", "--provider=libvirt"]
    _vagrant(lab, "up", UP_TIMEOUT, lambda c: c._call_vagrant_command(args))


def machine_id_file(lab: Lab, node: str) -> Path:
    """Where vagrant-libvirt keeps a machine's domain UUID: without it vagrant does not know the
    domain is its own and would try to create it again."""
    return lab.dir / ".vagrant" / "machines" / node / "libvirt" / "id"


def halt(lab: Lab) -> None:
    _vagrant(lab, "halt", HALT_TIMEOUT, lambda c: c.halt())


def destroy(lab: Lab) -> None:
    _vagrant(lab, "destroy", HALT_TIMEOUT, lambda c: c.destroy())


def validate(lab: Lab) -> tuple[bool, str]:
    result = run_local(["vagrant", "validate"], env=_env(lab), timeout=120)
    return result.ok, (result.stdout + result.stderr).strip()


# --- the box -----------------------------------------------------------------

def box_installed(box_name: str) -> bool:
    result = run_local(["vagrant", "box", "list", "--machine-readable"],
                       env={"VAGRANT_CHECKPOINT_DISABLE": "1"}, timeout=120)
    for line in result.stdout.splitlines():
        parts = line.split(",")
        if len(parts) >= 4 and parts[2] == "box-name" and parts[3] == box_name:
            return True
    return False


def box_dir() -> Path:
    """Where boxes/debian12/build.sh puts the box (same rule as the script)."""
    override = os.environ.get("LAB_BOX_DIR")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "failover-lab" / "boxes"


def debian12_build_script() -> Path:
    """The recipe that builds the debian12 box (in the checkout, or in the installed wheel's data)."""
    return project_root() / "boxes" / "debian12" / "build.sh"


def debian12_box_file() -> Path:
    return box_dir() / "debian12" / "debian12.box"


def _recipe_hash(box_file: Path) -> str | None:
    try:
        return box_file.with_name(box_file.name + ".recipe-sha256").read_text().strip() or None
    except OSError:
        return None


def ensure_box(box_name: str, box_file: Path | None) -> str | None:
    """Add the box to Vagrant if missing or built from another recipe; returns what was done."""
    if box_file is None:
        return None  # a public box: vagrant up fetches it
    # Which recipe the box vagrant holds was built from: one vagrant per user, so the marker
    # lives in vagrant's home, not in a lab home (tests use throwaway lab homes).
    vagrant_home = Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")
    marker = vagrant_home / "failover-lab" / (box_name.replace("/", "_") + ".recipe-sha256")
    wanted = _recipe_hash(box_file) if box_file.exists() else None
    installed = marker.read_text().strip() if marker.exists() else None
    if box_installed(box_name) and (wanted is None or wanted == installed):
        return None
    if not box_file.exists():
        raise UsageError(f"box {box_name} is not installed and {box_file} does not exist: build it with "
                         f"'sudo bash {debian12_build_script()}' (offline, from Debian packages)")
    result = run_local(["vagrant", "box", "add", "--force", "--name", box_name, str(box_file)],
                       env={"VAGRANT_CHECKPOINT_DISABLE": "1"}, timeout=1800)
    if not result.ok and not box_installed(box_name):
        raise VagrantError(f"vagrant box add {box_file} failed: {result.tail(2)}")
    if wanted:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(wanted + "\n")
    pruned = prune_box_volumes(box_name)
    freed = f"; removed {len(pruned)} unused copies of older versions" if pruned else ""
    return f"added box {box_name} from {box_file}{freed}"
