"""A typed, read-only view of a CIB: what pacemaker will act on, not how it was typed.

pcs and crmsh write the same configuration with different ids and notations;
this view normalises what matters (agents, intervals in ms, scores, role names,
id-refs, inherited meta attributes) so that checks compare meanings, not text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from xml.etree.ElementTree import Element

from lab.core.durations import parse_ms
from lab.core.errors import InputError
from lab.core.scores import parse_int, parse_score

RESOURCE_TAGS = ("primitive", "group", "clone", "master", "bundle")
_ROLE_NAMES = {"Master": "Promoted", "Slave": "Unpromoted"}
_EMPTY: Mapping[str, str] = MappingProxyType({})


def normalise_role(role: str | None) -> str | None:
    """Pacemaker 2.1 renamed Master/Slave to Promoted/Unpromoted; both mean the same."""
    if role is None:
        return None
    return _ROLE_NAMES.get(role, role)


@dataclass(frozen=True)
class Expression:
    attribute: str
    operation: str
    value: str | None
    type: str | None


@dataclass(frozen=True)
class Rule:
    id: str
    score: int | None
    score_attribute: str | None
    boolean_op: str
    role: str | None
    expressions: tuple[Expression, ...]
    rules: tuple[Rule, ...]
    has_date_expression: bool


@dataclass(frozen=True)
class NVSet:
    """One meta/instance attribute set; `rule` set means it applies only sometimes."""

    id: str
    values: Mapping[str, str]
    rule: Rule | None
    score: int


@dataclass(frozen=True)
class Operation:
    id: str
    name: str
    interval_text: str
    interval_ms: int | None
    role: str | None
    enabled: bool
    attributes: Mapping[str, str]

    @property
    def recurring(self) -> bool:
        return bool(self.interval_ms)


def recurring_monitors(ops: tuple[Operation, ...], roles: tuple[str | None, ...] | None = None) -> list[Operation]:
    """Enabled recurring monitor operations, optionally only those for the given roles."""
    return [op for op in ops if op.name == "monitor" and op.enabled and op.recurring
            and (roles is None or op.role in roles)]


def _resolved_agent(agent: str) -> str:
    unit = agent.removeprefix("systemd:")
    return agent + ".service" if unit != agent and "." not in unit else agent


@dataclass(frozen=True)
class Resource:
    id: str
    kind: str  # primitive, group, clone, master, bundle, template
    parent: str | None
    children: tuple[str, ...]
    standard: str | None = None
    provider: str | None = None
    type: str | None = None
    template: str | None = None
    meta_sets: tuple[NVSet, ...] = ()
    instance_sets: tuple[NVSet, ...] = ()
    operations: tuple[Operation, ...] = ()

    @property
    def agent(self) -> str | None:
        """class:provider:type as pacemaker names agents (provider only for ocf)."""
        if not self.type:
            return None
        parts = [self.standard or ""]
        if self.provider:
            parts.append(self.provider)
        parts.append(self.type)
        return ":".join(parts)

    def uses_agent(self, agent: str) -> bool:
        """This agent, as pacemaker resolves names: a systemd type names a unit, and pacemaker
        adds `.service` to one without a suffix (systemd:cron is systemd:cron.service)."""
        return self.agent is not None and _resolved_agent(self.agent) == _resolved_agent(agent)

    @property
    def meta(self) -> Mapping[str, str]:
        """Unconditional meta attributes set on this resource itself."""
        return merge_nvsets(self.meta_sets)

    @property
    def params(self) -> Mapping[str, str]:
        return merge_nvsets(self.instance_sets)

    @property
    def is_promotable(self) -> bool:
        from lab.core.scores import is_true

        return self.kind == "master" or (
            self.kind == "clone" and is_true(self.meta.get("promotable"))
        )


@dataclass(frozen=True)
class ResourceSet:
    id: str
    resources: tuple[str, ...]
    sequential: bool
    require_all: bool
    role: str | None
    action: str | None
    kind: str | None
    score: int | None


@dataclass(frozen=True)
class Location:
    id: str
    rsc: str | None
    rsc_pattern: str | None
    role: str | None
    node: str | None
    score: int | None
    rules: tuple[Rule, ...]
    resource_sets: tuple[ResourceSet, ...]


@dataclass(frozen=True)
class Colocation:
    id: str
    rsc: str | None
    with_rsc: str | None
    score: int | None
    rsc_role: str | None
    with_rsc_role: str | None
    resource_sets: tuple[ResourceSet, ...]

    def pairs(self) -> Iterator[tuple[str, str]]:
        """(dependent, primary) pairs this constraint means, sets expanded."""
        if self.rsc and self.with_rsc:
            yield self.rsc, self.with_rsc
            return
        sets = self.resource_sets
        for rset in sets:
            if rset.sequential:
                for before, after in zip(rset.resources, rset.resources[1:], strict=False):
                    yield after, before
        for earlier, later in zip(sets, sets[1:], strict=False):
            for dependent in earlier.resources:
                for primary in later.resources:
                    yield dependent, primary


@dataclass(frozen=True)
class Order:
    id: str
    first: str | None
    then: str | None
    first_action: str
    then_action: str
    kind: str  # Mandatory, Optional, Serialize
    symmetrical: bool
    resource_sets: tuple[ResourceSet, ...]

    def pairs(self) -> Iterator[tuple[str, str]]:
        """(first, then) pairs this constraint means, sets expanded."""
        if self.first and self.then:
            yield self.first, self.then
            return
        sets = self.resource_sets
        for rset in sets:
            if rset.sequential:
                yield from zip(rset.resources, rset.resources[1:], strict=False)
        for earlier, later in zip(sets, sets[1:], strict=False):
            for first in earlier.resources:
                for then in later.resources:
                    yield first, then


@dataclass(frozen=True)
class NodeConfig:
    id: str
    uname: str
    type: str
    attribute_sets: tuple[NVSet, ...]

    @property
    def attributes(self) -> Mapping[str, str]:
        return merge_nvsets(self.attribute_sets)


@dataclass(frozen=True)
class AclRole:
    id: str
    permissions: tuple[tuple[str, str | None, str | None, str | None], ...]
    """(kind read/write/deny, xpath, reference, object-type) per permission."""


@dataclass(frozen=True)
class Acls:
    roles: Mapping[str, AclRole]
    targets: Mapping[str, tuple[str, ...]]  # user -> role ids
    groups: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Cib:
    validate_with: str
    have_quorum: bool | None
    resources: Mapping[str, Resource]
    templates: Mapping[str, Resource]
    cluster_property_sets: tuple[NVSet, ...]
    rsc_defaults_sets: tuple[NVSet, ...]
    op_defaults_sets: tuple[NVSet, ...]
    nodes: Mapping[str, NodeConfig]
    transient_attributes: Mapping[str, Mapping[str, str]]
    locations: tuple[Location, ...]
    colocations: tuple[Colocation, ...]
    orders: tuple[Order, ...]
    acls: Acls
    has_status: bool
    fencing_levels: tuple[tuple[str, int, str], ...] = field(default=())

    @property
    def properties(self) -> Mapping[str, str]:
        return merge_nvsets(self.cluster_property_sets)

    @property
    def rsc_defaults(self) -> Mapping[str, str]:
        return merge_nvsets(self.rsc_defaults_sets)

    @property
    def op_defaults(self) -> Mapping[str, str]:
        return merge_nvsets(self.op_defaults_sets)

    def effective_meta(self, rsc_id: str) -> Mapping[str, str]:
        """Meta attributes as pacemaker applies them: own, then each parent's, then defaults."""
        merged: dict[str, str] = {}
        current: str | None = rsc_id
        while current is not None and current in self.resources:
            rsc = self.resources[current]
            for key, value in rsc.meta.items():
                merged.setdefault(key, value)
            current = rsc.parent
        for key, value in self.rsc_defaults.items():
            merged.setdefault(key, value)
        return MappingProxyType(merged)

    def primitives(self) -> Iterator[Resource]:
        return (r for r in self.resources.values() if r.kind == "primitive")

    def ancestors(self, rsc_id: str) -> list[str]:
        chain = []
        current = self.resources[rsc_id].parent if rsc_id in self.resources else None
        while current is not None:
            chain.append(current)
            current = self.resources[current].parent
        return chain

    def operations_of(self, rsc_id: str) -> tuple[Operation, ...]:
        """A primitive's operations, with those it takes from its template."""
        rsc = self.resources[rsc_id]
        ops = list(rsc.operations)
        template = self.templates.get(rsc.template or "")
        if template is not None:
            own = {(op.name, op.interval_ms, op.role) for op in ops}
            ops += [
                op for op in template.operations if (op.name, op.interval_ms, op.role) not in own
            ]
        return tuple(ops)

    def constraints_on(self, rsc_id: str) -> list[Location | Colocation | Order]:
        """Every constraint that names rsc_id directly or in a resource set."""
        found: list[Location | Colocation | Order] = []
        for con in (*self.locations, *self.colocations, *self.orders):
            names = {getattr(con, a, None) for a in ("rsc", "with_rsc", "first", "then")}
            for rset in con.resource_sets:
                names.update(rset.resources)
            if rsc_id in names:
                found.append(con)
        return found


