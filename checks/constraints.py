"""Checks on placement and ordering: judged by what pacemaker's scheduler does, not by syntax.

A location, colocation or order can be written as a plain constraint, a rule, a
resource set, a group or a ban; pcs and crmsh spell each differently. Where the
exercise asks for an effect ("never on node2", "always with vip", "vip first"),
the check asks crm_simulate on a copy of the CIB (lab.gather.simulation) with nodes taken
away, a resource pinned, a probe node added or the clock set to 2099 (so a ban with a
lifetime is no "never"). Where it asks for a value (a score of 50), the check reads
crm_simulate's allocation scores: no score or rule arithmetic is re-implemented here.
"""

from __future__ import annotations

from checks import Verdict, check, fail, missing, ok
from lab.core.cib import Cib
from lab.core.scores import format_score, parse_score
from lab.gather.facts import Facts
from lab.gather.simulation import FAR_FUTURE, Scenario, simulate

PROBE = "lab-probe"




# --- location scores, as pacemaker's scheduler computes them -------------------------


def node_attributes(cib: Cib, node: str) -> dict[str, str]:
    """A node's permanent and transient attributes as configured (which nodes lack one).

    Hand-written on purpose: only to pick which configured nodes to try alone; whether a
    rule then excludes them is the scheduler's answer, not this function's.
    """
    config = cib.nodes.get(node)
    attrs = dict(config.attributes) if config else {}
    attrs.update(cib.transient_attributes.get(node, {}))
    return attrs


def _fresh_scores(facts: Facts, resource: str, *, date: str | None, no_locations: bool = False) -> dict[str, int]:
    """The resource's allocation score per node before anything ran (no stickiness, no failures)."""
    sim = simulate(facts.cib_xml, Scenario(fresh=True, date=date, no_locations=no_locations))
    return dict(sim.scores.get(resource, {}))


WHEN = (("now", None), ("in 2099", FAR_FUTURE))


@check("location_score")
def location_score_check(facts: Facts, resource: str, node: str, score: str) -> Verdict:
    """Pacemaker's allocation scores give resource exactly `score` on node, now and after every
    lifetime has run out, and leave the other nodes as they are without location constraints.

    Asked from crm_simulate on a copy without status (so stickiness and failures add nothing):
    plain constraints, rules, tags, sets, patterns and node-name case are pacemaker's business.
    """
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    expected = parse_score(score)
    for when, date in WHEN:
        scores = _fresh_scores(facts, resource, date=date)
        base = _fresh_scores(facts, resource, date=date, no_locations=True)
        found = scores.get(node)
        if found is None:
            return fail(f"pacemaker reports no score for '{resource}' on {node}")
        if found != expected:
            return fail(f"pacemaker gives '{resource}' {format_score(found)} on {node} {when}, "
                        f"expected {format_score(expected or 0)}")
        changed = [n for n in scores if n != node and scores[n] != base.get(n)]
        if changed:
            return fail(f"location constraints also change the score of '{resource}' on "
                        f"{', '.join(changed)} ({', '.join(format_score(scores[n]) for n in changed)}): "
                        f"only {node} was to get a preference")
    return ok(f"pacemaker gives '{resource}' {format_score(expected or 0)} on {node}, now and later")


# --- where things run ----------------------------------------------------------------


@check("resource_runs_on")
def resource_runs_on(facts: Facts, resource: str, node: str) -> Verdict:
    """Pacemaker reports the resource running on node (and nowhere else)."""
    if resource not in facts.cib.resources:
        return missing(facts.cib, resource)
    nodes = sorted(set(facts.status.running_nodes(resource)))
    if nodes != [node]:
        where = ", ".join(nodes) if nodes else "nowhere"
        return fail(f"'{resource}' runs on {where}, expected on {node}")
    return ok(f"'{resource}' runs on {node}")


def _running(result_status, resource: str) -> list[str]:
    return sorted(set(result_status.running_nodes(resource)))


def _others(facts: Facts, keep: list[str]) -> tuple[str, ...]:
    return tuple(n for n in facts.cib.nodes if n not in keep)


