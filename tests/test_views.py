"""Durations, scores and the CIB view, checked against what pacemaker itself does."""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.core.cib import Cib, cib_from_element, normalise_role
from lab.core.durations import format_ms, parse_ms
from lab.core.scores import INFINITY, is_true, parse_score
from lab.core.status import Status
from lab.core.xmlsafe import parse_untrusted
from lab.engine.offline import OfflineCluster
from lab.gather.facts import facts_from_cib_file
from lab.transport.runner import run_local
from tests.conftest import grade_file


@pytest.mark.parametrize(("text", "expected"), [
    ("30", 30_000), ("30s", 30_000), ("30sec", 30_000), ("30 seconds", 30_000), ("30S", 30_000),
    ("30000ms", 30_000), ("30000msec", 30_000), ("PT30S", 30_000), (" 30 s", 30_000),
    ("30.9s", 30_000), ("1min", 60_000), ("1m", 60_000), ("PT1M", 60_000), ("60000ms", 60_000),
    ("2H", 7_200_000), ("2h", 7_200_000), ("PT1H30M", 5_400_000), ("1500us", 1), ("0", 0),
    ("PT0S", 0),
    # ISO 8601 as pacemaker 2.1.5 reads it (measured below): any order, T only for minutes
    ("P30S", 30_000), ("P1H", 3_600_000), ("PT30S ", 30_000), ("PT24H", 86_400_000),
    ("P1M", 30 * 86_400_000), ("P1D", 0), ("P1W", 6 * 86_400_000), ("P1DT30S", 30_000),
    # rejected
    ("30x", None), ("abc", None), ("", None), ("P", None), ("PT1Y", None), ("P5", None),
    ("-30s", None), ("PT-30S", None), (".5s", None), ("pt30s", None), (" PT30S", None), (None, None),
])
def test_parse_ms(text: str | None, expected: int | None) -> None:
    assert parse_ms(text) == expected


def test_format_ms() -> None:
    assert [format_ms(v) for v in (30_000, 1, 0, 1_500)] == ["30s", "1ms", "0s", "1500ms"]


NOTATIONS = ["30", "30s", "30sec", "30000ms", "PT30S", "P30S", "1min", "1m", "PT1M", "60000ms",
             " 30 s", "30 seconds", "30.5s", "1500us", "30hello", "2H", "20", "PT20S", "20000ms",
             "30x", "abc", "P", "PT1Y", "P1D", "P2D", "PT24H", "P1W", "P1M", "PT1H30M", "PT1D",
             "P1H", "PT30S ", "PT0S", "0", "P1DT1S", "P1DT30S", "PT1M30S", "P0DT30S"]


def test_parse_ms_agrees_with_pacemaker(tmp_path: Path) -> None:
    """One primitive per notation; the scheduler starts each and records its monitor interval."""
    cluster = OfflineCluster.empty(tmp_path / "intervals.xml")
    for index, text in enumerate(NOTATIONS):
        xml = (f'<primitive id="R{index}" class="ocf" provider="pacemaker" type="Dummy">'
               f'<operations><op id="R{index}-mon" name="monitor" interval="{text}"/></operations>'
               "</primitive>")
        cluster.run(f"cibadmin --create -o resources -X {shlex.quote(xml)}")
    cluster.simulate()
    root = ET.parse(cluster.path).getroot()
    recorded: dict[str, set[int]] = {f"R{i}": set() for i in range(len(NOTATIONS))}
    for op in root.iter("lrm_rsc_op"):
        rsc = op.get("operation_key", "").split("_")[0]
        if op.get("operation") == "monitor" and int(op.get("interval", "0")) > 0:
            recorded[rsc].add(int(op.get("interval")))
    assert recorded["R0"] == {30_000}  # the simulation did run the monitors
    for index, text in enumerate(NOTATIONS):
        ours = parse_ms(text)
        expected = set() if not ours else {ours}
        assert recorded[f"R{index}"] == expected, f"interval={text!r}: pacemaker {recorded[f'R{index}']}, " \
                                                  f"parse_ms {ours}"


