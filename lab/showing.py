"""Render an exercise for a person, in the syntax of the pcs actually in use."""

from __future__ import annotations

import re
import textwrap

from lab.exercises import Exercise, pcs_generation
from lab.runner import run_local


def local_pcs_version() -> str | None:
    result = run_local(["pcs", "--version"], timeout=30)
    return result.stdout.strip() if result.ok and re.match(r"\d", result.stdout) else None


def render_exercise(exercise: Exercise, *, hint_level: int = 0, solution: bool = False,
                    pcs_version: str | None = None, detect: bool = True) -> str:
    version = pcs_version or (local_pcs_version() if detect and (hint_level or solution) else None)
    generation = pcs_generation(version)
    shown = f"pcs {version}" if version else "pcs 0.10+ (not detected; use --pcs-version)"
    lines = [f"{exercise.title}  [{exercise.id}]", f"Objective: {exercise.objective}", ""]
    lines += [exercise.task.strip(), ""]
    if exercise.live_only:
        lines += ["Graded on a live lab only (lab check " + exercise.id + ").", ""]
    for level in range(1, min(hint_level, len(exercise.hints)) + 1):
        lines += [f"Hint {level}:", textwrap.indent(exercise.hints[level - 1], "  "), ""]
    if solution:
        lines += [f"Solution with pcs (syntax of {shown}):"]
        lines += [f"  {c}" for c in exercise.solution_for(version)]
        lines += ["", "Solution with crmsh:"]
        lines += [f"  {c}" for c in exercise.solution_crmsh]
        lines.append("")
        if exercise.solution_pcs09 is not None:
            other = exercise.solution_pcs if generation == "0.9" else exercise.solution_pcs09
            label = "pcs 0.10 and later" if generation == "0.9" else "pcs 0.9 (older material)"
            lines += [f"For comparison, {label}:"] + [f"  {c}" for c in other] + [""]
    if exercise.notes and (hint_level >= 2 or solution):
        lines += ["Why the syntax differs:", textwrap.indent(exercise.notes.strip(), "  "), ""]
    return "\n".join(lines).rstrip() + "\n"
