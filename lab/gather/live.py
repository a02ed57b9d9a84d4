"""Gathering a live node: one script (lab/scripts/gather/gather.sh plus one `sec` line per
wanted section) sent on stdin, one round trip per node, all nodes in parallel.

Whatever a node answers, gather_node returns that node's facts or that node's error, never an
exception: a hostile or broken node costs its own facts, not the whole report.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType

from lab.core.errors import LabError
from lab.core.xmlsafe import MAX_INPUT_BYTES, one_line
from lab.gather import hostmon
from lab.gather.nodefacts import Facts, NodeFacts
from lab.gather.parsers import TIMED_OUT
from lab.gather.sections import (
    CIB,
    CRM_MON,
    EXTRA_PREFIX,
    node_facts_from_sections,
    parse_sections,
    wanted,
)
from lab.transport import scripts
from lab.transport.base import Runner
from lab.transport.runner import CommandResult

# How long one node's gather may take, seen from here. On the node the whole script ends
# (every process it started killed, its temporary copies removed) a few seconds earlier,
# and each section's command earlier still, so that one hung tool costs only its section.
GATHER_TIMEOUT = 60.0
# Where question exercises have the student write answer files (the `answers` section reads them).
ANSWERS_DIR = "/root/answers"
_EXTRA_KEY = re.compile(r"[A-Za-z0-9_]{1,60}")
# sudo -n refusing (no rule, a password required) or missing: the script was never read.
SUDO_REFUSED = (1, 127)


def script_bounds(timeout: float) -> tuple[int, int]:
    """(whole script, one section) in seconds on the node, both ending before `timeout` here."""
    whole = max(1, int(timeout) - 4)  # + 2 s for `timeout -k 2` to kill what ignores TERM
    return whole, max(1, whole - 6)


def section_lines(sections: frozenset[str] | None,
                  extra_commands: Mapping[str, str] | None = None) -> str:
    """The `sec NAME COMMAND` lines for the wanted sections (all when None), then the extras."""
    lines = [f"sec {s.name} {s.command}\n" for s in wanted(sections)]
    for key, command in (extra_commands or {}).items():
        if not _EXTRA_KEY.fullmatch(key):  # a file name and a word on the node: a caller's bug
            raise ValueError(f"extra command key {key!r}: letters, digits and _ only (1-60)")
        lines.append(f"sec {shlex.quote(EXTRA_PREFIX + key)} sh -c {shlex.quote(command)}\n")
    return "".join(lines)


def gather_script(sections: frozenset[str] | None, extra_commands: Mapping[str, str] | None = None,
                  *, section_timeout: int = 50, answers_dir: str = ANSWERS_DIR) -> str:
    """The whole script a node runs (on stdin) for these sections."""
    return (scripts.render("gather/gather.sh", BLOCKS=MAX_INPUT_BYTES // 512, SECTION_TIMEOUT=section_timeout,
                           ANSWERS_DIR=answers_dir)
            + section_lines(sections, extra_commands) + "report\n")


def gather_node(runner: Runner, extra_commands: Mapping[str, str] | None = None,
                sections: frozenset[str] | None = None, *,
                timeout: float = GATHER_TIMEOUT, answers_dir: str = ANSWERS_DIR,
                crm_mon_here: bool | None = None) -> NodeFacts:
    """Gather one node's facts in one command; an unreachable node becomes an error fact.

    Only the sections the checks read are gathered: under software emulation every
    process started in the guest costs a few tenths of a second. crm_mon's view is computed on
    this host from the node's CIB when this host runs the cluster's pacemaker build
    (lab.gather.hostmon; CRM_MON_HERE None: whenever it can), else the node's crm_mon answers.
    Whatever the node answers, the result is this node's facts or this node's error, never an
    exception.
    """
    try:
        return _gather_node(runner, extra_commands, sections, timeout, answers_dir, crm_mon_here)
    except LabError as exc:
        return NodeFacts(name=runner.name, error=one_line(str(exc), 500))
    except Exception as exc:  # an answer nobody foresaw: this node's failure, not everyone's
        return NodeFacts(name=runner.name, error=f"{runner.name}: its answer cannot be read: "
                                                 f"{type(exc).__name__}: {one_line(str(exc), 200)}")


class _NoAnswer(Exception):
    """A round trip that gave no facts: the node's error text."""


