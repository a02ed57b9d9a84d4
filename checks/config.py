"""Checks on cluster-wide settings, meta attributes, nodes and advanced resources (ACLs: checks.acl).

Values are compared by meaning: booleans as pacemaker reads them (true/on/yes/1),
durations in any notation (60, 60s, 1min, PT1M, 60000ms), scores as numbers.
"""

from __future__ import annotations

from dataclasses import replace

from checks import Verdict, check, fail, missing, ok
from checks.constraints import runs_with, starts_after
from lab.core.cib import Cib, NVSet, recurring_monitors
from lab.core.durations import format_ms, parse_ms
from lab.core.scores import is_true, parse_score
from lab.core.status import Status
from lab.gather import pacemaker
from lab.gather.facts import Facts
from lab.gather.simulation import FAR_FUTURE, Scenario, edited, simulate

WHEN = (("now", None), ("in 2099", FAR_FUTURE))
PROBE_RESOURCES = {"lab-probe-ocf": "ocf:lab:Probe", "lab-probe-systemd": "systemd:lab-probe"}

_BOOLEAN_WORDS = ("true", "false", "on", "off", "yes", "no", "y", "n", "1", "0")


def same_value(found: str | None, expected: str, kind: str = "auto") -> bool:
    """found means expected, for kind duration, score, boolean, string or auto (guess from expected).

    Hand-written (no tool normalises a value it reports): mirrors crm_is_true() and
    crm_get_msec() (lib/common/strings.c) and char2score() (lib/common/scores.c).
    """
    if found is None:
        return False
    if kind == "auto":
        if expected.lower() in _BOOLEAN_WORDS and not expected.isdigit():
            kind = "boolean"
        elif parse_score(expected) is not None:
            kind = "score"
        else:
            kind = "string"
    if kind == "boolean":
        return is_true(found) == is_true(expected)
    if kind == "duration":
        return parse_ms(found) is not None and parse_ms(found) == parse_ms(expected)
    if kind == "score":
        return parse_score(found) is not None and parse_score(found) == parse_score(expected)
    return found.strip().lower() == expected.strip().lower()


def _bootstrap_first(sets: tuple[NVSet, ...]) -> list[NVSet]:
    """Sets in pacemaker's order: cib-bootstrap-options first, then by score, highest first.

    Hand-written, mirroring pe_unpack_nvpairs()/pcmk__unpack_dataset_nvpairs() with
    CIB_OPTIONS_FIRST (lib/pengine/rules.c): used only for a property no tool reports.
    Sets with a rule are left out (no tool here evaluates them for a property).
    """
    ordered = sorted(sets, key=lambda s: -s.score)
    return sorted(ordered, key=lambda s: s.id != "cib-bootstrap-options")


def effective_property(facts: Facts, name: str, text: str | None = None) -> str | None:
    """The value pacemaker uses (on the CIB `text`, default the gathered one): crm_mon's
    cluster options, enable-acl by the CIB manager's effect, else the sets' order."""
    cib_xml = facts.cib_xml if text is None else text
    options = facts.status.cluster_options if text is None else pacemaker.cluster_options(text)
    if name in options:  # crm_mon reports what the scheduler unpacked
        return options[name]
    if name == "enable-acl" and cib_xml:
        # cib_acl_enabled() reads the option with the CIB manager's precedence; a user with no
        # ACL entry is refused reading exactly when ACLs are enabled.
        return "false" if pacemaker.read_as(cib_xml, "lab-acl-nobody") is not None else "true"
    for nvset in _bootstrap_first(facts.cib.cluster_property_sets):
        if nvset.rule is None and name in nvset.values:
            return nvset.values[name]
    return None


@check("cluster_property")
def cluster_property(facts: Facts, name: str, value: str) -> Verdict:
    """The cluster property in effect (as pacemaker reads several sets) has this value, now and
    at a date after every date rule has run out (a value that expires is no setting)."""
    found = effective_property(facts, name)
    if not same_value(found, value):
        shown = found if found is not None else "not set"
        where = [s.id for s in facts.cib.cluster_property_sets if value.lower() in
                 (v.lower() for k, v in s.values.items() if k == name)]
        hint = f" (set to {value} in {', '.join(where)}, which pacemaker does not use)" if where else ""
        return fail(f"cluster property {name} is {shown} in effect, expected {value}{hint}")
    for when, text in pacemaker.later_views(facts.cib_xml):
        later = effective_property(facts, name, text)
        if not same_value(later, value):
            return fail(f"cluster property {name} is {found} now but {later or 'not set'} {when}: "
                        f"a date rule limits it")
    return ok(f"cluster property {name}={found}")


