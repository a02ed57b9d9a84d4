"""SSH connections to the nodes a check reads, opened while the rest of the check loads.

Connecting costs a key exchange in every guest (about a second under software emulation);
loading the exercise and the grader costs about as much on the host. `lab check` on the current
lab therefore opens its connections first (in the background) and loads the rest meanwhile:
the TCP connections before even the SSH library is loaded (lab.transport.early), the SSH
handshakes on them as soon as it is. This module stays light (no grader imports, paramiko
only when a connection is made), so that the connections start early.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lab.core.errors import LabError, UsageError
from lab.transport.address import NodeAddress
from lab.transport.early import EarlyConnection
from lab.vm.labstate import current_lab

if TYPE_CHECKING:
    from lab.transport.ssh import SSHNode

CONNECT_TIMEOUT = 10.0


def open_nodes(addresses: Sequence[NodeAddress], *, identity: Path | None, known_hosts: Path,
               timeout: float = CONNECT_TIMEOUT, ahead: bool = False,
               early: Mapping[NodeAddress, EarlyConnection] | None = None) -> list[SSHNode]:
    """One SSHNode per address; AHEAD: each starts connecting now, in the background; EARLY:
    TCP connections already being opened to some of them (knock)."""
    from lab.transport.ssh import SSHNode  # noqa: PLC0415  (after the knock: paramiko loads slowly)

    names = [a.name for a in addresses]
    if len(set(names)) != len(names):
        raise UsageError("node names given twice in --node")
    if identity is not None and not identity.is_file():
        raise UsageError(f"identity file {identity} does not exist")
    early = early or {}
    nodes = [SSHNode(a, identity=identity, known_hosts=known_hosts, connect_timeout=timeout, early=early.get(a))
             for a in addresses]
    if ahead:
        for node in nodes:
            node.connect_in_background()
    return nodes


def current_lab_ahead() -> list[SSHNode] | None:
    """The current lab's nodes, connecting in the background; None when there is no usable lab
    (the check itself then says why, after it has read the exercise)."""
    try:
        lab = current_lab()
        addresses = lab.addresses()
    except LabError:
        return None
    early = knock(addresses)
    try:
        return open_nodes(addresses, identity=lab.identity, known_hosts=lab.known_hosts, ahead=True, early=early)
    except LabError:
        for connection in early.values():
            connection.close()
        return None


def knock(addresses: Sequence[NodeAddress], timeout: float = CONNECT_TIMEOUT) -> dict[NodeAddress, EarlyConnection]:
    """Start a TCP connection to every address's SSH port (lab.transport.early: the guest's
    sshd starts its side while the host loads paramiko)."""
    return {a: EarlyConnection(a.host, a.port, timeout) for a in addresses}
