"""CLI commands for the VM lab (lab up, start, reset, ...); filled in by the VM layer."""

from __future__ import annotations

import argparse

COMMANDS: dict = {}


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register VM lifecycle subcommands."""