@check("cluster_unmanaged")
def cluster_unmanaged(facts: Facts) -> Verdict:
    """Pacemaker manages no resource at all, now and in 2099 (a time-limited rule is not it)."""
    probe = {"lab-probe-unmanaged": "ocf:pacemaker:Dummy"}
    for when, date in WHEN:
        sim = simulate(facts.cib_xml, Scenario(resources=probe, date=date))
        managed = sorted({r.id for r in sim.status.resources if r.managed})
        if managed:
            return fail(f"pacemaker still manages {', '.join(managed)} {when}")
    return ok("pacemaker manages no resource (now or later)")


@check("no_quorum_freezes")
def no_quorum_freezes(facts: Facts) -> Verdict:
    """Without quorum, what runs keeps running and nothing new starts (freeze), now and in 2099.

    A partition without quorum is simulated with a new stopped probe resource: `stop`
    stops what runs, `ignore` starts the probe, `freeze` does neither.
    """
    probe = {"lab-probe-quorum": "ocf:pacemaker:Dummy"}
    before = {r.id: sorted(r.nodes) for r in facts.status.resources if r.running}
    for when, date in WHEN:
        sim = simulate(facts.cib_xml, Scenario(resources=probe, date=date, quorum=False))
        after = {r.id: sorted(r.nodes) for r in sim.status.resources if r.running}
        stopped = sorted(r for r in before if after.get(r) != before[r])
        if stopped:
            return fail(f"without quorum pacemaker stops or moves {', '.join(stopped)} {when}: not frozen")
        if "lab-probe-quorum" in after:
            return fail(f"without quorum pacemaker still starts new resources {when}: not frozen")
    return ok("without quorum, running resources keep running and nothing new starts")


@check("rsc_default")
def rsc_default(facts: Facts, name: str, value: str) -> Verdict:
    """Every resource that sets nothing itself gets this value (a resource default), as
    crm_resource computes it for new probe primitives of two classes (rules, several sets),
    now and after every date rule has run out."""
    text, _nodes = _with_probes(facts)
    for when, view in [("now", text), *pacemaker.later_views(text)]:
        for probe in PROBE_RESOURCES:
            found = pacemaker.meta_value(view, probe, name)
            if not same_value(found, value):
                own = [r.id for r in facts.cib.resources.values() if name in r.meta]
                hint = f" (set on {', '.join(own)} only: that is not a default)" if own else ""
                return fail(f"a resource that sets nothing itself gets {name}="
                            f"{found if found is not None else 'unset'} {when}, expected {value}{hint}")
    return ok(f"resource default {name}={value} applies to every resource, now and later")


def _with_probes(facts: Facts) -> tuple[str, list[str]]:
    return edited(facts.cib_xml, Scenario(resources=PROBE_RESOURCES))


def own_meta(cib: Cib, rsc_id: str, name: str) -> tuple[str | None, str | None]:
    """(value, where) from the resource's own meta attributes or a parent's, never the defaults."""
    current: str | None = rsc_id
    while current is not None and current in cib.resources:
        rsc = cib.resources[current]
        if name in rsc.meta:
            return rsc.meta[name], current
        current = rsc.parent
    return None, None


@check("resource_meta")
def resource_meta(facts: Facts, resource: str, name: str, value: str, kind: str = "auto") -> Verdict:
    """The value in effect for the resource (crm_resource: own sets, its group/clone, rules) is
    `value`, now and after every date rule has run out, and it is not a resource default
    (a new probe resource does not get it)."""
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    shown = format_ms(parse_ms(value) or 0) if kind == "duration" else value
    found = None
    for when, view in [("now", facts.cib_xml), *pacemaker.later_views(facts.cib_xml)]:
        found = pacemaker.meta_value(view, resource, name)
        if found is None:
            return fail(f"'{resource}' has no meta attribute {name} in effect {when}")
        if not same_value(found, value, kind):
            return fail(f"'{resource}' has {name}={found} in effect {when}, expected {shown}")
    text, _nodes = _with_probes(facts)
    if any(same_value(pacemaker.meta_value(text, p, name), value, kind) for p in PROBE_RESOURCES):
        return fail(f"{name}={found} is a resource default (every resource gets it), not set on '{resource}' itself")
    where = own_meta(cib, resource, name)[1] or resource
    return ok(f"'{where}' has {name}={found}")


