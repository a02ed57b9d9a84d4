"""SSH connections to the nodes a check reads, opened while the rest of the check loads.

Connecting costs a key exchange in every guest (about a second under software emulation);
loading the exercise and the grader costs about as much on the host. `lab check` on the current
lab therefore opens its connections first (in the background) and loads the rest meanwhile.
This module stays light (no grader imports), so that the connections start early.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lab.core.errors import LabError, UsageError
from lab.transport.address import NodeAddress
from lab.transport.ssh import SSHNode
from lab.vm.labstate import current_lab

CONNECT_TIMEOUT = 10.0


def open_nodes(addresses: Sequence[NodeAddress], *, identity: Path | None, known_hosts: Path,
               timeout: float = CONNECT_TIMEOUT, ahead: bool = False) -> list[SSHNode]:
    """One SSHNode per address; AHEAD: each starts connecting now, in the background."""
    names = [a.name for a in addresses]
    if len(set(names)) != len(names):
        raise UsageError("node names given twice in --node")
    if identity is not None and not identity.is_file():
        raise UsageError(f"identity file {identity} does not exist")
    nodes = [SSHNode(a, identity=identity, known_hosts=known_hosts, connect_timeout=timeout) for a in addresses]
    if ahead:
        for node in nodes:
            node.connect_in_background()
    return nodes


def current_lab_ahead() -> list[SSHNode] | None:
    """The current lab's nodes, connecting in the background; None when there is no usable lab
    (the check itself then says why, after it has read the exercise)."""
    try:
        lab = current_lab()
        return open_nodes(lab.addresses(), identity=lab.identity, known_hosts=lab.known_hosts, ahead=True)
    except LabError:
        return None
