"""Reaching the lab's nodes: one SSH connection per node (host keys pinned in the lab's
known_hosts), connecting while they boot through the one retry policy, and work on every node
at once (parallel)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from lab.core.errors import NodeError
from lab.transport.address import NodeAddress
from lab.transport.retry import GaveUp, retry
from lab.transport.ssh import SSHNode
from lab.vm import provision
from lab.vm.labstate import SSH_USER, Lab

T = TypeVar("T")
CONNECT_WAIT = 120.0  # s every node of a running lab gets to answer SSH


def lab_node(lab: Lab, name: str, timeout: float = 10.0, *, as_root: bool = False) -> SSHNode:
    """The node NAME at its fixed private address, with the lab's key and known_hosts; AS_ROOT:
    logged in as root when lab up authorized the lab's key for root (no sudo per command, about
    half a second each under emulation), else as vagrant."""
    spec = lab.node(name)
    user = lab.root_login_user() if as_root else SSH_USER
    return SSHNode(NodeAddress(name, user, spec.ip), identity=lab.identity,
                   known_hosts=lab.known_hosts, connect_timeout=timeout)


def sudo(node: SSHNode) -> str:
    """The prefix a root command needs on this connection ('' when logged in as root)."""
    return _root_prefix(node.address.user)


def _root_prefix(user: str) -> str:
    return "".join(f"{word} " for word in provision.sudo_words(user))


def _changed_host_key(exc: BaseException) -> bool:
    text = str(exc)
    return "host key" in text and "changed" in text


def connect_retry(make: Callable[[], SSHNode], deadline: float, what: str) -> SSHNode:
    """Connect, trying again every half second while the node boots, until DEADLINE (monotonic).

    A changed host key fails at once, and so does a command being stopped (Ctrl-C, SIGTERM); the
    error says how long it really waited."""
    def attempt() -> SSHNode:
        node = make()
        try:
            node.connect()
        except NodeError:
            node.close()
            raise
        return node

    try:
        return retry(attempt, what=f"{what}: SSH", within=max(0.0, deadline - time.monotonic()), every=0.5,
                     retry_on=(NodeError,), final=_changed_host_key, where=what)
    except GaveUp as exc:
        raise NodeError(str(exc)) from exc


def connect_all(lab: Lab, names: Sequence[str] | None = None, deadline_s: float = CONNECT_WAIT, *,
                as_root: bool = False) -> dict[str, SSHNode]:
    """A connection to each named node (default: all), opened at once (AS_ROOT: see lab_node)."""
    names = list(names or lab.node_names)
    deadline = time.monotonic() + deadline_s
    nodes = parallel(lambda n: connect_retry(lambda: lab_node(lab, n, 5.0, as_root=as_root), deadline, n), names)
    return dict(zip(names, nodes, strict=True))


def close(nodes: dict[str, SSHNode]) -> None:
    for node in nodes.values():
        node.close()


def parallel(fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
    """fn over every item at once; the results in order, or the first item's exception.

    Daemon threads, not a thread pool: on Ctrl-C/SIGTERM the command ends at once, while a pool
    would hold its exit until every worker's SSH command or boot wait reached its own deadline
    (up to 20 minutes). What a worker started on a node is idempotent and is resumed by a rerun.
    """
    results: list[Any] = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)

    def work(index: int, item: object) -> None:
        try:
            results[index] = fn(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors[index] = exc

    threads = [threading.Thread(target=work, args=(i, item), daemon=True) for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def clock_command(user: str, epoch: float, after: str = "") -> str:
    """USER's command line that sets the clock to EPOCH as root, then runs the root command AFTER
    (if any) when that worked; its exit status is the first failure's."""
    prefix = _root_prefix(user)
    command = prefix + provision.set_clock_command(epoch)
    return f"{command} && {{ {prefix}{after}; }}" if after else command


def sync_clocks(lab: Lab, nodes: dict[str, SSHNode] | None = None, *,
                then: Mapping[str, tuple[str, str]] | None = None) -> dict[str, SSHNode]:
    """After a memory revert each guest's clock is the snapshot's: set it from the host's, one
    command per node (no root script: its bootstrap costs processes in a slow guest). THEN maps a
    node to (what, root command) run right after its clock in the same round trip; a failure of
    either is a NodeError naming the node and what failed."""
    nodes = nodes or connect_all(lab)

    def one(node: SSHNode) -> None:
        what, after = (then or {}).get(node.name, ("clock", ""))
        result = node.run(clock_command(node.address.user, time.time(), after), timeout=60, label=what)
        if not result.ok:
            raise NodeError(f"{node.name}: {what} failed (exit {result.returncode}): {result.tail(2)}",
                            node=node.name, command=what)

    parallel(one, list(nodes.values()))
    return nodes
