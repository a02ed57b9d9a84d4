"""Checks on the cluster itself: membership, quorum, corosync.conf, daemons (live lab only)."""

from __future__ import annotations

from collections.abc import Callable

from checks import Verdict, check, fail, ok
from lab.gather.facts import Facts, NodeFacts
from lab.gather.sections import ACTIVE, CMAP, COROSYNC_CONF, ENABLED, KNOWN_HOSTS, QUORUM, SHADOWS

NO_CONF = "no readable /etc/corosync/corosync.conf"


def _unreachable_verdict(facts: Facts) -> Verdict | None:
    down = [n for n in facts.nodes.values() if not n.reachable]
    if down:
        return fail("; ".join(n.error or n.name for n in down))
    return None


def _on_every_node(facts: Facts, complaint: Callable[[NodeFacts], str | None], success: str) -> Verdict:
    """Pass when every node is reachable and `complaint` finds nothing wrong on any of them."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    for node in facts.nodes.values():
        wrong = complaint(node)
        if wrong:
            return fail(f"{node.name}: {wrong}")
    return ok(success)


def _same_value(expected: str, actual: str | None) -> bool:
    """corosync reads numbers and yes/no flags loosely: 1 = yes = on."""
    if actual is None:
        return False
    flags = {"1": "1", "yes": "1", "on": "1", "0": "0", "no": "0", "off": "0"}
    a, e = actual.strip().lower(), expected.strip().lower()
    return flags.get(a, a) == flags.get(e, e)


@check("pcsd_authenticated", live=True, needs_cib=False, gathers=(KNOWN_HOSTS,))
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


@check("corosync_config", live=True, needs_cib=False, gathers=(COROSYNC_CONF,))
def corosync_config(facts: Facts, cluster_name: str) -> Verdict:
    """Every node's corosync.conf names the cluster and lists exactly the lab's nodes."""
    expected = set(facts.expected_nodes)

    def complaint(node: NodeFacts) -> str | None:
        conf = node.corosync_conf
        if conf is None:
            return NO_CONF
        if conf.cluster_name != cluster_name:
            return f"cluster_name is {conf.cluster_name!r}, expected {cluster_name!r}"
        listed = set(conf.node_names)
        if listed != expected:
            return (f"corosync.conf lists nodes {', '.join(sorted(listed)) or 'none'}, "
                    f"expected {', '.join(sorted(expected))}")
        return None

    return _on_every_node(facts, complaint,
                          f"corosync.conf names '{cluster_name}' with {', '.join(sorted(expected))} on every node")


def _services(facts: Facts, services: list[str], states: Callable[[NodeFacts], dict], adjective: str) -> Verdict:
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    wrong = [f"{svc} on {node.name}" for node in facts.nodes.values() for svc in services
             if not states(node).get(svc, False)]
    if wrong:
        return fail(f"not {adjective}: " + ", ".join(wrong))
    return ok(f"{', '.join(services)} {adjective} on every node")


@check("services_active", live=True, needs_cib=False, gathers=(ACTIVE,))
def services_active(facts: Facts, services: list[str]) -> Verdict:
    """The named daemons are running on every node."""
    return _services(facts, services, lambda n: n.services, "running")


@check("services_enabled", live=True, needs_cib=False, gathers=(ENABLED,))
def services_enabled(facts: Facts, services: list[str]) -> Verdict:
    """The named daemons start at boot on every node."""
    return _services(facts, services, lambda n: n.services_enabled, "enabled at boot")


@check("all_nodes_online", live=True, gathers=())
def all_nodes_online(facts: Facts) -> Verdict:
    """Every lab node is online in the view of every node (no split partitions)."""
    expected = set(facts.expected_nodes)

    def complaint(node: NodeFacts) -> str | None:
        if node.status is None:
            return "pacemaker does not answer (crm_mon failed)"
        missing = expected - set(node.status.online_nodes())
        return f"sees {', '.join(sorted(missing))} offline" if missing else None

    return _on_every_node(facts, complaint, f"{', '.join(sorted(expected))} online")


@check("partition_quorate", live=True, gathers=(QUORUM,))
def partition_quorate(facts: Facts) -> Verdict:
    """Corosync on every node reports a quorate partition, and pacemaker agrees."""
    return _on_every_node(facts, quorum_complaint, "partition is quorate on every node")


def quorum_complaint(node: NodeFacts | None) -> str | None:
    """Why a node's partition is not quorate in corosync's or pacemaker's view (None: it is)."""
    if node is None or node.quorum is None:
        return "corosync-quorumtool gave no answer (is corosync running?)"
    if not node.quorum.quorate:
        return "partition is not quorate"
    if node.status is None or not node.status.quorate:
        return "pacemaker reports no quorum"
    return None


