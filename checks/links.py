"""Checks on corosync's links (live lab only): a further knet link over a network of its own,
in the running corosync (corosync-cmapctl's nodelist and its stats map) and in corosync.conf.

Nodes are matched by name (nodelist.node.N.name, else ring0_addr), never by position or node
id: pcs, crmsh and a hand edit number them differently, and every numbering is fine."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from checks import Verdict, check
from checks.cluster import NO_CONF, _on_every_node
from lab.gather.facts import Facts, NodeFacts
from lab.gather.sections import CMAP, COROSYNC_CONF, KNET

NO_CMAP = "corosync-cmapctl gave no answer (is corosync running?)"
RELOAD = "corosync reads corosync.conf again only when told to: corosync-cfgtool -R (or a restart)"
_NODE_KEY = re.compile(r"nodelist\.node\.(\d+)\.(name|nodeid|ring\d+_addr)\Z")


@dataclass
class CmapNode:
    """One node of the nodelist corosync runs with (corosync-cmapctl nodelist.node.N.*)."""

    nodeid: str | None = None
    name: str | None = None
    addrs: dict[int, str] = field(default_factory=dict)  # link number -> ringN_addr


def cmap_nodelist(cmap: Mapping[str, str]) -> dict[str, CmapNode]:
    """The running nodelist by node name (a node without `name` goes by its ring0 address)."""
    by_index: dict[str, CmapNode] = {}
    for key, value in cmap.items():
        match = _NODE_KEY.match(key)
        if not match:
            continue
        node = by_index.setdefault(match.group(1), CmapNode())
        kind, value = match.group(2), value.strip()
        if kind == "name":
            node.name = value
        elif kind == "nodeid":
            node.nodeid = value
        else:
            node.addrs[int(kind[4:-5])] = value
    return {(n.name or n.addrs.get(0) or ""): n for n in by_index.values() if n.name or 0 in n.addrs}


def _address_problem(addr: str, network: str) -> str | None:
    """Why ADDR is no address on NETWORK (None: it is one)."""
    try:
        ip = ipaddress.IPv4Address(addr)
    except ValueError:
        return f"{addr!r} is not an IPv4 address"
    if ip not in ipaddress.IPv4Network(network):
        return f"{addr} is not on the second cluster network ({network})"
    return None


def _addresses_complaint(addrs: Mapping[str, str], wanted: tuple[str, ...], link: int, network: str,
                         where: str, fix: str) -> str | None:
    """What is wrong with one node's view of every node's link LINK address (None: nothing)."""
    for name in wanted:
        if name not in addrs:
            return f"{where} has no link {link} address for {name}{fix}"
        problem = _address_problem(addrs[name], network)
        if problem:
            return f"{where}: {name}'s link {link} address {problem}"
    twice = sorted({a for a in addrs.values() if list(addrs.values()).count(a) > 1})
    if twice:
        return f"{where} gives {twice[0]} to more than one node on link {link}"
    return None


@check("corosync_link_runtime", live=True, needs_cib=False, gathers=(CMAP,))
def corosync_link_runtime(facts: Facts, link: int = 1, network: str = "10.233.0.0/16") -> Verdict:
    """The running corosync on every lab node has a link LINK address on NETWORK for every lab
    node (corosync-cmapctl nodelist.node.N.ringLINK_addr)."""
    wanted = facts.expected_nodes

    def complaint(node: NodeFacts) -> str | None:
        if not node.cmap:
            return NO_CMAP
        addrs = {name: n.addrs[link] for name, n in cmap_nodelist(node.cmap).items() if link in n.addrs}
        return _addresses_complaint(addrs, wanted, link, network, "the running corosync", f" ({RELOAD})")

    return _on_every_node(facts, complaint, f"the running corosync has a link {link} on {network} for "
                                            f"{', '.join(wanted)} on every node")


@check("corosync_link_connected", live=True, needs_cib=False, gathers=(CMAP, KNET))
def corosync_link_connected(facts: Facts, link: int = 1) -> Verdict:
    """On every lab node, corosync's knet link LINK to every other lab node is connected
    (corosync-cmapctl -m stats: stats.knet.nodeID.linkLINK.connected = 1)."""
    wanted = facts.expected_nodes

    def complaint(node: NodeFacts) -> str | None:
        if not node.cmap:
            return NO_CMAP
        nodelist = cmap_nodelist(node.cmap)
        for name in wanted:
            if name == node.name:  # its own link is knet's loopback
                continue
            nodeid = nodelist[name].nodeid if name in nodelist else None
            if nodeid is None:
                return f"the running corosync has no node {name} with a node id"
            connected = node.knet.get(f"stats.knet.node{nodeid}.link{link}.connected")
            if connected is None:
                return f"corosync has no link {link} to {name} (knet stats have none: not configured at runtime)"
            if connected.strip() != "1":
                return (f"corosync's link {link} to {name} is down (knet: connected = {connected.strip()}): "
                        f"are the link {link} addresses right and reachable?")
        return None

    return _on_every_node(facts, complaint, f"link {link} is connected between every two nodes")


@check("corosync_conf_link", live=True, needs_cib=False, gathers=(COROSYNC_CONF, CMAP))
def corosync_conf_link(facts: Facts, link: int = 1, network: str = "10.233.0.0/16") -> Verdict:
    """corosync.conf on every lab node names a link LINK address on NETWORK for every lab node
    (ringLINK_addr): the same in every node's file, and the one the running corosync uses."""
    wanted = facts.expected_nodes
    seen: dict[str, tuple[str, str]] = {}  # node name -> (address, whose file said it)

    def complaint(node: NodeFacts) -> str | None:
        if node.corosync_conf is None:
            return NO_CONF
        addrs = node.corosync_conf.link_addresses(link)
        wrong = _addresses_complaint(addrs, wanted, link, network, "corosync.conf", " (it is what corosync "
                                     "reads at boot: a link added at runtime only is gone after a reboot)")
        if wrong:
            return wrong
        running = {name: n.addrs.get(link) for name, n in cmap_nodelist(node.cmap).items()}
        for name in wanted:
            first = seen.setdefault(name, (addrs[name], node.name))
            if first[0] != addrs[name]:
                return f"corosync.conf gives {name} {addrs[name]} on link {link}, {first[1]}'s gives {first[0]}"
            if node.cmap and running.get(name) not in (None, addrs[name]):
                return (f"corosync.conf gives {name} {addrs[name]} on link {link}, the running corosync "
                        f"uses {running[name]} ({RELOAD})")
        return None

    return _on_every_node(facts, complaint, f"corosync.conf names the link {link} addresses of "
                                            f"{', '.join(wanted)} on every node")
