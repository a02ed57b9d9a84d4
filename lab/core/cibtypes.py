"""The types of the CIB view (lab.core.cib builds them from XML): resources, constraints, rules,
nodes, ACLs, and the Cib itself with its lookups. Pure data, frozen."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from lab.core.scores import is_true

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
