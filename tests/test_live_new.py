"""The new live checks (checks/membership.py) judged offline on the tools' own output.

Run here for real: pcs writes corosync.conf (`pcs cluster setup` / `pcs quorum update` with
--corosync_conf), pacemaker's crm_mon reads CIBs made by pcs and crm_simulate, crm_simulate
answers the what-if of crm-simulate-predict, and the gather script itself reads answer files.
corosync and the fencer cannot run here (no daemons in tests): their texts follow the tools'
exact formats (corosync-cmapctl and corosync-quorumtool -s as a corosync 3 cluster prints
them, stonith_admin --history --output-as=xml as pacemaker's lib/fencing/st_output.c writes it).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from checks import REGISTRY
from checks.cluster import quorum_flag_absent
from checks.membership import (
    answer_names_dc,
    answer_names_location,
    answer_predicts_failover,
    cmap_members,
    corosync_members,
    corosync_nodelist,
    fenced_by_hand,
    lab_node,
    pacemaker_node_list,
    quorate_without,
)
from lab.core.corosync import parse_corosync_conf
from lab.engine.commands import command_context, render_command
from lab.engine.exercises import Exercise, load
from lab.engine.grading import sections_for
from lab.engine.offline import OfflineCluster
from lab.gather import parsers
from lab.gather import sections as sec
from lab.gather.facts import Facts, NodeFacts, facts_from_cib_file, gather_node, node_facts_from_sections
from lab.transport.local import LocalRunner
from lab.transport.runner import CommandResult

pytestmark = pytest.mark.skipif(shutil.which("pcs") is None or shutil.which("crm_simulate") is None,
                                reason="needs pcs and pacemaker-cli-utils")

_CONFS = itertools.count()
ADDRS = {"node1": "192.0.2.11", "node2": "192.0.2.12", "node3": "192.0.2.13"}


# --- the tools' texts ---------------------------------------------------------------------------

def pcs_conf(tmp_path: Path, nodes: list[str], *updates: str) -> str:
    """corosync.conf as `pcs cluster setup` writes it for NODES, then changed by pcs itself."""
    path = tmp_path / f"corosync-{next(_CONFS)}.conf"
    words = [w for n in nodes for w in (n, f"addr={ADDRS[n]}")]
    subprocess.run(["pcs", "cluster", "setup", "my_cluster", *words, "--corosync_conf", str(path),
                    "--no-cluster-uuid"], check=True, capture_output=True)
    for update in updates:
        subprocess.run(["pcs", *update.split(), "--corosync_conf", str(path)], check=True, capture_output=True)
    return path.read_text()


def cmap_dump(listed: list[str], joined: list[str], *, two_node: int, this: str, left: list[str] = ()) -> str:
    """`corosync-cmapctl` of a running corosync 3 (knet) whose loaded nodelist is LISTED and whose
    members are JOINED (LEFT: members that left); the nodeid of nodeN is N, as pcs numbers them."""
    lines = []
    for index, name in enumerate(listed):
        nodeid = name.removeprefix("node")
        lines += [f"nodelist.node.{index}.name (str) = {name}",
                  f"nodelist.node.{index}.nodeid (u32) = {nodeid}",
                  f"nodelist.node.{index}.ring0_addr (str) = {ADDRS[name]}"]
    lines += ["quorum.provider (str) = corosync_votequorum"]
    if two_node:
        lines.append("quorum.two_node (u8) = 1")
    for name, status in [*((n, "joined") for n in joined), *((n, "left") for n in left)]:
        nodeid = name.removeprefix("node")
        lines += [f"runtime.members.{nodeid}.config_version (u64) = 0",
                  f"runtime.members.{nodeid}.ip (str) = r(0) ip({ADDRS[name]}) ",
                  f"runtime.members.{nodeid}.join_count (u32) = 1",
                  f"runtime.members.{nodeid}.status (str) = {status}"]
    lines += [f"runtime.votequorum.this_node_id (u32) = {this.removeprefix('node')}",
              f"runtime.votequorum.two_node (u8) = {two_node}",
              "totem.cluster_name (str) = my_cluster", "totem.transport (str) = knet"]
    if two_node:  # two_node turns wait_for_all on; a node that joined a 3-node cluster has no such key
        lines.append("runtime.votequorum.wait_for_all_status (u8) = 0")
    return "\n".join(sorted(lines)) + "\n"


def quorumtool(members: list[str], flags: str, *, this: str, quorate: bool = True) -> str:
    """`corosync-quorumtool -s` as corosync 3 prints it (the quorum left-aligned in 3 columns, a space
    after each flag: see the live capture test below)."""
    rows = "\n".join(f"         {n.removeprefix('node')}          1 {n}{' (local)' if n == this else ''}"
                     for n in members)
    return (f"Quorum information\n------------------\nDate:             Tue Dec  1 16:00:00 2026\n"
            f"Quorum provider:  corosync_votequorum\nNodes:            {len(members)}\n"
            f"Node ID:          {this.removeprefix('node')}\nRing ID:          1.306\n"
            f"Quorate:          {'Yes' if quorate else 'No'}\n\nVotequorum information\n"
            f"----------------------\nExpected votes:   {len(members)}\nHighest expected: {len(members)}\n"
            f"Total votes:      {len(members)}\nQuorum:           {1:<3}\n"
            f"Flags:            {flags + ' ' if flags else ''}\n\n"
            f"Membership information\n----------------------\n    Nodeid      Votes Name\n{rows}\n")


def fence_history(*events: dict[str, str]) -> str:
    """`stonith_admin --history '*' --output-as=xml` as pacemaker 2.1 prints it (an empty list
    when there are no events): see the live capture test below."""
    body = "".join("    <fence_event " + " ".join(f'{k}="{v}"' for k, v in e.items()) + "/>\n" for e in events)
    listing = (f'  <list name="fencing history" count="{len(events)}">\n{body}  </list>\n' if events
               else '  <list name="fencing history" count="0"/>\n')
    return (f'<pacemaker-result api-version="2.25" request="stonith_admin --history * --output-as=xml">\n'
            f'{listing}  <status code="0" message="OK"/>\n</pacemaker-result>\n')


def node(name: str, **texts: str | CommandResult) -> NodeFacts:
    """One node's facts from section answers, through the real section parsers."""
    answers = {"hostname": CommandResult("uname -n", 0, name + "\n", "")}
    for key, text in texts.items():
        answers[key] = text if isinstance(text, CommandResult) else CommandResult(key, 0, text, "")
    return node_facts_from_sections(name, answers)


