"""libvirt-python: domain state, addresses, snapshots, low-level faults, cleanup, KVM probing.

Snapshots are internal qcow2 checkpoints of running domains (disk + memory), so a
revert resumes a running cluster instead of booting. All domains of a lab are paused
while their snapshots are taken and resumed together after a revert: every node
wakes up in the same instant, and corosync sees no membership change.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET  # libvirt's own XML, from the local daemon
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.core.errors import LabError

if TYPE_CHECKING:
    from lab.vm.labstate import Owned

DEFAULT_URI = "qemu:///system"


class VirtError(LabError):
    """A libvirt operation failed."""


def uri() -> str:
    return os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


def _libvirt():  # noqa: ANN202
    try:
        import libvirt
    except ImportError:
        raise VirtError("libvirt-python is not installed: pip install libvirt-python "
                        "(needs libvirt-dev and pkg-config)") from None
    libvirt.registerErrorHandler(lambda *_: None, None)  # no stderr noise; we raise instead
    return libvirt


def connect():  # noqa: ANN201
    libvirt = _libvirt()
    try:
        return libvirt.open(uri())
    except libvirt.libvirtError as exc:
        raise VirtError(f"cannot connect to libvirt at {uri()}: {exc}; start it "
                        f"('virtlogd -d; libvirtd -d' without systemd, else "
                        f"'systemctl start libvirtd') and check 'lab doctor'") from None


def _domain(conn, name: str):  # noqa: ANN001, ANN202
    libvirt = _libvirt()
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


STATE_NAMES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown",
               5: "shutoff", 6: "crashed", 7: "pmsuspended"}


def domain_states(names: Sequence[str]) -> dict[str, str]:
    """'running', 'paused', 'shutoff', ... or 'absent' for each domain name."""
    conn = connect()
    try:
        out = {}
        for name in names:
            dom = _domain(conn, name)
            out[name] = "absent" if dom is None else STATE_NAMES.get(dom.state()[0], "unknown")
        return out
    finally:
        conn.close()


def lease_ip(name: str) -> str | None:
    """The IPv4 address the management network's DHCP gave the domain, if any yet."""
    libvirt = _libvirt()
    conn = connect()
    try:
        dom = _domain(conn, name)
        if dom is None or not dom.isActive():
            return None
        try:
            ifaces = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE)
        except libvirt.libvirtError:
            return None
        for iface in ifaces.values():
            for addr in iface.get("addrs") or []:
                if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                    return addr["addr"]
        return None
    finally:
        conn.close()


# --- snapshots ---------------------------------------------------------------

def snapshot_names(name: str) -> list[str]:
    conn = connect()
    try:
        dom = _domain(conn, name)
        return [] if dom is None else list(dom.snapshotListNames())
    finally:
        conn.close()


def has_snapshot(names: Sequence[str], snapshot: str) -> bool:
    return all(snapshot in snapshot_names(n) for n in names)


def _parallel(fn: Callable[[str], object], names: Sequence[str]) -> list:
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return list(pool.map(fn, names))


def _each(names: Sequence[str], action: Callable) -> None:  # noqa: ANN001
    """Run action(conn, dom) on every domain, in parallel, one connection per thread."""
    libvirt = _libvirt()

    def one(name: str) -> None:
        conn = connect()
        try:
            dom = _domain(conn, name)
            if dom is None:
                raise VirtError(f"domain {name} does not exist; run 'lab up'")
            action(conn, dom)
        except libvirt.libvirtError as exc:
            raise VirtError(f"{name}: {exc}") from None
        finally:
            conn.close()

    _parallel(one, names)


def suspend(names: Sequence[str]) -> None:
    def act(_conn, dom) -> None:  # noqa: ANN001
        if dom.state()[0] == 1:
            dom.suspend()
    _each(names, act)


def resume(names: Sequence[str]) -> None:
    def act(_conn, dom) -> None:  # noqa: ANN001
        if dom.state()[0] == 3:
            dom.resume()
    _each(names, act)


def create_snapshot(names: Sequence[str], snapshot: str) -> None:
    """Pause every domain, checkpoint each (disk + memory, internal), resume them together."""
    delete_snapshot(names, snapshot)
    suspend(names)
    try:
        def act(_conn, dom) -> None:  # noqa: ANN001
            dom.snapshotCreateXML(f"<domainsnapshot><name>{snapshot}</name></domainsnapshot>", 0)
        _each(names, act)
    except VirtError:
        delete_snapshot(names, snapshot)
        raise
    finally:
        resume(names)


