"""Checks on configured resources and where pacemaker runs them."""

from __future__ import annotations

from checks import Verdict, check, fail, missing, ok
from lab.core.cib import Cib, Resource, normalise_role
from lab.core.durations import format_ms, parse_ms
from lab.gather import pacemaker
from lab.gather.facts import Facts
from lab.gather.simulation import Scenario, simulate


def _find(cib: Cib, rsc_id: str) -> Resource | None:
    return cib.resources.get(rsc_id)


@check("primitive_agent")
def primitive_agent(facts: Facts, resource: str, agent: str) -> Verdict:
    """A primitive with this exact id uses this agent (class:provider:type, as pacemaker resolves it)."""
    rsc = _find(facts.cib, resource)
    if rsc is None:
        return missing(facts.cib, resource)
    if rsc.kind != "primitive":
        return fail(f"'{resource}' is a {rsc.kind}, not a primitive")
    if not rsc.uses_agent(agent):
        return fail(f"'{resource}' uses agent {rsc.agent}, expected {agent}")
    return ok(f"'{resource}' is a primitive of agent {agent}")


def scheduled_monitors(facts: Facts, resource: str, role: str | None = None) -> list[tuple[int, str | None]]:
    """(interval ms, role) of the recurring monitors pacemaker schedules for the resource when
    it starts, from the transition graph of crm_simulate on a copy where nothing ran yet and
    nothing is disabled or banned: templates, op_defaults, enabled=false and roles are
    pacemaker's reading."""
    attributes = {}
    if normalise_role(role) == "Promoted":  # no agent ran: give every instance a promotion score
        attributes = {n: {f"master-{resource}": "10"} for n in facts.cib.nodes}
    # Bans and disabling are judged by the running checks: here the resource may start anywhere.
    scenario = Scenario(fresh=True, started=True, no_locations=True, attributes=attributes)
    sim = simulate(facts.cib_xml, scenario, graph=True)
    return sim.monitors(resource)


def _monitors_for(facts: Facts, resource: str, role: str | None) -> list[tuple[int, str | None]]:
    # An op without a role and one with role=Started both run while the resource is started.
    default_roles = (None, "Started")
    wanted = default_roles if role in default_roles else (normalise_role(role),)
    return [m for m in scheduled_monitors(facts, resource, role) if normalise_role(m[1]) in wanted]


@check("monitor_interval")
def monitor_interval(facts: Facts, resource: str, interval: str | None = None, role: str | None = None) -> Verdict:
    """Pacemaker runs a recurring monitor of the resource, every `interval` (None: any interval).

    Every recurring monitor for the role must have that interval: a leftover monitor at
    another interval means the old one was not changed.
    """
    rsc = _find(facts.cib, resource)
    if rsc is None:
        return missing(facts.cib, resource)
    monitors = _monitors_for(facts, resource, role)
    if not monitors:
        return fail(f"pacemaker runs no recurring monitor of '{resource}' (none configured, or disabled)")
    if interval is None:
        return ok(f"'{resource}' is monitored every {', '.join(format_ms(m[0]) for m in monitors)}")
    expected = parse_ms(interval)
    wrong = [m for m in monitors if m[0] != expected]
    if wrong:
        found = ", ".join(format_ms(m[0]) for m in monitors)
        return fail(f"'{resource}' is monitored every {found}; expected every {format_ms(expected or 0)} only")
    return ok(f"'{resource}' is monitored every {format_ms(expected or 0)}")


@check("resource_running")
def resource_running(facts: Facts, resource: str, instances: int = 1) -> Verdict:
    """Pacemaker reports the resource started (at least `instances` of it), not failed."""
    if _find(facts.cib, resource) is None:
        return missing(facts.cib, resource)
    states = facts.status.instances(resource)
    running = [s for s in states if s.running and not s.failed]
    nodes = sorted({n for s in running for n in s.nodes})
    if len(running) < instances:
        roles = ", ".join(sorted({s.role for s in states})) or "not reported"
        return fail(f"'{resource}' is not running (pacemaker reports: {roles})")
    return ok(f"'{resource}' runs on {', '.join(nodes)}")


@check("resource_stopped")
def resource_stopped(facts: Facts, resource: str) -> Verdict:
    """No instance of the resource is active anywhere."""
    active = [s for s in facts.status.instances(resource) if s.active]
    if active:
        nodes = sorted({n for s in active for n in s.nodes})
        return fail(f"'{resource}' is still active on {', '.join(nodes) or 'a node'}")
    return ok(f"'{resource}' is not running")


def _target_roles(facts: Facts, resource: str) -> list[tuple[str, str | None]]:
    """(when, target-role in effect) now and after every date rule has run out, as crm_resource
    computes it (own sets, parents, defaults, rules)."""
    views = [("now", facts.cib_xml), *pacemaker.later_views(facts.cib_xml)]
    return [(when, pacemaker.meta_value(text, resource, "target-role")) for when, text in views]


def _stopped(role: str | None) -> bool:
    return role is not None and role.lower() == "stopped"


@check("resource_disabled")
def resource_disabled(facts: Facts, resource: str) -> Verdict:
    """The resource is disabled, lastingly: its effective target-role is Stopped now and after
    every date rule has run out ("keeps it stopped")."""
    if _find(facts.cib, resource) is None:
        return missing(facts.cib, resource)
    for when, role in _target_roles(facts, resource):
        if not _stopped(role):
            return fail(f"'{resource}' is not disabled {when} (target-role {role or 'unset, i.e. Started'})")
    return ok(f"'{resource}' is disabled (target-role Stopped)")


@check("resource_enabled")
def resource_enabled(facts: Facts, resource: str) -> Verdict:
    """The resource is not disabled: no effective target-role Stopped, now or after every date
    rule has run out."""
    if _find(facts.cib, resource) is None:
        return missing(facts.cib, resource)
    for when, role in _target_roles(facts, resource):
        if _stopped(role):
            again = "still" if when == "now" else "again"
            return fail(f"'{resource}' is {again} disabled {when} (target-role Stopped)")
    return ok(f"'{resource}' is enabled")


@check("resource_absent")
def resource_absent(facts: Facts, resource: str) -> Verdict:
    """No resource of this id is configured, and none is still active."""
    if resource in facts.cib.resources or resource in facts.cib.templates:
        return fail(f"'{resource}' is still configured")
    active = [s for s in facts.status.instances(resource) if s.active]
    if active:
        return fail(f"'{resource}' is removed from the configuration but still active")
    return ok(f"no resource '{resource}' is configured or running")


@check("resource_clean")
def resource_clean(facts: Facts, resource: str) -> Verdict:
    """No failed action or fail count is recorded for the resource (it was cleaned up)."""
    if _find(facts.cib, resource) is None:
        return missing(facts.cib, resource)
    failures = facts.status.failures_of(resource)
    if failures:
        return fail(f"'{resource}' still has failures recorded: {'; '.join(failures)}")
    return ok(f"no failures recorded for '{resource}'")
