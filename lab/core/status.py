"""A typed view of `crm_mon --output-as=xml`: where pacemaker says things run.

Resource state is taken from crm_mon, never re-derived from the CIB's status
history: an old successful monitor record stays after a stop or a move.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from xml.etree.ElementTree import Element

from lab.core.cib import normalise_role
from lab.core.errors import InputError, PacemakerError
from lab.core.scores import INFINITY, is_true, parse_score


@dataclass(frozen=True)
class NodeState:
    name: str
    online: bool
    standby: bool
    standby_onfail: bool
    maintenance: bool
    pending: bool
    unclean: bool
    shutdown: bool
    is_dc: bool
    type: str


@dataclass(frozen=True)
class ResourceState:
    """One resource instance as crm_mon reports it (a clone lists one per instance)."""

    id: str
    agent: str
    role: str
    target_role: str | None
    active: bool
    orphaned: bool
    blocked: bool
    managed: bool
    failed: bool
    nodes: tuple[str, ...]
    parents: tuple[str, ...]  # enclosing group/clone/bundle ids, innermost first

    @property
    def base_id(self) -> str:
        """The configured id: anonymous clone instances are reported as 'id:N'."""
        return self.id.split(":", 1)[0]

    @property
    def running(self) -> bool:
        return self.active and self.role in ("Started", "Promoted", "Unpromoted") and bool(self.nodes)


@dataclass(frozen=True)
class Failure:
    resource: str
    node: str
    task: str
    exit_reason: str


@dataclass(frozen=True)
class Status:
    nodes: Mapping[str, NodeState]
    resources: tuple[ResourceState, ...]
    failures: tuple[Failure, ...]
    dc: str | None
    quorate: bool | None  # None when no DC reports it (a saved CIB)
    cluster_options: Mapping[str, str]
    fail_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (resource, node) -> count

    def failures_of(self, rsc_id: str) -> list[str]:
        """Failed actions and fail counts still recorded for a resource, as readable text."""
        found = [f"{f.task} failed on {f.node}" + (f" ({f.exit_reason})" if f.exit_reason else "")
                 for f in self.failures if f.resource.split(":", 1)[0] == rsc_id]
        found += [f"fail-count {count} on {node}" for (rsc, node), count in self.fail_counts.items()
                  if rsc == rsc_id]
        return found

    def instances(self, rsc_id: str) -> list[ResourceState]:
        """All instances of a configured resource id (primitive or clone instance)."""
        return [r for r in self.resources if r.base_id == rsc_id]

    def running_nodes(self, rsc_id: str) -> list[str]:
        return [n for r in self.instances(rsc_id) if r.running for n in r.nodes]

    def online_nodes(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.online and not n.pending]


def status_from_element(root: Element) -> Status:
    """Build the view from crm_mon's XML (pacemaker 2.0+ <pacemaker-result> or 1.1 <crm_mon>)."""
    if root.tag not in ("pacemaker-result", "crm_mon"):
        raise InputError(f"crm_mon output has root <{root.tag}>, expected <pacemaker-result>")
    problem = result_error(root)
    if problem is not None:
        raise InputError(f"crm_mon reported an error: {problem}")
    nodes = {}
    for node in root.iterfind("nodes/node"):
        name = node.get("name", "")
        nodes[name] = NodeState(
            name=name,
            online=is_true(node.get("online")),
            standby=is_true(node.get("standby")),
            standby_onfail=is_true(node.get("standby_onfail")),
            maintenance=is_true(node.get("maintenance")),
            pending=is_true(node.get("pending")),
            unclean=is_true(node.get("unclean")),
            shutdown=is_true(node.get("shutdown")),
            is_dc=is_true(node.get("is_dc")),
            type=node.get("type", "member"),
        )
    resources = tuple(_walk(root.find("resources"), ()))
    failures = tuple(
        Failure(
            resource=_failure_resource(f),
            node=f.get("node", ""),
            task=f.get("task", ""),
            exit_reason=f.get("exitreason", ""),
        )
        for f in root.iterfind("failures/failure")
    )
    fail_counts: dict[tuple[str, str], int] = {}
    for node in root.iterfind("node_history/node"):
        for history in node.iterfind("resource_history"):
            count = parse_score(history.get("fail-count"))  # a score: INFINITY after a failed start
            if count is not None and count > 0:
                key = (history.get("id", "").split(":", 1)[0], node.get("name", ""))
                fail_counts[key] = min(INFINITY, fail_counts.get(key, 0) + count)
    dc_el = root.find("summary/current_dc")
    dc = None
    quorate = None
    if dc_el is not None and is_true(dc_el.get("present")):
        dc = dc_el.get("name")
        quorate = is_true(dc_el.get("with_quorum"))
    options_el = root.find("summary/cluster_options")
    options = dict(options_el.attrib) if options_el is not None else {}
    return Status(
        nodes=MappingProxyType(nodes),
        resources=resources,
        failures=failures,
        dc=dc,
        quorate=quorate,
        cluster_options=MappingProxyType(options),
        fail_counts=MappingProxyType(fail_counts),
    )


def result_error(root: Element) -> str | None:
    """What crm_mon says went wrong, or None for a real cluster view.

    crm_mon reports its own failures in the same XML: <status code="N" message="...">
    with <errors><error>...</error></errors>, and no <summary>. A CIB that fails schema
    validation gives exit 0, code 0, message "OK" and an <error>; read as a view, that
    would be an empty cluster where nothing runs.
    """
    # (No <summary> is no error here: views built from crm_simulate's output have none.)
    status = root.find("status")
    errors = [" ".join((e.text or "").split()) for e in root.iterfind("status/errors/error")]
    errors = [e for e in errors if e]
    code = status.get("code", "0").strip() if status is not None else "0"
    if code != "0" or errors:
        message = status.get("message", "") if status is not None else ""
        parts = [p for p in (f"code {code}" if code != "0" else "", message if code != "0" else "",
                             *errors[:3]) if p]
        return "; ".join(parts)[:500]
    return None


def _failure_resource(failure: Element) -> str:
    """The resource of a failed action: op_key is RSC_TASK_INTERVAL and both may hold '_'."""
    op_key = failure.get("op_key", "")
    suffix = f"_{failure.get('task', '')}_{failure.get('interval', '0')}"
    if failure.get("task") and op_key.endswith(suffix):
        return op_key[: -len(suffix)]
    return op_key.rsplit("_", 2)[0]


def _walk(element: Element | None, parents: tuple[str, ...]) -> Iterator[ResourceState]:
    if element is None:
        return
    for child in element:
        if child.tag == "resource":
            yield ResourceState(
                id=child.get("id", ""),
                agent=child.get("resource_agent", ""),
                role=normalise_role(child.get("role", "")) or "",
                target_role=normalise_role(child.get("target_role")),
                active=is_true(child.get("active")),
                orphaned=is_true(child.get("orphaned")),
                blocked=is_true(child.get("blocked")),
                managed=is_true(child.get("managed", "true")),
                failed=is_true(child.get("failed")),
                nodes=tuple(n.get("name", "") for n in child.findall("node")),
                parents=parents,
            )
        elif child.tag in ("group", "clone", "bundle", "replica"):
            yield from _walk(child, (child.get("id", ""), *parents))


def revised_status(root: Element) -> Status:
    """The cluster status after the transition, from crm_simulate's XML output."""
    revised = root.find("revised_cluster_status")
    if revised is None:
        raise PacemakerError("crm_simulate printed no revised cluster status")
    view = Element("pacemaker-result")
    view.extend(list(revised))
    return status_from_element(view)
