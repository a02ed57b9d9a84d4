"""Host-side preparation some exercises need before their start state: fixtures.

`fence-virtd`: the lab's own fence_virtd on the host and its key in every node, so
fence_xvm in the guests can really reset VMs. `sbd-disk`: a small raw disk shared by
every node (hot-plugged, gone again at the next revert) and a software watchdog.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lab.transport import scripts
from lab.vm import fencehost, provision, virt
from lab.vm.libvirt_host import shared_disk
from lab.vm.nodes import parallel

if TYPE_CHECKING:
    from lab.core.progress import Progress
    from lab.transport.ssh import SSHNode
    from lab.vm.labstate import Lab

_FENCE_VIRTD = "fence_virtd for this lab (multicast on the cluster network)"
SBD_DISK_MIB = 16
SBD_DEVICE = "/dev/vdb"


def sbd_volume(prefix: str) -> str:
    return f"{prefix}sbd.img"


# Fixtures whose guest half a start snapshot holds and whose host half restore_host starts
# again: a cached start state may have them (lab.vm.startcache).
RESTORABLE = frozenset({"fence-virtd"})


def apply(lab: Lab, names: Sequence[str], nodes: Mapping[str, SSHNode], progress: Progress) -> None:
    """Set up the named fixtures on the host and in every node (after the revert)."""
    if "fence-virtd" in names:
        with progress.step("host", _FENCE_VIRTD):
            fencehost.ensure_running(lab)
            key = fencehost.ensure_key(lab)
            parallel(lambda node: provision.run_root(node, fencehost.guest_script(), "fence key",
                                                     input_text=fencehost.guest_input(key)), list(nodes.values()))
    if "sbd-disk" in names:
        with progress.step("host", f"shared {SBD_DISK_MIB} MiB disk {SBD_DEVICE} and a watchdog on every node"):
            path = shared_disk(lab.state.pool, sbd_volume(lab.prefix), SBD_DISK_MIB)
            virt.attach_shared_disk([lab.domain_name(n) for n in lab.node_names], path)
            wait, blank = (scripts.render(f"fixtures/{name}.sh", SBD_DEVICE=SBD_DEVICE)
                           for name in ("wait_disk", "blank_disk"))
            # Every node at once, one session each; the first also blanks the disk (every start
            # begins with no SBD header from an earlier attempt), once the disk is there.
            first = lab.node_names[0]
            parallel(lambda name: provision.run_root(nodes[name], wait + "\n" + blank if name == first else wait,
                                                     "shared disk"), list(nodes))


def restore_host(lab: Lab, names: Sequence[str], progress: Progress) -> None:
    """The host half of the named RESTORABLE fixtures, for a snapshot that holds the guest half."""
    if "fence-virtd" in names:
        with progress.step("host", _FENCE_VIRTD):
            fencehost.ensure_running(lab)


def host_digest(lab: Lab, names: Sequence[str]) -> str | None:
    """What a start snapshot's guests depend on in the named fixtures' host half (None: nothing):
    for fence-virtd, the lab's key (the guests hold a copy; fence_virtd's configuration is written
    again from the lab's settings whenever it starts)."""
    if "fence-virtd" not in names:
        return None
    return hashlib.sha256(b"fence-virtd key\0" + fencehost.ensure_key(lab)).hexdigest()


def release(lab: Lab) -> None:
    """Stop host-side helpers (lab destroy); volumes go with the lab's other libvirt objects."""
    fencehost.stop(lab)