def facts(nodes: list[NodeFacts], expected: list[str], cluster: Facts | None = None) -> Facts:
    return Facts(live=True, expected_nodes=tuple(expected), cib=cluster.cib if cluster else None,
                 cib_xml=cluster.cib_xml if cluster else None, status=cluster.status if cluster else None,
                 nodes={n.name: n for n in nodes}, source="test")


# --- two-node-quorum ----------------------------------------------------------------------------

def test_two_node_quorum_checks(tmp_path: Path) -> None:
    two = ["node1", "node2"]
    cmap = {n: cmap_dump(two, two, two_node=1, this=n) for n in two}

    def state(flags: str, conf: str) -> Facts:
        return facts([node(n, quorum=quorumtool(two, flags, this=n), cmap=cmap[n], corosync_conf=conf)
                      for n in two], two)

    done = state("2Node Quorate", pcs_conf(tmp_path, two, "quorum update wait_for_all=0"))
    start = state("2Node Quorate WaitForAll", pcs_conf(tmp_path, two))
    exercise = load("two-node-quorum")
    verdicts = {c.id: REGISTRY[c.check].function(done, **c.params) for c in exercise.checks
                if c.check not in ("all_nodes_online", "partition_quorate")}
    assert all(v.passed for v in verdicts.values()), verdicts
    assert quorum_flag_absent(start, flag="WaitForAll").passed is False
    by_id = {c.id: c for c in exercise.checks}
    wfa = by_id["conf-wait-for-all"]
    assert REGISTRY[wfa.check].function(start, **wfa.params).passed is False  # implicit: not 0
    # Near misses: wait_for_all: 0 in the file but corosync not restarted; two_node deleted instead.
    stale = state("2Node Quorate WaitForAll", pcs_conf(tmp_path, two, "quorum update wait_for_all=0"))
    assert quorum_flag_absent(stale, flag="WaitForAll").passed is False
    no_two = pcs_conf(tmp_path, two).replace("two_node: 1\n", "")  # deleted by hand
    two_node = by_id["conf-two-node"]
    assert REGISTRY[two_node.check].function(state("Quorate", no_two), **two_node.params).passed is False
    runtime = by_id["runtime-two-node"]
    plain = facts([node(n, cmap=cmap_dump(two, two, two_node=0, this=n)) for n in two], two)
    assert REGISTRY[runtime.check].function(plain, **runtime.params).passed is False
    # A node whose corosync does not answer is no node with the flag off.
    down = facts([node("node1", quorum=quorumtool(two, "2Node Quorate", this="node1")),
                  node("node2", quorum=CommandResult("q", 1, "Cannot initialize QUORUM service\n", ""))], two)
    verdict = quorum_flag_absent(down, flag="WaitForAll")
    assert verdict.passed is False and "node2" in verdict.message