# --- nodes ---------------------------------------------------------------------------


@check("node_standby")
def node_standby(facts: Facts, node: str, standby: bool = True) -> Verdict:
    """Pacemaker reports node in standby (permanent or until reboot), or not, as asked."""
    state = facts.status.nodes.get(node)
    if state is None:
        return fail(f"pacemaker does not report node {node}")
    if state.standby != standby:
        extra = " (it is in maintenance, which is not standby)" if standby and state.maintenance else ""
        return fail(f"{node} is {'not ' if standby else ''}in standby{extra}")
    return ok(f"{node} is {'' if standby else 'not '}in standby")


@check("nothing_runs_on")
def nothing_runs_on(facts: Facts, node: str) -> Verdict:
    """No resource instance is active on node."""
    active = sorted({r.id for r in facts.status.resources if r.active and node in r.nodes})
    if active:
        return fail(f"still active on {node}: {', '.join(active)}")
    return ok(f"nothing runs on {node}")


@check("node_attribute")
def node_attribute(facts: Facts, node: str, name: str, value: str) -> Verdict:
    """The node carries a permanent attribute name=value (in the configuration, survives reboots)."""
    config = facts.cib.nodes.get(node)
    if config is None:
        return fail(f"node {node} is not in the configuration")
    found = config.attributes.get(name)
    if found != value:
        transient = facts.cib.transient_attributes.get(node, {}).get(name)
        if transient == value:
            return fail(f"{node} has {name}={value} only until reboot: make it permanent")
        return fail(f"{node} has {name}={found if found is not None else 'unset'}, expected {value}")
    return ok(f"{node} has permanent attribute {name}={value}")


# --- advanced resources --------------------------------------------------------------


@check("resource_template")
def resource_template(facts: Facts, template: str, agent: str, monitor: str) -> Verdict:
    """An rsc_template of this agent whose recurring monitors all run every `monitor`."""
    tpl = facts.cib.templates.get(template)
    if tpl is None:
        return fail(f"no resource template '{template}' is configured")
    if not tpl.uses_agent(agent):
        return fail(f"template '{template}' uses {tpl.agent}, expected {agent}")
    expected = parse_ms(monitor)
    monitors = recurring_monitors(tpl.operations)
    if not monitors or any(op.interval_ms != expected for op in monitors):
        found = ", ".join(op.interval_text for op in monitors) or "none"
        return fail(f"template '{template}' monitors every {found}, expected {format_ms(expected or 0)}")
    return ok(f"template '{template}' ({agent}) monitors every {format_ms(expected or 0)}")


@check("uses_template")
def uses_template(facts: Facts, resource: str, template: str) -> Verdict:
    """The primitive is built on the template (template=...), not a copy of its settings."""
    rsc = facts.cib.resources.get(resource)
    if rsc is None:
        return missing(facts.cib, resource)
    if rsc.template != template:
        return fail(f"'{resource}' is not built on template '{template}'"
                    + (f" (it uses '{rsc.template}')" if rsc.template else ""))
    if template not in facts.cib.templates:
        return fail(f"'{resource}' refers to template '{template}', which does not exist")
    return ok(f"'{resource}' is built on template '{template}'")


@check("group_members")
def group_members(facts: Facts, group: str, members: list[str]) -> Verdict:
    """The group holds exactly these members in this order, running on one node, and the
    scheduler keeps each member with the previous one and starts it after it."""
    cib = facts.cib
    grp = cib.resources.get(group)
    if grp is None:
        return missing(cib, group)
    if grp.kind != "group":
        return fail(f"'{group}' is a {grp.kind}, not a group")
    if list(grp.children) != members:
        return fail(f"group '{group}' holds {', '.join(grp.children) or 'nothing'}, "
                    f"expected {', '.join(members)} in that order")
    nodes = [sorted(set(facts.status.running_nodes(m))) for m in members]
    if any(len(n) != 1 for n in nodes) or len({n[0] for n in nodes}) != 1:
        where = "; ".join(f"{m}: {', '.join(n) or 'stopped'}" for m, n in zip(members, nodes, strict=True))
        return fail(f"group '{group}' is not running together on one node ({where})")
    # "together, in that order" is the scheduler's behaviour, not the membership:
    # ordered=false or collocated=false (on the group or as a default) undo it.
    for first, then in zip(members, members[1:], strict=False):
        for verdict in (runs_with(facts, then, first), starts_after(facts, first, then)):
            if not verdict.passed:
                return fail(f"group '{group}' does not keep its members together and in order: {verdict.message}")
    return ok(f"group '{group}' = {', '.join(members)}, running on {nodes[0][0]}, together and in that order")


