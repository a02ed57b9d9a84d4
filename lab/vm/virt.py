"""libvirt-python for the lab's domains: their state and addresses, snapshots, low-level faults.

Snapshots are internal qcow2 checkpoints of running domains (disk + memory), so a
revert resumes a running cluster instead of booting. All domains of a lab are paused
while their snapshots are taken and resumed together after a revert: every node
wakes up in the same instant, and corosync sees no membership change.

The rest of the lab's libvirt use lives beside this module: the connection (libvirt_conn),
networks, pools and volumes (libvirt_host), the lab's own objects by name (libvirt_owned) and the
KVM probe (kvm).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import time
import xml.etree.ElementTree as ET  # libvirt's own XML, from the local daemon
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lab.vm.libvirt_conn import VirtError, connection, libvirt_module, lookup_domain

STATE_NAMES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown",
               5: "shutoff", 6: "crashed", 7: "pmsuspended"}
_RUNNING, _PAUSED = 1, 3


def domain_states(names: Sequence[str]) -> dict[str, str]:
    """'running', 'paused', 'shutoff', ... or 'absent' for each domain name."""
    with connection() as conn:
        out = {}
        for name in names:
            dom = lookup_domain(conn, name)
            out[name] = "absent" if dom is None else STATE_NAMES.get(dom.state()[0], "unknown")
        return out


def lease_ip(name: str) -> str | None:
    """The IPv4 address the management network's DHCP gave the domain, if any yet."""
    libvirt = libvirt_module()
    with connection() as conn:
        dom = lookup_domain(conn, name)
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


def domain_networks(name: str) -> set[str] | None:
    """The libvirt networks the domain's persistent definition plugs a NIC into (None: no domain)."""
    with connection() as conn:
        dom = lookup_domain(conn, name)
        if dom is None:
            return None
        root = ET.fromstring(dom.XMLDesc(libvirt_module().VIR_DOMAIN_XML_INACTIVE))
        return {src.get("network", "") for src in root.findall("devices/interface/source")} - {""}


def _each(names: Sequence[str], action: Callable[[Any], None]) -> None:
    """Run action(dom) on every domain, in parallel, one connection per thread."""
    libvirt = libvirt_module()

    def one(name: str) -> None:
        with connection() as conn:
            dom = lookup_domain(conn, name)
            if dom is None:
                raise VirtError(f"domain {name} does not exist; run 'lab up'")
            try:
                action(dom)
            except libvirt.libvirtError as exc:
                raise VirtError(f"{name}: {exc}") from None

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        list(pool.map(one, names))


def suspend(names: Sequence[str]) -> None:
    def act(dom: Any) -> None:
        if dom.state()[0] == _RUNNING:
            dom.suspend()
    _each(names, act)


def resume(names: Sequence[str]) -> None:
    def act(dom: Any) -> None:
        if dom.state()[0] == _PAUSED:
            dom.resume()
    _each(names, act)


def start_domains(names: Sequence[str]) -> None:
    def act(dom: Any) -> None:
        if not dom.isActive():
            dom.create()
    _each(names, act)


def destroy_domains(names: Sequence[str]) -> None:
    """Hard power-off (the 'kill-node' fault)."""
    def act(dom: Any) -> None:
        if dom.isActive():
            dom.destroy()
    _each(names, act)


# --- snapshots ---------------------------------------------------------------

def snapshot_names(name: str) -> list[str]:
    with connection() as conn:
        dom = lookup_domain(conn, name)
        return [] if dom is None else list(dom.snapshotListNames())


