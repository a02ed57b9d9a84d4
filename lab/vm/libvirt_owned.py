"""The lab's own libvirt objects, by exact name: which exist (lab status, lab destroy's check)
and their removal. Names come from the lab's state (Owned), never from a pattern, so lab
destroy of lab `a` cannot touch flab-a-b-node1 of lab `a-b`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from lab.vm.labstate import Owned, libvirt_prefix
from lab.vm.libvirt_conn import VirtError, connection, libvirt_module, lookup_domain


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


def _find(conn: Any, owned: Owned) -> Leftovers:
    """Which of the owned names exist: each looked up by its exact name, never by a pattern."""
    libvirt = libvirt_module()
    domains = tuple(n for n in owned.domains if lookup_domain(conn, n) is not None)
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
    with connection() as conn:
        return _find(conn, owned)


def remove_owned(owned: Owned) -> tuple[Leftovers, Leftovers]:
    """Remove exactly the owned domains (with the owned snapshots), volumes and networks.

    One connection for the removal and the check after it: (removed, still there).
    """
    libvirt = libvirt_module()
    with connection() as conn:
        found = _find(conn, owned)
        for name in found.domains:
            try:
                _remove_domain(conn, name, owned.snapshots)
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


def _remove_domain(conn: Any, name: str, snapshots: tuple[str, ...]) -> None:
    """Power off and undefine one domain, forgetting the lab's snapshots of it first."""
    libvirt = libvirt_module()
    dom = lookup_domain(conn, name)
    if dom is None:
        return
    if dom.isActive():
        dom.destroy()
    for snap in snapshots:
        _delete_snapshot_metadata(dom, snap)
    flags = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    try:
        dom.undefineFlags(flags | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    except libvirt.libvirtError:
        dom.undefineFlags(flags)  # a driver without NVRAM (libvirt's test driver)


def _delete_snapshot_metadata(dom: Any, snapshot: str) -> None:
    """Forget one of the lab's snapshots (its data goes with the disk); absent is fine."""
    libvirt = libvirt_module()
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
