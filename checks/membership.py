"""Checks on who is in the cluster and what the student found out about it (live lab only):
corosync's runtime membership and quorum flags, pacemaker's node list, answer files judged
against the live cluster and the scheduler's own prediction, and the fencer's history."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from checks import Verdict, check, fail, ok
from checks.cluster import NO_CONF, _unreachable_verdict, quorum_complaint
from lab.core.errors import LabError
from lab.core.xmlsafe import one_line
from lab.gather import predict
from lab.gather.facts import Facts, NodeFacts
from lab.gather.sections import ANSWERS, CMAP, COROSYNC_CONF, FENCE_HISTORY, QUORUM

STOPPED = frozenset({"stopped", "none", "nowhere", "-"})  # the answers that mean "runs nowhere"
_MEMBER = re.compile(r"runtime\.members\.(\d+)\.status\Z")
_NODEID = re.compile(r"nodelist\.node\.(\d+)\.nodeid\Z")


def _names(nodes: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(nodes)) or "none"


# --- membership: corosync at runtime, corosync.conf, pacemaker ----------------------------


def cmap_members(cmap: Mapping[str, str]) -> frozenset[str]:
    """The joined members in a corosync-cmapctl dump, by name (nodelist.node.N.name for the
    member's nodeid; a member missing from the loaded nodelist is named 'nodeid ID')."""
    names: dict[str, str] = {}
    for key, value in cmap.items():
        match = _NODEID.match(key)
        if match:
            index = match.group(1)
            names[value.strip()] = cmap.get(f"nodelist.node.{index}.name") or cmap.get(
                f"nodelist.node.{index}.ring0_addr", f"nodeid {value.strip()}")
    return frozenset(names.get(m.group(1), f"nodeid {m.group(1)}") for key, value in cmap.items()
                     if (m := _MEMBER.match(key)) and value.strip() == "joined")


def lab_node(facts: Facts, node: str) -> str:
    """NODE, or the lab's first or last node for "first" / "last" (a 3-node exercise runs on
    bigger labs too: its start state and solutions use {last_node})."""
    if node in ("first", "last") and facts.expected_nodes:
        return facts.expected_nodes[0 if node == "first" else -1]
    return node


def _cluster(facts: Facts, node: str, member: bool) -> set[str]:
    """The nodes that should form the cluster: every lab node, NODE in or out."""
    return set(facts.expected_nodes) | {node} if member else set(facts.expected_nodes) - {node}


def _each_cluster_node(facts: Facts, wanted: set[str],
                       complaint: Callable[[str, NodeFacts | None], str | None]) -> Verdict | None:
    """The first failing verdict over the nodes that should form the cluster (every lab node
    reachable first), or None when COMPLAINT finds nothing wrong on any of them."""
    problem = _unreachable_verdict(facts)
    if problem:
        return problem
    for name in sorted(wanted):
        wrong = complaint(name, facts.nodes.get(name))
        if wrong:
            return fail(f"{name}: {wrong}")
    return None


@check("corosync_members", live=True, needs_cib=False, gathers=(CMAP,))
def corosync_members(facts: Facts, node: str, member: bool = True) -> Verdict:
    """The running corosync on every cluster node has exactly the cluster's nodes as joined
    members (corosync-cmapctl runtime.members), NODE ("first"/"last": the lab's) among them or
    not; a removed NODE runs no corosync of its own any more."""
    node = lab_node(facts, node)
    wanted = _cluster(facts, node, member)

    def complaint(_name: str, facts_of: NodeFacts | None) -> str | None:
        if facts_of is None or not facts_of.cmap:
            return "corosync-cmapctl gave no answer (is corosync running?)"
        seen = cmap_members(facts_of.cmap)
        return None if seen == wanted else f"corosync's members are {_names(seen)}, expected {_names(wanted)}"

    verdict = _each_cluster_node(facts, wanted, complaint)
    if verdict:
        return verdict
    gone = facts.nodes.get(node)
    if not member and gone is not None and cmap_members(gone.cmap):
        return fail(f"{node} still runs corosync (members {_names(cmap_members(gone.cmap))}): stop and "
                    "remove the cluster there")
    return ok(f"corosync's members are {_names(wanted)} on every one of them")


@check("corosync_nodelist", live=True, needs_cib=False, gathers=(COROSYNC_CONF,))
def corosync_nodelist(facts: Facts, node: str, member: bool = True) -> Verdict:
    """corosync.conf on every cluster node lists exactly the cluster's nodes, NODE among them or not."""
    node = lab_node(facts, node)
    wanted = _cluster(facts, node, member)

    def complaint(_name: str, facts_of: NodeFacts | None) -> str | None:
        if facts_of is None or facts_of.corosync_conf is None:
            return NO_CONF
        listed = set(facts_of.corosync_conf.node_names)
        return None if listed == wanted else f"corosync.conf lists {_names(listed)}, expected {_names(wanted)}"

    return _each_cluster_node(facts, wanted, complaint) or ok(
        f"corosync.conf lists {_names(wanted)} on every one of them")


@check("pacemaker_node_list", live=True, needs_cib=True)
def pacemaker_node_list(facts: Facts, node: str, member: bool = True) -> Verdict:
    """Pacemaker's node list (crm_mon: the CIB's nodes and the members): NODE is there and
    online, or gone from it altogether (crm_node --remove), not merely offline."""
    node = lab_node(facts, node)
    if facts.status is None:
        return fail("pacemaker does not answer (crm_mon failed)")
    known = facts.status.nodes
    if member:
        if node not in known:
            return fail(f"pacemaker does not know {node}")
        if node not in facts.status.online_nodes():
            return fail(f"pacemaker knows {node} but it is not online")
        return ok(f"pacemaker has {node} online")
    if node in known:
        state = "online" if node in facts.status.online_nodes() else "offline"
        return fail(f"pacemaker still lists {node} ({state}): remove it from the cluster, not only stop it")
    return ok(f"pacemaker's node list no longer has {node}")


@check("quorate_without", live=True, gathers=(QUORUM,))
def quorate_without(facts: Facts, node: str) -> Verdict:
    """Every lab node but NODE (a node taken out of the cluster) has a quorate partition in
    corosync's view, and pacemaker agrees."""
    node = lab_node(facts, node)

    def complaint(_name: str, facts_of: NodeFacts | None) -> str | None:
        return quorum_complaint(facts_of)

    return _each_cluster_node(facts, _cluster(facts, node, False), complaint) or ok(
        f"the partition is quorate on every node but {node}")


# --- answer files: the student's findings, judged against the cluster ----------------------


def _answer(facts: Facts, file: str, key: str) -> str | Verdict:
    """The one value the answer FILE gives for KEY (the file may be on any node; copies must agree)."""
    found = {n.name: n.answers[file] for n in facts.nodes.values() if file in n.answers}
    where = f"/root/answers/{file}"
    if not found:
        return fail(f"no {where} on any node")
    values = {v for pairs in found.values() for v in pairs.get(key.lower(), ())}
    if not values:
        return fail(f"{where} has no line {key}=...")
    if len(values) > 1:
        return fail(f"{where} gives {key} more than once: {one_line(', '.join(sorted(values)), 120)}")
    return values.pop()


def _placement(value: str) -> frozenset[str]:
    """An answer's nodes: one name, several (a clone) separated by commas or spaces, or stopped."""
    words = frozenset(w.lower() for w in re.split(r"[,\s]+", value) if w)
    return frozenset() if words <= STOPPED else words


def _judge_placement(what: str, value: str, actual: frozenset[str] | set[str]) -> Verdict:
    said = _placement(value)
    real = frozenset(n.lower() for n in actual)
    shown = _names(set(actual)) if actual else "stopped"
    if said == real:
        return ok(f"{what}: {shown}, as answered")
    return fail(f"answered {one_line(value, 60) or '(empty)'} for {what}")


@check("answer_names_dc", live=True, needs_cib=True, gathers=(ANSWERS,))
def answer_names_dc(facts: Facts, file: str, key: str = "dc") -> Verdict:
    """The answer file names the node that is the cluster's DC (crm_mon's current_dc) now."""
    value = _answer(facts, file, key)
    if isinstance(value, Verdict):
        return value
    dc = facts.status.dc if facts.status is not None else None
    if not dc:
        return fail("the cluster has no DC now (crm_mon names none)")
    if value.lower() == dc.lower():
        return ok(f"{dc} is the DC, as answered")
    return fail(f"answered {key}={one_line(value, 60)}: that is not the DC")


@check("answer_names_location", live=True, needs_cib=True, gathers=(ANSWERS,))
def answer_names_location(facts: Facts, file: str, key: str, resource: str) -> Verdict:
    """The answer file names the node(s) where the resource runs now (crm_mon), or stopped."""
    value = _answer(facts, file, key)
    if isinstance(value, Verdict):
        return value
    if facts.status is None:
        return fail("pacemaker does not answer (crm_mon failed)")
    return _judge_placement(f"where {resource} runs", value, set(facts.status.running_nodes(resource)))


@check("answer_predicts_failover", live=True, needs_cib=True, gathers=(ANSWERS,))
def answer_predicts_failover(facts: Facts, file: str, key: str, resource: str, failed: str) -> Verdict:
    """The answer file says where the resource runs once FAILED fails, as the scheduler itself
    answers for the cluster's CIB (crm_simulate --node-fail FAILED on a copy)."""
    value = _answer(facts, file, key)
    if isinstance(value, Verdict):
        return value
    if facts.cib_xml is None:
        return fail("no CIB was gathered")
    try:
        predicted = predict.placement_after_fail(facts.cib_xml, failed, resource)
    except LabError as exc:
        return fail(f"the scheduler cannot answer: {exc}")
    return _judge_placement(f"where {resource} runs if {failed} fails", value, predicted)


# --- the fencer's history ---------------------------------------------------------------------


@check("fenced_by_hand", live=True, needs_cib=False, gathers=(FENCE_HISTORY,))
def fenced_by_hand(facts: Facts, target: str, action: str = "reboot") -> Verdict:
    """The fencer's history (stonith_admin --history, on any node) holds a successful ACTION of
    TARGET asked for by hand (a tool, not the cluster's own controller)."""
    histories = [n.fence_history for n in facts.nodes.values() if n.fence_history is not None]
    if not histories:
        return fail("no node's fencer answered stonith_admin --history")
    events = [e for history in histories for e in history if e.target == target]
    done = [e for e in events if e.status == "success"]
    by_hand = [e for e in done if e.action == action and not e.client.startswith("pacemaker-controld")]
    if by_hand:
        return ok(f"{target} was fenced ({action}) by {one_line(by_hand[0].client, 60) or 'a client'} from "
                  f"{one_line(by_hand[0].origin, 60) or '?'}")
    if any(e.action == action for e in done):
        return fail(f"the cluster fenced {target} itself (its controller asked: a failure, or crm node "
                    "fence); the task asks for a fence by hand with stonith_admin")
    if done:
        return fail(f"{target} was fenced with {one_line(', '.join(sorted({e.action for e in done})), 60)}, "
                    f"not {action}")
    if events:
        return fail(f"fencing {target} did not succeed ({one_line(', '.join(sorted({e.status for e in events})), 60)})")
    return fail(f"the fencing history has no action on {target}")