def snapshot_times(names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Every snapshot of each domain with its creation time (libvirt's, s since the epoch); {} for
    a domain that does not exist. One connection: the start cache's look at the lab."""
    libvirt = libvirt_module()
    out: dict[str, dict[str, int]] = {}
    with connection() as conn:
        for name in names:
            dom = lookup_domain(conn, name)
            out[name] = {}
            if dom is None:
                continue
            for snap in dom.listAllSnapshots(0):
                with contextlib.suppress(libvirt.libvirtError, ET.ParseError, ValueError):
                    created = ET.fromstring(snap.getXMLDesc(0)).findtext("creationTime") or "0"
                    out[name][snap.getName()] = int(created)
    return out


def pool_free_bytes(pool: str) -> int | None:
    """Free space of a libvirt storage pool (the lab's disks and their snapshots live there);
    None: no such pool, or it is not active."""
    libvirt = libvirt_module()
    with connection() as conn:
        try:
            handle = conn.storagePoolLookupByName(pool)
            if not handle.isActive():
                return None
            with contextlib.suppress(libvirt.libvirtError):
                handle.refresh(0)
            return int(handle.info()[3])
        except libvirt.libvirtError:
            return None


def forget_snapshots(names: Sequence[str], prefix: str) -> int:
    """Forget (metadata only: the data goes with the disk) every snapshot whose name starts with
    PREFIX on the domains that exist; how many. For `lab destroy`: vagrant-libvirt then has only
    the baseline snapshots to delete one by one."""
    libvirt = libvirt_module()
    count = 0
    with connection() as conn:
        for name in names:
            dom = lookup_domain(conn, name)
            if dom is None:
                continue
            for snap in dom.listAllSnapshots(0):
                if not snap.getName().startswith(prefix):
                    continue
                try:
                    snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
                except libvirt.libvirtError:
                    try:
                        snap.delete(0)  # a driver that keeps no separate metadata (libvirt's test driver)
                    except libvirt.libvirtError as exc:
                        raise VirtError(f"{name}: cannot delete snapshot {snap.getName()}: {exc}") from None
                count += 1
    return count


def create_snapshot(names: Sequence[str], snapshot: str) -> None:
    """Pause every domain, checkpoint each (disk + memory, internal), resume them together."""
    delete_snapshot(names, snapshot)
    suspend(names)
    try:
        def act(dom: Any) -> None:
            dom.snapshotCreateXML(f"<domainsnapshot><name>{snapshot}</name></domainsnapshot>", 0)
        _each(names, act)
    except VirtError:
        delete_snapshot(names, snapshot)
        raise
    finally:
        resume(names)


def delete_snapshot(names: Sequence[str], snapshot: str) -> None:
    def act(dom: Any) -> None:
        if snapshot in dom.snapshotListNames():
            dom.snapshotLookupByName(snapshot).delete(0)
    _each(names, act)


def revert(names: Sequence[str], snapshot: str) -> None:
    """Revert every domain to the snapshot, paused, then resume them all at once.

    A running domain whose devices are the snapshot's is reverted in its own QEMU (`loadvm`):
    libvirt's revert (since 8.x) stops QEMU and starts a new one from the snapshot, measured here
    at 9.2 s per domain against 2.5 s for loadvm alone. A disk hot-plugged since the snapshot (the
    SBD disk) is unplugged first, so that the devices are the snapshot's again (0.3 s, against
    12 s for a new QEMU). Otherwise, or when loadvm says no, libvirt's revert does it."""
    libvirt = libvirt_module()

    def act(dom: Any) -> None:
        try:
            snap = dom.snapshotLookupByName(snapshot)
        except libvirt.libvirtError:
            raise VirtError(f"{dom.name()} has no snapshot '{snapshot}'; run 'lab up' to make it") from None
        _unplug_disks_not_in(dom, snap)
        if _loadvm(dom, snap):
            return
        # FORCE: a disk hot-plugged since the snapshot (the SBD disk) makes the running
        # configuration differ from the snapshot's; libvirt then restarts QEMU from it.
        dom.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
                             | libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE)
    _each(names, act)
    resume(names)


_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


def _loadvm(dom: Any, snap: Any) -> bool:
    """Load the internal snapshot in the domain's running QEMU (HMP loadvm), the domain left
    paused; False (nothing done, or to be redone by libvirt) when that is not safe or failed."""
    libvirt = libvirt_module()
    name = snap.getName()
    if not _SNAPSHOT_NAME.match(name) or dom.state()[0] not in (_RUNNING, _PAUSED):
        return False
    try:
        qemu = importlib.import_module("libvirt_qemu")
        snapshot_disks = _disk_targets(ET.fromstring(snap.getXMLDesc(0)).find("domain"))
        if snapshot_disks != _disk_targets(ET.fromstring(dom.XMLDesc(0))):
            return False  # a disk hot-plugged since (or gone): the snapshot's devices differ
        if dom.state()[0] == _RUNNING:
            dom.suspend()
        reply = qemu.qemuMonitorCommand(dom, f'loadvm "{name}"', qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    except (ImportError, AttributeError, ET.ParseError, libvirt.libvirtError):
        return False
    return not str(reply).strip()  # HMP answers nothing on success, an error text otherwise


UNPLUG_WAIT = 10.0  # the guest answers an ACPI unplug in well under a second, even emulated


def _unplug_disks_not_in(dom: Any, snap: Any) -> None:
    """Hot-unplug the running domain's disks that the snapshot does not have and its persistent
    definition does not either (hot-plugged since: the SBD disk), waiting until they are gone.
    Best effort: a disk still there leaves the revert to libvirt (a new QEMU), as before."""
    libvirt = libvirt_module()
    try:
        if dom.state()[0] != _RUNNING:  # a paused guest cannot answer the unplug
            return
        keep = set(_disk_targets(ET.fromstring(snap.getXMLDesc(0)).find("domain")))
        keep |= set(_disk_targets(ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))))
        extra = [d for d in ET.fromstring(dom.XMLDesc(0)).findall("devices/disk")
                 if d.find("target") is not None and d.find("target").get("dev", "") not in keep]
        if not extra:
            return
        for disk in extra:
            dom.detachDeviceFlags(ET.tostring(disk, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
        deadline = time.monotonic() + UNPLUG_WAIT
        while not set(_disk_targets(ET.fromstring(dom.XMLDesc(0)))) <= keep and time.monotonic() < deadline:
            time.sleep(0.1)
    except (ET.ParseError, libvirt.libvirtError):
        return


def _disk_targets(domain: ET.Element | None) -> list[str]:
    if domain is None:
        return ["?"]
    return sorted(t.get("dev", "") for t in domain.findall("devices/disk/target"))


# --- devices -----------------------------------------------------------------

def attach_shared_disk(names: Sequence[str], path: str) -> None:
    """Hot-plug the raw file into every running domain as a shareable virtio disk (vdb).

    Live only, never in the persistent definition: the next snapshot revert removes it.
    """
    libvirt = libvirt_module()

    def act(dom: Any) -> None:
        if path in dom.XMLDesc(0):
            return
        for cache in ("none", "writethrough"):  # O_DIRECT is not available on every file system
            xml = (f"<disk type='file' device='disk'><driver name='qemu' type='raw' cache='{cache}'/>"
                   f"<source file='{path}'/><target dev='vdb' bus='virtio'/><shareable/></disk>")
            try:
                dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
                return
            except libvirt.libvirtError as exc:
                error = exc
        raise VirtError(f"cannot attach {path} to {dom.name()}: {error}")
    _each(names, act)