# --- node-add / node-remove ---------------------------------------------------------------------

def test_cmap_members_by_name() -> None:
    text = cmap_dump(["node1", "node2"], ["node1", "node2"], two_node=0, this="node1", left=["node3"])
    assert cmap_members(parsers.parse_cmap(text)) == {"node1", "node2"}
    # A member the loaded nodelist does not name (the others did not reload) is shown by nodeid.
    text = cmap_dump(["node1", "node2"], ["node1", "node2", "node3"], two_node=0, this="node1")
    assert cmap_members(parsers.parse_cmap(text)) == {"node1", "node2", "nodeid 3"}


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Facts]:
    """Pacemaker's view (crm_mon on CIBs made by pcs) of a 3-node cluster, and of the two that
    are left when node3 was removed (crm_node --remove: gone from nodes and status) or only stopped."""
    tmp = tmp_path_factory.mktemp("three")
    whole = OfflineCluster.empty(tmp / "whole.xml", nodes=("node1", "node2", "node3"))
    whole.simulate()
    whole.path.write_text(whole.path.read_text().replace("<cib ", '<cib dc-uuid="node1" ', 1))
    views = {"whole": facts_from_cib_file(whole.path)}
    removed = tmp / "removed.xml"
    shutil.copy(whole.path, removed)
    for xpath in ("//nodes/node[@uname='node3']", "//status/node_state[@uname='node3']"):
        subprocess.run(["cibadmin", "--delete-all", "--xpath", xpath, "--force"], check=True,
                       capture_output=True, env={"CIB_file": str(removed), "PATH": "/usr/sbin:/usr/bin:/bin"})
    views["removed"] = facts_from_cib_file(removed)
    stopped = tmp / "stopped.xml"
    subprocess.run(["crm_simulate", "-x", str(whole.path), "--node-down", "node3", "-S", "-O", str(stopped)],
                   check=True, capture_output=True)
    views["stopped"] = facts_from_cib_file(stopped)
    return views


def _cluster(tmp_path: Path, members: list[str], *, on: list[str], conf_nodes: list[str],
             view: Facts, node3: dict[str, str] | None = None,
             expected: tuple[str, ...] = ("node1", "node2", "node3")) -> Facts:
    """The lab's nodes ON running corosync with MEMBERS and a corosync.conf of CONF_NODES."""
    conf = pcs_conf(tmp_path, conf_nodes)
    listed = conf_nodes
    nodes = [node(n, corosync_conf=conf, cmap=cmap_dump(listed, members, two_node=int(len(listed) == 2), this=n),
                  quorum=quorumtool(members, "Quorate", this=n)) for n in on]
    if node3 is not None:
        nodes.append(node("node3", **node3))
    built = facts(nodes, list(expected), view)
    return Facts(live=True, expected_nodes=built.expected_nodes, cib=built.cib, cib_xml=built.cib_xml,
                 status=view.status, nodes={n.name: _with_status(n, view) for n in nodes}, source="test")


def _with_status(one: NodeFacts, view: Facts) -> NodeFacts:
    """A node that answers crm_mon sees the cluster view (a removed node's pacemaker is down)."""
    return one if one.corosync_conf is None else replace(one, status=view.status)


