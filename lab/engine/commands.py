"""The {placeholders} of start and solution commands, filled per lab (or per offline state)."""

from __future__ import annotations

from collections.abc import Sequence

from lab.core.errors import ExerciseSchemaError

# Offline states never contact the VIP; TEST-NET-1 keeps it clearly not real.
OFFLINE_VIP = "192.0.2.10"


def command_context(nodes: Sequence[str], *, vip_ip: str = OFFLINE_VIP, password: str = "",
                    vms: Sequence[str] | None = None) -> dict[str, str]:
    """Values for the {placeholders} of start and solution commands.

    `vms` are the nodes' libvirt domain names, which fencing maps node names to.
    """
    vms = list(vms) if vms is not None else [f"VM_OF_{n}" for n in nodes]
    context = {"nodes": " ".join(nodes), "vip_ip": vip_ip, "password": password,
               "first_node": nodes[0], "last_node": nodes[-1],
               "vm_map": ";".join(f"{n}:{vm}" for n, vm in zip(nodes, vms, strict=True))}
    context.update({f"node{i}": name for i, name in enumerate(nodes, start=1)})
    return context


def render_command(command: str, context: dict[str, str]) -> str:
    """Fill placeholders; a literal brace in a command is written {{ or }}."""
    try:
        return command.format(**context)
    except (KeyError, IndexError, ValueError) as exc:
        raise ExerciseSchemaError(f"command '{command}' has an unknown placeholder: {exc}") from None
