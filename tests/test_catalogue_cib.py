"""The CIB-judged 361.3 catalogue: every accepted form passes, every near miss fails.

Each state is made by the real tools (pcs -f, crmsh with CIB_file, cibadmin,
crm_attribute, crm_simulate) from the exercise's own start state; nothing here is
hand-written CIB XML. A case lists the checks it must fail (none: it must pass).
Start states are built once per module and copied.
`crm_resource --wait` in a command list is the settle step: on a CIB file it is a
simulation (as the cluster acts between two commands on a live lab).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from lab.engine.exercises import load
from lab.engine.grading import grade
from lab.engine.offline import OfflineCluster
from lab.gather.facts import facts_from_cib_file
from tests.conftest import failed_checks

WAIT = "crm_resource --wait"


class Bases:
    """Start states per (exercise, nodes), built once and copied for each case."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[tuple[tuple[str, ...], tuple[str, ...]], OfflineCluster] = {}

    def get(self, exercise_id: str, nodes: Sequence[str]) -> OfflineCluster:
        commands = load(exercise_id).start.commands
        key = (commands, tuple(nodes))
        if key not in self.built:
            path = self.root / f"base-{len(self.built)}.xml"
            cluster = OfflineCluster.empty(path, nodes)
            run_settling(cluster, commands)
            self.built[key] = cluster
        return self.built[key]


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    return Bases(tmp_path_factory.mktemp("bases"))


def run_settling(cluster: OfflineCluster, commands: Sequence[str]) -> None:
    """Run commands; `crm_resource --wait` lets the scheduler act, as it would on a live lab."""
    for command in commands:
        if command.strip() == WAIT:
            cluster.simulate()
        else:
            cluster.run(command)
    cluster.simulate()


def outcome(bases: Bases, tmp_path: Path, exercise_id: str, commands: Sequence[str],
            nodes: Sequence[str] = ("node1", "node2"), name: str = "cib") -> list[str]:
    cluster = bases.get(exercise_id, nodes).copy(tmp_path / f"{name}.xml")
    run_settling(cluster, commands)
    report = grade(load(exercise_id), facts_from_cib_file(cluster.path))
    return failed_checks(report)


TPL = ("cibadmin --create -o resources --xml-text '<template id=\"dummy-template\" class=\"ocf\" "
       "provider=\"pacemaker\" type=\"Dummy\"><operations><op id=\"t-mon\" name=\"monitor\" "
       "interval=\"{interval}\"/></operations></template>'")
ATTR = "pcs node attribute {node1} datacenter=east"

