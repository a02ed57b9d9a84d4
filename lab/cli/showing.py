"""Render an exercise for a person, in the syntax of the pcs actually in use."""

from __future__ import annotations

import re
import textwrap

from lab.engine.commands import command_context, render_command
from lab.engine.exercises import Exercise
from lab.engine.pcs import pcs_generation
from lab.transport.runner import run_local


def local_pcs_version() -> str | None:
    result = run_local(["pcs", "--version"], timeout=30)
    return result.stdout.strip() if result.ok and re.match(r"\d", result.stdout) else None


def _current_lab():  # noqa: ANN202 - a Lab or None
    from lab.core.errors import UsageError
    from lab.vm.labstate import current_lab

    try:
        return current_lab()
    except UsageError:
        return None


def display_context() -> dict[str, str]:
    """Placeholder values for showing commands: the lab's nodes; never the real password."""
    lab = _current_lab()
    nodes = lab.node_names if lab is not None else ["node1", "node2"]
    vip = lab.vip if lab is not None else "VIP_ADDRESS"
    vms = [lab.domain_name(n) for n in nodes] if lab is not None else None
    link1 = _link1(lab)
    return command_context(nodes, vip_ip=vip, password="PASSWORD", vms=vms,
                           link1=[link1.get(n, f"{n.upper()}_LINK1_ADDRESS") for n in nodes])


def _link1(lab) -> dict[str, str]:  # noqa: ANN001 - a Lab or None
    """The nodes' addresses on the lab's second cluster network (none: no lab, or an old one)."""
    from lab.vm.network import link1_addresses

    return (link1_addresses(lab) if lab is not None else None) or {}


def render_exercise(exercise: Exercise, *, hint_level: int = 0, solution: bool = False,
                    pcs_version: str | None = None, detect: bool = True) -> str:
    version = pcs_version
    if version is None and detect and (hint_level or solution):
        lab = _current_lab()
        version = (lab.state.get("pcs_version") if lab is not None else None) or local_pcs_version()
    generation = pcs_generation(version)
    shown = f"pcs {version}" if version else "pcs 0.10+ (not detected; use --pcs-version)"
    lines = [f"{exercise.title}  [{exercise.id}]", f"Objective: {exercise.objective}", ""]
    lines += [exercise.task.strip(), ""]
    if exercise.live_only:
        lines += ["Graded on a live lab only (lab check " + exercise.id + ").", ""]
    for level in range(1, min(hint_level, len(exercise.hints)) + 1):
        lines += [f"Hint {level}:", textwrap.indent(exercise.hints[level - 1], "  "), ""]
    context = display_context() if solution else {}

    def shown_commands(commands: tuple[str, ...]) -> list[str]:
        return [f"  {render_command(c, context)}" for c in commands]

    if solution:
        lines += ["(PASSWORD is the lab's hacluster password: 'lab info --secrets')"] if any(
            "{password}" in c for c in exercise.solution_pcs) else []
        lines += [f"Solution with pcs (syntax of {shown}):"]
        lines += shown_commands(exercise.solution_for(version))
        lines += ["", "Solution with crmsh:"]
        lines += shown_commands(exercise.solution_crmsh)
        lines.append("")
        if exercise.solution_pcs09 is not None:
            other = exercise.solution_pcs if generation == "0.9" else exercise.solution_pcs09
            label = "pcs 0.10 and later" if generation == "0.9" else "pcs 0.9 (older material)"
            lines += [f"For comparison, {label}:", *shown_commands(other), ""]
        if exercise.solution_pcs010 is not None and exercise.solution_for(version) != exercise.solution_pcs010:
            lines += ["For comparison, pcs 0.10.x (EL8):", *shown_commands(exercise.solution_pcs010), ""]
    if exercise.notes and (hint_level >= 2 or solution):
        lines += ["Why the syntax differs:", textwrap.indent(exercise.notes.strip(), "  "), ""]
    return "\n".join(lines).rstrip() + "\n"