def _clone_of(cib: Cib, resource: str) -> str | None:
    return next((a for a in cib.ancestors(resource) if cib.resources[a].kind in ("clone", "master")), None)


def _later(facts: Facts, scenario: Scenario) -> Status | None:
    """The status the scheduler reaches after every date rule and lifetime has run out
    (crm_simulate -t), or None when nothing in the CIB depends on the date."""
    if "date_expression" not in facts.cib_xml:
        return None
    return simulate(facts.cib_xml, replace(scenario, date=FAR_FUTURE)).status


def _clone_instances(status: Status, resource: str) -> tuple[list[str], list[str]]:
    """(online nodes not in standby, nodes running a healthy instance) in a status."""
    online = sorted(n for n in status.online_nodes() if not status.nodes[n].standby)
    running = [n for s in status.instances(resource) if s.running and not s.failed for n in s.nodes]
    return online, sorted(running)


@check("cloned_everywhere")
def cloned_everywhere(facts: Facts, resource: str) -> Verdict:
    """The resource is cloned and exactly one instance runs on every online node, now and
    after every date rule has run out (a ban of the clone from 2030 on is no "every node")."""
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    clone = _clone_of(cib, resource)
    if clone is None:
        return fail(f"'{resource}' is not cloned")
    for when, status in (("", facts.status), (" in 2099", _later(facts, Scenario()))):
        if status is None:
            continue
        online, running = _clone_instances(status, resource)
        if running != online:
            return fail(f"clone '{clone}' runs instances on {', '.join(running) or 'no node'}{when}; "
                        f"expected one on each online node ({', '.join(online)})")
    online = _clone_instances(facts.status, resource)[0]
    return ok(f"clone '{clone}' runs one instance of '{resource}' on each of {', '.join(online)}")


def _promotion_verdict(status: Status, resource: str, when: str) -> Verdict:
    online = sorted(n for n in status.online_nodes() if not status.nodes[n].standby)
    roles = {n: s.role for s in status.instances(resource) if s.running for n in s.nodes}
    promoted = sorted(n for n, r in roles.items() if r == "Promoted")
    if len(promoted) != 1:
        return fail(f"{len(promoted)} instances of '{resource}' are promoted{when}"
                    + (f" ({', '.join(promoted)})" if promoted else "") + ", expected exactly one")
    without = [n for n in online if roles.get(n) not in ("Promoted", "Unpromoted")]
    if without:
        return fail(f"no instance of '{resource}' runs on {', '.join(without)}{when}")
    return ok(f"'{resource}' is promoted on {promoted[0]}, unpromoted on the other nodes")


@check("promotable_one_promoted")
def promotable_one_promoted(facts: Facts, resource: str) -> Verdict:
    """A promotable clone with one instance Promoted and one Unpromoted on every other online
    node, now and after every date rule has run out.

    On a saved CIB no agent has run, so no instance has a promotion score yet; the
    scheduler is asked with the score every instance's agent would set (master-<id>).
    """
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    clone = _clone_of(cib, resource)
    if clone is None or not cib.resources[clone].is_promotable:
        return fail(f"'{resource}' is not in a promotable clone")
    status = facts.status
    promoted = [n for s in status.instances(resource) if s.running and s.role == "Promoted" for n in s.nodes]
    scored = Scenario(attributes={n: {f"master-{resource}": "10"} for n in cib.nodes})
    if not facts.live and not promoted:
        status = simulate(facts.cib_xml, scored).status
    verdict = _promotion_verdict(status, resource, "")
    later = _later(facts, scored)
    if verdict.passed and later is not None:
        verdict = _promotion_verdict(later, resource, " in 2099")
    return verdict
