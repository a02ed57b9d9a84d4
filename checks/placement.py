"""Checks on node attributes, node health, utilization, init scripts and the configuration's validity.

Judged by what pacemaker's tools make of the CIB, never by its spelling: a node
attribute's lifetime is where pacemaker keeps it (the configuration's nodes section
survives a reboot, the status section's transient_attributes do not); node health and
utilization by crm_simulate's placement on a copy, contrasted with the same copy under
the option's neutral value (so a ban or a colocation that happens to have the same effect
is told apart); validity by crm_verify's own errors and warnings.
"""

from __future__ import annotations

from checks import Verdict, check, fail, missing, ok
from checks.constraints import starts_after, waits_for
from lab.gather import pacemaker, predict
from lab.gather.facts import Facts
from lab.gather.simulation import Scenario, edited, simulate

SHOWN = 3  # crm_verify lines quoted in a message


# --- crm_verify ---------------------------------------------------------------------


@check("config_verifies")
def config_verifies(facts: Facts) -> Verdict:
    """crm_verify (run on a copy of the gathered CIB, as `crm_verify -L -V` on the cluster)
    reports no error and no warning."""
    result = pacemaker.verify(facts.cib_xml)
    if result.clean:
        return ok("crm_verify -V reports no errors and no warnings")
    problems = [f"error: {e}" for e in result.errors] + [f"warning: {w}" for w in result.warnings]
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    if not problems:
        return fail(f"crm_verify exits {result.returncode}: the configuration is not valid")
    return fail(f"crm_verify -V reports {'; '.join(problems[:SHOWN])}{more}")


# --- node attributes by lifetime -------------------------------------------------------


@check("transient_node_attribute")
def transient_node_attribute(facts: Facts, node: str, name: str, value: str) -> Verdict:
    """The node carries name=value until its next reboot only: in the status section
    (crm_attribute -l reboot, attrd_updater), not also in the configuration."""
    cib = facts.cib
    if node not in cib.nodes:
        return fail(f"node {node} is not in the configuration")
    transient = cib.transient_attributes.get(node, {}).get(name)
    permanent = cib.nodes[node].attributes.get(name)
    if transient != value:
        elsewhere = sorted(n for n, attrs in cib.transient_attributes.items()
                           if n != node and attrs.get(name) == value)
        if permanent == value:
            return fail(f"{node} has {name}={value} permanently (it survives a reboot): it was to last "
                        f"until the next reboot only")
        if elsewhere:
            return fail(f"{name}={value} is set on {', '.join(elsewhere)}, not on {node}")
        return fail(f"{node} has no transient {name}={value} "
                    f"(found: {transient if transient is not None else 'unset'})")
    if permanent is not None:
        return fail(f"{node} also has a permanent {name}={permanent}: after a reboot the attribute "
                    f"would still be there")
    return ok(f"{node} has {name}={value} until its next reboot")


# --- node health -------------------------------------------------------------------------


@check("health_keeps_off")
def health_keeps_off(facts: Facts, resource: str, node: str) -> Verdict:
    """Node health keeps the resource off node: even pulled there (+INFINITY) the scheduler
    does not place it there, and with node-health-strategy=none on the same copy it would."""
    if resource not in facts.cib.resources:
        return missing(facts.cib, resource)
    if node not in facts.cib.nodes:
        return fail(f"node {node} is not in the configuration")
    pulled = Scenario(scores=((resource, node, "INFINITY"),), started=True)
    if node in simulate(facts.cib_xml, pulled).running(resource):
        return fail(f"pulled towards {node}, '{resource}' would run there: nothing in the node's "
                    f"health keeps it away")
    neutral = pacemaker.with_property(facts.cib_xml, "node-health-strategy", "none")
    if node not in simulate(neutral, pulled).running(resource):
        return fail(f"'{resource}' stays off {node} even with node-health-strategy=none: something "
                    f"else (a ban, standby) keeps it away, not the node's health")
    return ok(f"{node}'s health keeps '{resource}' away, even when something pulls it there")


# --- utilization -------------------------------------------------------------------------


def _placed(text: str, first: str, second: str, scenario: Scenario) -> tuple[list[str], list[str]]:
    sim = simulate(text, scenario)
    return sim.running(first), sim.running(second)


def _apart_everywhere(facts: Facts, first: str, second: str) -> Verdict | None:
    """None when, pulled onto each node with every node up, both run and apart; else why not."""
    for node in facts.cib.nodes:
        pull = Scenario(fresh=True, started=True, scores=((first, node, "INFINITY"), (second, node, "INFINITY")))
        a, b = _placed(facts.cib_xml, first, second, pull)
        if not a or not b:
            idle = first if not a else second
            return fail(f"with every node up, '{idle}' cannot run anywhere: its needs exceed every node's capacity")
        if set(a) & set(b):
            both = ", ".join(sorted(set(a) & set(b)))
            return fail(f"pulled onto {node}, '{first}' and '{second}' both run on {both}: "
                        f"the node's capacity holds both")
    return None


