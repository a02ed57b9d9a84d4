"""crm_mon's view computed on this host from a node's CIB (lab.gather.hostmon) gives the checks
exactly what the node's own crm_mon gives, and the node's crm_mon still answers whenever this
host cannot vouch for that (another pacemaker build, no DC yet, a CIB this crm_mon refuses).

The "node" is this host: the real gather script through a local runner whose CIB_file is a state
made by the real tools, and whose crm_mon is the real one behind a wrapper that counts its runs.
The live half (tests/captures/live/crm-mon-*.xml next to cib-*.xml, taken on a lab's nodes with
`cibadmin --query` and `crm_mon` at the same moment) holds the host's reading against the nodes'.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import checks
from lab.engine.offline import OfflineCluster
from lab.gather import hostmon
from lab.gather.facts import gather_node, status_from_crm_mon
from lab.transport.local import LocalRunner
from lab.transport.runner import CommandResult

pytestmark = pytest.mark.skipif(shutil.which("crm_mon") is None or shutil.which("pcs") is None,
                                reason="needs pacemaker-cli-utils and pcs")
LIVE = Path(__file__).parent / "captures" / "live"


def host_dc_version() -> str:
    build = hostmon.host_build()
    assert build is not None, "this host's crm_mon does not say its version and build"
    return f"{build[0]}-{build[1]}"


def as_cluster_wrote_it(cluster: OfflineCluster, dc_version: str) -> None:
    """What a DC writes into every CIB: dc-version (here by crm_attribute on the file)."""
    cluster.run(f"crm_attribute --type crm_config --name dc-version --update {dc_version}")


def counted_node(tmp_path: Path, cib: Path) -> tuple[LocalRunner, Path]:
    """A node whose crm_mon is the real one, each run noted in a file."""
    bin_dir, runs = tmp_path / "bin", tmp_path / "crm_mon.runs"
    bin_dir.mkdir(exist_ok=True)
    real = shutil.which("crm_mon")
    (bin_dir / "crm_mon").write_text(f'#!/bin/sh\necho run >>{runs}\nexec {real} "$@"\n')
    (bin_dir / "crm_mon").chmod(0o755)
    env = {"CIB_file": str(cib), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return LocalRunner("node1", env=env), runs


def node_runs(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


STATES = {
    "resources running": ["pcs resource create Web ocf:pacemaker:Dummy",
                          "pcs resource create Db ocf:pacemaker:Dummy",
                          "pcs constraint colocation add Db with Web INFINITY"],
    "standby and a group": ["pcs resource create A ocf:pacemaker:Dummy --group G",
                            "pcs resource create B ocf:pacemaker:Dummy --group G",
                            "pcs node standby node2"],
    "clone, disabled, unmanaged": ["pcs resource create Ping ocf:pacemaker:Dummy clone",
                                   "pcs resource create Off ocf:pacemaker:Dummy --disabled",
                                   "pcs resource create Loose ocf:pacemaker:Dummy meta is-managed=false"],
}


@pytest.mark.parametrize("state", sorted(STATES))
def test_host_reading_is_the_nodes_reading(tmp_path: Path, state: str) -> None:
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    cluster.run_all(STATES[state])
    cluster.simulate()
    as_cluster_wrote_it(cluster, host_dc_version())
    runner, runs = counted_node(tmp_path, cluster.path)

    here = gather_node(runner, sections=frozenset(checks.CIB_SECTIONS), timeout=30, crm_mon_here=True)
    assert node_runs(runs) == 0, "the node ran crm_mon although this host runs the same build"
    there = gather_node(runner, sections=frozenset(checks.CIB_SECTIONS), timeout=30, crm_mon_here=False)
    assert node_runs(runs) == 1
    assert here.error is None and there.error is None
    assert here.status is not None and here.status == there.status
    assert here.cib == there.cib and dict(here.problems) == dict(there.problems) == {}


@pytest.mark.parametrize("dc_version", ["2.1.7-5.el8_10-0f7f88312", "2.1.5-0000000000", "9.9.9-a3f44794f94"])
def test_another_build_is_read_by_the_nodes_own_crm_mon(tmp_path: Path, dc_version: str) -> None:
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    cluster.run("pcs resource create Web ocf:pacemaker:Dummy")
    cluster.simulate()
    as_cluster_wrote_it(cluster, dc_version)
    if dc_version == host_dc_version():
        pytest.skip("this host runs that very build")
    runner, runs = counted_node(tmp_path, cluster.path)
    facts = gather_node(runner, sections=frozenset(checks.CIB_SECTIONS), timeout=30, crm_mon_here=True)
    assert node_runs(runs) == 1, "another build's CIB was read by this host's crm_mon"
    assert facts.status is not None and facts.status.running_nodes("Web")


def test_no_dc_version_yet_asks_the_node(tmp_path: Path) -> None:
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")  # no DC ever wrote into it
    runner, runs = counted_node(tmp_path, cluster.path)
    facts = gather_node(runner, sections=frozenset(checks.CIB_SECTIONS), timeout=30, crm_mon_here=True)
    assert node_runs(runs) == 1 and facts.status is not None


def test_a_cib_this_crm_mon_refuses_asks_the_node(tmp_path: Path) -> None:
    """A CIB the host's crm_mon cannot read (here: one failing its schema) goes to the node's."""
    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    as_cluster_wrote_it(cluster, host_dc_version())
    text = cluster.path.read_text().replace("<resources/>", "<resources><primitive id='x'/></resources>")
    assert "primitive id='x'" in text
    assert hostmon.status_here(text, "node1") is None


def test_unreadable_cib_still_reports_crm_mon_and_keeps_the_node(tmp_path: Path) -> None:
    """A node whose CIB query fails keeps every other section; crm_mon's own failure is named."""
    runner, runs = counted_node(tmp_path, tmp_path / "no-such-cib.xml")
    facts = gather_node(runner, sections=frozenset(checks.CIB_SECTIONS), timeout=30, crm_mon_here=True)
    assert facts.error is None and facts.hostname
    assert facts.cib is None and facts.status is None
    assert node_runs(runs) == 1 and "crm_mon" in facts.problems and "cib" in facts.problems