def test_node_add_checks(tmp_path: Path, three: dict[str, Facts]) -> None:
    all3 = ["node1", "node2", "node3"]
    added = _cluster(tmp_path, all3, on=all3, conf_nodes=all3, view=three["whole"])
    for check in load("node-add").checks:
        verdict = REGISTRY[check.check].function(added, **check.params)
        assert verdict.passed, (check.id, verdict.message)
    # The start state: node3 out of the cluster (no corosync, no corosync.conf) and unknown to pacemaker.
    start = _cluster(tmp_path, ["node1", "node2"], on=["node1", "node2"], conf_nodes=["node1", "node2"],
                     view=three["removed"], node3={})
    assert corosync_nodelist(start, node="node3").passed is False
    assert corosync_members(start, node="node3").passed is False
    assert pacemaker_node_list(start, node="node3").passed is False
    # Near miss: corosync.conf edited everywhere, but node3 never started (not a member, pacemaker offline).
    unstarted = _cluster(tmp_path, ["node1", "node2"], on=["node1", "node2"], conf_nodes=all3,
                         view=three["stopped"], node3={"corosync_conf": pcs_conf(tmp_path, all3)})
    assert corosync_nodelist(unstarted, node="node3").passed
    verdict = corosync_members(unstarted, node="node3")
    assert verdict.passed is False and "node3" in verdict.message
    assert pacemaker_node_list(unstarted, node="node3").passed is False
    # Near miss: corosync.conf not copied to node2.
    half = _cluster(tmp_path, all3, on=all3, conf_nodes=all3, view=three["whole"])
    conf2 = pcs_conf(tmp_path, ["node1", "node2"])
    nodes = dict(half.nodes)
    nodes["node2"] = replace(nodes["node2"], corosync_conf=node("x", corosync_conf=conf2).corosync_conf)
    verdict = corosync_nodelist(replace(half, nodes=nodes), node="node3")
    assert verdict.passed is False and verdict.message.startswith("node2:")


@pytest.mark.parametrize("awk", ["mawk", "gawk"])
def test_crmsh_removal_edits_corosync_conf_as_pcs_would(tmp_path: Path, awk: str) -> None:
    """crmsh 4.4 leaves the node in a knet corosync.conf, so its reference solution edits it out:
    run on the lab's own file (pcs cluster setup of 3 nodes) its awk, then the real
    `crm corosync set quorum.two_node 1`, gives the nodelist and two_node of pcs's 2-node file."""
    if shutil.which(awk) is None or shutil.which("crm") is None:
        pytest.skip(f"needs {awk} and crmsh")
    conf = tmp_path / "corosync.conf"
    conf.write_text(pcs_conf(tmp_path, ["node1", "node2", "node3"]))
    context = command_context(["node1", "node2", "node3"])
    steps = [render_command(c, context) for c in load("node-remove").solution_crmsh]
    edits = [c for c in steps if "corosync.conf" in c and "push" not in c]
    assert len(edits) == 3, steps
    env = dict(os.environ, COROSYNC_MAIN_CONFIG_FILE=str(conf))
    for command in edits:
        command = command.replace("awk ", f"{awk} ", 1).replace("/etc/corosync/corosync.conf", str(conf))
        command = command.replace("/run/corosync.conf.removed", str(tmp_path / "removed"))
        done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
    edited, two = parse_corosync_conf(conf.read_text()), parse_corosync_conf(pcs_conf(tmp_path, ["node1", "node2"]))
    assert edited.node_names == two.node_names == ["node1", "node2"]
    assert edited.link_addresses(0) == two.link_addresses(0) == {n: ADDRS[n] for n in ("node1", "node2")}
    assert edited.option("quorum.two_node") == two.option("quorum.two_node") == "1"
    assert [n.options.get("nodeid") for n in edited.root.section("nodelist").all("node")] == ["1", "2"]
    assert not (tmp_path / "removed").exists()