@pytest.mark.parametrize(("text", "expected"), [
    ("INFINITY", INFINITY), ("+INFINITY", INFINITY), ("-INFINITY", -INFINITY), ("100", 100),
    ("-50", -50), ("+100", 100), (" 100", 100), ("2000000", INFINITY), ("-2000000", -INFINITY),
    ("0", 0), (None, None), ("abc", None), ("", None),
])
def test_parse_score(text: str | None, expected: int | None) -> None:
    assert parse_score(text) == expected


def test_parse_score_agrees_with_pacemaker(tmp_path: Path) -> None:
    """Location scores the schema accepts, as crm_simulate's allocation scores show them."""
    values = ["INFINITY", "+INFINITY", "-INFINITY", "100", "-50", "+100", "2000000", "-2000000", "0"]
    cluster = OfflineCluster.empty(tmp_path / "scores.xml")
    for index, value in enumerate(values):
        cluster.run(f"pcs resource create S{index} ocf:pacemaker:Dummy")
        xml = f'<rsc_location id="L{index}" rsc="S{index}" node="node1" score="{value}"/>'
        cluster.run(f"cibadmin --create -o constraints -X {shlex.quote(xml)}")
    result = run_local(["crm_simulate", "--xml-file", str(cluster.path), "--show-scores",
                        "--node-up", "node1", "--node-up", "node2", "--quorum", "true"])
    assert result.ok, result.stderr
    shown = dict(re.findall(r"assign: (S\d+) allocation score on node1: (\S+)", result.stdout))
    assert len(shown) == len(values)
    for index, value in enumerate(values):
        assert parse_score(shown[f"S{index}"]) == parse_score(value), value
    cib = load_cib(cluster.path)
    assert [parse_score(v) for v in values] == [loc.score for loc in cib.locations]


def test_is_true() -> None:
    assert all(is_true(v) for v in ("true", "on", "yes", "y", "1", "TRUE", " True "))
    assert not any(is_true(v) for v in ("false", "off", "no", "0", "", None, "2"))


def test_normalise_role() -> None:
    assert [normalise_role(r) for r in ("Master", "Slave", "Promoted", "Started", None)] == \
        ["Promoted", "Unpromoted", "Promoted", "Started", None]


# ---- the CIB view on CIBs the tools wrote --------------------------------------------------

def load_cib(path: Path) -> Cib:
    return cib_from_element(parse_untrusted(path.read_text(), str(path)))


def status_of(path: Path) -> Status:
    facts = facts_from_cib_file(path)
    assert facts.status is not None
    return facts.status


CRM_TEMPLATE = """rsc_template T ocf:pacemaker:Dummy op monitor interval=30
primitive Dummy @T
"""
CRM_PROMOTABLE = """primitive S ocf:pacemaker:Stateful op monitor interval=11 role=Master \\
    op monitor interval=12 role=Slave
ms M S
location LM M role=Master 100: node1
colocation CM inf: P:Started M:Master
"""


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> OfflineCluster:
    """One cluster with every construct below, written by crmsh, pcs and cibadmin, then run."""
    directory = tmp_path_factory.mktemp("views")
    cluster = OfflineCluster.empty(directory / "views.xml")
    (directory / "template.crm").write_text(CRM_TEMPLATE)
    (directory / "promotable.crm").write_text(CRM_PROMOTABLE)
    cluster.run_all([
        # id-ref: B shares A's meta attribute set (target-role Stopped)
        "crm configure primitive A ocf:pacemaker:Dummy meta '$id=shared-meta' target-role=Stopped",
        "crm configure primitive B ocf:pacemaker:Dummy meta '$id-ref=shared-meta'",
        f"crm configure load update {directory / 'template.crm'}",
        # group and clone disabled as a whole; a member with its own target-role=Started
        "pcs resource create G2 ocf:pacemaker:Dummy meta target-role=Started --group G",
        "pcs resource create G1 ocf:pacemaker:Dummy --group G",
        "pcs resource disable G",
        "pcs resource create C ocf:pacemaker:Dummy clone",
        "pcs resource disable C-clone",
        "pcs resource create P ocf:pacemaker:Dummy",
        f"crm configure load update {directory / 'promotable.crm'}",
    ])
    cluster.simulate()
    return cluster


