"""Live-only checks judged on real tool output: corosync.conf written by pcs, failures
injected by crm_simulate, and a real corosync on loopback for the runtime views.

Node facts are built from the sections the SSH gatherer would return; the texts in
them come from the real tools, never written by hand.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from checks.cluster import corosync_conf_identical, corosync_option, shadow_has_resource
from checks.resources import resource_clean
from lab.engine.offline import OfflineCluster
from lab.gather.facts import Facts, facts_from_cib_file, node_facts_from_sections
from lab.transport.runner import CommandResult


def pcs_corosync_conf(tmp_path: Path, name: str, *update: str) -> str:
    """corosync.conf as `pcs cluster setup` writes it, optionally changed by pcs itself."""
    path = tmp_path / f"{name}.conf"
    subprocess.run(["pcs", "cluster", "setup", "my_cluster", "node1", "addr=192.0.2.11", "node2",
                    "addr=192.0.2.12", "--corosync_conf", str(path), "--no-cluster-uuid"],
                   check=True, capture_output=True)
    for command in update:
        subprocess.run(["pcs", *command.split(), "--corosync_conf", str(path)], check=True, capture_output=True)
    return path.read_text()


def live_facts(confs: dict[str, str], shadows: dict[str, dict[str, str]] | None = None) -> Facts:
    nodes = {}
    for name, conf in confs.items():
        sections = {
            "hostname": CommandResult("hostname", 0, name, ""),
            "corosync_conf": CommandResult("cat", 0, conf, ""),
        }
        if shadows and name in shadows:
            lines = [f"{shadow} {base64.b64encode(text.encode()).decode()}" for shadow, text in shadows[name].items()]
            sections["shadows"] = CommandResult("shadows", 0, "\n".join(lines), "")
        nodes[name] = node_facts_from_sections(name, sections)
    return Facts(live=True, expected_nodes=tuple(confs), cib=None, cib_xml=None, status=None,
                 nodes=nodes, source="test")


@pytest.fixture(scope="module")
def confs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("corosync")
    return {
        "plain": pcs_corosync_conf(tmp, "plain"),
        "token": pcs_corosync_conf(tmp, "token", "cluster config update totem token=5000"),
        "token4000": pcs_corosync_conf(tmp, "token4000", "cluster config update totem token=4000"),
    }


def test_corosync_option_needs_every_node(confs: dict[str, str]) -> None:
    assert corosync_option(live_facts({"node1": confs["token"], "node2": confs["token"]}),
                           option="totem.token", value="5000").passed
    half = corosync_option(live_facts({"node1": confs["token"], "node2": confs["plain"]}),
                           option="totem.token", value="5000")
    assert half.passed is False and "node2" in half.message
    assert corosync_option(live_facts({"node1": confs["token4000"], "node2": confs["token4000"]}),
                           option="totem.token", value="5000").passed is False


def test_flag_values_are_read_like_corosync(confs: dict[str, str]) -> None:
    both = live_facts({"node1": confs["plain"], "node2": confs["plain"]})
    # pcs writes two_node: 1; corosync reads 1, yes and on alike.
    assert corosync_option(both, option="quorum.two_node", value="yes").passed
    assert corosync_option(both, option="quorum.wait_for_all", value="1").passed is False


def test_identical_conf(confs: dict[str, str]) -> None:
    assert corosync_conf_identical(live_facts({"node1": confs["plain"], "node2": confs["plain"]})).passed
    # Comments and indentation do not make a configuration different.
    reformatted = "# edited by hand\n" + confs["plain"].replace("    ", "\t")
    assert corosync_conf_identical(live_facts({"node1": confs["plain"], "node2": reformatted})).passed
    broken = confs["plain"].replace("crypto_cipher: aes256", "crypto_cipher: aes257")
    verdict = corosync_conf_identical(live_facts({"node1": confs["plain"], "node2": broken}))
    assert verdict.passed is False and "node2" in verdict.message


def test_shadow_cib(tmp_path: Path) -> None:
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    with_res = cluster.copy(tmp_path / "with.xml")
    with_res.run("pcs resource create shadowed ocf:pacemaker:Dummy")
    conf = "totem {\n cluster_name: my_cluster\n}\n"
    facts = live_facts({"node1": conf, "node2": conf},
                       shadows={"node2": {"practice": with_res.path.read_text()}})
    assert shadow_has_resource(facts, shadow="practice", resource="shadowed").passed
    assert shadow_has_resource(facts, shadow="other", resource="shadowed").passed is False
    empty = live_facts({"node1": conf, "node2": conf}, shadows={"node1": {"practice": cluster.path.read_text()}})
    assert shadow_has_resource(empty, shadow="practice", resource="shadowed").passed is False


@pytest.mark.parametrize("rsc_id", ["web", "my_web_server"])
def test_resource_clean_sees_failures_and_fail_counts(rsc_id: str, tmp_path: Path) -> None:
    """A failed monitor (injected by crm_simulate) is recorded until a cleanup removes it."""
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    cluster.run(f"pcs resource create {rsc_id} ocf:pacemaker:Dummy op monitor interval=10s")
    cluster.simulate()
    node = facts_from_cib_file(cluster.path).status.running_nodes(rsc_id)[0]
    assert resource_clean(facts_from_cib_file(cluster.path), resource=rsc_id).passed
    failed = tmp_path / "failed.xml"
    subprocess.run(["crm_simulate", "-x", str(cluster.path), "-S", "-O", str(failed),
                    "-i", f"{rsc_id}_monitor_10000@{node}=7"], check=True, capture_output=True)
    verdict = resource_clean(facts_from_cib_file(failed), resource=rsc_id)
    assert verdict.passed is False and "monitor failed" in verdict.message and "fail-count" in verdict.message
    # (crm_resource --cleanup only works against a live cluster: the cleaned-up side is the
    # VM tests' business; the state before the failure above is the clean reference.)


pytestmark = pytest.mark.skipif(shutil.which("pcs") is None, reason="needs pcs")