def test_node_remove_checks(tmp_path: Path, three: dict[str, Facts]) -> None:
    two = ["node1", "node2"]
    removed = _cluster(tmp_path, two, on=two, conf_nodes=two, view=three["removed"], node3={})
    for check in load("node-remove").checks:
        verdict = REGISTRY[check.check].function(removed, **check.params)
        assert verdict.passed, (check.id, verdict.message)
    all3 = ["node1", "node2", "node3"]
    start = _cluster(tmp_path, all3, on=all3, conf_nodes=all3, view=three["whole"])
    for check in load("node-remove").checks:
        if check.check != "quorate_without":
            assert REGISTRY[check.check].function(start, **check.params).passed is False, check.id
    # Near miss: node3 only stopped: still in corosync.conf and pacemaker's list (offline).
    stopped = _cluster(tmp_path, two, on=two, conf_nodes=all3, view=three["stopped"], node3={})
    assert corosync_nodelist(stopped, node="node3", member=False).passed is False
    verdict = pacemaker_node_list(stopped, node="node3", member=False)
    assert verdict.passed is False and "offline" in verdict.message
    # Near miss: removed from the others, but node3 still runs a corosync of its own.
    alone = _cluster(tmp_path, two, on=two, conf_nodes=two, view=three["removed"],
                     node3={"cmap": cmap_dump(all3, ["node3"], two_node=0, this="node3")})
    verdict = corosync_members(alone, node="node3", member=False)
    assert verdict.passed is False and "still runs corosync" in verdict.message
    # The remaining two must be quorate: a partition that lost quorum fails.
    lost = facts([node(n, quorum=quorumtool(two, "", this=n, quorate=False)) for n in two] + [node("node3")],
                 all3, three["removed"])
    assert quorate_without(lost, node="node3").passed is False


# --- answer files: cluster-architecture, crm-simulate-predict -----------------------------------

def gathered_answers(tmp_path: Path, files: dict[str, str]) -> NodeFacts:
    """The real gather script reading an answers folder on this host (the `answers` section)."""
    folder = tmp_path / "answers"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_bytes(text.encode())
    runner = LocalRunner("node1", env={})
    return gather_node(runner, sections=frozenset({"answers"}), timeout=30, answers_dir=str(folder))


def test_the_gather_reads_answer_files_bounded(tmp_path: Path) -> None:
    big = "dc=node1\n" + "# padding\n" * 2000 + "web=node2\n"  # beyond the first 4 KiB: not read
    one = gathered_answers(tmp_path, {"architecture.txt": "\ufeffDC = Node2\r\nweb: 'node1'\r\n# web=node9\n",
                                      "big.txt": big, "bad name.txt": "dc=node1\n"})
    assert one.error is None, one.error
    assert one.answers["architecture.txt"] == {"dc": ("Node2",), "web": ("node1",)}
    assert one.answers["big.txt"] == {"dc": ("node1",)}
    assert "bad name.txt" not in one.answers  # a name no task gives is never read as an answer
    (tmp_path / "answers" / "link.txt").symlink_to(tmp_path / "answers" / "architecture.txt")
    again = gathered_answers(tmp_path, {})
    assert "link.txt" not in again.answers and "architecture.txt" in again.answers
    # the section script itself: a file the student cannot write is no reason to fail
    assert sec.ANSWERS.name in sections_for(load("cluster-architecture"))


def start_state(exercise: Exercise, folder: Path, dc: str | None = None) -> Facts:
    """Pacemaker's view of the exercise's start state: its pcs commands on a CIB file, settled
    by crm_simulate (a live lab waits with crm_resource --wait instead), DC as crm_mon names it."""
    cluster = OfflineCluster.empty(folder / "cib.xml")
    cluster.run_all([c for c in exercise.start.commands if not c.startswith("crm_resource")])
    cluster.simulate()
    if dc:
        cluster.path.write_text(cluster.path.read_text().replace("<cib ", f'<cib dc-uuid="{dc}" ', 1))
    return facts_from_cib_file(cluster.path)


@pytest.fixture(scope="module")
def architecture(tmp_path_factory: pytest.TempPathFactory) -> Facts:
    """exercise cluster-architecture's start state on pcs and crm_simulate, node2 as the DC."""
    return start_state(load("cluster-architecture"), tmp_path_factory.mktemp("arch"), dc="node2")


def _answered(view: Facts, text: str, *, file: str, tmp_path: Path) -> Facts:
    return facts([gathered_answers(tmp_path, {file: text}), node("node2")], ["node1", "node2"], view)


@pytest.mark.parametrize(("text", "dc", "web"), [
    ("dc=node2\nweb=node2\n", True, True),
    ("  DC = node2 \n web:node2\n", True, True),  # spaces, case, another separator
    ("dc=node1\nweb=node2\n", False, True),  # wrong node
    ("dc=node2\ndc=node1\nweb=node2\n", False, True),  # two answers: not one
    ("web=node2\n", False, True),  # no dc line
    ("dc=node2 (DC)\nweb=node1\n", False, False),  # not a node name; web is on node2
])
def test_architecture_answers(architecture: Facts, tmp_path: Path, text: str, dc: bool, web: bool) -> None:
    assert architecture.status.dc == "node2"
    assert architecture.status.running_nodes("web") == ["node2"]  # prefers the last node
    judged = _answered(architecture, text, file="architecture.txt", tmp_path=tmp_path)
    assert answer_names_dc(judged, file="architecture.txt").passed is dc
    assert answer_names_location(judged, file="architecture.txt", key="web", resource="web").passed is web


