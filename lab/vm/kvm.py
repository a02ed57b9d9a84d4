"""Whether this host's KVM is usable, found by booting a one-instruction guest (a /dev/kvm that
exists may still hang or crawl), and the libvirt driver a new lab gets from the answer."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# A boot sector that writes 0x41 to the isa-debug-exit port: QEMU exits with (0x41<<1)|1.
_PROBE_CODE = bytes([0xB0, 0x41, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])
_PROBE_RC = 131
QEMU = "qemu-system-x86_64"
KVM_PROBE_LIMIT = 3.0  # seconds; a working KVM boots the probe in well under one


@dataclass(frozen=True)
class KvmProbe:
    usable: bool
    reason: str
    seconds: float | None = None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def probe_kvm(cache: Path | None = None) -> KvmProbe:
    """Boot a one-instruction guest under KVM: /dev/kvm may exist and still hang or crawl.

    The answer is cached per host boot (the kernel's boot_id) in `cache`.
    """
    qemu, limit = QEMU, KVM_PROBE_LIMIT
    if cache is not None:
        try:
            data = json.loads(cache.read_text())
            if data.get("boot_id") == _boot_id() and data.get("limit") == limit:
                return KvmProbe(data["usable"], data["reason"], data.get("seconds"))
        except (OSError, ValueError, KeyError):
            pass
    result = _probe_kvm_uncached(qemu, limit)
    if result.usable and result.seconds is not None:
        # A working KVM is at least as fast as software emulation; one that crawls is not usable.
        tcg = _run_probe(qemu, "tcg", limit)
        if tcg.usable and tcg.seconds is not None and result.seconds > 2 * tcg.seconds + 0.5:
            result = KvmProbe(False, f"a test guest took {result.seconds:.1f} s under KVM and "
                                     f"{tcg.seconds:.1f} s under software emulation (/dev/kvm crawls)",
                              result.seconds)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"boot_id": _boot_id(), "limit": limit, "usable": result.usable,
                                         "reason": result.reason, "seconds": result.seconds}))
        except OSError:
            pass
    return result


def _probe_kvm_uncached(qemu: str, limit: float) -> KvmProbe:
    if not os.path.exists("/dev/kvm"):
        return KvmProbe(False, "/dev/kvm does not exist")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return KvmProbe(False, "/dev/kvm is not accessible to this user (add yourself to group kvm)")
    return _run_probe(qemu, "kvm", limit)


def _run_probe(qemu: str, accel: str, limit: float) -> KvmProbe:
    with tempfile.TemporaryDirectory(prefix="lab-kvm-probe-") as tmp:
        image = Path(tmp) / "probe.img"
        image.write_bytes(_PROBE_CODE + b"\0" * (510 - len(_PROBE_CODE)) + b"\x55\xaa")
        argv = [qemu, "-accel", accel, "-display", "none", "-nodefaults", "-no-user-config",
                "-m", "16", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive", f"file={image},format=raw,if=ide"]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            return KvmProbe(False, f"{qemu} not found")
        try:
            _, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=5)
            return KvmProbe(False, f"a test guest under {accel} did not finish within {limit:g} s "
                                   f"(/dev/kvm exists but hangs or crawls)")
        seconds = time.monotonic() - start
    if proc.returncode != _PROBE_RC:
        last = (err or "").strip().splitlines()[-1:] or ["no message"]
        return KvmProbe(False, f"a test guest under {accel} failed (exit {proc.returncode}: {last[0]})", seconds)
    return KvmProbe(True, f"a test guest booted under {accel} in {seconds:.2f} s", seconds)


def choose_driver(cache: Path | None = None) -> tuple[str, str | None]:
    """('kvm'|'qemu', warning or None). LAB_DRIVER=kvm|qemu or LAB_FORCE_QEMU=1 override the probe."""
    forced = os.environ.get("LAB_DRIVER", "").strip().lower()
    if os.environ.get("LAB_FORCE_QEMU", "").strip() not in ("", "0"):
        forced = "qemu"
    if forced in ("kvm", "qemu"):
        return forced, None
    probe = probe_kvm(cache)
    if probe.usable:
        return "kvm", None
    return "qemu", f"KVM not usable ({probe.reason}): using software emulation (slow)"


# --- /dev/kvm and libvirt's QEMU user -------------------------------------------------------

KVM_DEVICE = Path("/dev/kvm")
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
_DEFAULT_QEMU_USERS = ("libvirt-qemu", "qemu")  # Debian/Ubuntu, Fedora/EL
DEVICE_FIX = f"chgrp kvm {KVM_DEVICE} && chmod 0660 {KVM_DEVICE}"  # udev's own rule for the device


def libvirt_qemu_user(conf: Path = QEMU_CONF) -> str | None:
    """The user libvirt runs QEMU as: qemu.conf's `user = "..."`, else the distribution's default
    that exists on this host (None: neither)."""
    import pwd  # noqa: PLC0415  (POSIX only; lab's hosts are Linux)

    with contextlib.suppress(OSError):
        for line in conf.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "user" and value.strip().startswith('"'):
                return value.strip().strip('"') or None
    for name in _DEFAULT_QEMU_USERS:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return None


def device_problem(user: str | None, device: Path = KVM_DEVICE) -> str | None:
    """Why libvirt would probe QEMU again on every call, or None.

    libvirt probes QEMU's capabilities as root (KVM found) but checks them against what its QEMU
    user may open: when that user cannot read and write /dev/kvm ("KVM was enabled when probing,
    but it is not available now") the cache is never valid, and every libvirt call that needs the
    capabilities probes again: 6-16 s each measured on a host without udev (device 0600 root), about
    three minutes of a `lab up`. udev gives the device group kvm, mode 0660."""
    import grp  # noqa: PLC0415
    import pwd  # noqa: PLC0415

    try:
        info = device.stat()
        account = pwd.getpwnam(user) if user else None
    except (OSError, KeyError):
        return None
    if account is None or account.pw_uid == 0:
        return None
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    if account.pw_uid == info.st_uid:
        bits = (info.st_mode >> 6) & 0o7
    elif info.st_gid in groups:
        bits = (info.st_mode >> 3) & 0o7
    else:
        bits = info.st_mode & 0o7
    if bits & 0o6 == 0o6:
        return None
    try:
        owner = f"{pwd.getpwuid(info.st_uid).pw_name}:{grp.getgrgid(info.st_gid).gr_name}"
    except KeyError:
        owner = f"{info.st_uid}:{info.st_gid}"
    return (f"{device} ({owner}, mode {info.st_mode & 0o777:03o}) is not readable and writable by "
            f"libvirt's QEMU user {user}: libvirt probes QEMU again on every call (seconds each)")
