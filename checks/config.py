"""Checks on cluster-wide settings, meta attributes, nodes, advanced resources and ACLs.

Values are compared by meaning: booleans as pacemaker reads them (true/on/yes/1),
durations in any notation (60, 60s, 1min, PT1M, 60000ms), scores as numbers.
"""

from __future__ import annotations

from checks import Verdict, check, fail, missing, ok
from lab.cib import Cib, recurring_monitors
from lab.durations import format_ms, parse_ms
from lab.facts import Facts
from lab.scores import is_true, parse_score
from lab.simulation import Scenario, simulate

_BOOLEAN_WORDS = ("true", "false", "on", "off", "yes", "no", "y", "n", "1", "0")


def same_value(found: str | None, expected: str, kind: str = "auto") -> bool:
    """found means expected, for kind duration, score, boolean, string or auto (guess from expected)."""
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


@check("cluster_property")
def cluster_property(facts: Facts, name: str, value: str) -> Verdict:
    """The cluster property (crm_config) has this value, compared by meaning."""
    found = facts.cib.properties.get(name)
    if not same_value(found, value):
        return fail(f"cluster property {name} is {found if found is not None else 'not set'}, expected {value}")
    return ok(f"cluster property {name}={found}")


@check("rsc_default")
def rsc_default(facts: Facts, name: str, value: str) -> Verdict:
    """The resource default (rsc_defaults) has this value: it applies to every resource."""
    found = facts.cib.rsc_defaults.get(name)
    if not same_value(found, value):
        own = [r.id for r in facts.cib.resources.values() if name in r.meta]
        hint = f" (set on {', '.join(own)} only: that is not a default)" if own and found is None else ""
        return fail(f"resource default {name} is {found if found is not None else 'not set'}, "
                    f"expected {value}{hint}")
    return ok(f"resource default {name}={found}")


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
    """The resource (or its group/clone) carries meta attribute name=value; rsc_defaults do not count."""
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    found, where = own_meta(cib, resource, name)
    if found is None:
        if name in cib.rsc_defaults:
            return fail(f"{name} is set in the resource defaults, not on '{resource}' itself")
        return fail(f"'{resource}' has no meta attribute {name}")
    if not same_value(found, value, kind):
        shown = format_ms(parse_ms(value) or 0) if kind == "duration" else value
        return fail(f"'{where}' has {name}={found}, expected {shown}")
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
    """The group holds exactly these members in this order, all running on one node."""
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
    return ok(f"group '{group}' = {', '.join(members)}, running on {nodes[0][0]}")


def _clone_of(cib: Cib, resource: str) -> str | None:
    return next((a for a in cib.ancestors(resource) if cib.resources[a].kind in ("clone", "master")), None)


@check("cloned_everywhere")
def cloned_everywhere(facts: Facts, resource: str) -> Verdict:
    """The resource is cloned and exactly one instance runs on every online node."""
    cib = facts.cib
    if resource not in cib.resources:
        return missing(cib, resource)
    clone = _clone_of(cib, resource)
    if clone is None:
        return fail(f"'{resource}' is not cloned")
    online = sorted(n for n in facts.status.online_nodes() if not facts.status.nodes[n].standby)
    running = [n for s in facts.status.instances(resource) if s.running and not s.failed for n in s.nodes]
    if sorted(running) != online:
        return fail(f"clone '{clone}' runs instances on {', '.join(sorted(running)) or 'no node'}; "
                    f"expected one on each online node ({', '.join(online)})")
    return ok(f"clone '{clone}' runs one instance of '{resource}' on each of {', '.join(online)}")


@check("promotable_one_promoted")
def promotable_one_promoted(facts: Facts, resource: str) -> Verdict:
    """A promotable clone with one instance Promoted and one Unpromoted on every other online node.

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
    if not facts.live and not promoted:
        scores = {n: {f"master-{resource}": "10"} for n in cib.nodes}
        status = simulate(facts.cib_xml, Scenario(attributes=scores)).status
    online = sorted(n for n in status.online_nodes() if not status.nodes[n].standby)
    roles = {n: s.role for s in status.instances(resource) if s.running for n in s.nodes}
    promoted = sorted(n for n, r in roles.items() if r == "Promoted")
    if len(promoted) != 1:
        return fail(f"{len(promoted)} instances of '{resource}' are promoted"
                    + (f" ({', '.join(promoted)})" if promoted else "") + ", expected exactly one")
    without = [n for n in online if roles.get(n) not in ("Promoted", "Unpromoted")]
    if without:
        return fail(f"no instance of '{resource}' runs on {', '.join(without)}")
    return ok(f"'{resource}' is promoted on {promoted[0]}, unpromoted on the other nodes")


# --- ACLs ----------------------------------------------------------------------------


def _same_path(path: str, expected: str) -> bool:
    """Equal XPaths up to a trailing slash; `//cib` is `/cib` (the CIB element is only ever the root)."""
    def norm(text: str) -> str:
        text = text.strip().rstrip("/")
        return "/cib" if text == "//cib" else text
    return norm(path) == norm(expected)


def _grants_read(permission: tuple[str, str | None, str | None, str | None], xpath: str) -> bool:
    """A read permission on xpath, written as an XPath or as an object-type (pacemaker reads
    object-type T as the XPath //T)."""
    kind, path, _ref, tag = permission
    if kind != "read":
        return False
    if path is not None:
        return _same_path(path, xpath)
    return tag is not None and _same_path(f"//{tag}", xpath)


@check("acl_user_role")
def acl_user_role(facts: Facts, user: str, role: str, xpath: str = "/cib") -> Verdict:
    """ACL user holds role; role grants read on xpath; none of the user's roles grants write."""
    acls = facts.cib.acls
    grant = acls.roles.get(role)
    if grant is None:
        return fail(f"no ACL role '{role}'")
    if not any(_grants_read(perm, xpath) for perm in grant.permissions):
        return fail(f"role '{role}' does not grant read on {xpath}")
    held = acls.targets.get(user)
    if held is None:
        return fail(f"no ACL user (acl_target) '{user}'")
    if role not in held:
        return fail(f"ACL user '{user}' does not hold role '{role}' (holds {', '.join(held) or 'none'})")
    writers = [r for r in held if any(p[0] == "write" for p in getattr(acls.roles.get(r), "permissions", ()))]
    if writers:
        return fail(f"ACL user '{user}' may write through role(s) {', '.join(writers)}: not read-only")
    return ok(f"ACL user '{user}' holds read-only role '{role}' (read {xpath})")