def delete_snapshot(names: Sequence[str], snapshot: str) -> None:
    def act(_conn, dom) -> None:  # noqa: ANN001
        if snapshot in dom.snapshotListNames():
            dom.snapshotLookupByName(snapshot).delete(0)
    _each(names, act)


def revert(names: Sequence[str], snapshot: str) -> None:
    """Revert every domain to the snapshot, paused, then resume them all at once."""
    libvirt = _libvirt()

    def act(_conn, dom) -> None:  # noqa: ANN001
        try:
            snap = dom.snapshotLookupByName(snapshot)
        except libvirt.libvirtError:
            raise VirtError(f"{dom.name()} has no snapshot '{snapshot}'; run 'lab up' to make it") from None
        # FORCE: a disk hot-plugged since the snapshot (the SBD disk) makes the running
        # configuration differ from the snapshot's; libvirt then restarts QEMU from it.
        dom.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
                             | libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE)
    _each(names, act)
    resume(names)


def bridge_name(network: str) -> str:
    """The host bridge of a libvirt network (where a host daemon listens to the lab)."""
    libvirt = _libvirt()
    conn = connect()
    try:
        return conn.networkLookupByName(network).bridgeName()
    except libvirt.libvirtError as exc:
        raise VirtError(f"no libvirt network {network}: {exc}") from None
    finally:
        conn.close()


def shared_disk(pool_name: str, volume: str, size_mib: int) -> str:
    """A raw volume for a disk every node shares (SBD); made once, its path returned."""
    libvirt = _libvirt()
    conn = connect()
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        try:
            return pool.storageVolLookupByName(volume).path()
        except libvirt.libvirtError:
            pass
        xml = (f"<volume><name>{volume}</name><capacity unit='MiB'>{size_mib}</capacity>"
               f"<allocation unit='MiB'>{size_mib}</allocation><target><format type='raw'/></target></volume>")
        return pool.createXML(xml, 0).path()
    except libvirt.libvirtError as exc:
        raise VirtError(f"cannot create volume {volume} in pool {pool_name}: {exc}") from None
    finally:
        conn.close()


def attach_shared_disk(names: Sequence[str], path: str, target: str = "vdb") -> None:
    """Hot-plug the raw file into every running domain as a shareable virtio disk.

    Live only, never in the persistent definition: the next snapshot revert removes it.
    """
    libvirt = _libvirt()

    def act(_conn, dom) -> None:  # noqa: ANN001
        if path in dom.XMLDesc(0):
            return
        for cache in ("none", "writethrough"):  # O_DIRECT is not available on every file system
            xml = (f"<disk type='file' device='disk'><driver name='qemu' type='raw' cache='{cache}'/>"
                   f"<source file='{path}'/><target dev='{target}' bus='virtio'/><shareable/></disk>")
            try:
                dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
                return
            except libvirt.libvirtError as exc:
                error = exc
        raise VirtError(f"cannot attach {path} to {dom.name()}: {error}")
    _each(names, act)


def destroy_domains(names: Sequence[str]) -> None:
    """Hard power-off (the 'kill-node' fault)."""
    def act(_conn, dom) -> None:  # noqa: ANN001
        if dom.isActive():
            dom.destroy()
    _each(names, act)


def domain_networks(name: str) -> set[str] | None:
    """The libvirt networks the domain's persistent definition plugs a NIC into (None: no domain)."""
    conn = connect()
    try:
        dom = _domain(conn, name)
        if dom is None:
            return None
        root = ET.fromstring(dom.XMLDesc(_libvirt().VIR_DOMAIN_XML_INACTIVE))
        return {src.get("network", "") for src in root.findall("devices/interface/source")} - {""}
    finally:
        conn.close()


def start_networks(names: Sequence[str]) -> None:
    """Start the named networks that exist but are inactive (after a host reboot, say)."""
    libvirt = _libvirt()
    conn = connect()
    try:
        for name in names:
            try:
                net = conn.networkLookupByName(name)
            except libvirt.libvirtError:
                continue
            if not net.isActive():
                try:
                    net.create()
                except libvirt.libvirtError as exc:
                    raise VirtError(f"cannot start network {name}: {exc}") from None
    finally:
        conn.close()


