"""The lab on disk: its folder, nodes, keys and secrets (filled in by the VM layer)."""

from __future__ import annotations

from lab.errors import UsageError


def current_lab():  # noqa: ANN201
    raise UsageError("no lab is up: run 'lab up' first, or grade other nodes with --node or a "
                     "saved CIB with --cib")
