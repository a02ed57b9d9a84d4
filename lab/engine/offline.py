"""Real cluster states without VMs: apply pcs/crmsh commands to a CIB file and simulate.

Used by the tests (start states and reference solutions of every exercise) and by
instructors who want to try a solution on a saved CIB. Everything goes through
the real pacemaker tools: `pcs -f`, `crm` with CIB_file, `crm_simulate -S`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from lab.core.errors import LabError
from lab.engine.commands import command_context, render_command
from lab.transport.local import CibFileRunner
from lab.transport.runner import CommandResult, require_ok, run_local


class OfflineCluster:
    """A CIB file plus the node names it is simulated with; commands run through a saved-CIB
    runner (lab.transport.local.CibFileRunner: `pcs` as `pcs -f`, crm with CIB_file)."""

    def __init__(self, path: Path, nodes: Sequence[str] = ("node1", "node2")) -> None:
        self.path = path
        self.nodes = tuple(nodes)
        self.runner = CibFileRunner(path)

    @classmethod
    def empty(cls, path: Path, nodes: Sequence[str] = ("node1", "node2"), *,
              stonith: bool = False) -> OfflineCluster:
        """An empty CIB with the nodes online and quorate (stonith off unless asked)."""
        result = require_ok(run_local(["cibadmin", "--empty"]), "cibadmin --empty")
        path.write_text(result.stdout)
        cluster = cls(path, nodes)
        if not stonith:
            cluster.run("pcs property set stonith-enabled=false")
        cluster.simulate()
        return cluster

    def run(self, command: str, substitutions: dict[str, str] | None = None) -> CommandResult:
        """Run one shell command against the file; raise LabError when it fails."""
        text = render_command(command, substitutions or command_context(self.nodes))
        if re.match(r"on [A-Za-z0-9_.-]+:", text):
            # `on NODE: ...` acts on a node's OS (a user, a firewall rule), not on the CIB.
            return CommandResult(text, 0, "", "skipped on a CIB file: a node-level command")
        return require_ok(self.runner.run(text, timeout=120), f"'{text}'")

    def run_all(self, commands: Sequence[str]) -> None:
        for command in commands:
            self.run(command)

    def simulate(self) -> None:
        """Let the scheduler act (start, stop, move) as a live cluster would, nodes online."""
        out = self.path.with_suffix(".sim.xml")
        argv = ["crm_simulate", "--xml-file", str(self.path), "--simulate", "--quorum", "true",
                "--save-output", str(out)]
        for node in self.nodes:
            argv += ["--node-up", node]
        require_ok(run_local(argv, timeout=120), "crm_simulate")
        shutil.move(out, self.path)

    def copy(self, path: Path) -> OfflineCluster:
        shutil.copyfile(self.path, path)
        return OfflineCluster(path, self.nodes)


def require_tools() -> None:
    for tool in ("cibadmin", "crm_simulate", "crm_mon", "pcs", "crm"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found: install pacemaker-cli-utils, pcs and crmsh")
