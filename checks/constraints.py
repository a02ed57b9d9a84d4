"""Checks on placement and ordering: judged by what pacemaker's scheduler does, not by syntax.

A location, colocation or order can be written as a plain constraint, a rule, a
resource set, a group or a ban; pcs and crmsh spell each differently. Where the
exercise asks for an effect ("never on node2", "always with vip", "vip first"),
the check asks crm_simulate on a copy of the CIB (lab.simulation) with nodes taken
away or a resource pinned. Where it asks for a value (a score of 50), the check
adds up the location scores the constraints give, rules evaluated as pacemaker does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from checks import Verdict, check, fail, missing, ok
from lab.cib import Cib, Expression, Location, Rule
from lab.facts import Facts
from lab.scores import INFINITY, format_score, parse_score
from lab.simulation import Scenario, simulate

PROBE = "lab-probe"




# --- location scores, as pacemaker adds them up --------------------------------------


def add_scores(a: int, b: int) -> int:
    """Pacemaker's score addition: -INFINITY wins over INFINITY, sums are clamped."""
    if a <= -INFINITY or b <= -INFINITY:
        return -INFINITY
    if a >= INFINITY or b >= INFINITY:
        return INFINITY
    return max(-INFINITY, min(INFINITY, a + b))


def node_attributes(cib: Cib, node: str) -> dict[str, str]:
    """What rules see of a node: permanent and transient attributes and the built-ins."""
    config = cib.nodes.get(node)
    attrs = dict(config.attributes) if config else {}
    attrs.update(cib.transient_attributes.get(node, {}))
    attrs["#uname"] = node
    attrs["#id"] = config.id if config else node
    attrs["#kind"] = "remote" if config and config.type == "remote" else "cluster"
    return attrs


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def eval_expression(expr: Expression, attrs: Mapping[str, str]) -> bool:
    """One <expression>, compared the way pacemaker 2.x compares (strings case-insensitively)."""
    value = attrs.get(expr.attribute)
    op = expr.operation
    if op == "defined":
        return value is not None
    if op == "not_defined":
        return value is None
    if value is None or expr.value is None:
        return op == "ne"  # an undefined attribute is "not equal" to anything
    kind = (expr.type or "").lower()
    left: object
    right: object
    if kind in ("number", "integer") or (
        not kind and op in ("lt", "gt", "lte", "gte") and None not in (_number(value), _number(expr.value))
    ):
        left, right = _number(value), _number(expr.value)
        if left is None or right is None:
            return op == "ne"
    elif kind == "version":
        left, right = _version(value), _version(expr.value)
    else:
        left, right = value.lower(), expr.value.lower()
    return {
        "eq": left == right, "ne": left != right, "lt": left < right, "gt": left > right,  # type: ignore[operator]
        "lte": left <= right, "gte": left >= right,  # type: ignore[operator]
    }.get(op, False)


def eval_rule(rule: Rule, attrs: Mapping[str, str]) -> bool | None:
    """True/False, or None when the rule depends on the date (not judged here)."""
    if rule.has_date_expression:
        return None
    results: list[bool | None] = [eval_expression(e, attrs) for e in rule.expressions]
    results += [eval_rule(r, attrs) for r in rule.rules]
    if None in results:
        return None
    if not results:
        return True
    return any(results) if rule.boolean_op.lower() == "or" else all(results)


def applies_to(cib: Cib, con: Location, rsc_id: str) -> bool:
    """The constraint names the resource, a resource containing it, or a pattern matching it."""
    names = {rsc_id, *cib.ancestors(rsc_id)} if rsc_id in cib.resources else {rsc_id}
    if con.rsc in names or any(n in rset.resources for rset in con.resource_sets for n in names):
        return True
    return any(_pattern_matches(con.rsc_pattern, n) for n in names)


def _pattern_matches(pattern: str | None, rsc_id: str) -> bool:
    if not pattern:
        return False
    try:
        return re.search(pattern, rsc_id) is not None
    except re.error:
        return False


def location_score(cib: Cib, rsc_id: str, node: str) -> tuple[int, list[str]]:
    """The summed location score for rsc_id on node (role-less or Started constraints) and their ids."""
    total, used = 0, []
    attrs = node_attributes(cib, node)
    for con in cib.locations:
        if con.role not in (None, "Started") or not applies_to(cib, con, rsc_id):
            continue
        if con.node is not None:
            if con.node == node and con.score is not None:
                total = add_scores(total, con.score)
                used.append(con.id)
            continue
        for rule in con.rules:
            if rule.role not in (None, "Started") or not eval_rule(rule, attrs):
                continue
            score = rule.score
            if score is None and rule.score_attribute:
                score = parse_score(attrs.get(rule.score_attribute))
            if score is None:
                score = con.score
            if score is not None:
                total = add_scores(total, score)
                used.append(con.id)
    return total, used


