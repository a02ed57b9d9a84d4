"""Run an exercise's checks over Facts and collect one report."""

from __future__ import annotations

from dataclasses import dataclass

from checks import CIB_SECTIONS, Verdict, get_check
from lab.core.errors import UsageError
from lab.core.xmlsafe import one_line
from lab.engine.exercises import Exercise
from lab.gather.facts import Facts


@dataclass(frozen=True)
class CheckOutcome:
    id: str
    description: str
    passed: bool | None
    points: int
    message: str


@dataclass(frozen=True)
class Report:
    exercise: str
    source: str
    outcomes: tuple[CheckOutcome, ...]

    @property
    def ran(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.passed is not None]

    @property
    def partial(self) -> bool:
        return any(o.passed is None for o in self.outcomes)

    @property
    def passed(self) -> bool:
        return bool(self.ran) and all(o.passed for o in self.ran)

    @property
    def score(self) -> int:
        return sum(o.points for o in self.outcomes if o.passed)

    @property
    def max_score(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def sections_for(exercise: Exercise) -> frozenset[str]:
    """Which fact sections a live gather needs for this exercise's checks."""
    return frozenset().union(*(get_check(c.check).sections for c in exercise.checks))


def grade(exercise: Exercise, facts: Facts, withheld: frozenset[str] = frozenset()) -> Report:
    """Judge facts against every check of the exercise; a crashing check is a failure.

    WITHHELD are probe sections that were not allowed to run (they would fence or reboot machines
    the examiner named): the checks that need them are skipped and say so."""
    if not facts.live and (exercise.live_only or all(get_check(c.check).live for c in exercise.checks)):
        raise UsageError(
            f"'{exercise.id}' can only be graded on a live lab (its start state and checks need running "
            "nodes); drop --cib"
        )
    outcomes = []
    for ref in exercise.checks:
        spec = get_check(ref.check)
        if spec.live and not facts.live:
            verdict = Verdict(None, "skipped: needs a live lab")
        elif spec.sections & withheld:
            acts = ", ".join(sorted(s.removeprefix("probe:") for s in spec.sections & withheld))
            verdict = Verdict(None, f"skipped: this check acts on the machines ({acts}); add --yes to allow it")
        elif spec.needs_cib and (facts.cib is None or facts.status is None):
            verdict = Verdict(False, "no node returned a readable CIB and crm_mon status "
                                     "(is pacemaker running?)" + _reasons(facts, CIB_SECTIONS))
        else:
            try:
                verdict = spec.function(facts, **ref.params)
            except Exception as exc:  # a check bug or a value it did not foresee: never a pass
                verdict = Verdict(False, f"check error: {type(exc).__name__}: {one_line(str(exc), 300)}")
            if verdict.passed is False:
                verdict = Verdict(False, verdict.message + _reasons(facts, spec.sections))
        outcomes.append(CheckOutcome(ref.id, ref.description, verdict.passed, ref.points,
                                     verdict.message))
    return Report(exercise.id, facts.source, tuple(outcomes))


def _reasons(facts: Facts, sections: frozenset[str], limit: int = 600) -> str:
    """Why nodes gave no facts for these sections (a tool's error, a bad value), to append
    to a failed check's message: the reason is the node's, the verdict stays the check's."""
    found = []
    for node in facts.nodes.values():
        for key in sorted(sections & set(node.problems)):
            found.append(f"{node.name}: {node.problems[key]}")
    if not found:
        return ""
    text = "; ".join(dict.fromkeys(found))
    return f" [{text if len(text) <= limit else text[: limit - 3] + '...'}]"
