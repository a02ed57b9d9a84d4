"""The fault kinds an exercise's [start] may inject, declared here so the catalogue is checked
when it loads (not at `lab start`). lab.vm.faults implements exactly these kinds (a test holds
the two sets equal); the engine knows only their names and parameters, never how they run.

    faults = [{ kind = "stop-cluster", node = "last" }]
    faults = [{ kind = "break-config", node = "first", file = "/etc/corosync/corosync.conf",
                sed = "s/transport: knet/transport: udpu/", restart = "corosync" }]
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FaultKindSpec:
    """A kind's name, what it does, and its parameters (each a string in the TOML)."""

    name: str
    description: str
    required: tuple[str, ...] = ()
    # Optional parameters and their defaults.
    optional: dict[str, str] = field(default_factory=dict)
    # The node leaves the membership (after corosync's token timeout): `lab start` waits for it.
    takes_node_out: bool = False

    @property
    def params(self) -> tuple[str, ...]:
        return self.required + tuple(self.optional)


FAULT_KINDS: dict[str, FaultKindSpec] = {k.name: k for k in (
    FaultKindSpec("stop-cluster", "stop pacemaker and corosync on the node", takes_node_out=True),
    FaultKindSpec("stop-daemon", "stop one daemon (param daemon, default pacemaker)",
                  optional={"daemon": "pacemaker"}),
    FaultKindSpec("cut-link", "drop corosync traffic in and out of the node (iptables)",
                  takes_node_out=True),
    FaultKindSpec("break-config", "edit a file with sed (params file, sed; optional restart)",
                  required=("file", "sed"), optional={"restart": ""}),
    FaultKindSpec("kill-node", "power the node off hard (libvirt destroy)", takes_node_out=True),
    FaultKindSpec("pause-node", "freeze the node (libvirt suspend)", takes_node_out=True),
)}

# Where a fault lands: the lab's first or last node, or a node by name.
FAULT_NODE_PATTERN = r"^(first|last|node[1-5])$"
