"""Grade an exercise from a saved CIB, from nodes over SSH, or on the current lab."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType

from lab.core.errors import NodeError, UsageError
from lab.core.paths import lab_home
from lab.engine.exercises import Exercise
from lab.engine.grading import Report, grade, sections_for
from lab.gather.facts import Facts, facts_from_cib_file, gather_live
from lab.gather.probes import destructive_probes, probe_names, run_probes, without_probes
from lab.transport.address import NodeAddress
from lab.transport.ssh import SSHNode
from lab.vm.labstate import SSH_USER, current_lab
from lab.workflows.connections import open_nodes


def check_cib_file(exercise: Exercise, path: Path) -> Report:
    return grade(exercise, facts_from_cib_file(path))


def gather_from_addresses(addresses: Sequence[NodeAddress], *, identity: Path | None,
                          known_hosts: Path, timeout: float = 10.0,
                          sections: frozenset[str] | None = None,
                          say: Callable[[str], None] | None = None,
                          opened: Sequence[SSHNode] | None = None,
                          fallback: Sequence[NodeAddress] | None = None) -> Facts:
    """One SSH connection per node, all nodes in parallel; the whole lab down is an error.
    OPENED: the nodes' connections, already opening (lab.workflows.connections). FALLBACK: the
    same nodes as another user, read instead when any node refused the first login (a root login
    whose key was taken away): decided before the probes, so that a probe runs once."""
    names = [a.name for a in addresses]

    def read(addresses: Sequence[NodeAddress], opened: Sequence[SSHNode] | None) -> tuple[Facts, list[SSHNode]]:
        nodes = list(opened) if opened is not None else open_nodes(
            addresses, identity=identity, known_hosts=known_hosts, timeout=timeout)
        try:
            return gather_live(nodes, names, sections=without_probes(sections)), nodes
        finally:
            for node in nodes:
                node.close()

    def connect(address: NodeAddress) -> SSHNode:
        return open_nodes([address], identity=identity, known_hosts=known_hosts, timeout=timeout)[0]

    facts, nodes = read(addresses, opened)
    if fallback is not None and any(login_refused(n.error) for n in facts.nodes.values()):
        addresses = fallback
        facts, nodes = read(addresses, None)
    # Probes act on the lab (fence, reboot): they run after the state was read, so every
    # other check judges the cluster as the candidate left it.
    by_name = {a.name: a for a in addresses}
    wanted = probe_names(sections)
    if wanted and any(n.reachable for n in facts.nodes.values()):
        probed = run_probes(wanted, names, lambda name: connect(by_name[name]), say)
        facts = dataclasses.replace(facts, probes=MappingProxyType(probed))
    changed = [n.name for n in nodes if n.host_key_changed]
    if changed:  # a possible impostor: refuse to grade at all, even if other nodes answered
        errors = "; ".join(facts.nodes[name].error or name for name in changed)
        raise NodeError(errors)
    if all(not n.reachable for n in facts.nodes.values()):
        reasons = "; ".join(n.error or n.name for n in facts.nodes.values())
        raise NodeError(f"no node of the lab is reachable: {reasons}")
    return facts


def check_nodes(exercise: Exercise, specs: Sequence[str], *, identity: Path | None,
                timeout: float = 10.0, say: Callable[[str], None] | None = None,
                allow_destructive: bool = False) -> Report:
    """Grade machines named by the examiner. Probes that fence or reboot run only when allowed:
    without it their checks are skipped (the caller decides whether to refuse instead)."""
    addresses = [NodeAddress.parse(s) for s in specs]
    sections = sections_for(exercise)
    withheld = frozenset() if allow_destructive else frozenset(
        f"probe:{name}" for name in destructive_probes(sections))
    try:
        facts = gather_from_addresses(addresses, identity=identity,
                                      known_hosts=lab_home() / "known_hosts", timeout=timeout,
                                      sections=sections - withheld, say=say)
    except NodeError as exc:
        raise UsageError(str(exc)) from None
    return grade(exercise, facts, withheld)


def check_current_lab(exercise: Exercise, say: Callable[[str], None] | None = None,
                      opened: Sequence[SSHNode] | None = None) -> Report:
    """Grade the current lab; OPENED: its nodes' connections, opened ahead (current_lab_ahead)."""
    lab = current_lab()
    addresses = lab.addresses()
    # root's key taken away on some node (by hand, by an exercise): as vagrant, with sudo
    fallback = lab.addresses(SSH_USER) if addresses[0].user != SSH_USER else None
    if opened is not None and [n.address for n in opened] != addresses:
        for node in opened:  # another lab by now: connect afresh
            node.close()
        opened = None
    sections = sections_for(exercise)

    try:
        facts = gather_from_addresses(addresses, identity=lab.identity, known_hosts=lab.known_hosts,
                                      sections=sections, say=say, opened=opened, fallback=fallback)
    except NodeError as exc:
        raise UsageError(f"{exc} (is the lab up? try 'lab status')") from None
    return grade(exercise, facts)


def login_refused(error: str | None) -> bool:
    """The node answered but refused this user's key (not: down, timed out, a changed host key)."""
    return bool(error) and "authentication to" in str(error) and "failed" in str(error)