def start_domains(names: Sequence[str]) -> None:
    def act(_conn, dom) -> None:  # noqa: ANN001
        if not dom.isActive():
            dom.create()
    _each(names, act)


# --- the lab's own objects, by exact name -----------------------------------

@dataclass(frozen=True)
class Leftovers:
    domains: tuple[str, ...]
    volumes: tuple[str, ...]  # pool/volume
    networks: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.domains or self.volumes or self.networks)

    def __str__(self) -> str:
        parts = [f"{kind} {', '.join(names)}" for kind, names in
                 (("domains", self.domains), ("volumes", self.volumes), ("networks", self.networks)) if names]
        return "; ".join(parts) or "nothing"


def _find(conn, owned: Owned) -> Leftovers:  # noqa: ANN001
    """Which of the owned names exist: each looked up by its exact name, never by a pattern."""
    libvirt = _libvirt()
    domains = tuple(n for n in owned.domains if _domain(conn, n) is not None)
    networks = []
    for name in owned.networks:
        with contextlib.suppress(libvirt.libvirtError):
            conn.networkLookupByName(name)
            networks.append(name)
    volumes = []
    wanted = set(owned.volumes)
    for pool in conn.listAllStoragePools():
        if owned.pool is not None and pool.name() != owned.pool or not pool.isActive():
            continue
        with contextlib.suppress(libvirt.libvirtError):  # a busy pool is still listed below
            pool.refresh(0)
        volumes += [f"{pool.name()}/{v}" for v in pool.listVolumes() if v in wanted]
    return Leftovers(domains, tuple(sorted(volumes)), tuple(networks))


def find_owned(owned: Owned) -> Leftovers:
    """The lab's objects that exist now."""
    conn = connect()
    try:
        return _find(conn, owned)
    finally:
        conn.close()