# (exercise, case id, commands, checks that must fail; empty = must pass)
CASES: list[tuple[str, str, list[str], list[str]]] = [
    # location-prefer
    ("location-prefer", "crmsh-rule-uname", ["crm configure location l1 web rule 50: '#uname' eq {node1}"], []),
    ("location-prefer", "pcs-rule-uname", ["pcs constraint location web rule score=50 '#uname' eq {node1}"], []),
    ("location-prefer", "two-constraints-sum-50",
     ["pcs constraint location web prefers {node1}=30", "crm configure location l2 web 20: {node1}"], []),
    ("location-prefer", "INFINITY", ["pcs constraint location web prefers {node1}"], ["score"]),
    ("location-prefer", "other-node", ["pcs constraint location web prefers {node2}=50"], ["score", "placed"]),
    ("location-prefer", "on-vip", ["pcs constraint location vip prefers {node1}=50"], ["score", "placed"]),
    ("location-prefer", "rule-other-attr",
     ["pcs constraint location web rule score=50 '#uname' eq {node2}"], ["score", "placed"]),
    # location-avoid
    ("location-avoid", "pcs-ban", ["pcs resource ban web {node2}"], []),
    ("location-avoid", "crmsh-ban", ["crm resource ban web {node2}"], []),
    ("location-avoid", "pcs-rule-uname", ["pcs constraint location web rule score=-INFINITY '#uname' eq {node2}"], []),
    ("location-avoid", "crmsh-prefer-node1-inf-plus-avoid",
     ["crm configure location l1 web rule -inf: '#uname' ne {node1}"], []),
    ("location-avoid", "finite-negative", ["pcs constraint location web avoids {node2}=100"], ["never-node2"]),
    ("location-avoid", "other-node", ["pcs constraint location web avoids {node1}"], ["never-node2"]),
    ("location-avoid", "on-vip", ["pcs constraint location vip avoids {node2}"], ["never-node2"]),
    ("location-avoid", "prefer-node1-only", ["pcs constraint location web prefers {node1}"], ["never-node2"]),
    ("location-avoid", "avoid-but-disabled",
     ["pcs constraint location web avoids {node2}", "pcs resource disable web"], ["running"]),
    # colocation
    ("colocation", "pcs-default-score", ["pcs constraint colocation add web with vip"], []),
    ("colocation", "pcs-set", ["pcs constraint colocation set vip web"], []),
    ("colocation", "group", ["pcs resource group add g vip web"], []),
    ("colocation", "crmsh-roles", ["crm configure colocation c1 +inf: web:Started vip:Started"], []),
    ("colocation", "pcs-roles", ["pcs constraint colocation add Started web with Started vip INFINITY"], []),
    ("colocation", "finite", ["pcs constraint colocation add web with vip 500"], ["follows"]),
    ("colocation", "reverse", ["pcs constraint colocation add vip with web INFINITY"], ["follows"]),
    ("colocation", "anti", ["crm configure colocation c1 -inf: web vip"], ["follows"]),
    # order
    ("order", "pcs-default-action", ["pcs constraint order vip then web"], []),
    ("order", "crmsh-score-inf", ["crm configure order o1 inf: vip web"], []),
    ("order", "pcs-set", ["pcs constraint order set vip web"], []),
    ("order", "group", ["pcs resource group add g vip web"], []),
    ("order", "reverse", ["pcs constraint order web then vip"], ["order"]),
    ("order", "optional", ["pcs constraint order vip then web kind=Optional"], ["order"]),
    ("order", "crmsh-score-0", ["crm configure order o1 0: vip web"], ["order"]),
    ("order", "crmsh-mandatory-actions", ["crm configure order o1 Mandatory: vip:start web:start"], []),
    # The task asks that stopping vip stops web too: an asymmetrical order does not.
    ("order", "asymmetrical", ["pcs constraint order start vip then start web symmetrical=false"], ["order"]),
    # group
    ("group", "other-order", ["pcs resource group add webgroup web vip"], ["members"]),
    ("group", "only-vip", ["pcs resource group add webgroup vip"], ["members"]),
    ("group", "other-id", ["pcs resource group add WebGroup vip web"], ["members"]),
    ("group", "disabled", ["crm configure group webgroup vip web meta target-role=Stopped"], ["members"]),
    # clone
    ("clone", "custom-clone-id",
     ["pcs resource create everywhere ocf:pacemaker:Dummy op monitor interval=10s clone my-clone"], []),
    ("clone", "not-cloned", ["pcs resource create everywhere ocf:pacemaker:Dummy"], ["cloned"]),
    ("clone", "clone-max-1", ["pcs resource create everywhere ocf:pacemaker:Dummy clone clone-max=1"], ["cloned"]),
    ("clone", "disabled", ["pcs resource create everywhere ocf:pacemaker:Dummy clone --disabled"], ["cloned"]),
    ("clone", "two-on-node1",
     ["pcs resource create everywhere ocf:pacemaker:Dummy clone clone-max=2 clone-node-max=2",
      "pcs resource ban everywhere-clone {node2}"], ["cloned"]),
    # promotable
    ("promotable", "pcs-promotable-later",
     ["pcs resource create state ocf:pacemaker:Stateful", "pcs resource promotable state"], []),
    ("promotable", "crmsh-ms-master", ["crm configure primitive state ocf:pacemaker:Stateful",
                                       "crm configure ms state-ms state"], []),
    ("promotable", "plain-clone", ["pcs resource create state ocf:pacemaker:Stateful clone"], ["promoted"]),
    ("promotable", "two-promoted",
     ["pcs resource create state ocf:pacemaker:Stateful promotable promoted-max=2"], ["promoted"]),
    ("promotable", "disabled", ["pcs resource create state ocf:pacemaker:Stateful promotable --disabled"],
     ["promoted"]),
    # resource-template
    ("resource-template", "cibadmin-PT15S",
     [TPL.replace("{interval}", "PT15S"),
      "cibadmin --create -o resources --xml-text '<primitive id=\"from-template\" template=\"dummy-template\"/>'"],
     []),
    ("resource-template", "crmsh-15000ms",
     ["crm configure rsc_template dummy-template ocf:pacemaker:Dummy op monitor interval=15000ms",
      "crm configure primitive from-template @dummy-template"], []),
    ("resource-template", "primitive-without-template",
     ["crm configure rsc_template dummy-template ocf:pacemaker:Dummy op monitor interval=15s",
      "crm configure primitive from-template ocf:pacemaker:Dummy op monitor interval=15s"], ["uses"]),
    ("resource-template", "template-other-interval",
     ["crm configure rsc_template dummy-template ocf:pacemaker:Dummy op monitor interval=20s",
      "crm configure primitive from-template @dummy-template"], ["template", "monitor"]),
    ("resource-template", "template-alone",
     ["crm configure rsc_template dummy-template ocf:pacemaker:Dummy op monitor interval=15s"],
     ["uses", "monitor", "running"]),
    # rule-location
    ("rule-location", "not-defined-or-ne",
     [ATTR, "crm configure location l1 web rule -inf: not_defined datacenter or datacenter ne east"], []),
    ("rule-location", "prefer-plus-forbid",
     [ATTR, "pcs constraint location web rule score=100 datacenter eq east",
      "pcs constraint location web rule score=-INFINITY datacenter ne east"], []),
    ("rule-location", "positive-rule-only",
     [ATTR, "pcs constraint location web rule score=INFINITY datacenter eq east"], ["rule"]),
    ("rule-location", "attribute-missing",
     ["pcs constraint location web rule score=-INFINITY datacenter ne east"], ["attribute", "placed"]),
    ("rule-location", "finite-score",
     [ATTR, "pcs constraint location web rule score=-100 datacenter ne east"], ["rule"]),
    ("rule-location", "avoids-node2-instead", [ATTR, "pcs constraint location web avoids {node2}"], ["rule"]),
    ("rule-location", "attribute-until-reboot",
     ["crm_attribute --node {node1} --name datacenter --update east --lifetime reboot",
      "pcs constraint location web rule score=-INFINITY datacenter ne east"], ["attribute"]),
    # default-stickiness
    ("default-stickiness", "pcs09-form", ["pcs resource defaults resource-stickiness=100"], []),
    ("default-stickiness", "one-resource-only", ["pcs resource meta web resource-stickiness=100"], ["default"]),
    ("default-stickiness", "other-value", ["crm configure rsc_defaults resource-stickiness=50"], ["default"]),
    # failure-policy
    *[("failure-policy", f"timeout-{t}", [f"pcs resource meta web migration-threshold=3 failure-timeout={t}"], [])
      for t in ("60", "1min", "1m", "PT1M", "60000ms")],
    ("failure-policy", "on-parent-group",
     ["pcs resource group add g web", "pcs resource meta g migration-threshold=3 failure-timeout=60s"], []),
    ("failure-policy", "rsc-defaults-instead",
     ["pcs resource defaults update migration-threshold=3 failure-timeout=60s"], ["threshold", "timeout"]),
    ("failure-policy", "timeout-missing", ["crm resource meta web set migration-threshold 3"], ["timeout"]),
    ("failure-policy", "other-values",
     ["pcs resource meta web migration-threshold=5 failure-timeout=120s"], ["threshold", "timeout"]),
    # node-standby
    ("node-standby", "until-reboot",
     ["crm_attribute --node {node2} --name standby --update on --lifetime reboot"], []),
    ("node-standby", "node1-instead", ["pcs node standby {node1}"], ["node2-standby", "node1-active", "empty"]),
    ("node-standby", "maintenance-instead", ["pcs node maintenance {node2}"], ["node2-standby", "empty"]),
    # maintenance-mode
    ("maintenance-mode", "crmsh-yes", ["crm configure property maintenance-mode=yes"], []),
    ("maintenance-mode", "one-unmanaged", ["pcs resource unmanage web"], ["property", "unmanaged"]),
    ("maintenance-mode", "false", ["pcs property set maintenance-mode=false"], ["property", "unmanaged"]),
    # resource-move
    ("resource-move", "ban-wait-clear", ["pcs resource ban web {node1}", WAIT, "pcs resource clear web"], []),
    ("resource-move", "constraint-left", ["pcs resource move-with-constraint web {node2}", WAIT], ["clean"]),
    ("resource-move", "crmsh-constraint-left", ["crm resource move web {node2}"], ["clean"]),
    ("resource-move", "cleared-too-early",
     ["pcs resource move-with-constraint web {node2}", "pcs resource clear web"], ["moved"]),
    ("resource-move", "not-moved", ["pcs resource meta web resource-stickiness=200"], ["moved"]),
    # no-quorum-policy
    ("no-quorum-policy", "stop", ["pcs property set no-quorum-policy=stop"], ["policy", "freezes"]),
    ("no-quorum-policy", "ignore", ["crm configure property no-quorum-policy=ignore"], ["policy", "freezes"]),
    # resource-class-systemd
    ("resource-class-systemd", "unit-suffix", ["pcs resource create cron systemd:cron.service --force"], []),
    ("resource-class-systemd", "other-unit", ["pcs resource create cron systemd:crond.service --force"], ["class"]),
    ("resource-class-systemd", "lsb", ["pcs resource create cron lsb:cron --force"], ["class"]),
    ("resource-class-systemd", "service", ["pcs resource create cron service:cron --force"], ["class"]),
    ("resource-class-systemd", "stopped",
     ["pcs resource create cron systemd:cron --force --disabled"], ["running"]),
    # acl
    ("acl", "not-enabled", ["pcs acl role create read-only read xpath /cib",
                            "pcs acl user create monitor read-only"], ["enabled"]),
    ("acl", "write-role", ["pcs property set enable-acl=true", "pcs acl role create read-only write xpath /cib",
                           "pcs acl user create monitor read-only"], ["user"]),
    ("acl", "no-user", ["pcs property set enable-acl=true", "pcs acl role create read-only read xpath /cib"],
     ["user"]),
    ("acl", "extra-write-role",
     ["pcs property set enable-acl=true", "pcs acl role create read-only read xpath /cib",
      "pcs acl role create admin write xpath /cib", "pcs acl user create monitor read-only admin"], ["user"]),
    ("acl", "other-xpath", ["crm configure property enable-acl=true",
                            "crm configure role read-only read xpath:/cib/status",
                            "crm configure acl_target monitor read-only"], ["user"]),
    ("acl", "other-object-type", ["crm configure property enable-acl=true",
                                  "crm configure role read-only read tag:status",
                                  "crm configure acl_target monitor read-only"], ["user"]),
    ("acl", "object-type-cib", ["crm configure property enable-acl=true",
                                "crm configure role read-only read tag:cib",
                                "crm configure acl_target monitor read-only"], []),
    ("acl", "any-depth-xpath", ["crm configure property enable-acl=true",
                                "crm configure role read-only read xpath://cib",
                                "crm configure acl_target monitor read-only"], []),
    ("acl", "pcs-step-by-step", ["pcs property set enable-acl=true", "pcs acl role create read-only",
                                 "pcs acl permission add read-only read xpath /cib",
                                 "pcs acl user create monitor", "pcs acl role assign read-only to monitor"], []),
    # `/cib/` is no XPath the CIB manager can evaluate: as monitor, cibadmin --query is refused
    ("acl", "trailing-slash-xpath", ["pcs property set enable-acl=true", "pcs acl role create read-only",
                                     "pcs acl permission add read-only read xpath /cib/",
                                     "pcs acl user create monitor", "pcs acl role assign read-only to monitor"],
     ["user"]),
]


