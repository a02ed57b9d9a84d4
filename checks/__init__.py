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
    gathers: tuple[str, ...] = ()

    @property
    def sections(self) -> frozenset[str]:
        """The fact sections (lab.gather.facts) a live gather must collect for this check."""
        return frozenset(self.gathers) | (CIB_SECTIONS if self.needs_cib else frozenset())

    def validate_params(self, params: dict) -> str | None:
        """None when params fit the function's signature, else what is wrong."""
        try:
            inspect.signature(self.function).bind(None, **params)
        except TypeError as exc:
            return str(exc)
        return None


REGISTRY: dict[str, CheckSpec] = {}


CIB_SECTIONS = frozenset({"cib", "crm_mon"})


def check(name: str, *, live: bool = False, needs_cib: bool = True,
          gathers: tuple[str, ...] = ()) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check under the name exercise files use."""

    def register(function: CheckFunction) -> CheckFunction:
        if name in REGISTRY:
            raise ValueError(f"check {name!r} registered twice")
        REGISTRY[name] = CheckSpec(name, function, live, needs_cib, gathers)
        return function

    return register


def get_check(name: str) -> CheckSpec | None:
    return REGISTRY.get(name)


def _load_all() -> None:
    from checks import cluster, config, constraints, fencing, resources  # noqa: F401


_load_all()

__all__ = ["REGISTRY", "CheckSpec", "Facts", "Verdict", "check", "fail", "get_check", "missing", "ok"]