def merge_nvsets(sets: tuple[NVSet, ...]) -> Mapping[str, str]:
    """Unconditional values: higher-score sets first, and the first value of a name wins."""
    merged: dict[str, str] = {}
    for nvset in sorted(sets, key=lambda s: -s.score):
        if nvset.rule is not None:
            continue
        for key, value in nvset.values.items():
            merged.setdefault(key, value)
    return MappingProxyType(merged)


class _Parser:
    """Builds a Cib from an already safely-parsed <cib> element."""

    def __init__(self, root: Element) -> None:
        self.root = root
        self.by_id: dict[str, Element] = {}
        for element in root.iter():
            elem_id = element.get("id")
            if elem_id is not None and element.get("id-ref") is None:
                self.by_id.setdefault(elem_id, element)

    def deref(self, element: Element) -> Element:
        ref = element.get("id-ref")
        if ref is None:
            return element
        target = self.by_id.get(ref)
        if target is None:
            raise InputError(f"CIB refers to id-ref '{ref}' that does not exist")
        return target

    def nvsets(self, parent: Element | None, tag: str) -> tuple[NVSet, ...]:
        if parent is None:
            return ()
        found = []
        for raw in parent.findall(tag):
            element = self.deref(raw)
            values: dict[str, str] = {}
            for pair in element.findall("nvpair"):
                pair = self.deref(pair)
                name = pair.get("name")
                if name is not None:
                    values.setdefault(name, pair.get("value", ""))
            rule_el = element.find("rule")
            found.append(
                NVSet(
                    id=element.get("id", ""),
                    values=MappingProxyType(values),
                    rule=self.rule(rule_el) if rule_el is not None else None,
                    score=parse_score(element.get("score")) or 0,
                )
            )
        return tuple(found)

    def rule(self, raw: Element, within: tuple[str, ...] = ()) -> Rule:
        element = self.deref(raw)
        rule_id = element.get("id", "")
        if rule_id and rule_id in within:  # <rule id-ref> to an enclosing rule: no end to it
            raise InputError(f"CIB rule '{rule_id}' contains itself through an id-ref")
        within = (*within, rule_id)
        return Rule(
            id=element.get("id", ""),
            score=parse_score(element.get("score")),
            score_attribute=element.get("score-attribute"),
            boolean_op=element.get("boolean-op", "and"),
            role=normalise_role(element.get("role")),
            expressions=tuple(
                Expression(
                    attribute=e.get("attribute", ""),
                    operation=e.get("operation", ""),
                    value=e.get("value"),
                    type=e.get("type"),
                )
                for e in (self.deref(x) for x in element.findall("expression"))
            ),
            rules=tuple(self.rule(r, within) for r in element.findall("rule")),
            has_date_expression=element.find("date_expression") is not None,
        )

    def operations(self, element: Element) -> tuple[Operation, ...]:
        ops_el = element.find("operations")
        if ops_el is None:
            return ()
        ops_el = self.deref(ops_el)
        ops = []
        for raw in ops_el.findall("op"):
            op = self.deref(raw)
            meta = merge_nvsets(self.nvsets(op, "meta_attributes"))
            enabled_text = op.get("enabled", meta.get("enabled"))
            interval = op.get("interval", meta.get("interval", "0"))
            ops.append(
                Operation(
                    id=op.get("id", ""),
                    name=op.get("name", ""),
                    interval_text=interval,
                    interval_ms=parse_ms(interval),
                    role=normalise_role(op.get("role")),
                    enabled=enabled_text is None
                    or enabled_text.strip().lower() not in ("false", "off", "no", "n", "0"),
                    attributes=MappingProxyType(dict(op.attrib)),
                )
            )
        return tuple(ops)

    def resources(self) -> tuple[dict[str, Resource], dict[str, Resource]]:
        section = self.root.find("configuration/resources")
        resources: dict[str, Resource] = {}
        templates: dict[str, Resource] = {}
        if section is None:
            return resources, templates
        for element in section:
            if element.tag == "template":
                templates[element.get("id", "")] = self._resource(element, None, "template")
            elif element.tag in RESOURCE_TAGS:
                self._add_resource(element, None, resources)
        return resources, templates

    def _add_resource(self, element: Element, parent: str | None, out: dict[str, Resource]) -> None:
        kind = element.tag
        rsc = self._resource(element, parent, kind)
        out[rsc.id] = rsc
        for child in element:
            if child.tag in RESOURCE_TAGS:
                self._add_resource(child, rsc.id, out)

    def _resource(self, element: Element, parent: str | None, kind: str) -> Resource:
        children = tuple(c.get("id", "") for c in element if c.tag in RESOURCE_TAGS)
        template_id = element.get("template")
        standard, provider, agent_type = element.get("class"), element.get("provider"), element.get("type")
        if template_id and not agent_type:
            template = next(
                (t for t in self.root.iterfind("configuration/resources/template")
                 if t.get("id") == template_id),
                None,
            )
            if template is not None:
                standard, provider, agent_type = (
                    template.get("class"), template.get("provider"), template.get("type"),
                )
        return Resource(
            id=element.get("id", ""),
            kind=kind,
            parent=parent,
            children=children,
            standard=standard,
            provider=provider,
            type=agent_type,
            template=template_id,
            meta_sets=self.nvsets(element, "meta_attributes"),
            instance_sets=self.nvsets(element, "instance_attributes"),
            operations=self.operations(element),
        )

    def resource_sets(self, element: Element) -> tuple[ResourceSet, ...]:
        sets = []
        for raw in element.findall("resource_set"):
            rset = self.deref(raw)
            sets.append(
                ResourceSet(
                    id=rset.get("id", ""),
                    resources=tuple(r.get("id", "") for r in rset.findall("resource_ref")),
                    sequential=rset.get("sequential", "true").lower() in ("true", "1", "yes", "on", "y"),
                    require_all=rset.get("require-all", "true").lower() in ("true", "1", "yes", "on", "y"),
                    role=normalise_role(rset.get("role")),
                    action=rset.get("action"),
                    kind=rset.get("kind"),
                    score=parse_score(rset.get("score")),
                )
            )
        return tuple(sets)

    def constraints(self) -> tuple[tuple[Location, ...], tuple[Colocation, ...], tuple[Order, ...]]:
        section = self.root.find("configuration/constraints")
        locations: list[Location] = []
        colocations: list[Colocation] = []
        orders: list[Order] = []
        if section is None:
            return (), (), ()
        for element in section:
            if element.tag == "rsc_location":
                locations.append(
                    Location(
                        id=element.get("id", ""),
                        rsc=element.get("rsc"),
                        rsc_pattern=element.get("rsc-pattern"),
                        role=normalise_role(element.get("role")),
                        node=element.get("node"),
                        score=parse_score(element.get("score")),
                        rules=tuple(self.rule(r) for r in element.findall("rule")),
                        resource_sets=self.resource_sets(element),
                    )
                )
            elif element.tag == "rsc_colocation":
                colocations.append(
                    Colocation(
                        id=element.get("id", ""),
                        rsc=element.get("rsc"),
                        with_rsc=element.get("with-rsc"),
                        score=parse_score(element.get("score")),
                        rsc_role=normalise_role(element.get("rsc-role")),
                        with_rsc_role=normalise_role(element.get("with-rsc-role")),
                        resource_sets=self.resource_sets(element),
                    )
                )
            elif element.tag == "rsc_order":
                orders.append(self._order(element))
        return tuple(locations), tuple(colocations), tuple(orders)

    def _order(self, element: Element) -> Order:
        kind = element.get("kind")
        if kind is None:
            # Older CIBs express optional ordering as score 0.
            score = parse_score(element.get("score"))
            kind = "Optional" if score == 0 else "Mandatory"
        return Order(
            id=element.get("id", ""),
            first=element.get("first"),
            then=element.get("then"),
            first_action=element.get("first-action", "start"),
            then_action=element.get("then-action", element.get("first-action", "start")),
            kind=kind,
            symmetrical=element.get("symmetrical", "true" if kind != "Serialize" else "false")
            .lower() in ("true", "1", "yes", "on", "y"),
            resource_sets=self.resource_sets(element),
        )

    def nodes(self) -> tuple[dict[str, NodeConfig], dict[str, str]]:
        nodes: dict[str, NodeConfig] = {}
        id_to_uname: dict[str, str] = {}
        for element in self.root.iterfind("configuration/nodes/node"):
            uname = element.get("uname") or element.get("id", "")
            id_to_uname[element.get("id", uname)] = uname
            nodes[uname] = NodeConfig(
                id=element.get("id", ""),
                uname=uname,
                type=element.get("type", "member"),
                attribute_sets=self.nvsets(element, "instance_attributes"),
            )
        return nodes, id_to_uname

    def transient(self, id_to_uname: Mapping[str, str]) -> dict[str, Mapping[str, str]]:
        found: dict[str, Mapping[str, str]] = {}
        for state in self.root.iterfind("status/node_state"):
            uname = state.get("uname") or id_to_uname.get(state.get("id", ""), state.get("id", ""))
            transient = state.find("transient_attributes")
            found[uname] = merge_nvsets(self.nvsets(transient, "instance_attributes"))
        return found

    def acls(self) -> Acls:
        roles: dict[str, AclRole] = {}
        targets: dict[str, tuple[str, ...]] = {}
        groups: dict[str, tuple[str, ...]] = {}
        section = self.root.find("configuration/acls")
        if section is None:
            return Acls(MappingProxyType(roles), MappingProxyType(targets), MappingProxyType(groups))
        for role in section.findall("acl_role"):
            perms = []
            for perm in role:
                if perm.tag == "acl_permission":
                    perms.append((perm.get("kind", ""), perm.get("xpath"), perm.get("reference"),
                                  perm.get("object-type")))
                elif perm.tag in ("read", "write", "deny"):  # pacemaker-1.x ACL schema
                    perms.append((perm.tag, perm.get("xpath"), perm.get("ref"), perm.get("tag")))
            roles[role.get("id", "")] = AclRole(role.get("id", ""), tuple(perms))
        for tag, out in (("acl_target", targets), ("acl_user", targets), ("acl_group", groups)):
            for element in section.findall(tag):
                name = element.get("name") or element.get("id", "")
                refs = tuple(r.get("id", "") for r in element if r.tag in ("role", "role_ref"))
                out[name] = out.get(name, ()) + refs
        return Acls(MappingProxyType(roles), MappingProxyType(targets), MappingProxyType(groups))