@pytest.mark.parametrize(("exercise_id", "commands", "must_fail"),
                         [pytest.param(e, c, f, id=f"{e}:{i}") for e, i, c, f in CASES])
def test_form(bases: Bases, tmp_path: Path, exercise_id: str, commands: list[str], must_fail: list[str]) -> None:
    assert sorted(outcome(bases, tmp_path, exercise_id, commands)) == sorted(must_fail)


@pytest.mark.parametrize("tool", ["pcs", "crmsh"])
def test_resource_move_reference_solutions_settle(bases: Bases, tmp_path: Path, tool: str) -> None:
    """The move solutions need the cluster to act between move and clear (crm_resource --wait)."""
    exercise = load("resource-move")
    commands = exercise.solution_pcs if tool == "pcs" else exercise.solution_crmsh
    assert outcome(bases, tmp_path, "resource-move", commands) == []


def test_clone_max_below_node_count_three_nodes(bases: Bases, tmp_path: Path) -> None:
    ok_case = ["pcs resource create everywhere ocf:pacemaker:Dummy clone"]
    assert outcome(bases, tmp_path, "clone", ok_case, ("node1", "node2", "node3")) == []
    short = ["pcs resource create everywhere ocf:pacemaker:Dummy clone clone-max=2"]
    assert outcome(bases, tmp_path, "clone", short, ("node1", "node2", "node3"), "b") == ["cloned"]


def test_location_avoid_three_nodes(bases: Bases, tmp_path: Path) -> None:
    """With a third node a finite score still loses when node2 is the only node left."""
    nodes = ("node1", "node2", "node3")
    assert outcome(bases, tmp_path, "location-avoid", ["pcs resource ban web {node2}"], nodes) == []
    finite = ["pcs constraint location web avoids {node2}=5000"]
    assert outcome(bases, tmp_path, "location-avoid", finite, nodes, "b") == ["never-node2"]
