"""What-if questions to pacemaker's own scheduler, on a copy of the CIB.

A constraint's honest test is its effect: take nodes away, pin another resource,
and ask `crm_simulate` where things would run. The copy is edited here (extra
location constraints, probe nodes, node attributes), simulated with every other
node online and quorum pretended, and read back through crm_mon's XML view.
Nothing here touches a live cluster: the input is always a temporary file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, tostring

from lab.errors import LabError
from lab.runner import run_local
from lab.status import Status, status_from_element
from lab.xmlsafe import parse_untrusted

PREFIX = "lab-sim-"


@dataclass(frozen=True)
class Scenario:
    """One what-if: which nodes are away, extra placement scores, probe nodes, attributes.

    `scores` are (resource, node, score text) location constraints added to the copy;
    `probes` are nodes added to the configuration (name -> permanent attributes);
    `attributes` are permanent node attributes set on existing nodes of the copy.
    """

    down: tuple[str, ...] = ()
    scores: tuple[tuple[str, str, str], ...] = ()
    probes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SimResult:
    status: Status
    graph: Element | None

    def actions(self) -> list[tuple[str, str, str, tuple[str, ...]]]:
        """(action id, resource id, operation, input action ids) for every graph action."""
        found = []
        if self.graph is None:
            return found
        for synapse in self.graph.iter("synapse"):
            inputs = tuple(a.get("id", "") for t in synapse.iter("trigger") for a in t)
            for action_set in synapse.iter("action_set"):
                for action in action_set:
                    prim = action.find("primitive")
                    if prim is not None:
                        rsc = prim.get("long-id") or prim.get("id", "")
                    else:  # pseudo actions of groups and clones: "webgroup_start_0"
                        rsc = action.get("operation_key", "").rsplit("_", 2)[0]
                    found.append((action.get("id", ""), rsc, action.get("operation", ""), inputs))
        return found


def node_names(root: Element) -> list[str]:
    return [n.get("uname") or n.get("id", "") for n in root.iterfind("configuration/nodes/node")]


def _edit(root: Element, scenario: Scenario) -> None:
    config = root.find("configuration")
    constraints = config.find("constraints")
    if constraints is None:
        constraints = SubElement(config, "constraints")
    for index, (rsc, node, score) in enumerate(scenario.scores):
        SubElement(constraints, "rsc_location",
                   {"id": f"{PREFIX}loc-{index}", "rsc": rsc, "node": node, "score": score})
    nodes = config.find("nodes")
    if nodes is None:
        nodes = SubElement(config, "nodes")
    for name, attrs in scenario.probes.items():
        node = SubElement(nodes, "node", {"id": name, "uname": name, "type": "member"})
        _add_attrs(node, f"{PREFIX}{name}", attrs)
    for name, attrs in scenario.attributes.items():
        node = next((n for n in nodes.findall("node") if (n.get("uname") or n.get("id")) == name), None)
        if node is not None:
            _add_attrs(node, f"{PREFIX}{name}", attrs, first=True)


def _add_attrs(node: Element, prefix: str, attrs: Mapping[str, str], first: bool = False) -> None:
    if not attrs:
        return
    nvset = Element("instance_attributes", {"id": f"{prefix}-attrs", "score": "1000000" if first else "0"})
    for key, value in attrs.items():
        SubElement(nvset, "nvpair", {"id": f"{prefix}-{key}", "name": key, "value": value})
    node.insert(0, nvset)


def simulate(cib_xml: str, scenario: Scenario = Scenario(), *, graph: bool = False) -> SimResult:
    """Run the scheduler on an edited copy of cib_xml; every node not `down` is online."""
    root = parse_untrusted(cib_xml, "CIB for simulation")
    _edit(root, scenario)
    nodes = node_names(root)
    with tempfile.TemporaryDirectory(prefix="lab-sim-") as tmp:
        source, out, graph_file = Path(tmp, "in.xml"), Path(tmp, "out.xml"), Path(tmp, "graph.xml")
        source.write_bytes(tostring(root, encoding="utf-8"))
        argv = ["crm_simulate", "--xml-file", str(source), "--simulate", "--quorum", "true",
                "--save-output", str(out)]
        if graph:
            argv += ["--save-graph", str(graph_file)]
        for node in nodes:
            argv += ["--node-down" if node in scenario.down else "--node-up", node]
        result = run_local(argv, timeout=120)
        if not result.ok or not out.exists():
            raise LabError(f"crm_simulate failed (exit {result.returncode}): {result.tail(3)}")
        mon = run_local(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"],
                        env={"CIB_file": str(out), "CIB_shadow": ""}, timeout=60)
        if not mon.stdout.strip().startswith("<"):
            raise LabError(f"crm_mon cannot read the simulated CIB: {mon.tail(2)}")
        status = status_from_element(parse_untrusted(mon.stdout, "crm_mon of the simulation"))
        graph_el = None
        if graph and graph_file.exists():
            graph_el = parse_untrusted(graph_file.read_text(encoding="utf-8"), "transition graph")
    return SimResult(status, graph_el)


def only_up(cib_xml: str, keep: Sequence[str], **kwargs: object) -> Scenario:
    """A scenario where every configured node but `keep` is away."""
    root = parse_untrusted(cib_xml, "CIB for simulation")
    return Scenario(down=tuple(n for n in node_names(root) if n not in keep), **kwargs)  # type: ignore[arg-type]
