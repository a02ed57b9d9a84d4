"""Check functions: small, pure judgements over gathered Facts.

A check takes the Facts and its parameters from the exercise file and returns
a Verdict. It never runs commands and never reads raw XML, so the same check
judges a live lab and a saved CIB. Checks that need a live node say so
(`live=True`) and are reported as skipped on a saved CIB.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from lab.core.cib import Cib
from lab.gather.facts import Facts
from lab.gather.probes import PROBES, Probe
from lab.gather.sections import CIB_SECTIONS, Section, registered


@dataclass(frozen=True)
class Verdict:
    passed: bool | None  # None: skipped
    message: str


def ok(message: str) -> Verdict:
    return Verdict(True, message)


def fail(message: str) -> Verdict:
    return Verdict(False, message)


def missing(cib: Cib, rsc_id: str) -> Verdict:
    """Say a resource is missing, pointing at a near-miss id (ids are case-sensitive)."""
    similar = [r for r in cib.resources if r.lower() == rsc_id.lower() and r != rsc_id]
    if similar:
        return fail(f"no resource '{rsc_id}' (found '{similar[0]}'; ids are case-sensitive)")
    return fail(f"no resource '{rsc_id}' is configured")


CheckFunction = Callable[..., Verdict]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    function: CheckFunction
    live: bool
    needs_cib: bool
    gathers: tuple[Section | Probe, ...] = ()

    @property
    def sections(self) -> frozenset[str]:
        """The names of the fact sections (lab.gather.sections) and probes a live gather must
        collect for this check, with the sections their parsers also read."""
        return frozenset().union(*(g.names() for g in self.gathers)) | (
            CIB_SECTIONS if self.needs_cib else frozenset())

    def validate_params(self, params: dict) -> str | None:
        """None when params fit the function's signature, else what is wrong."""
        try:
            inspect.signature(self.function).bind(None, **params)
        except TypeError as exc:
            return str(exc)
        return None


REGISTRY: dict[str, CheckSpec] = {}


def _declared(name: str, item: object) -> Section | Probe:
    """A section or probe a check may declare: registered ones only, by object (not by name)."""
    if isinstance(item, Probe):
        if item.probe not in PROBES:
            raise ValueError(f"check {name!r} gathers {item!r}: no such probe (known: {', '.join(PROBES)})")
        return item
    try:
        return registered(item)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"check {name!r}: {exc}") from None


def check(name: str, *, live: bool = False, needs_cib: bool = True,
          gathers: tuple[Section | Probe, ...] = ()) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check under the name exercise files use; GATHERS are the sections (objects of
    lab.gather.sections) and probes (lab.gather.probes) it reads. An unknown one fails here."""
    declared = tuple(_declared(name, item) for item in gathers)

    def register(function: CheckFunction) -> CheckFunction:
        if name in REGISTRY:
            raise ValueError(f"check {name!r} registered twice")
        REGISTRY[name] = CheckSpec(name, function, live, needs_cib, declared)
        return function

    return register


def get_check(name: str) -> CheckSpec | None:
    return REGISTRY.get(name)


def _load_all() -> None:
    # The check modules import this package, so they are loaded once it is complete.
    from checks import acl, cluster, config, constraints, fencing, links, membership, placement, resources  # noqa: F401, PLC0415


_load_all()

__all__ = ["CIB_SECTIONS", "REGISTRY", "CheckSpec", "Facts", "Verdict", "check", "fail", "get_check", "missing", "ok"]