@check("never_share_node")
def never_share_node(facts: Facts, first: str, second: str) -> Verdict:
    """Utilization keeps two resources apart: pulled onto one node they run on different
    nodes, with one node left only one of them runs, and under placement-strategy=default
    (utilization ignored) they would share a node (so it is not a constraint doing it)."""
    cib = facts.cib
    for rsc in (first, second):
        if rsc not in cib.resources:
            return missing(cib, rsc)
    verdict = _apart_everywhere(facts, first, second)
    if verdict is not None:
        return verdict
    for node in cib.nodes:
        alone = Scenario(fresh=True, started=True, down=tuple(n for n in cib.nodes if n != node))
        a, b = _placed(facts.cib_xml, first, second, alone)
        if set(a) & set(b):
            return fail(f"with only {node} left, '{first}' and '{second}' both start on it")
    default = pacemaker.with_property(facts.cib_xml, "placement-strategy", "default")
    node = next(iter(cib.nodes), "")
    pull = Scenario(fresh=True, started=True, scores=((first, node, "INFINITY"), (second, node, "INFINITY")))
    a, b = _placed(default, first, second, pull)
    if not set(a) & set(b):
        return fail(f"'{first}' and '{second}' stay apart even with placement-strategy=default: a constraint "
                    f"keeps them apart, not their utilization")
    return ok(f"'{first}' and '{second}' never share a node: together they exceed every node's capacity")


# --- init scripts --------------------------------------------------------------------------

SCRIPT_CLASSES = ("lsb", "service")  # service: pacemaker picks systemd's unit for the script or lsb


@check("init_script_primitive")
def init_script_primitive(facts: Facts, resource: str, script: str) -> Verdict:
    """A primitive runs the init script /etc/init.d/SCRIPT: class lsb, or service (which
    pacemaker resolves to the systemd unit made from the script, else to lsb), type SCRIPT."""
    rsc = facts.cib.resources.get(resource)
    if rsc is None:
        return missing(facts.cib, resource)
    if rsc.kind != "primitive":
        return fail(f"'{resource}' is a {rsc.kind}, not a primitive")
    if rsc.standard not in SCRIPT_CLASSES:
        return fail(f"'{resource}' is of class {rsc.standard or 'unknown'} ({rsc.agent}): an init script is "
                    f"class lsb (or service)")
    if rsc.type not in (script, f"/etc/init.d/{script}"):  # lsb takes a path too (services_lsb.c)
        return fail(f"'{resource}' runs {rsc.agent}, not the init script {script}")
    return ok(f"'{resource}' runs the init script {script} ({rsc.agent})")


# --- mandatory order, also for a restart in place -------------------------------------------


@check("mandatory_order")
def mandatory_order(facts: Facts, first: str, then: str) -> Verdict:
    """`then` starts after `first` and stops without it (checks.constraints.starts_after), and
    when `first` is found stopped where it runs (a probe result injected into crm_simulate) the
    scheduler restarts `then` after it: what a mandatory order does and an optional one does not,
    also where a colocation already moves or stops `then` with `first`. Primitives only."""
    verdict = starts_after(facts, first, then)
    if not verdict.passed:
        return verdict
    text, nodes = facts.cib_xml, list(facts.cib.nodes)
    where, running = facts.status.running_nodes(first), facts.status.running_nodes(then)
    if not where or not running:
        # A disabled or stopped resource says nothing about the order (the running checks judge
        # that): try the restart on a copy with every target-role dropped, once it has settled.
        text = predict.settled(edited(facts.cib_xml, Scenario(started=True))[0])
        status = pacemaker.simulate(text, up=nodes).status
        where, running = status.running_nodes(first), status.running_nodes(then)
    if not where or not running:
        return fail(f"'{first}' and '{then}' cannot both run, so a restart of '{first}' cannot be tried")
    sim = pacemaker.simulate(text, up=nodes, graph=True, inject=(f"{first}_monitor_0@{where[0]}=7",))
    actions = sim.actions()
    inputs = {a[0]: a[3] for a in actions}
    first_starts = {a[0] for a in actions if a[2] == "start" and a[1].split(":", 1)[0] == first}
    then_starts = [a[0] for a in actions if a[2] == "start" and a[1].split(":", 1)[0] == then]
    if not then_starts:
        return fail(f"when '{first}' restarts on {where[0]}, '{then}' keeps running: the order is optional, "
                    f"not mandatory")
    if not all(waits_for(s, inputs) & first_starts for s in then_starts):
        return fail(f"when '{first}' restarts, '{then}' restarts without waiting for it")
    return ok(f"'{then}' starts after '{first}', also when '{first}' restarts in place")