def remove_owned(owned: Owned) -> tuple[Leftovers, Leftovers]:
    """Remove exactly the owned domains (with the owned snapshots), volumes and networks.

    One connection for the removal and the check after it: (removed, still there).
    """
    libvirt = _libvirt()
    conn = connect()
    try:
        found = _find(conn, owned)
        for name in found.domains:
            dom = _domain(conn, name)
            if dom is None:
                continue
            try:
                if dom.isActive():
                    dom.destroy()
                for snap in owned.snapshots:
                    _delete_snapshot_metadata(dom, snap)
                flags = (libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
                try:
                    dom.undefineFlags(flags | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
                except libvirt.libvirtError:
                    dom.undefineFlags(flags)  # a driver without NVRAM (libvirt's test driver)
            except libvirt.libvirtError as exc:
                raise VirtError(f"cannot remove domain {name}: {exc}") from None
        for item in found.volumes:
            pool_name, _, vol_name = item.partition("/")
            try:
                conn.storagePoolLookupByName(pool_name).storageVolLookupByName(vol_name).delete(0)
            except libvirt.libvirtError as exc:
                raise VirtError(f"cannot remove volume {item}: {exc}") from None
        for name in found.networks:
            try:
                net = conn.networkLookupByName(name)
                if net.isActive():
                    net.destroy()
                net.undefine()
            except libvirt.libvirtError as exc:
                raise VirtError(f"cannot remove network {name}: {exc}") from None
        return found, _find(conn, owned)
    finally:
        conn.close()


def _delete_snapshot_metadata(dom, snapshot: str) -> None:  # noqa: ANN001
    """Forget one of the lab's snapshots (its data goes with the disk); absent is fine."""
    libvirt = _libvirt()
    try:
        snap = dom.snapshotLookupByName(snapshot)
    except libvirt.libvirtError:
        return
    try:
        snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
    except libvirt.libvirtError:
        with contextlib.suppress(libvirt.libvirtError):
            snap.delete(0)  # a driver that keeps no separate metadata (libvirt's test driver)


def _named_by(prefix: str) -> Owned:
    """What lab NAME makes, for a prefix 'flab-NAME-' (callers that still speak in prefixes)."""
    from lab.vm.labstate import Owned, libvirt_prefix

    name = prefix.removeprefix("flab-").removesuffix("-")
    if libvirt_prefix(name) != prefix:
        raise VirtError(f"'{prefix}' is not a lab's prefix (flab-NAME-)")
    return Owned.anything_of(name)


def find_leftovers(prefix: str) -> Leftovers:
    """The objects lab NAME (prefix 'flab-NAME-') can make that exist: exact names, not a prefix
    match, so flab-a-b-node1 is never lab a's."""
    return find_owned(_named_by(prefix))


def remove_leftovers(prefix: str) -> Leftovers:
    """Remove what find_leftovers(prefix) finds; returns what was removed."""
    return remove_owned(_named_by(prefix))[0]


def prune_box_volumes(box_name: str) -> list[str]:
    """Remove the copies vagrant-libvirt made of earlier versions of a box (one per `vagrant box
    add`, ~1 GiB each) that no lab's disk still uses as its backing file."""
    libvirt = _libvirt()
    stem = box_name.replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_"
    conn = connect()
    removed = []
    try:
        pools = [p for p in conn.listAllStoragePools() if p.isActive()]
        volumes = [v for p in pools for v in p.listAllVolumes()]
        backing = set()
        for vol in volumes:
            with contextlib.suppress(libvirt.libvirtError, ET.ParseError):
                path = ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path")
                if path:
                    backing.add(path)
        for vol in volumes:
            if vol.name().startswith(stem) and vol.path() not in backing:
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
                    removed.append(vol.name())
    finally:
        conn.close()
    return removed


def used_subnets() -> list[str]:
    """IPv4 networks of every libvirt network (to pick free ones for a new lab)."""
    import ipaddress

    conn = connect()
    try:
        out = []
        for net in conn.listAllNetworks():
            root = ET.fromstring(net.XMLDesc(0))
            for ip in root.findall("ip"):
                addr, mask, prefix = ip.get("address"), ip.get("netmask"), ip.get("prefix")
                if addr and (mask or prefix):
                    out.append(str(ipaddress.ip_network(f"{addr}/{mask or prefix}", strict=False)))
        return out
    finally:
        conn.close()


# --- KVM ---------------------------------------------------------------------

# A boot sector that writes 0x41 to the isa-debug-exit port: QEMU exits with (0x41<<1)|1.
_PROBE_CODE = bytes([0xB0, 0x41, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])
_PROBE_RC = 131
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


def probe_kvm(cache: Path | None = None, qemu: str = "qemu-system-x86_64",
              limit: float = KVM_PROBE_LIMIT) -> KvmProbe:
    """Boot a one-instruction guest under KVM: /dev/kvm may exist and still hang or crawl.

    The answer is cached per host boot (the kernel's boot_id) in `cache`.
    """
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


DEFAULT_POOL = "default"
DEFAULT_POOL_DIR = "/var/lib/libvirt/images"


@dataclass(frozen=True)
class PoolState:
    """A storage pool as `lab doctor` and `lab up` see it."""

    name: str
    exists: bool
    active: bool
    path: str | None


def pool_state(name: str = DEFAULT_POOL, conn=None) -> PoolState:  # noqa: ANN001
    """Whether the pool exists and runs. A fresh host has no pool 'default' at all: vagrant-libvirt
    (and `lab up`, see ensure_pool) makes it on first use, so its absence is not a fault."""
    libvirt = _libvirt()
    own = conn is None
    conn = conn or connect()
    try:
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            return PoolState(name, False, False, None)
        path = None
        with contextlib.suppress(libvirt.libvirtError, ET.ParseError):
            path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path")
        return PoolState(name, True, bool(pool.isActive()), path)
    finally:
        if own:
            conn.close()


def ensure_pool(name: str = DEFAULT_POOL, directory: str = DEFAULT_POOL_DIR, conn=None) -> str:  # noqa: ANN001
    """Make the lab's storage pool usable: define a directory pool if there is none, start it if it
    is inactive, and mark it autostart. Returns what was done ('' when nothing was needed)."""
    libvirt = _libvirt()
    own = conn is None
    conn = conn or connect()
    done: list[str] = []
    try:
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            xml = (f"<pool type='dir'><name>{name}</name><target><path>{directory}</path>"
                   f"</target></pool>")
            pool = conn.storagePoolDefineXML(xml, 0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.build(0)  # mkdir the target; fails harmlessly when it exists
            done.append(f"defined pool '{name}' ({directory})")
        if not pool.isActive():
            pool.create(0)
            done.append(f"started pool '{name}'")
        with contextlib.suppress(libvirt.libvirtError):
            if not pool.autostart():
                pool.setAutostart(1)
        return "; ".join(done)
    except libvirt.libvirtError as exc:
        raise VirtError(f"storage pool '{name}' cannot be made usable: {exc}") from None
    finally:
        if own:
            conn.close()
