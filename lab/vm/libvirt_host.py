"""The host's libvirt networks, storage pools and volumes as the lab uses them: the lab's bridge,
free subnets, the pool a lab's disks live in, the shared SBD volume, old box copies."""

from __future__ import annotations

import contextlib
import ipaddress
import xml.etree.ElementTree as ET  # libvirt's own XML, from the local daemon
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lab.vm.libvirt_conn import VirtError, connection, libvirt_module

DEFAULT_POOL = "default"
DEFAULT_POOL_DIR = "/var/lib/libvirt/images"


# --- networks ----------------------------------------------------------------

def bridge_name(network: str) -> str:
    """The host bridge of a libvirt network (where a host daemon listens to the lab)."""
    libvirt = libvirt_module()
    with connection() as conn:
        try:
            return conn.networkLookupByName(network).bridgeName()
        except libvirt.libvirtError as exc:
            raise VirtError(f"no libvirt network {network}: {exc}") from None


def start_networks(names: Sequence[str]) -> None:
    """Start the named networks that exist but are inactive (after a host reboot, say)."""
    libvirt = libvirt_module()
    with connection() as conn:
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


def used_subnets() -> list[str]:
    """IPv4 networks of every libvirt network (to pick free ones for a new lab)."""
    out = []
    with connection() as conn:
        for net in conn.listAllNetworks():
            for ip in ET.fromstring(net.XMLDesc(0)).findall("ip"):
                addr, mask, prefix = ip.get("address"), ip.get("netmask"), ip.get("prefix")
                if addr and (mask or prefix):
                    out.append(str(ipaddress.ip_network(f"{addr}/{mask or prefix}", strict=False)))
    return out


# --- volumes -----------------------------------------------------------------

def shared_disk(pool_name: str, volume: str, size_mib: int) -> str:
    """A raw volume for a disk every node shares (SBD); made once, its path returned."""
    libvirt = libvirt_module()
    with connection() as conn:
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


def prune_box_volumes(box_name: str) -> list[str]:
    """Remove the copies vagrant-libvirt made of earlier versions of a box (one per `vagrant box
    add`, ~1 GiB each) that no lab's disk still uses as its backing file."""
    libvirt = libvirt_module()
    stem = box_name.replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_"
    removed = []
    with connection() as conn:
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
    return removed


# --- the storage pool --------------------------------------------------------

@dataclass(frozen=True)
class PoolState:
    """A storage pool as `lab doctor` and `lab up` see it."""

    name: str
    exists: bool
    active: bool
    path: str | None


def pool_state(name: str = DEFAULT_POOL, conn: Any = None) -> PoolState:
    """Whether the pool exists and runs. A fresh host has no pool 'default' at all: vagrant-libvirt
    (and `lab up`, see ensure_pool) makes it on first use, so its absence is not a fault."""
    libvirt = libvirt_module()
    with connection(conn) as conn:
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            return PoolState(name, False, False, None)
        path = None
        with contextlib.suppress(libvirt.libvirtError, ET.ParseError):
            path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path")
        return PoolState(name, True, bool(pool.isActive()), path)


def ensure_pool(name: str = DEFAULT_POOL, directory: str = DEFAULT_POOL_DIR, conn: Any = None) -> str:
    """Make the lab's storage pool usable: define a directory pool if there is none, start it if it
    is inactive, and mark it autostart. Returns what was done ('' when nothing was needed)."""
    libvirt = libvirt_module()
    done: list[str] = []
    with connection(conn) as conn:
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
