"""What-if questions to pacemaker's own scheduler, on an edited copy of the CIB.

A constraint's honest test is its effect: take nodes away, pin another resource,
add a node with other attributes, let time pass, and ask `crm_simulate` (through
lab.gather.pacemaker) where things would run. The copy is edited here (extra location
constraints, probe nodes and resources, node attributes, no status for "before
anything ran"), simulated with every other node online, and cached per edited text.
Nothing here touches a live cluster: the input is always a temporary file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, SubElement, tostring

from lab.core.xmlsafe import parse_untrusted
from lab.gather import pacemaker
from lab.gather.pacemaker import FAR_FUTURE, Simulation

PREFIX = "lab-sim-"
__all__ = ["FAR_FUTURE", "Scenario", "Simulation", "edited", "node_names", "simulate"]


@dataclass(frozen=True)
class Scenario:
    """One what-if: nodes away, extra scores, probe nodes/resources, attributes, a date.

    `scores` are (resource, node, score text) location constraints added to the copy;
    `probes` are nodes added to the configuration (name -> permanent attributes);
    `attributes` are permanent node attributes set on existing nodes of the copy;
    `resources` are probe primitives added (id -> "class:provider:type");
    `fresh` drops the status section (nothing has run yet: no stickiness, no history);
    `started` drops every target-role (which operations would run if everything were started);
    `no_locations` drops every location constraint (to compare a resource's scores without them);
    `date` is the scheduler's clock (None: now); `quorum` whether the partition is quorate.
    """

    down: tuple[str, ...] = ()
    scores: tuple[tuple[str, str, str], ...] = ()
    probes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    resources: Mapping[str, str] = field(default_factory=dict)
    fresh: bool = False
    started: bool = False
    no_locations: bool = False
    date: str | None = None
    quorum: bool = True


def node_names(root: Element) -> list[str]:
    return [n.get("uname") or n.get("id", "") for n in root.iterfind("configuration/nodes/node")]


def _child(parent: Element, tag: str) -> Element:
    """PARENT's first TAG element, added when it has none."""
    found = parent.find(tag)
    return found if found is not None else SubElement(parent, tag)


def _edit(root: Element, scenario: Scenario) -> None:
    config = _child(root, "configuration")
    _edit_constraints(_child(config, "constraints"), scenario)
    _edit_nodes(_child(config, "nodes"), scenario)
    resources = _child(config, "resources")
    _add_resources(resources, scenario.resources)
    if scenario.started:
        for parent in [*resources.iter(), *config.iterfind("rsc_defaults//")]:
            for pair in parent.findall("nvpair"):
                if pair.get("name") == "target-role":
                    parent.remove(pair)
    if scenario.fresh:
        status = root.find("status")
        if status is not None:
            root.remove(status)


def _edit_constraints(constraints: Element, scenario: Scenario) -> None:
    if scenario.no_locations:
        for con in constraints.findall("rsc_location"):
            constraints.remove(con)
    for index, (rsc, node, score) in enumerate(scenario.scores):
        SubElement(constraints, "rsc_location",
                   {"id": f"{PREFIX}loc-{index}", "rsc": rsc, "node": node, "score": score})


def _edit_nodes(nodes: Element, scenario: Scenario) -> None:
    for name, attrs in scenario.probes.items():
        node = SubElement(nodes, "node", {"id": name, "uname": name, "type": "member"})
        _add_attrs(node, f"{PREFIX}{name}", attrs)
    for name, attrs in scenario.attributes.items():
        node = next((n for n in nodes.findall("node") if (n.get("uname") or n.get("id")) == name), None)
        if node is not None:
            _add_attrs(node, f"{PREFIX}{name}", attrs, first=True)


def _add_resources(resources: Element, agents: Mapping[str, str]) -> None:
    for rsc_id, agent in agents.items():
        parts = agent.split(":")
        attrs = {"id": rsc_id, "class": parts[0], "type": parts[-1]}
        if len(parts) == 3:
            attrs["provider"] = parts[1]
        SubElement(resources, "primitive", attrs)


def _add_attrs(node: Element, prefix: str, attrs: Mapping[str, str], first: bool = False) -> None:
    if not attrs:
        return
    nvset = Element("instance_attributes", {"id": f"{prefix}-attrs", "score": "1000000" if first else "0"})
    for key, value in attrs.items():
        SubElement(nvset, "nvpair", {"id": f"{prefix}-{key}", "name": key, "value": value})
    node.insert(0, nvset)


def edited(cib_xml: str, scenario: Scenario) -> tuple[str, list[str]]:
    """The scenario's copy of the CIB text and the node names it has."""
    root = parse_untrusted(cib_xml, "CIB for simulation")
    _edit(root, scenario)
    return tostring(root, encoding="unicode"), node_names(root)


def simulate(cib_xml: str, scenario: Scenario = Scenario(), *, graph: bool = False) -> Simulation:
    """Run the scheduler on an edited copy of cib_xml; every node not `down` is online."""
    text, nodes = edited(cib_xml, scenario)
    return pacemaker.simulate(text, up=[n for n in nodes if n not in scenario.down],
                              down=[n for n in nodes if n in scenario.down],
                              date=scenario.date, quorum=scenario.quorum, graph=graph)


def only_up(cib_xml: str, keep: Sequence[str], **kwargs: object) -> Scenario:
    """A scenario where every configured node but `keep` is away."""
    root = parse_untrusted(cib_xml, "CIB for simulation")
    return Scenario(down=tuple(n for n in node_names(root) if n not in keep), **kwargs)  # type: ignore[arg-type]