def _round_trip(runner: Runner, extra_commands: Mapping[str, str] | None, sections: frozenset[str],
                timeout: float, answers_dir: str) -> dict[str, CommandResult]:
    """One run of the gather script on the node (as root by sudo unless logged in as root; as
    the login user when sudo refuses): its sections by name."""
    names = " ".join(s.name for s in wanted(sections))

    def attempt(sudo: str, within: float, label: str) -> CommandResult:
        whole, section = script_bounds(within)
        script = gather_script(sections, extra_commands, section_timeout=section, answers_dir=answers_dir)
        return runner.run(["sh", "-c", scripts.render("gather/as_root.sh", WHOLE=whole, SUDO=sudo)],
                          timeout=within, input_text=script, label=label)

    began = time.monotonic()
    login = getattr(runner, "login_user", None)  # known for SSH: no `id -u` in the guest
    sudo = "auto" if login is None else "no" if login == "root" else "yes"
    result = attempt(sudo, timeout, f"gather facts: {names}")
    found = parse_sections(result.stdout)
    if sudo != "no" and "hostname" not in found and result.returncode in SUDO_REFUSED and "sudo" in result.stderr:
        left = timeout - (time.monotonic() - began)
        if left > 5:  # sudo said no before reading the script: once more, as the login user
            result = attempt("no", left, f"gather facts (no sudo): {names}")
            found = parse_sections(result.stdout)
    if result.returncode in TIMED_OUT:
        raise _NoAnswer(f"{runner.name}: gathering facts timed out")
    if "hostname" not in found:
        raise _NoAnswer(f"{runner.name}: the answer holds no facts (exit {result.returncode}): "
                        f"{one_line(result.tail(2), 200) or 'no output'}")
    return found


def _gather_node(runner: Runner, extra_commands: Mapping[str, str] | None,
                 sections: frozenset[str] | None, timeout: float, answers_dir: str,
                 crm_mon_here: bool | None) -> NodeFacts:
    names = frozenset(s.name for s in wanted(sections))
    here = CIB.name in names and CRM_MON.name in names and (
        hostmon.host_build() is not None if crm_mon_here is None else crm_mon_here)
    try:
        found = _round_trip(runner, extra_commands, names - {CRM_MON.name} if here else names,
                            timeout, answers_dir)
        if here:
            found[CRM_MON.name] = _crm_mon_answer(runner, found, timeout, answers_dir)
    except _NoAnswer as exc:
        return NodeFacts(name=runner.name, error=str(exc))
    extra = {k[len(EXTRA_PREFIX):]: v for k, v in found.items() if k.startswith(EXTRA_PREFIX)}
    return node_facts_from_sections(runner.name, found, extra)


def _crm_mon_answer(runner: Runner, found: Mapping[str, CommandResult], timeout: float,
                    answers_dir: str) -> CommandResult:
    """crm_mon's answer for this node: computed here from its CIB when this host runs the same
    build, else the node's own crm_mon in a second round trip."""
    cib = found.get(CIB.name)
    if cib is not None and cib.ok and cib.stdout.strip():
        computed = hostmon.status_here(cib.stdout, runner.name)
        if computed is not None:
            return CommandResult(CRM_MON.name, 0, computed.stdout, "")
    try:
        again = _round_trip(runner, None, frozenset({CRM_MON.name}), timeout, answers_dir)
    except _NoAnswer as exc:  # costs crm_mon's view only: the first answer still counts
        return CommandResult(CRM_MON.name, 125, "", str(exc))
    return again.get(CRM_MON.name) or CommandResult(CRM_MON.name, 125, "", "the node gave no crm_mon answer")


def gather_live(runners: Sequence[Runner], expected_nodes: Sequence[str],
                extra_commands: Mapping[str, str] | None = None,
                sections: frozenset[str] | None = None,
                on_node: Callable[[str], None] | None = None,
                crm_mon_here: bool | None = None) -> Facts:
    """Gather every node in parallel and pick the cluster view to judge (CRM_MON_HERE: see
    gather_node; False when each node's answer must hold its own crm_mon, as evidence does)."""
    with ThreadPoolExecutor(max_workers=max(1, len(runners))) as pool:
        gathered = list(pool.map(lambda r: gather_node(r, extra_commands, sections, crm_mon_here=crm_mon_here),
                                 runners))
    nodes = {n.name: n for n in gathered}
    if on_node:
        for name in nodes:
            on_node(name)
    view = cluster_view(gathered)
    return Facts(
        live=True,
        expected_nodes=tuple(expected_nodes),
        cib=view.cib if view else None,
        cib_xml=view.cib_xml if view else None,
        status=view.status if view else None,
        nodes=MappingProxyType(nodes),
        source="live",
    )


def cluster_view(nodes: Sequence[NodeFacts]) -> NodeFacts | None:
    """The node whose view to judge: the DC if one answers, else a quorate one, else any."""
    with_cib = [n for n in nodes if n.cib is not None and n.status is not None]
    for node in with_cib:
        if node.status is not None and node.status.dc and node.status.dc in (node.name, node.hostname):
            return node
    for node in with_cib:
        if node.status is not None and node.status.quorate:
            return node
    return with_cib[0] if with_cib else None
