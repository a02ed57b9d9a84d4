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


@check("pcsd_authenticated", live=True, needs_cib=False, gathers=("known_hosts", "tokens"))
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


@check("corosync_config", live=True, needs_cib=False, gathers=("corosync_conf",))
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


@check("services_active", live=True, needs_cib=False, gathers=("active",))
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


@check("services_enabled", live=True, needs_cib=False, gathers=("enabled",))
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


@check("all_nodes_online", live=True, gathers=())
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


@check("partition_quorate", live=True, gathers=("quorum",))
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



def _same_value(expected: str, actual: str | None) -> bool:
    """corosync reads numbers and yes/no flags loosely: 1 = yes = on."""
    if actual is None:
        return False
    flags = {"1": "1", "yes": "1", "on": "1", "0": "0", "no": "0", "off": "0"}
    a, e = actual.strip().lower(), expected.strip().lower()
    return flags.get(a, a) == flags.get(e, e)


@check("corosync_option", live=True, needs_cib=False, gathers=("corosync_conf",))
def corosync_option(facts: Facts, option: str, value: str) -> Verdict:
    """corosync.conf on every node sets option (dotted path, e.g. totem.token) to value."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    nodes = list(facts.nodes.values())
    for node in nodes:
        if node.corosync_conf is None:
            return fail(f"{node.name}: no readable /etc/corosync/corosync.conf")
        actual = node.corosync_conf.option(option)
        if not _same_value(value, actual):
            return fail(f"{node.name}: corosync.conf has {option} = {actual if actual is not None else '(unset)'}, "
                        f"expected {value}")
    return ok(f"corosync.conf sets {option} = {value} on every node")


@check("corosync_runtime", live=True, needs_cib=False, gathers=("cmap",))
def corosync_runtime(facts: Facts, key: str, value: str) -> Verdict:
    """The running corosync on every node uses the value (corosync-cmapctl): the change is live."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    nodes = list(facts.nodes.values())
    for node in nodes:
        if not node.cmap:
            return fail(f"{node.name}: corosync-cmapctl gave no answer (is corosync running?)")
        actual = node.cmap.get(key)
        if not _same_value(value, actual):
            return fail(f"{node.name}: running corosync has {key} = {actual or '(unset)'}, expected {value} "
                        "(reload or restart corosync after changing corosync.conf)")
    return ok(f"running corosync uses {key} = {value} on every node")


@check("quorum_flag", live=True, needs_cib=False, gathers=("quorum",))
def quorum_flag(facts: Facts, flag: str) -> Verdict:
    """corosync-quorumtool on every node shows the runtime flag (e.g. WaitForAll)."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    nodes = list(facts.nodes.values())
    for node in nodes:
        if node.quorum is None:
            return fail(f"{node.name}: corosync-quorumtool gave no answer (is corosync running?)")
        if flag not in node.quorum.flags:
            shown = " ".join(sorted(node.quorum.flags)) or "none"
            return fail(f"{node.name}: quorum flags are {shown}; {flag} is not active")
    return ok(f"quorum flag {flag} active on every node")


@check("corosync_conf_identical", live=True, needs_cib=False, gathers=("corosync_conf",))
def corosync_conf_identical(facts: Facts) -> Verdict:
    """Every node has the same corosync configuration (same sections and values)."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    nodes = list(facts.nodes.values())
    confs = {}
    for node in nodes:
        if node.corosync_conf is None:
            return fail(f"{node.name}: no readable /etc/corosync/corosync.conf")
        confs[node.name] = node.corosync_conf.root
    first, *others = confs
    differ = [name for name in others if confs[name] != confs[first]]
    if differ:
        return fail(f"corosync.conf on {', '.join(differ)} differs from {first}")
    return ok("corosync.conf is the same on every node")


@check("shadow_has_resource", live=True, needs_cib=False, gathers=("shadows",))
def shadow_has_resource(facts: Facts, shadow: str, resource: str) -> Verdict:
    """A shadow CIB (crm_shadow) of this name exists on some node and configures the resource."""
    found = [n for n in facts.nodes.values() if shadow in n.shadows]
    if not found:
        return fail(f"no shadow CIB '{shadow}' on any node (crm_shadow --create {shadow})")
    for node in found:
        cib = node.shadows[shadow]
        if cib is not None and resource in cib.resources:
            return ok(f"shadow CIB '{shadow}' on {node.name} configures '{resource}'")
    return fail(f"shadow CIB '{shadow}' exists but does not configure '{resource}'")
