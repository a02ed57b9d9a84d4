"""Checks on the cluster itself: membership, quorum, corosync.conf, daemons (live lab only)."""

from __future__ import annotations

from checks import Verdict, check, fail, ok
from lab.facts import Facts, NodeFacts


def _unreachable(facts: Facts) -> list[NodeFacts]:
    return [n for n in facts.nodes.values() if not n.reachable]


def _unreachable_verdict(facts: Facts) -> Verdict | None:
    down = _unreachable(facts)
    if down:
        return fail("; ".join(n.error or n.name for n in down))
    return None


def _matches_node(entry: str, node: NodeFacts) -> bool:
    return entry in (node.name, node.hostname)


@check("pcsd_authenticated", live=True, needs_cib=False)
def pcsd_authenticated(facts: Facts) -> Verdict:
    """Some node's pcsd knows (is authenticated to) every lab node, as cluster setup requires."""
    expected = set(facts.expected_nodes)
    best: tuple[str, set[str]] | None = None
    for node in facts.nodes.values():
        if node.pcsd_known_hosts is None:
            continue
        missing = expected - node.pcsd_known_hosts
        if not missing:
            return ok(f"pcsd on {node.name} is authenticated to {', '.join(sorted(expected))}")
        if best is None or len(missing) < len(best[1]):
            best = (node.name, missing)
    if best is None:
        return fail("no node has pcsd known hosts: run the pcs authentication step")
    return fail(f"pcsd on {best[0]} is not authenticated to {', '.join(sorted(best[1]))}")


@check("corosync_config", live=True, needs_cib=False)
def corosync_config(facts: Facts, cluster_name: str) -> Verdict:
    """Every node's corosync.conf names the cluster and lists exactly the lab's nodes."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    expected = set(facts.expected_nodes)
    for node in facts.nodes.values():
        conf = node.corosync_conf
        if conf is None:
            return fail(f"{node.name}: no readable /etc/corosync/corosync.conf")
        if conf.cluster_name != cluster_name:
            return fail(f"{node.name}: cluster_name is {conf.cluster_name!r}, expected {cluster_name!r}")
        listed = set(conf.node_names)
        if listed != expected:
            return fail(f"{node.name}: corosync.conf lists nodes {', '.join(sorted(listed)) or 'none'}, "
                        f"expected {', '.join(sorted(expected))}")
    return ok(f"corosync.conf names '{cluster_name}' with {', '.join(sorted(expected))} on every node")


@check("services_active", live=True, needs_cib=False)
def services_active(facts: Facts, services: list[str]) -> Verdict:
    """The named daemons are running on every node."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    stopped = [f"{svc} on {node.name}" for node in facts.nodes.values() for svc in services
               if not node.services.get(svc, False)]
    if stopped:
        return fail("not running: " + ", ".join(stopped))
    return ok(f"{', '.join(services)} running on every node")


@check("services_enabled", live=True, needs_cib=False)
def services_enabled(facts: Facts, services: list[str]) -> Verdict:
    """The named daemons start at boot on every node."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    disabled = [f"{svc} on {node.name}" for node in facts.nodes.values() for svc in services
                if not node.services_enabled.get(svc, False)]
    if disabled:
        return fail("not enabled at boot: " + ", ".join(disabled))
    return ok(f"{', '.join(services)} enabled at boot on every node")


@check("all_nodes_online", live=True)
def all_nodes_online(facts: Facts) -> Verdict:
    """Every lab node is online in the view of every node (no split partitions)."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    expected = set(facts.expected_nodes)
    for node in facts.nodes.values():
        if node.status is None:
            return fail(f"{node.name}: pacemaker does not answer (crm_mon failed)")
        online = set(node.status.online_nodes())
        missing = expected - online
        if missing:
            return fail(f"{node.name} sees {', '.join(sorted(missing))} offline")
    return ok(f"{', '.join(sorted(expected))} online")


@check("partition_quorate", live=True)
def partition_quorate(facts: Facts) -> Verdict:
    """Corosync on every node reports a quorate partition, and pacemaker agrees."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    for node in facts.nodes.values():
        if node.quorum is None:
            return fail(f"{node.name}: corosync-quorumtool gave no answer (is corosync running?)")
        if not node.quorum.quorate:
            return fail(f"{node.name}: partition is not quorate")
        if node.status is None or not node.status.quorate:
            return fail(f"{node.name}: pacemaker reports no quorum")
    return ok("partition is quorate on every node")