@check("never_runs_on")
def never_runs_on(facts: Facts, resource: str, node: str) -> Verdict:
    """Even with every other node away and a pull towards node, the scheduler will not place resource there.

    A negative finite score already keeps a resource off a node while nothing pulls it
    there (stickiness, a colocation, a preference); only -INFINITY outweighs every pull,
    so the simulation adds a +INFINITY preference for the node. "Never" is tried now and
    at a date after every lifetime (ban --lifetime, date rules) has run out.
    """
    if resource not in facts.cib.resources:
        return missing(facts.cib, resource)
    if node not in facts.cib.nodes:
        return fail(f"node {node} is not in the configuration")
    pull = ((resource, node, "INFINITY"),)
    for when, date in WHEN:
        sim = simulate(facts.cib_xml, Scenario(down=_others(facts, [node]), scores=pull, date=date))
        if node in _running(sim.status, resource):
            return fail(f"with only {node} left and something pulling '{resource}' there, pacemaker would "
                        f"start it there {when} (a finite or time-limited ban only discourages a node)")
    return ok(f"pacemaker never places '{resource}' on {node}, even when it is the only node left")


@check("runs_with")
def runs_with(facts: Facts, resource: str, with_resource: str) -> Verdict:
    """resource is placed with with_resource, mandatorily: it follows it and stops without it."""
    cib = facts.cib
    for rsc in (resource, with_resource):
        if rsc not in cib.resources:
            return missing(cib, rsc)
    nodes = list(cib.nodes)
    # Every target-role is dropped (started=True): a disabled resource says nothing about where
    # the constraint places it; whether the resources run is the running checks' business.
    # 1. with_resource cannot run: resource must not run either.
    banned = tuple((with_resource, n, "-INFINITY") for n in nodes)
    sim = simulate(facts.cib_xml, Scenario(scores=banned, started=True))
    alone = _running(sim.status, resource)
    if alone:
        return fail(f"when '{with_resource}' cannot run anywhere, '{resource}' still runs on "
                    f"{', '.join(alone)}: it is not placed with '{with_resource}' (or not mandatorily)")
    # 2. with_resource pinned to each node, resource pulled elsewhere: it must still follow.
    for target in nodes:
        other = next((n for n in nodes if n != target), None)
        scores = tuple((with_resource, n, "-INFINITY") for n in nodes if n != target)
        if other is not None:
            scores += ((resource, other, "INFINITY"),)
        sim = simulate(facts.cib_xml, Scenario(scores=scores, started=True))
        primary, dependent = _running(sim.status, with_resource), _running(sim.status, resource)
        if primary != [target] or dependent != [target]:
            return fail(f"with '{with_resource}' held on {target}, '{resource}' runs on "
                        f"{', '.join(dependent) or 'nowhere'}: a finite score lets other preferences win")
    return ok(f"'{resource}' always runs where '{with_resource}' runs, and only there")


def waits_for(action: str, inputs: dict[str, tuple[str, ...]]) -> set[str]:
    """Every action the transition graph makes ACTION wait for, directly or through others."""
    seen: set[str] = set()
    todo = [action]
    while todo:
        for dep in inputs.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