def _live_pairs() -> list[str]:
    return sorted(p.name[len("cib-"):-len(".xml")] for p in LIVE.glob("cib-*.xml")
                  if (LIVE / f"crm-mon-{p.name[len('cib-'):]}").exists())


@pytest.mark.parametrize("capture", _live_pairs())
def test_live_captures_read_the_same_on_this_host(capture: str) -> None:
    """A node's CIB and its crm_mon, taken at the same moment on a lab: this host's crm_mon of
    that CIB says what the node's said (when this host runs the build that wrote it)."""
    cib_xml = (LIVE / f"cib-{capture}.xml").read_text()
    node_said = status_from_crm_mon(CommandResult("crm_mon", 0, (LIVE / f"crm-mon-{capture}.xml").read_text(), ""),
                                    capture)
    if hostmon.cluster_build(cib_xml) != hostmon.host_build():
        pytest.skip("captured from another pacemaker build than this host's")
    computed = hostmon.status_here(cib_xml, capture)
    assert computed is not None
    assert status_from_crm_mon(computed, capture) == node_said


def test_there_are_live_captures() -> None:
    assert len(_live_pairs()) >= 4


class Recorder:
    """A runner keeping every answer, as the exam's evidence recorder keeps the node's."""

    def __init__(self, runner: LocalRunner) -> None:
        self.runner, self.name, self.answers = runner, runner.name, []

    def run(self, command, *, timeout=120.0, input_text=None, label=None):  # type: ignore[no-untyped-def]
        result = self.runner.run(command, timeout=timeout, input_text=input_text, label=label)
        self.answers.append(result)
        return result

    def close(self) -> None:
        self.runner.close()


def test_evidence_holds_the_nodes_own_crm_mon(tmp_path: Path) -> None:
    """The exam freezes each node's one answer and judges it again later: asked with
    crm_mon_here=False it is one round trip holding crm_mon's section, even where this host could
    have computed it; by default (a check) this host computes it and the answer has none."""
    from lab.gather.facts import gather_live, parse_sections

    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    cluster.run("pcs resource create Web ocf:pacemaker:Dummy")
    cluster.simulate()
    as_cluster_wrote_it(cluster, host_dc_version())
    runner, _ = counted_node(tmp_path, cluster.path)
    for here, has_crm_mon in ((False, True), (None, False)):
        recorder = Recorder(runner)
        facts = gather_live([recorder], ["node1"], sections=frozenset(checks.CIB_SECTIONS), crm_mon_here=here)
        assert facts.status is not None and facts.status.running_nodes("Web")
        assert len(recorder.answers) == 1
        assert ("crm_mon" in parse_sections(recorder.answers[0].stdout)) is has_crm_mon