def test_no_answer_file_fails_and_copies_must_agree(architecture: Facts, tmp_path: Path) -> None:
    nothing = facts([node("node1"), node("node2")], ["node1", "node2"], architecture)
    verdict = answer_names_dc(nothing, file="architecture.txt")
    assert verdict.passed is False and "/root/answers/architecture.txt" in verdict.message
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = gathered_answers(tmp_path / "a", {"architecture.txt": "dc=node2\n"})
    second = replace(gathered_answers(tmp_path / "b", {"architecture.txt": "dc=node1\n"}), name="node2")
    verdict = answer_names_dc(facts([first, second], ["node1", "node2"], architecture), file="architecture.txt")
    assert verdict.passed is False and "more than once" in verdict.message
    same = replace(gathered_answers(tmp_path / "b", {"architecture.txt": "dc = node2\n"}), name="node2")
    assert answer_names_dc(facts([first, same], ["node1", "node2"], architecture), file="architecture.txt").passed


@pytest.fixture(scope="module")
def predict_state(tmp_path_factory: pytest.TempPathFactory) -> Facts:
    """exercise crm-simulate-predict's start state, made by pcs and settled by crm_simulate."""
    return start_state(load("crm-simulate-predict"), tmp_path_factory.mktemp("predict"))


@pytest.mark.parametrize(("text", "web", "batch"), [
    ("web=node2\nbatch=stopped\n", True, True),
    ("web = NODE2\nbatch: Stopped\n", True, True),
    ("web=node2\nbatch=none\n", True, True),
    ("web=node1\nbatch=node2\n", False, False),  # where they run now, not after the failure
    ("web=node2\nbatch=node2\n", True, False),  # batch may never run on node2
    ("web=stopped\nbatch=stopped\n", False, True),  # web follows ip1 to node2
])
def test_predict_answers(predict_state: Facts, tmp_path: Path, text: str, web: bool, batch: bool) -> None:
    assert predict_state.status.running_nodes("web") == ["node1"]
    judged = _answered(predict_state, text, file="predict.txt", tmp_path=tmp_path)
    assert answer_predicts_failover(judged, file="predict.txt", key="web", resource="web",
                                    failed="node1").passed is web
    assert answer_predicts_failover(judged, file="predict.txt", key="batch", resource="batch",
                                    failed="node1").passed is batch


def test_the_reference_solution_writes_what_the_scheduler_says(predict_state: Facts, tmp_path: Path) -> None:
    """The pcs solution's pipeline, on a copy of the CIB instead of the live one (-L)."""
    command = load("crm-simulate-predict").solution_pcs[1].replace("{node1}", "node1").replace("{{", "{") \
        .replace("}}", "}")
    cib = tmp_path / "cib.xml"
    cib.write_text(predict_state.cib_xml)
    command = command.replace("--live-check", f"--xml-file {cib}").replace("/root/answers", str(tmp_path))
    subprocess.run(["sh", "-ec", command], check=True)
    written = (tmp_path / "predict.txt").read_text()
    judged = _answered(predict_state, written, file="predict.txt", tmp_path=tmp_path)
    for check in load("crm-simulate-predict").checks:
        verdict = REGISTRY[check.check].function(judged, **check.params)
        assert verdict.passed, (check.id, verdict.message, written)


def test_predicting_follows_the_cib_not_a_fixed_answer(predict_state: Facts, tmp_path: Path) -> None:
    """Without the ban on node2, batch moves there: the same answer is now wrong."""
    cib = tmp_path / "cib.xml"
    cib.write_text(predict_state.cib_xml)
    subprocess.run(["pcs", "-f", str(cib), "constraint", "delete", "location-batch-node2--INFINITY"],
                   check=True, capture_output=True)
    judged = _answered(facts_from_cib_file(cib), "web=node2\nbatch=stopped\n", file="predict.txt", tmp_path=tmp_path)
    assert answer_predicts_failover(judged, file="predict.txt", key="batch", resource="batch",
                                    failed="node1").passed is False