def cib_from_element(root: Element) -> Cib:
    """Build the view; raise InputError when the XML is not a CIB."""
    if root.tag != "cib" or root.find("configuration") is None:
        raise InputError(
            f"XML is not a CIB (root <{root.tag}>, expected <cib> with <configuration>); "
            "save one with 'cibadmin --query > cib.xml'"
        )
    parser = _Parser(root)
    resources, templates = parser.resources()
    locations, colocations, orders = parser.constraints()
    nodes, id_to_uname = parser.nodes()
    config = root.find("configuration")
    have_quorum = root.get("have-quorum")
    levels = tuple(
        (lvl.get("target", ""), index, lvl.get("devices", ""))
        for lvl in root.iterfind("configuration/fencing-topology/fencing-level")
        if (index := _level_index(lvl.get("index"))) is not None
    )
    return Cib(
        validate_with=root.get("validate-with", ""),
        have_quorum=None if have_quorum is None else have_quorum in ("1", "true"),
        resources=MappingProxyType(resources),
        templates=MappingProxyType(templates),
        cluster_property_sets=parser.nvsets(config.find("crm_config"), "cluster_property_set"),
        rsc_defaults_sets=parser.nvsets(config.find("rsc_defaults"), "meta_attributes"),
        op_defaults_sets=parser.nvsets(config.find("op_defaults"), "meta_attributes"),
        nodes=MappingProxyType(nodes),
        transient_attributes=MappingProxyType(parser.transient(id_to_uname)),
        locations=locations,
        colocations=colocations,
        orders=orders,
        acls=parser.acls(),
        has_status=root.find("status") is not None,
        fencing_levels=levels,
    )


def _level_index(text: str | None) -> int | None:
    """A fencing level's index as pacemaker's fencer takes it: 1 to 9, else the level is ignored."""
    index = parse_int(text, 10)
    return index if index is not None and 1 <= index <= 9 else None
