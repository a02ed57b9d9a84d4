"""The lab's three networks: a free /24 for the cluster (corosync link 0), one for management and
a second cluster network (corosync link 1), clear of every other lab's, of libvirt's networks and
of the host's routes."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from lab.core.errors import LabError, UsageError
from lab.engine.commands import LINK1_PLACEHOLDERS
from lab.engine.exercises import Exercise
from lab.transport.runner import run_local
from lab.vm.labstate import Lab, labs_dir
from lab.vm.statemodel import link1_subnet, same_host


class NoFreeSubnet(LabError):
    """Every 10.231.x.0/24 the lab could use is taken (by other labs, libvirt or a route)."""


def pick_subnets(taken: Sequence[str]) -> tuple[str, str]:
    """A free /24 for the cluster network and one for the management network; the second cluster
    network that goes with the first (statemodel.link1_subnet: 10.233.X.0/24) is free as well,
    so LabState derives it from the cluster network."""
    used = [ipaddress.ip_network(c) for c in taken]
    for other in labs_dir().glob("*/state.json"):
        try:
            state = Lab.load(other.parent.name).state
        except LabError:  # a broken or foreign folder: its networks are found in libvirt anyway
            continue
        used += [ipaddress.ip_network(c) for c in (state.private_cidr, state.mgmt_cidr, state.link1_cidr) if c]
    for third in range(10, 250):
        priv = ipaddress.ip_network(f"10.231.{third}.0/24")
        mgmt = ipaddress.ip_network(f"10.232.{third}.0/24")
        link1 = ipaddress.ip_network(str(link1_subnet(str(priv))))
        if not any(net.overlaps(u) for net in (priv, mgmt, link1) for u in used):
            return str(priv), str(mgmt)
    raise NoFreeSubnet("no free 10.231.x.0/24 subnet left for a new lab; destroy unused labs")


def has_second_network(lab: Lab) -> bool:
    """Whether the lab has the second cluster network (labs made before it have none)."""
    return lab.state.link1_cidr is not None


def link1_addresses(lab: Lab) -> dict[str, str] | None:
    """Each node's fixed address on the lab's second cluster network (node1 .11, as on the first);
    None for a lab made before that network."""
    cidr = lab.state.link1_cidr
    if cidr is None:
        return None
    return {n.name: same_host(n.ip, lab.state.private_cidr, cidr) for n in lab.nodes}


def host_routes() -> list[str]:
    """The destinations of the host's IPv4 routes (a lab network must not shadow one)."""
    out = []
    for line in run_local(["ip", "-4", "route"], timeout=10, label="host routes").stdout.splitlines():
        dest = line.split()[0] if line.split() else ""
        if "/" in dest:
            out.append(dest)
    return out


class NoSecondNetwork(UsageError):
    """The lab was made before labs had a second cluster network, and an exercise needs it."""

    def __init__(self, lab: str) -> None:
        super().__init__(f"lab '{lab}' has no second cluster network (it was made before labs had one): "
                         f"'lab destroy' then 'lab up' makes it again with one")
        self.lab = lab


class _LabValues(dict):
    """A lab's placeholder values; one it lacks because of its age is that lab's one-line error."""

    lab = ""

    def __missing__(self, key: str) -> str:
        if key in LINK1_PLACEHOLDERS:
            raise NoSecondNetwork(self.lab)
        raise KeyError(key)


def needs_second_network(exercise: Exercise) -> bool:
    """Whether any of the exercise's commands (start state or a reference solution) names a node's
    address on the second cluster network: such an exercise cannot be done on a lab without it."""
    commands = [*exercise.start.commands, *exercise.solution_pcs, *exercise.solution_crmsh,
                *(exercise.solution_pcs09 or ()), *(exercise.solution_pcs010 or ())]
    return any("{" + key + "}" in command for command in commands for key in LINK1_PLACEHOLDERS)


def lab_values(lab: Lab, values: dict[str, str]) -> dict[str, str]:
    """The lab's placeholder values (lab.engine.commands.command_context): in a lab without the
    second cluster network its placeholders are left out, and a command using one is refused
    with NoSecondNetwork (render_command fills through format_map) instead of made-up addresses."""
    out = _LabValues(values)
    out.lab = lab.name
    if not has_second_network(lab):
        for key in LINK1_PLACEHOLDERS:
            out.pop(key, None)
    return out