@check("starts_after")
def starts_after(facts: Facts, first: str, then: str) -> Verdict:
    """Mandatory order: when `first` (re)starts, `then` is (re)started after it.

    Judged by two simulations: `first` moved away from its node must restart `then`
    after `first`'s start (transition graph), and `first` unable to run anywhere must
    leave `then` stopped (what makes an order mandatory rather than optional).
    """
    cib = facts.cib
    for rsc in (first, then):
        if rsc not in cib.resources:
            return missing(cib, rsc)
    # Every target-role is dropped (started=True): a disabled resource says nothing about the
    # order; whether the resources run is the running checks' business.
    current = simulate(facts.cib_xml, Scenario(started=True)).running(first)
    if not current:
        return fail(f"'{first}' cannot run anywhere, so its order cannot be tried")
    scores = tuple((first, n, "-INFINITY") for n in current)
    sim = simulate(facts.cib_xml, Scenario(scores=scores, started=True), graph=True)
    actions = sim.actions()
    inputs = {a[0]: a[3] for a in actions}

    def starts(rsc_id: str) -> list[str]:
        return [a[0] for a in actions if a[2] == "start" and a[1].split(":", 1)[0] == rsc_id]

    # 2. `first` cannot run anywhere: a mandatory order keeps `then` stopped (optional does not).
    banned = tuple((first, n, "-INFINITY") for n in cib.nodes)
    without = _running(simulate(facts.cib_xml, Scenario(scores=banned, started=True)).status, then)
    if without:
        return fail(f"when '{first}' cannot run, '{then}' still runs on {', '.join(without)}: "
                    f"no mandatory order '{first}' then '{then}' (optional, reversed or missing)")
    first_starts, then_starts = starts(first), starts(then)
    if not first_starts:
        return fail(f"'{first}' could not be moved in the simulation, so its order cannot be tried")
    if not then_starts:
        return fail(f"when '{first}' moves, '{then}' is not restarted: no mandatory order "
                    f"'{first}' then '{then}' (an optional order does not restart it)")
    for start in then_starts:
        if not waits_for(start, inputs).intersection(first_starts):
            return fail(f"'{then}' may start before '{first}' has started: the order is missing or reversed")
    return ok(f"'{then}' starts only after '{first}' has started (mandatory)")


@check("never_runs_without_attribute")
def never_runs_without_attribute(facts: Facts, resource: str, attribute: str, value: str) -> Verdict:
    """No node lacking attribute=value ever gets the resource: not a configured one, not a new
    node without the attribute, not a new node with another value, now or in 2099.

    Each such node is tried alone, with a +INFINITY pull towards it (only -INFINITY
    resists that); the scheduler evaluates the rules (pacemaker compares strings
    case-insensitively, so a probe's other value is one no spelling of `value` matches).
    """
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    lacking = [n for n in cib.nodes if node_attributes(cib, n).get(attribute, "").lower() != value.lower()]
    probes: list[tuple[str, dict[str, str], str]] = [
        (PROBE, {}, f"a new node without {attribute}"),
        (PROBE, {attribute: f"not-{value}"}, f"a new node with {attribute}=not-{value}"),
    ]
    for when, date in WHEN:
        for node in lacking:
            sim = simulate(facts.cib_xml, Scenario(down=_others(facts, [node]), date=date,
                                                   scores=((resource, node, "INFINITY"),)))
            if node in _running(sim.status, resource):
                return fail(f"with only {node} (no {attribute}={value}) left, pacemaker would start "
                            f"'{resource}' there {when}")
        for name, attrs, what in probes:
            probe = Scenario(down=tuple(cib.nodes), probes={name: attrs}, date=date,
                             scores=((resource, name, "INFINITY"),))
            if name in _running(simulate(facts.cib_xml, probe).status, resource):
                return fail(f"{what} would get '{resource}' {when}: the rule must exclude every node "
                            f"that is not {attribute}={value}, not name nodes")
    return ok(f"'{resource}' never runs on a node without {attribute}={value}")


@check("no_location_constraints")
def no_location_constraints(facts: Facts, resource: str) -> Verdict:
    """No location constraint affects the resource, now or later (move/ban leftovers included).

    By effect: the resource's allocation scores with the CIB's location constraints equal
    those with every location constraint removed, now and in 2099 (a constraint written on
    a tag, a pattern or another spelling of a node counts; one that changes nothing does not).
    """
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    for when, date in WHEN:
        scores = _fresh_scores(facts, resource, date=date)
        base = _fresh_scores(facts, resource, date=date, no_locations=True)
        changed = sorted(n for n in set(scores) | set(base) if scores.get(n) != base.get(n))
        if changed:
            left = [c.id for c in cib.locations]
            return fail(f"location constraints still change where '{resource}' may run {when} "
                        f"(scores on {', '.join(f'{n}={format_score(scores.get(n, 0))}' for n in changed)}); "
                        f"constraints: {', '.join(left) or 'none by name'}")
    return ok(f"no location constraint affects '{resource}'")
