"""What `lab status`, `lab info` and `lab log` print about a lab, and how a failed lab command is
phrased: the words users read about their lab live here, not in the VM layer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from lab.core.errors import LabError, NodeError
from lab.transport import log
from lab.vm import startcache, virt
from lab.vm.labstate import Lab, NoLabUp, current_lab, current_name
from lab.vm.lifecycle import NoSuchLab
from lab.vm.network import link1_addresses
from lab.vm.nodes import lab_node
from lab.vm.startstate import TooFewNodes, TooManyNodes
from lab.vm.steps import StepFailed, command_log

LOG_TAIL = 40  # lines `lab log` shows without --all


@contextlib.contextmanager
def logged(name: str | None = None) -> Iterator[Path | None]:
    """Log the commands run in this block to the lab's command log, if the lab has a folder
    (a command never makes a lab folder just to log into it)."""
    lab = Lab(name or current_name())
    if not lab.dir.is_dir():
        yield None
        return
    with log.logging_to(command_log(lab)) as path:
        if lab.password_file.exists():
            lab.password()  # registers the hacluster password: never in the log
        yield path


def status_lines() -> list[str]:
    lab = current_lab()
    domains = {n: lab.domain_name(n) for n in lab.node_names}
    states = virt.domain_states(list(domains.values()))
    lines = [f"lab {lab.name}: box {lab.state.box}, driver {lab.state.driver}, "
             f"exercise {lab.state.exercise or '-'}"]
    for name, dom in domains.items():
        # The lab's own snapshots by name; cached start states are one line below, not per node.
        snaps = ",".join(s for s in virt.snapshot_names(dom) if not s.startswith(startcache.PREFIX)) or "-"
        lines.append(f"  {name:<6} {lab.node(name).ip:<15} {states[dom]:<8} snapshots: {snaps}")
    cached = startcache.cached_states(lab)
    if cached:
        lines.append(f"  cached start states: {len(cached)} "
                     f"({', '.join(entry.exercise if entry else name for name, entry in cached)})")
    running = [n for n, d in domains.items() if states[d] == "running"]
    if running:
        try:
            with lab_node(lab, running[0], 5.0) as node:
                result = node.run("sudo -n crm_mon --one-shot --simple-status", timeout=15)
            lines.append(f"  cluster: {(result.stdout.strip() or result.tail(1)) or 'no answer'}")
        except NodeError as exc:
            lines.append(f"  cluster: unknown ({exc})")
    return lines


def info_lines(secrets: bool = False) -> list[str]:
    lab = current_lab()
    state = lab.state
    lines = [f"lab:        {lab.name}", f"folder:     {lab.dir}", f"box:        {state.box} ({state.box_name})",
             f"driver:     {state.driver}",
             f"memory:     {state.memory} MiB x {len(lab.node_names)} nodes",
             f"network:    {state.private_cidr} (isolated), VIP for exercises {lab.vip}",
             f"nodes:      {', '.join(f'{n.name}={n.ip}' for n in lab.nodes)}",
             f"network 2:  {_second_network(lab)}",
             f"VMs:        {', '.join(f'{n}={lab.domain_name(n)}' for n in lab.node_names)} (libvirt domains)",
             f"ssh:        lab ssh NODE (key {lab.identity}, known_hosts {lab.known_hosts})",
             f"pcs:        {state.pcs_version or 'unknown'}",
             f"exercise:   {state.exercise or '-'}",
             f"log:        {command_log(lab)} ('lab log' shows it)"]
    if secrets:
        lines.append(f"hacluster password: {lab.password()}")
    else:
        lines.append(f"hacluster password: in {lab.password_file} ('lab info --secrets' prints it)")
    return lines


def _second_network(lab: Lab) -> str:
    """The second cluster network (corosync link 1) and each node's address on it."""
    addresses = link1_addresses(lab)
    if addresses is None:
        return "none (lab made before labs had one; 'lab destroy' and 'lab up' to get it)"
    return f"{lab.state.link1_cidr} (isolated, for a second corosync link): " + ", ".join(
        f"{name}={ip}" for name, ip in addresses.items())


class NoLog(LabError):
    """The lab has no command log yet (no lab command has run on it)."""


def log_lines(everything: bool = False, tail: int = LOG_TAIL) -> list[str]:
    """The lab's command log: its last TAIL lines, or all of it (with the rotated part first)."""
    lab = Lab(current_name())
    path = command_log(lab)
    if not path.exists():
        raise NoLog(f"lab '{lab.name}' has no command log yet ({path})")
    older = path.with_name(path.name + ".1")
    text = (older.read_text(errors="replace") if everything and older.exists() else "") + \
        path.read_text(errors="replace")
    lines = text.splitlines()
    return lines if everything else lines[-tail:]


def phrase(exc: LabError) -> str:
    """The one line a failed VM command prints: the core's message, with what to do next in the
    CLI's words (flags, commands) and, for a failed step, the step, node, command and log."""
    text = " ".join(str(exc).split())
    if isinstance(exc, StepFailed):
        where = f" on {exc.node}" if exc.node else ""
        what = f" (command: {exc.command})" if exc.command else ""
        seen = f"; see {exc.log_path}" if exc.log_path is not None and exc.log_path.exists() else ""
        cause = exc.cause if isinstance(exc.cause, LabError) else None
        text = " ".join((phrase(cause) if cause is not None else text).split())
        return f"{exc.sequence}: step '{exc.step}' failed{where}{what}: {text}{seen}"
    if isinstance(exc, NoLabUp):
        return f"{text}, or grade other nodes with --node or a saved CIB with --cib"
    if isinstance(exc, TooFewNodes):
        return f"{text} (lab destroy; lab up --nodes {exc.needs})"
    if isinstance(exc, TooManyNodes):
        return f"{text} (lab destroy; lab up --nodes {exc.at_most})"
    if isinstance(exc, NoSuchLab):
        return f"{text}; 'lab destroy --force {exc.name}' removes libvirt objects named exactly as lab " \
               f"'{exc.name}' names them"
    return text