def test_id_ref_meta_set(views: OfflineCluster) -> None:
    cib = load_cib(views.path)
    assert cib.resources["A"].meta["target-role"] == "Stopped"
    assert cib.resources["B"].meta["target-role"] == "Stopped"
    assert cib.effective_meta("B")["target-role"] == "Stopped"
    status = status_of(views.path)
    assert not status.running_nodes("B")  # pacemaker follows the reference too
    assert '<meta_attributes id-ref="shared-meta"/>' in views.path.read_text()


def test_template_primitive(views: OfflineCluster) -> None:
    cib = load_cib(views.path)
    dummy = cib.resources["Dummy"]
    assert dummy.template == "T" and dummy.agent == "ocf:pacemaker:Dummy"
    assert dummy.operations == ()
    assert [(op.name, op.interval_ms) for op in cib.operations_of("Dummy")] == [("monitor", 30_000)]
    assert status_of(views.path).running_nodes("Dummy")
    # pacemaker runs the template's monitor, and the grader accepts this resource-create answer
    root = ET.parse(views.path).getroot()
    assert any(op.get("operation_key") == "Dummy_monitor_30000" for op in root.iter("lrm_rsc_op"))
    report = grade_file("resource-create", views.path)
    assert report.passed, [(o.id, o.message) for o in report.outcomes]


def test_group_target_role_inherited(views: OfflineCluster) -> None:
    cib = load_cib(views.path)
    assert "target-role" not in cib.resources["G1"].meta
    assert cib.effective_meta("G1")["target-role"] == "Stopped"
    assert cib.ancestors("G1") == ["G"]
    status = status_of(views.path)
    assert not status.running_nodes("G1")


def test_member_target_role_overrides_group(views: OfflineCluster) -> None:
    """Measured: a member's own target-role=Started beats its group's Stopped; it runs.

    (G2 is the group's first member: a later member would stay stopped behind G1.)
    """
    cib = load_cib(views.path)
    assert cib.effective_meta("G2")["target-role"] == "Started"
    assert status_of(views.path).running_nodes("G2")


def test_clone_target_role_inherited(views: OfflineCluster) -> None:
    cib = load_cib(views.path)
    assert cib.resources["C"].parent == "C-clone"
    assert cib.effective_meta("C")["target-role"] == "Stopped"
    status = status_of(views.path)
    assert status.instances("C") and not status.running_nodes("C")


def test_promotable_roles_normalised(views: OfflineCluster) -> None:
    text = views.path.read_text()
    assert 'role="Master"' in text and 'role="Slave"' in text  # crmsh wrote the old names
    cib = load_cib(views.path)
    assert cib.resources["M"].is_promotable
    roles = {op.interval_ms: op.role for op in cib.operations_of("S")}
    assert roles == {11_000: "Promoted", 12_000: "Unpromoted"}
    (location,) = [loc for loc in cib.locations if loc.id == "LM"]
    assert location.role == "Promoted" and location.score == 100
    (colocation,) = [c for c in cib.colocations if c.id == "CM"]
    assert colocation.with_rsc_role == "Promoted" and colocation.rsc_role == "Started"
    assert list(colocation.pairs()) == [("P", "M")]
    status = status_of(views.path)
    assert sorted(s.role for s in status.instances("S")) == ["Promoted", "Unpromoted"]
    promoted = [s for s in status.instances("S") if s.role == "Promoted"]
    assert promoted[0].nodes == ("node1",) and promoted[0].parents == ("M",)


def test_rsc_defaults_target_role(tmp_path: Path) -> None:
    cluster = OfflineCluster.empty(tmp_path / "defaults.xml")
    cluster.run_all([
        "pcs resource create Dummy ocf:pacemaker:Dummy op monitor interval=30s",
        "pcs resource create Own ocf:pacemaker:Dummy meta target-role=Started",
        "crm configure rsc_defaults target-role=Stopped",
    ])
    cluster.simulate()
    cib = load_cib(cluster.path)
    assert cib.rsc_defaults["target-role"] == "Stopped"
    assert cib.effective_meta("Dummy")["target-role"] == "Stopped"
    assert cib.effective_meta("Own")["target-role"] == "Started"
    status = status_of(cluster.path)
    assert not status.running_nodes("Dummy")
    assert status.running_nodes("Own")
    report = grade_file("resource-enable", cluster.path)
    assert [o.id for o in report.outcomes if o.passed is False] == ["enabled", "running"]