# --- stonith-admin ------------------------------------------------------------------------------

REBOOT = {"action": "reboot", "target": "node2", "client": "stonith_admin.4242", "origin": "node1",
          "status": "success", "delegate": "node1", "completed": "2026-12-01 16:40:02Z"}


@pytest.mark.parametrize(("events", "passed", "said"), [
    ([REBOOT], True, "stonith_admin.4242"),
    ([{**REBOOT, "client": "pacemaker-controld.1234"}], False, "the cluster fenced node2 itself"),
    ([{**REBOOT, "action": "off"}], False, "with off"),
    ([{**REBOOT, "status": "failed", "exit-reason": "timed out"}], False, "did not succeed"),
    ([{k: v for k, v in REBOOT.items() if k not in ("completed", "delegate")} | {"status": "pending",
      "extended-status": "1"}], False, "did not succeed"),
    ([{**REBOOT, "target": "node1"}], False, "no action on node2"),
    ([], False, "no action on node2"),
])
def test_fenced_by_hand(events: list[dict[str, str]], passed: bool, said: str) -> None:
    nodes = [node("node1", fence_history=fence_history(*events)), node("node2")]
    verdict = fenced_by_hand(facts(nodes, ["node1", "node2"]), target="node2")
    assert verdict.passed is passed and said in verdict.message, verdict.message


def test_a_fencer_that_does_not_answer_is_no_history() -> None:
    failed = CommandResult("stonith_admin", 102, "", "Could not connect to fencer: Transport endpoint is not connected")
    error = fence_history().replace('code="0" message="OK"', 'code="102" message="Not connected"')
    nodes = [node("node1", fence_history=failed), node("node2", fence_history=CommandResult("s", 0, error, ""))]
    assert all(n.fence_history is None for n in nodes)
    verdict = fenced_by_hand(facts(nodes, ["node1", "node2"]), target="node2")
    assert verdict.passed is False and "answered" in verdict.message
    # one node that answers is enough (the fenced node's own history restarts empty)
    nodes.append(node("node3", fence_history=fence_history(REBOOT)))
    assert fenced_by_hand(facts(nodes, ["node1", "node2", "node3"]), target="node2").passed


def test_the_last_node_is_the_labs_last(tmp_path: Path, three: dict[str, Facts]) -> None:
    """node-add/node-remove name their node "last" ({last_node} in the commands): on a 4-node lab
    node4 is the one taken out, and node3 must stay."""
    four = ("node1", "node2", "node3", "node4")
    assert lab_node(facts([], list(four)), "last") == "node4"
    assert lab_node(facts([], list(four)), "node3") == "node3"
    removed = _cluster(tmp_path, ["node1", "node2"], on=["node1", "node2"], conf_nodes=["node1", "node2"],
                       view=three["removed"], node3={}, expected=("node1", "node2", "node3"))
    assert corosync_nodelist(removed, node="last", member=False).passed
    verdict = corosync_nodelist(replace(removed, expected_nodes=four), node="last", member=False)
    assert verdict.passed is False  # node3 must still be listed on a 4-node lab
    commands = [render_command(c, command_context(list(four))) for c in load("node-add").start.commands]
    assert commands[0] == "pcs cluster node remove node4"


def test_architecture_with_a_drawn_resource(tmp_path: Path) -> None:
    """The exam draws the resource's name: the start state, the answer key and the checks follow it."""
    exercise = load("cluster-architecture").with_params({"rsc": "db"})
    view = start_state(exercise, tmp_path, dc="node1")
    right = _answered(view, "dc=node1\ndb=node2\n", file="architecture.txt", tmp_path=tmp_path)
    for check in exercise.checks:
        verdict = REGISTRY[check.check].function(right, **check.params)
        assert verdict.passed, (check.id, verdict.message)
    wrong = _answered(view, "dc=node1\nweb=node2\n", file="architecture.txt", tmp_path=tmp_path)
    located = next(c for c in exercise.checks if c.check == "answer_names_location")
    assert REGISTRY[located.check].function(wrong, **located.params).passed is False