@check("location_score")
def location_score_check(facts: Facts, resource: str, node: str, score: str) -> Verdict:
    """Location constraints (plain, rule-based, sets, patterns) give resource exactly `score` on node."""
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    expected = parse_score(score)
    total, used = location_score(cib, resource, node)
    if not used:
        return fail(f"no location constraint gives '{resource}' a score on {node}")
    if total != expected:
        return fail(f"location constraints ({', '.join(used)}) give '{resource}' {format_score(total)} "
                    f"on {node}, expected {format_score(expected or 0)}")
    return ok(f"'{resource}' has location score {format_score(total)} on {node} ({', '.join(used)})")


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
    so the simulation adds a +INFINITY preference for the node.
    """
    if resource not in facts.cib.resources:
        return missing(facts.cib, resource)
    if node not in facts.cib.nodes:
        return fail(f"node {node} is not in the configuration")
    pull = ((resource, node, "INFINITY"),)
    sim = simulate(facts.cib_xml, Scenario(down=_others(facts, [node]), scores=pull))
    if node in _running(sim.status, resource):
        return fail(f"with only {node} left and something pulling '{resource}' there, pacemaker would "
                    "start it there (a finite score only discourages a node)")
    return ok(f"pacemaker never places '{resource}' on {node}, even when it is the only node left")


@check("runs_with")
def runs_with(facts: Facts, resource: str, with_resource: str) -> Verdict:
    """resource is placed with with_resource, mandatorily: it follows it and stops without it."""
    cib = facts.cib
    for rsc in (resource, with_resource):
        if rsc not in cib.resources:
            return missing(cib, rsc)
    nodes = list(cib.nodes)
    # 1. with_resource cannot run: resource must not run either.
    banned = tuple((with_resource, n, "-INFINITY") for n in nodes)
    sim = simulate(facts.cib_xml, Scenario(scores=banned))
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
        sim = simulate(facts.cib_xml, Scenario(scores=scores))
        primary, dependent = _running(sim.status, with_resource), _running(sim.status, resource)
        if primary != [target] or dependent != [target]:
            return fail(f"with '{with_resource}' held on {target}, '{resource}' runs on "
                        f"{', '.join(dependent) or 'nowhere'}: a finite score lets other preferences win")
    return ok(f"'{resource}' always runs where '{with_resource}' runs, and only there")


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
    current = sorted(set(facts.status.running_nodes(first)))
    if not current:
        return fail(f"'{first}' is not running, so its order cannot be tried")
    scores = tuple((first, n, "-INFINITY") for n in current)
    sim = simulate(facts.cib_xml, Scenario(scores=scores), graph=True)
    actions = sim.actions()
    inputs = {a[0]: a[3] for a in actions}

    def starts(rsc_id: str) -> list[str]:
        return [a[0] for a in actions if a[2] == "start" and a[1].split(":", 1)[0] == rsc_id]

    # 2. `first` cannot run anywhere: a mandatory order keeps `then` stopped (optional does not).
    banned = tuple((first, n, "-INFINITY") for n in cib.nodes)
    without = _running(simulate(facts.cib_xml, Scenario(scores=banned)).status, then)
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
        seen, todo = set(), [start]
        while todo:
            current_id = todo.pop()
            for dep in inputs.get(current_id, ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        if not seen.intersection(first_starts):
            return fail(f"'{then}' may start before '{first}' has started: the order is missing or reversed")
    return ok(f"'{then}' starts only after '{first}' has started (mandatory)")


@check("never_runs_without_attribute")
def never_runs_without_attribute(facts: Facts, resource: str, attribute: str, value: str) -> Verdict:
    """No node lacking attribute=value ever gets the resource, not even a new node without it.

    Each such node is tried alone, with a +INFINITY pull towards it (only -INFINITY
    resists that), and so is a probe node that has no attributes at all.
    """
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    lacking = [n for n in cib.nodes if node_attributes(cib, n).get(attribute) != value]
    for node in lacking:
        sim = simulate(facts.cib_xml, Scenario(down=_others(facts, [node]),
                                               scores=((resource, node, "INFINITY"),)))
        if node in _running(sim.status, resource):
            return fail(f"with only {node} (no {attribute}={value}) left, pacemaker would start "
                        f"'{resource}' there")
    probe = Scenario(down=tuple(cib.nodes), probes={PROBE: {}}, scores=((resource, PROBE, "INFINITY"),))
    sim = simulate(facts.cib_xml, probe)
    if PROBE in _running(sim.status, resource):
        return fail(f"a new node without {attribute}={value} would get '{resource}': the rule must "
                    "exclude every node that is not "
                    f"{attribute}={value}, not name nodes")
    return ok(f"'{resource}' never runs on a node without {attribute}={value}")


@check("no_location_constraints")
def no_location_constraints(facts: Facts, resource: str) -> Verdict:
    """No location constraint (move/ban leftovers cli-prefer/cli-ban included) names the resource."""
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    left = [c.id for c in cib.locations if c.rsc == resource or _pattern_matches(c.rsc_pattern, resource)
            or any(resource in s.resources for s in c.resource_sets)]
    if left:
        return fail(f"location constraint(s) on '{resource}' left behind: {', '.join(left)}")
    return ok(f"no location constraint names '{resource}'")
