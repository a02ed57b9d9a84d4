"""The {placeholders} of start and solution commands, filled per lab (or per offline state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lab.core.errors import ExerciseSchemaError

# Offline states never contact the VIP; TEST-NET-1 keeps it clearly not real.
OFFLINE_VIP = "192.0.2.10"


# Offline states never contact the second cluster network either: TEST-NET-2 addresses.
OFFLINE_LINK1 = "198.51.100."
# The placeholders of each node's address on the lab's second cluster network (corosync link 1).
LINK1_PLACEHOLDERS = ("link1_addrs", *(f"node{i}_link1_ip" for i in range(1, 6)))


def command_context(nodes: Sequence[str], *, vip_ip: str = OFFLINE_VIP, password: str = "",
                    vms: Sequence[str] | None = None, link1: Sequence[str] | None = None) -> dict[str, str]:
    """Values for the {placeholders} of start and solution commands.

    `vms` are the nodes' libvirt domain names, which fencing maps node names to; `link1` their
    addresses on the second cluster network, in node order: {nodeK_link1_ip} each, and
    {link1_addrs} all as "node1=ADDR node2=ADDR ..." (the words `pcs cluster link add` takes).
    """
    vms = list(vms) if vms is not None else [f"VM_OF_{n}" for n in nodes]
    link1 = list(link1) if link1 is not None else [f"{OFFLINE_LINK1}{10 + i}" for i in range(1, len(nodes) + 1)]
    context = {"nodes": " ".join(nodes), "vip_ip": vip_ip, "password": password,
               "first_node": nodes[0], "last_node": nodes[-1],
               "vm_map": ";".join(f"{n}:{vm}" for n, vm in zip(nodes, vms, strict=True)),
               "link1_addrs": " ".join(f"{n}={a}" for n, a in zip(nodes, link1, strict=True))}
    context.update({f"node{i}": name for i, name in enumerate(nodes, start=1)})
    context.update({f"node{i}_link1_ip": addr for i, addr in enumerate(link1, start=1)})
    return context


def render_command(command: str, context: Mapping[str, str]) -> str:
    """Fill placeholders; a literal brace in a command is written {{ or }}.

    CONTEXT may be a dict whose __missing__ explains a placeholder this lab cannot fill (a lab
    made before the second cluster network has no {node1_link1_ip}): that error is raised as it is."""
    try:
        return command.format_map(context)
    except (KeyError, IndexError, ValueError) as exc:
        raise ExerciseSchemaError(f"command '{command}' has an unknown placeholder: {exc}") from None