def test_an_answer_is_shown_on_one_safe_line(architecture: Facts, tmp_path: Path) -> None:
    """An answer is the student's text: a control character in it cannot forge a report line."""
    judged = _answered(architecture, "dc=node2\x1b[2J\nweb=\x1b[31mnode9\n", file="architecture.txt", tmp_path=tmp_path)
    for verdict in (answer_names_dc(judged, file="architecture.txt"),
                    answer_names_location(judged, file="architecture.txt", key="web", resource="web")):
        assert verdict.passed is False and "\x1b" not in verdict.message and "\\x1b" in verdict.message


def test_the_quorumtool_sample_reads_as_a_live_labs_does() -> None:
    """The `corosync-quorumtool -s` samples above read exactly as a real one: captured on a live
    2-node lab (Debian 12 box, corosync 3.1.7, 2026-12-01), line for line but the date and ring id."""
    from lab.core.corosync import parse_quorumtool

    live = (Path(__file__).parent / "captures" / "live" / "quorumtool-2node-node1.txt").read_text()
    sample = quorumtool(["node1", "node2"], "2Node Quorate WaitForAll", this="node1")
    assert parse_quorumtool(sample) == parse_quorumtool(live)
    differ = [(a, b) for a, b in zip(sample.splitlines(), live.splitlines(), strict=True) if a != b]
    assert [a.split(":")[0] for a, _ in differ] == ["Date", "Ring ID"], differ


LIVE = Path(__file__).parent / "captures" / "live"


@pytest.mark.parametrize(("capture", "nodes", "this", "left"), [
    ("cmapctl-2node-node1.txt", ["node1", "node2"], "node1", []),
    ("cmapctl-3node-after-node-add-node1.txt", ["node1", "node2", "node3"], "node1", []),  # pcs cluster node add
    ("cmapctl-3node-after-crm-join-node3.txt", ["node1", "node2", "node3"], "node3", []),  # crmsh, on the new node
    ("cmapctl-2node-after-crm-remove-node1.txt", ["node1", "node2"], "node1", ["node3"]),  # node-remove, crmsh
])
def test_the_cmapctl_sample_reads_as_a_live_labs_does(capture: str, nodes: list[str], this: str,
                                                      left: list[str]) -> None:
    """Every line of the `corosync-cmapctl` sample is a line of a real one (live labs, Debian 12 box,
    corosync 3.1.7, 2026-12-01, after node-add's reference solutions; the lab's addresses for the
    sample's), and both read alike."""
    live = (LIVE / capture).read_text()
    sample = cmap_dump(nodes, nodes, two_node=int(len(nodes) == 2), this=this, left=left)
    for name, ip in ADDRS.items():
        sample = sample.replace(ip + ")", f"10.231.10.1{name[-1]})").replace(ip + "\n", f"10.231.10.1{name[-1]}\n")
    # join_count counts a node's joins since corosync started (node3 of the start state rejoined): not read
    missing = [line for line in sample.splitlines() if line not in live.splitlines() and ".join_count " not in line]
    assert missing == []
    assert cmap_members(parsers.parse_cmap(sample)) == cmap_members(parsers.parse_cmap(live)) == set(nodes)


def test_the_fence_history_sample_is_what_pacemaker_prints() -> None:
    """stonith_admin's history captured on a live lab after stonith-admin's pcs reference solution
    (pacemaker 2.1.5, one manual reboot of node2) and on one that fenced nothing: the sample prints
    both byte for byte, and the check passes and fails on the real texts as on the samples."""
    fenced = (LIVE / "fence-history-stonith-admin-node1.xml").read_text()
    empty = (LIVE / "fence-history-empty-node1.xml").read_text()
    event = parsers.parse_fence_history(CommandResult("stonith_admin", 0, fenced, ""))
    assert event is not None and len(event) == 1
    real = {"action": "reboot", "target": "node2", "client": event[0].client, "origin": "node1",
            "status": "success", "delegate": "node1", "completed": event[0].completed}
    assert fence_history(real) == fenced and fence_history() == empty
    assert fenced_by_hand(facts([node("node1", fence_history=fenced), node("node2")], ["node1", "node2"]),
                          target="node2").passed
    verdict = fenced_by_hand(facts([node("node1", fence_history=empty), node("node2")], ["node1", "node2"]),
                             target="node2")
    assert verdict.passed is False and "no action on node2" in verdict.message
