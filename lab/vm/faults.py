"""Fault injection: the kinds lab.engine.faultkinds declares (and the catalogue is checked
against when it loads), implemented here, on a running lab.

Inside-node faults are scripts (lab/scripts/faults/*.sh) run as root over SSH; node-level
faults (kill, pause) go through libvirt. Every fault is undone by the next `lab start`/`lab reset`,
which reverts the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.core.errors import ExerciseSchemaError
from lab.engine.faultkinds import FAULT_KINDS, FaultKindSpec
from lab.transport import scripts

COROSYNC_PORTS = "5404:5406"


@dataclass(frozen=True)
class Fault:
    """A resolved fault: which kind, on which node, with which parameters."""

    kind: str
    node: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class FaultKind:
    name: str
    description: str
    # Either a script run as root in the node ...
    script: Callable[[Mapping[str, Any]], str] | None = None
    # ... or an action on the domain: "kill" or "pause".
    domain_action: str | None = None
    required: tuple[str, ...] = ()
    # The node leaves the membership only after corosync's token timeout: `lab start`
    # waits until the other nodes see it offline, so the exercise starts really broken.
    takes_node_out: bool = False


def _with_defaults(spec: FaultKindSpec, params: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(params.get(name, spec.optional.get(name, ""))) for name in spec.params}


def _stop_cluster(_: Mapping[str, Any]) -> str:
    return scripts.render("faults/stop_cluster.sh")


def _stop_daemon(params: Mapping[str, Any]) -> str:
    return scripts.render("faults/stop_daemon.sh",
                          DAEMON=_with_defaults(FAULT_KINDS["stop-daemon"], params)["daemon"])


def _cut_link(_: Mapping[str, Any]) -> str:
    return scripts.render("faults/cut_link.sh", PORTS=COROSYNC_PORTS)


def _break_config(params: Mapping[str, Any]) -> str:
    values = _with_defaults(FAULT_KINDS["break-config"], params)
    return scripts.render("faults/break_config.sh", FILE=values["file"], SED=values["sed"],
                          RESTART=values["restart"])


# How each declared kind runs: a script, or an action on the libvirt domain.
_IMPLEMENTATIONS: dict[str, dict[str, Any]] = {
    "stop-cluster": {"script": _stop_cluster},
    "stop-daemon": {"script": _stop_daemon},
    "cut-link": {"script": _cut_link},
    "break-config": {"script": _break_config},
    "kill-node": {"domain_action": "kill"},
    "pause-node": {"domain_action": "pause"},
}

REGISTRY: dict[str, FaultKind] = {
    name: FaultKind(name, spec.description, required=spec.required, takes_node_out=spec.takes_node_out,
                    **_IMPLEMENTATIONS[name])
    for name, spec in FAULT_KINDS.items()}


def resolve_node(spec: str, nodes: Sequence[str]) -> str:
    """'first', 'last', or a node name."""
    if spec == "first":
        return nodes[0]
    if spec == "last":
        return nodes[-1]
    if spec in nodes:
        return spec
    raise ExerciseSchemaError(f"fault node '{spec}' is not first, last or one of {', '.join(nodes)}")


def resolve(raw: Sequence[Mapping[str, Any]], nodes: Sequence[str]) -> list[Fault]:
    """An exercise's faults on the lab's nodes (kinds and parameters were checked at load time;
    checked again here for faults that come from elsewhere, e.g. an exam's combined start)."""
    out = []
    for item in raw:
        kind = REGISTRY.get(str(item.get("kind")))
        if kind is None:
            raise ExerciseSchemaError(f"unknown fault kind '{item.get('kind')}' (known: {', '.join(REGISTRY)})")
        missing = [p for p in kind.required if p not in item]
        if missing:
            raise ExerciseSchemaError(f"fault {kind.name} needs {', '.join(missing)}")
        params = {k: v for k, v in item.items() if k not in ("kind", "node")}
        out.append(Fault(kind.name, resolve_node(str(item.get("node", "last")), nodes), params))
    return out
