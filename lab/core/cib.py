"""A typed, read-only view of a CIB: what pacemaker will act on, not how it was typed.

pcs and crmsh write the same configuration with different ids and notations;
this view normalises what matters (agents, intervals in ms, scores, role names,
id-refs, inherited meta attributes) so that checks compare meanings, not text.
The types live in lab.core.cibtypes and are re-exported here; this module reads the XML.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from xml.etree.ElementTree import Element

from lab.core.cibtypes import (
    RESOURCE_TAGS,
    AclRole,
    Acls,
    Cib,
    Colocation,
    Expression,
    Location,
    NodeConfig,
    NVSet,
    Operation,
    Order,
    Resource,
    ResourceSet,
    Rule,
    merge_nvsets,
    normalise_role,
    recurring_monitors,
)
from lab.core.durations import parse_ms
from lab.core.errors import InputError
from lab.core.scores import parse_int, parse_score

__all__ = ["RESOURCE_TAGS", "AclRole", "Acls", "Cib", "Colocation", "Expression", "Location", "NVSet", "NodeConfig",
           "Operation", "Order", "Resource", "ResourceSet", "Rule", "cib_from_element", "merge_nvsets",
           "normalise_role", "recurring_monitors"]


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
