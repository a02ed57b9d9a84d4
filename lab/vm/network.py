"""The lab's two networks: a free /24 for the cluster and one for management, clear of every
other lab's, of libvirt's networks and of the host's routes."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from lab.core.errors import LabError
from lab.transport.runner import run_local
from lab.vm.labstate import Lab, labs_dir


class NoFreeSubnet(LabError):
    """Every 10.231.x.0/24 the lab could use is taken (by other labs, libvirt or a route)."""


def pick_subnets(taken: Sequence[str]) -> tuple[str, str]:
    """A free /24 for the cluster network and one for the management network."""
    used = [ipaddress.ip_network(c) for c in taken]
    for other in labs_dir().glob("*/state.json"):
        try:
            state = Lab.load(other.parent.name).state
        except LabError:  # a broken or foreign folder: its networks are found in libvirt anyway
            continue
        used += [ipaddress.ip_network(state.private_cidr), ipaddress.ip_network(state.mgmt_cidr)]
    for third in range(10, 250):
        priv = ipaddress.ip_network(f"10.231.{third}.0/24")
        mgmt = ipaddress.ip_network(f"10.232.{third}.0/24")
        if not any(priv.overlaps(u) or mgmt.overlaps(u) for u in used):
            return str(priv), str(mgmt)
    raise NoFreeSubnet("no free 10.231.x.0/24 subnet left for a new lab; destroy unused labs")


def host_routes() -> list[str]:
    """The destinations of the host's IPv4 routes (a lab network must not shadow one)."""
    out = []
    for line in run_local(["ip", "-4", "route"], timeout=10, label="host routes").stdout.splitlines():
        dest = line.split()[0] if line.split() else ""
        if "/" in dest:
            out.append(dest)
    return out
