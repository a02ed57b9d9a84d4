"""`lab doctor`: one line per host prerequisite, each failure with its fix."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from lab.core.errors import LabError
from lab.core.paths import lab_home
from lab.transport.runner import run_local
from lab.vm import fencehost, kvm, libvirt_conn, libvirt_host
from lab.vm import vagrant as vg

MIN_FREE_GB = 5.0


@dataclass(frozen=True)
class Item:
    level: str  # ok, warn, FAIL
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> {self.fix}" if self.fix and self.level != "ok" else ""
        return f"{self.level:<4} {self.name}: {self.detail}{fix}"


def _libvirt() -> Item:
    try:
        conn = libvirt_conn.connect()
    except LabError as exc:
        return Item("FAIL", "libvirt", str(exc).split(";")[0],
                    "without systemd: 'virtlogd -d; libvirtd -d'; else 'systemctl start libvirtd'; "
                    "Debian/Ubuntu: apt-get install libvirt-daemon-system")
    try:
        version = conn.getLibVersion()
    finally:
        conn.close()
    detail = f"{libvirt_conn.uri()} reachable (libvirt {version // 1000000}.{version // 1000 % 1000})"
    try:
        pool = libvirt_host.pool_state()
    except LabError as exc:
        return Item("FAIL", "libvirt", f"{detail}, but its storage pools cannot be read: {exc}",
                    "check libvirtd's log; 'virsh pool-list --all'")
    if not pool.exists:
        # A fresh host: vagrant-libvirt makes the pool on first use, and `lab up` makes it first.
        return Item("ok", "libvirt", f"{detail}; no storage pool '{pool.name}' yet: 'lab up' creates it "
                    f"(directory {libvirt_host.DEFAULT_POOL_DIR})")
    if not pool.active:
        return Item("warn", "libvirt", f"{detail}; storage pool '{pool.name}' is defined but inactive: "
                    "'lab up' starts it", f"virsh pool-start {pool.name}")
    return Item("ok", "libvirt", f"{detail}, pool '{pool.name}' active ({pool.path})")


def _vagrant() -> list[Item]:
    if shutil.which("vagrant") is None:
        return [Item("FAIL", "vagrant", "not installed", "apt-get install vagrant vagrant-libvirt "
                     "(Fedora/EL: dnf install vagrant vagrant-libvirt)")]
    version = run_local(["vagrant", "--version"], env={"VAGRANT_CHECKPOINT_DISABLE": "1"}, timeout=60)
    plugins = run_local(["vagrant", "plugin", "list"], env={"VAGRANT_CHECKPOINT_DISABLE": "1"}, timeout=60)
    items = [Item("ok", "vagrant", version.stdout.strip())]
    line = next((ln for ln in plugins.stdout.splitlines() if ln.startswith("vagrant-libvirt")), None)
    if line:
        items.append(Item("ok", "vagrant-libvirt", line.strip()))
    else:
        items.append(Item("FAIL", "vagrant-libvirt", "plugin missing",
                          "apt-get install vagrant-libvirt (or: vagrant plugin install vagrant-libvirt)"))
    return items


def _python_modules() -> Item:
    missing = []
    for module, package in (("libvirt", "libvirt-python"), ("vagrant", "python-vagrant")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        return Item("FAIL", "python", f"missing {', '.join(missing)}", f"pip install {' '.join(missing)}")
    return Item("ok", "python", "libvirt-python and python-vagrant importable")


def _kvm() -> Item:
    if shutil.which(kvm.QEMU) is None:
        return Item("FAIL", "qemu", f"{kvm.QEMU} not found", "apt-get install qemu-system-x86 qemu-utils")
    probe = kvm.probe_kvm(lab_home() / "kvm-probe.json")
    if probe.usable:
        return Item("ok", "kvm", probe.reason)
    return Item("warn", "kvm", f"not usable: {probe.reason}; labs use software emulation (qemu), "
                "several times slower", "enable virtualization in the firmware, load kvm_intel/kvm_amd, "
                "join group kvm; LAB_DRIVER=kvm forces it")


def _kvm_device() -> Item:
    if not kvm.KVM_DEVICE.exists():
        return Item("ok", "kvm device", f"no {kvm.KVM_DEVICE}")
    problem = kvm.device_problem(kvm.libvirt_qemu_user())
    if problem is None:
        return Item("ok", "kvm device", f"{kvm.KVM_DEVICE}: libvirt's capability cache stays valid")
    return Item("warn", "kvm device", problem,
                f"{kvm.DEVICE_FIX} (what udev does; again after a reboot)")


def _disk() -> list[Item]:
    items = []
    for label, path in (("disk (labs)", lab_home()), ("disk (libvirt images)", Path("/var/lib/libvirt/images"))):
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free / 1e9
        level = "ok" if free >= MIN_FREE_GB else "FAIL"
        items.append(Item(level, label, f"{free:.1f} GB free at {probe}",
                          f"free at least {MIN_FREE_GB:g} GB (a 2-node lab with snapshots uses about 4 GB)"))
    return items


def _box() -> Item:
    if vg.box_installed("failover-lab/debian12"):
        return Item("ok", "box", "failover-lab/debian12 installed in vagrant")
    if vg.debian12_box_file().exists():
        return Item("ok", "box", f"{vg.debian12_box_file()} built; 'lab up' adds it to vagrant")
    return Item("FAIL", "box", "failover-lab/debian12 neither installed nor built",
                f"sudo bash {vg.debian12_build_script()} (offline, Debian packages only, about 2 minutes)")


def _fence_virtd() -> Item:
    if fencehost.binary() is not None:
        return Item("ok", "fencing", f"fence_virtd found (plugins in {fencehost.module_path()})")
    return Item("warn", "fencing", "fence_virtd not installed: only the 'fencing' exercise needs it",
                fencehost.INSTALL_HINT.split(": ", 1)[1])


def run_checks() -> list[Item]:
    return [_libvirt(), *_vagrant(), _python_modules(), _kvm(), _kvm_device(), *_disk(), _box(), _fence_virtd()]
