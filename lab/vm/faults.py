"""Fault injection as data: exercises name a kind, a node and parameters; this registry applies them.

    faults = [{ kind = "stop-cluster", node = "last" }]
    faults = [{ kind = "stop-daemon", node = "node2", daemon = "pacemaker" }]
    faults = [{ kind = "break-config", node = "first", file = "/etc/corosync/corosync.conf",
                sed = "s/transport: knet/transport: udpu/", restart = "corosync" }]

Inside-node faults are shell scripts run as root over SSH; node-level faults (kill,
pause) go through libvirt. Every fault is undone by the next `lab start`/`lab reset`,
which reverts the snapshot.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.core.errors import ExerciseSchemaError

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


def _stop_cluster(_: Mapping[str, Any]) -> str:
    return "systemctl stop pacemaker && systemctl stop corosync\n"


def _stop_daemon(params: Mapping[str, Any]) -> str:
    return f"systemctl stop {shlex.quote(str(params.get('daemon', 'pacemaker')))}\n"


def _cut_link(_: Mapping[str, Any]) -> str:
    # Only corosync's traffic: SSH from the host (and the grader) still reaches the node.
    return (f"iptables -I INPUT -p udp --dport {COROSYNC_PORTS} -j DROP\n"
            f"iptables -I OUTPUT -p udp --dport {COROSYNC_PORTS} -j DROP\n")


def _break_config(params: Mapping[str, Any]) -> str:
    path = shlex.quote(str(params["file"]))
    lines = [f"sed -i -e {shlex.quote(str(params['sed']))} {path}"]
    if params.get("restart"):
        lines.append(f"systemctl restart {shlex.quote(str(params['restart']))} || true")
    return "\n".join(lines) + "\n"


REGISTRY: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("stop-cluster", "stop pacemaker and corosync on the node", script=_stop_cluster,
              takes_node_out=True),
    FaultKind("stop-daemon", "stop one daemon (param daemon, default pacemaker)", script=_stop_daemon),
    FaultKind("cut-link", "drop corosync traffic in and out of the node (iptables)", script=_cut_link,
              takes_node_out=True),
    FaultKind("break-config", "edit a file with sed (params file, sed; optional restart)",
              script=_break_config, required=("file", "sed")),
    FaultKind("kill-node", "power the node off hard (libvirt destroy)", domain_action="kill",
              takes_node_out=True),
    FaultKind("pause-node", "freeze the node (libvirt suspend)", domain_action="pause", takes_node_out=True),
)}


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
    """Validate an exercise's faults against the registry and the lab's nodes."""
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