@check("corosync_option", live=True, needs_cib=False, gathers=(COROSYNC_CONF,))
def corosync_option(facts: Facts, option: str, value: str) -> Verdict:
    """corosync.conf on every node sets option (dotted path, e.g. totem.token) to value."""

    def complaint(node: NodeFacts) -> str | None:
        if node.corosync_conf is None:
            return NO_CONF
        actual = node.corosync_conf.option(option)
        if _same_value(value, actual):
            return None
        return f"corosync.conf has {option} = {actual if actual is not None else '(unset)'}, expected {value}"

    return _on_every_node(facts, complaint, f"corosync.conf sets {option} = {value} on every node")


@check("corosync_runtime", live=True, needs_cib=False, gathers=(CMAP,))
def corosync_runtime(facts: Facts, key: str, value: str) -> Verdict:
    """The running corosync on every node uses the value (corosync-cmapctl): the change is live."""

    def complaint(node: NodeFacts) -> str | None:
        if not node.cmap:
            return "corosync-cmapctl gave no answer (is corosync running?)"
        actual = node.cmap.get(key)
        if _same_value(value, actual):
            return None
        return (f"running corosync has {key} = {actual or '(unset)'}, expected {value} "
                "(reload or restart corosync after changing corosync.conf)")

    return _on_every_node(facts, complaint, f"running corosync uses {key} = {value} on every node")


def _quorum_flag(facts: Facts, flag: str, *, active: bool) -> Verdict:
    """corosync-quorumtool on every node shows (ACTIVE) or does not show the runtime flag."""

    def complaint(node: NodeFacts) -> str | None:
        if node.quorum is None:
            return "corosync-quorumtool gave no answer (is corosync running?)"
        shown = " ".join(sorted(node.quorum.flags)) or "none"
        if active and flag not in node.quorum.flags:
            return f"quorum flags are {shown}; {flag} is not active"
        if not active and flag in node.quorum.flags:
            return f"quorum flags are {shown}: {flag} is still active"
        return None

    done = f"quorum flag {flag} active on every node" if active else f"quorum flag {flag} is off on every node"
    return _on_every_node(facts, complaint, done)


@check("quorum_flag", live=True, needs_cib=False, gathers=(QUORUM,))
def quorum_flag(facts: Facts, flag: str) -> Verdict:
    """corosync-quorumtool on every node shows the runtime flag (e.g. WaitForAll)."""
    return _quorum_flag(facts, flag, active=True)


@check("quorum_flag_absent", live=True, needs_cib=False, gathers=(QUORUM,))
def quorum_flag_absent(facts: Facts, flag: str) -> Verdict:
    """corosync-quorumtool on every node does not show the runtime flag (e.g. WaitForAll off)."""
    return _quorum_flag(facts, flag, active=False)


@check("corosync_conf_identical", live=True, needs_cib=False, gathers=(COROSYNC_CONF,))
def corosync_conf_identical(facts: Facts) -> Verdict:
    """Every node has the same corosync configuration (same sections and values)."""
    verdict = _on_every_node(facts, lambda n: NO_CONF if n.corosync_conf is None else None, "")
    if not verdict.passed:
        return verdict
    confs = {node.name: node.corosync_conf.root for node in facts.nodes.values()}
    first, *others = confs
    differ = [name for name in others if confs[name] != confs[first]]
    if differ:
        return fail(f"corosync.conf on {', '.join(differ)} differs from {first}")
    return ok("corosync.conf is the same on every node")


@check("shadow_has_resource", live=True, needs_cib=False, gathers=(SHADOWS,))
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
