"""The host side of real fencing: one fence_virtd per lab, listening only on the lab's network.

fence_xvm in a guest multicasts a signed request (225.0.0.12:1229); this lab's
fence_virtd hears it on the lab's cluster bridge only, checks the signature with the
lab's own key, checks that the sender and the target are this lab's nodes (a fence_virt
"group"), and resets the domain through libvirt. fence_virtd binds UDP port 1229 without
sharing it: one fencing lab at a time per host (another lab's, or a system fence_virtd,
makes `lab start fencing` fail with a one-line error naming the holder).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lab.core.errors import LabError, UsageError
from lab.transport import scripts
from lab.vm.labstate import Lab, write_atomic
from lab.vm.libvirt_conn import uri
from lab.vm.libvirt_host import bridge_name

GUEST_KEY = "/etc/cluster/fence_xvm.key"
MULTICAST = "225.0.0.12"
PORT = 1229
INSTALL_HINT = ("fence_virtd is not installed on this host: apt-get install fence-virtd "
                "(Fedora/EL: dnf install fence-virtd fence-virtd-libvirt fence-virtd-multicast)")


def key_file(lab: Lab) -> Path:
    return lab.dir / "fence_xvm.key"


def pid_file(lab: Lab) -> Path:
    return lab.dir / "fence_virtd.pid"


def conf_file(lab: Lab) -> Path:
    """Resolved: the running daemon is recognised by this path in its command line."""
    return lab.dir.resolve() / "fence_virt.conf"


def binary() -> str | None:
    """The fence_virtd program, also where sbin is not on PATH."""
    return shutil.which("fence_virtd") or next(
        (p for p in ("/usr/sbin/fence_virtd", "/sbin/fence_virtd") if Path(p).exists()), None)


def ensure_key(lab: Lab) -> bytes:
    """The lab's fence key (random, 0600), made once."""
    path = key_file(lab)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(512))
    return path.read_bytes()


def config_text(lab: Lab, bridge: str) -> str:
    """fence_virt.conf: multicast on the lab's bridge only, libvirt backend, one group of this lab's VMs."""
    members = "".join(f'\t\tip = "{n.ip}";\n' for n in lab.nodes)
    members += "".join(f'\t\tuuid = "{lab.domain_name(n)}";\n' for n in lab.node_names)
    return f"""# Written by Failover Lab for lab "{lab.name}"; 'lab destroy' stops this daemon.
fence_virtd {{
\tlistener = "multicast";
\tbackend = "libvirt";
\tmodule_path = "{module_path()}";
}}
listeners {{
\tmulticast {{
\t\tkey_file = "{key_file(lab)}";
\t\taddress = "{MULTICAST}";
\t\tport = "{PORT}";
\t\tinterface = "{bridge}";
\t}}
}}
backends {{
\tlibvirt {{
\t\turi = "{uri()}";
\t}}
}}
groups {{
\tgroup {{
\t\tname = "{lab.prefix}nodes";
{members}\t}}
}}
"""


def module_path() -> str:
    """Where the fence_virtd plugins live (Debian multiarch, or EL's lib64)."""
    for candidate in ("/usr/lib/x86_64-linux-gnu/fence-virt", "/usr/lib64/fence-virt", "/usr/lib/fence-virt",
                      "/usr/lib/aarch64-linux-gnu/fence-virt"):
        if Path(candidate, "multicast.so").exists():
            return candidate
    return "/usr/lib64/fence-virt"


def running_pid(lab: Lab) -> int | None:
    """The lab's fence_virtd, found by its configuration path (a pid file can be stale: a
    daemon that failed to start writes its own pid there too)."""
    conf = str(conf_file(lab)).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"fence_virtd") and conf in cmdline:
            return int(entry.name)
    return None


def ensure_running(lab: Lab) -> int:
    """Start the lab's fence_virtd unless it already runs; return its pid."""
    pid = running_pid(lab)
    if pid is not None:
        return pid
    program = binary()
    if program is None:
        raise UsageError(INSTALL_HINT)
    ensure_key(lab)
    conf = conf_file(lab)
    write_atomic(conf, config_text(lab, bridge_name(f"{lab.prefix}priv")))
    log = (lab.dir / "fence_virtd.log").open("ab")
    # -F: stay in the foreground of our own detached process, so the log and pid are ours.
    proc = subprocess.Popen([program, "-F", "-f", str(conf), "-p", str(pid_file(lab))],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    time.sleep(1.0)
    if proc.poll() is not None:
        tail = (lab.dir / "fence_virtd.log").read_text(errors="replace").strip().splitlines()[-3:]
        if any("Address already in use" in line for line in tail):
            raise LabError(f"UDP port {PORT} is taken by another fence_virtd (another lab's fencing exercise, "
                           "or the system's fence_virtd service): 'lab destroy' that lab or stop that service")
        raise LabError(f"fence_virtd exited at once (exit {proc.returncode}): {' / '.join(tail)}")
    return proc.pid


def stop(lab: Lab) -> None:
    pid = running_pid(lab)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        if running_pid(lab) is None:
            break
        time.sleep(0.1)
    pid_file(lab).unlink(missing_ok=True)


def guest_script(root: str = "") -> str:
    """Install the lab's key where fence_xvm looks for it by default. Stdin: the key in base64 on
    one line (guest_input), so the key is in no script text or argument. ROOT prefixes the path
    (tests install into a scratch directory)."""
    return scripts.render("fixtures/fence_key.sh", ROOT=root, KEY_FILE=GUEST_KEY)


def guest_input(key: bytes) -> str:
    return base64.b64encode(key).decode() + "\n"
