"""The `on NODE:` command language of start states and reference solutions: commands run as
root on the first node, `on node2: ...` elsewhere, `on all: ...` on every node at once."""

from __future__ import annotations

import re
from collections.abc import Sequence

from lab.core.errors import UsageError
from lab.engine.commands import command_context, render_command
from lab.transport.ssh import SSHNode
from lab.vm import provision
from lab.vm.labstate import Lab
from lab.vm.network import lab_values, link1_addresses
from lab.vm.nodes import parallel

_ON = re.compile(r"on ([A-Za-z0-9_.-]+):\s*(.*)$", re.S)


class UnknownNode(UsageError):
    """A command names a node the lab does not have."""

    def __init__(self, what: str, node: str) -> None:
        super().__init__(f"{what}: command for unknown node '{node}'")
        self.node = node


def context(lab: Lab) -> dict[str, str]:
    """The placeholders an exercise's commands may use, with this lab's values."""
    link1 = link1_addresses(lab)
    return lab_values(lab, command_context(lab.node_names, vip_ip=lab.vip, password=lab.password(),
                                           vms=[lab.domain_name(n) for n in lab.node_names],
                                           link1=list(link1.values()) if link1 else None))


def plan(commands: Sequence[str], nodes: Sequence[str], default: str,
         values: dict[str, str], what: str) -> list[tuple[tuple[str, ...], str]]:
    """(targets, script) in order: consecutive commands for the same targets share one script
    (one SSH round trip)."""
    steps: list[tuple[tuple[str, ...], list[str]]] = []
    for raw in commands:
        text = render_command(raw, values)
        targets: tuple[str, ...] = (default,)
        match = _ON.match(text)
        if match:
            text = match.group(2)
            targets = tuple(nodes) if match.group(1) == "all" else (match.group(1),)
            if any(t not in nodes for t in targets):
                raise UnknownNode(what, match.group(1))
        if steps and steps[-1][0] == targets:
            steps[-1][1].append(text)
        else:
            steps.append((targets, [text]))
    return [(targets, "set -e\n" + "\n".join(texts) + "\n") for targets, texts in steps]


def run_commands(nodes: dict[str, SSHNode], default: str, commands: Sequence[str],
                 values: dict[str, str], what: str) -> None:
    """Run commands as root on the default node; `on NODE: command` runs one elsewhere and
    `on all: command` on every node at once."""
    for targets, script in plan(commands, list(nodes), default, values, what):
        parallel(lambda target, s=script: provision.run_root(nodes[target], s, what, timeout=600), targets)
