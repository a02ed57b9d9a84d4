"""Verdicts by effect: pacemaker's own tools judge forms the authors never wrote down.

Every state is built with the real tools (pcs -f, crm with CIB_file, cibadmin,
crm_resource, crm_attribute, then crm_simulate) from the exercise's own start
state; nothing here is hand-written CIB XML beyond what cibadmin itself accepts.
Near misses (a dropped op, a flipped sign, a lifetime, a grant through a group,
a deny, the value in a second set, ordered=false) must fail the named checks;
alternative correct forms (tags, rsc-pattern, node-name case, several sets) pass.
A small generator mutates the reference solutions and expects a failing grade.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.core.errors import PacemakerError
from lab.engine.exercises import load
from lab.gather import pacemaker
from lab.gather.simulation import FAR_FUTURE, Scenario, simulate
from tests.test_catalogue_cib import WAIT, Bases, outcome

DATE_RULE = "and date lt 2030-01-01"
ACL_ON = "pcs property set enable-acl=true"
ROLE = "pcs acl role create read-only read xpath /cib"
USER = "pcs acl user create monitor read-only"
EXTRA_SET = ("cibadmin --create -o crm_config --xml-text "
             "'<cluster_property_set id=\"extra\" score=\"100\">{}</cluster_property_set>'")


def nvpair(name: str, value: str) -> str:
    return f'<nvpair id="extra-{name}" name="{name}" value="{value}"/>'


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    return Bases(tmp_path_factory.mktemp("effect-bases"))


# (exercise, case id, commands, checks that must fail; [] = must pass)
NEAR_MISSES: list[tuple[str, str, list[str], list[str]]] = [
    # a task's words the checks never looked at
    ("resource-class-systemd", "no-monitor", ["crm -F configure primitive cron systemd:cron"], ["monitor"]),
    ("resource-class-systemd", "monitor-disabled",
     ["crm -F configure primitive cron systemd:cron op monitor interval=60s enabled=false"], ["monitor"]),
    ("group", "ordered-false", ["pcs resource group add webgroup vip web",
                                "pcs resource meta webgroup ordered=false"], ["members"]),
    ("group", "collocated-false", ["pcs resource group add webgroup vip web",
                                   "crm resource meta webgroup set collocated false"], ["members"]),
    # time-limited answers
    ("location-avoid", "ban-lifetime", ["pcs resource ban web {node2} lifetime=P1D"], ["never-node2"]),
    ("location-avoid", "crm_resource-ban-lifetime", ["crm_resource --ban -r web -N {node2} -u P7D"],
     ["never-node2"]),
    ("location-avoid", "rule-with-date",
     [f"pcs constraint location web rule score=-INFINITY '#uname' eq {{node2}} {DATE_RULE}"], ["never-node2"]),
    ("location-prefer", "rule-with-date",
     [f"pcs constraint location web rule score=50 '#uname' eq {{node1}} {DATE_RULE}"], ["score"]),
    ("location-prefer", "also-avoids-node2",
     ["pcs constraint location web prefers {node1}=50", "pcs constraint location web avoids {node2}"], ["score"]),
    ("rule-location", "rule-with-date",
     ["pcs node attribute {node1} datacenter=east",
      f"pcs constraint location web rule score=-INFINITY datacenter ne east {DATE_RULE}"], ["rule"]),
    ("maintenance-mode", "until-a-date",
     ["cibadmin --create -o crm_config --xml-text '<cluster_property_set id=\"mm\" score=\"100\">"
      "<rule id=\"mm-r\" score=\"INFINITY\"><date_expression id=\"mm-d\" operation=\"lt\" end=\"2030-01-01\"/>"
      "</rule><nvpair id=\"mm-v\" name=\"maintenance-mode\" value=\"true\"/></cluster_property_set>'"],
     ["property", "unmanaged"]),
    # a rule covering some nodes only
    ("rule-location", "only-nodes-without-attribute",
     ["pcs node attribute {node1} datacenter=east",
      "crm configure location l1 web rule -inf: not_defined datacenter"], ["rule"]),
    ("rule-location", "names-node2",
     ["pcs node attribute {node1} datacenter=east",
      "pcs constraint location web rule score=-INFINITY '#uname' eq {node2}"], ["rule"]),
    # precedence of several sets
    ("maintenance-mode", "second-set-loses",
     ["pcs property set maintenance-mode=false", EXTRA_SET.format(nvpair("maintenance-mode", "true"))],
     ["property", "unmanaged"]),
    ("no-quorum-policy", "second-set-loses",
     ["pcs property set no-quorum-policy=stop", EXTRA_SET.format(nvpair("no-quorum-policy", "freeze"))],
     ["policy", "freezes"]),
    ("acl", "disabled-in-a-higher-set",
     [ACL_ON, EXTRA_SET.format(nvpair("enable-acl", "false")), ROLE, USER], ["enabled"]),
    ("default-stickiness", "only-for-Dummy",
     ["pcs resource defaults set create meta resource-stickiness=100 rule resource ::Dummy"], ["default"]),
    ("failure-policy", "default-and-own",
     ["pcs resource defaults update failure-timeout=60s", "pcs resource meta web migration-threshold=3"],
     ["timeout"]),
    # leftovers pacemaker applies although no constraint names web
    ("resource-move", "leftover-on-tag",
     ["pcs resource move-with-constraint web {node2}", WAIT, "pcs resource clear web",
      "crm configure tag webtag: web", "crm configure location l1 webtag 100: {node2}"], ["clean"]),
    ("resource-move", "leftover-posix-pattern",
     ["pcs resource move-with-constraint web {node2}", WAIT, "pcs resource clear web",
      "cibadmin --create -o constraints --xml-text "
      "'<rsc_location id=\"l1\" rsc-pattern=\"^w[[:alpha:]]b$\" node=\"{node1}\" score=\"-100\"/>'"], ["clean"]),
    ("resource-move", "leftover-expiring-later",
     ["crm_resource --move -r web -N {node2} -u P1D", WAIT], ["clean"]),
    # ACLs by effect
    ("acl", "write-through-group",
     [ACL_ON, ROLE, USER, "pcs acl role create admin write xpath /cib", "pcs acl group create haclient admin"],
     ["user"]),
    ("acl", "write-on-constraints-only",
     [ACL_ON, ROLE, "pcs acl role create w write xpath //constraints", "pcs acl user create monitor read-only w"],
     ["user"]),
    ("acl", "deny-status",
     [ACL_ON, "pcs acl role create read-only read xpath /cib deny xpath //status", USER], ["user"]),
    ("acl", "deny-in-other-role",
     [ACL_ON, ROLE, "pcs acl role create hide deny xpath //nodes", "pcs acl user create monitor read-only hide"],
     ["user"]),
]

ALTERNATIVES: list[tuple[str, str, list[str], list[str]]] = [
    ("location-avoid", "crmsh-tag", ["crm configure tag webtag: web", "crm configure location l1 webtag -inf: {node2}"],
     []),
    ("location-avoid", "node-name-other-case",
     ["cibadmin --create -o constraints --xml-text '<rsc_location id=\"l1\" rsc=\"web\" node=\"NODE2\" "
      "score=\"-INFINITY\"/>'"], []),
    ("location-avoid", "posix-class-pattern",
     ["cibadmin --create -o constraints --xml-text '<rsc_location id=\"l1\" rsc-pattern=\"^w[[:alpha:]]b$\" "
      "node=\"{node2}\" score=\"-INFINITY\"/>'"], []),
    ("location-avoid", "date-rule-without-end",
     ["pcs constraint location web rule score=-INFINITY '#uname' eq {node2} and date gt 2000-01-01"], []),
    ("location-prefer", "crmsh-tag", ["crm configure tag webtag: web", "crm configure location l1 webtag 50: {node1}"],
     []),
    ("location-prefer", "posix-pattern",
     ["cibadmin --create -o constraints --xml-text '<rsc_location id=\"l1\" rsc-pattern=\"^[[:lower:]]eb$\" "
      "node=\"{node1}\" score=\"50\"/>'"], []),
    ("colocation", "crmsh-tag", ["crm configure tag webtag: web", "crm configure colocation c1 inf: webtag vip"], []),
    ("order", "crmsh-tag", ["crm configure tag viptag: vip", "crm configure order o1 Mandatory: viptag web"], []),
    ("rule-location", "value-other-case",
     ["pcs node attribute {node1} datacenter=east",
      "pcs constraint location web rule score=-INFINITY datacenter ne EAST"], []),
    ("maintenance-mode", "second-set-only",
     [EXTRA_SET.format(nvpair("maintenance-mode", "true"))], []),
    ("no-quorum-policy", "crmsh-named-set", ["crm configure property '$id=extra' no-quorum-policy=freeze"], []),
    ("acl", "enable-in-second-set", [EXTRA_SET.format(nvpair("enable-acl", "true")), ROLE, USER], []),
    # The CIB manager (which alone enforces ACLs) reads enable-acl from the higher-scored set,
    # unlike the scheduler's cib-bootstrap-options-first: ACLs are in effect here.
    ("acl", "enabled-in-a-higher-set",
     ["pcs property set enable-acl=false", EXTRA_SET.format(nvpair("enable-acl", "true")), ROLE, USER], []),
    ("acl", "role-through-group",
     [ACL_ON, ROLE, "pcs acl user create monitor", "pcs acl group create haclient read-only"], []),
    ("acl", "extra-read-role", [ACL_ON, ROLE, "pcs acl role create more read xpath //status",
                                "pcs acl user create monitor read-only more"], []),
    ("default-stickiness", "second-set",
     ["pcs resource defaults set create meta resource-stickiness=100"], []),
    ("failure-policy", "crm_resource-second-set",
     ["crm_resource -r web --meta -p migration-threshold -v 3 --set-name web-meta2",
      "crm_resource -r web --meta -p failure-timeout -v 1min --set-name web-meta2"], []),
    ("resource-class-systemd", "crmsh-monitor",
     ["crm -F configure primitive cron systemd:cron op monitor interval=30s"], []),
    ("group", "crmsh-group-meta-ordered-true", ["crm configure group webgroup vip web meta ordered=true"], []),
    ("resource-move", "cleared-with-crm_resource",
     ["crm_resource --move -r web -N {node2}", WAIT, "crm_resource --clear -r web"], []),
]


@pytest.mark.parametrize(("exercise_id", "commands", "must_fail"),
                         [pytest.param(e, c, f, id=f"miss:{e}:{i}") for e, i, c, f in NEAR_MISSES]
                         + [pytest.param(e, c, f, id=f"alt:{e}:{i}") for e, i, c, f in ALTERNATIVES])
def test_effect(bases: Bases, tmp_path: Path, exercise_id: str, commands: list[str], must_fail: list[str]) -> None:
    assert sorted(outcome(bases, tmp_path, exercise_id, commands)) == sorted(must_fail)


# --- mutations of the reference solutions -------------------------------------------------
# (exercise, pattern, replacement): each applies to the pcs and the crmsh solution where it
# matches; pacemaker's effect of every mutant must fail at least one check.
MUTATIONS: list[tuple[str, str, str]] = [
    ("location-avoid", r"avoids \{node2\}$", "avoids {node2}=100"),  # finite score
    ("location-avoid", r"-inf:", "inf:"),  # flipped sign
    ("location-prefer", r"=50$", "=-50"),
    ("location-prefer", r" 50:", " -50:"),
    ("colocation", r"INFINITY$", "-INFINITY"),
    ("colocation", r"inf:", "-inf:"),
    ("order", r"start vip then start web", "start web then start vip"),
    ("order", r"Mandatory: vip web", "Optional: vip web"),
    ("rule-location", r"-INFINITY", "-100"),
    ("rule-location", r"-inf:", "100:"),
    ("rule-location", r"ne east", "eq west"),
    ("group", r"vip web$", "web vip"),
    ("group", r"^crm configure group webgroup vip web$", "crm -F configure group webgroup vip web meta ordered=false"),
    ("acl", r"read xpath( |:)/cib", r"write xpath\1/cib"),
    ("resource-create", r" op monitor interval=30s?", ""),
    ("resource-update", r"interval=20s", "interval=25s"),
    ("failure-policy", r"failure-timeout=60s", "failure-timeout=120s"),
    ("default-stickiness", r"=100", "=10"),
    ("maintenance-mode", r"=true", "=false"),
    ("no-quorum-policy", r"=freeze", "=ignore"),
]


def _mutants() -> list[pytest.param]:
    out = []
    for exercise_id, pattern, replacement in MUTATIONS:
        exercise = load(exercise_id)
        for tool, solution in (("pcs", exercise.solution_pcs), ("crmsh", exercise.solution_crmsh)):
            mutated = [re.sub(pattern, replacement, c, count=1) for c in solution]
            if mutated != list(solution):
                out.append(pytest.param(exercise_id, mutated, id=f"{exercise_id}:{tool}:{pattern}"))
    return out


@pytest.mark.parametrize(("exercise_id", "commands"), _mutants())
def test_mutant_fails(bases: Bases, tmp_path: Path, exercise_id: str, commands: list[str]) -> None:
    assert outcome(bases, tmp_path, exercise_id, commands), f"mutant passed: {commands}"


def test_mutation_generator_covers_both_tools() -> None:
    ids = {p.id.split(":")[1] for p in _mutants()}
    assert ids == {"pcs", "crmsh"}
    assert len(_mutants()) >= 25


# --- the tool module itself --------------------------------------------------------------


def test_simulation_scores_dates_and_cache(bases: Bases) -> None:
    """crm_simulate's scores reflect a ban's lifetime; the same question is answered once."""
    cluster = bases.get("location-avoid", ("node1", "node2"))
    text = cluster.path.read_text()
    banned = cluster.copy(cluster.path.with_name("banned.xml"))
    banned.run("pcs resource ban web node2 lifetime=P1D")
    ban_text = banned.path.read_text()
    now = simulate(ban_text, Scenario(fresh=True))
    later = simulate(ban_text, Scenario(fresh=True, date=FAR_FUTURE))
    assert now.score("web", "node2") == -1000000
    assert later.score("web", "node2") == 0
    assert simulate(text, Scenario(fresh=True)).score("web", "node2") == 0
    hits = pacemaker._simulate.cache_info().hits
    simulate(ban_text, Scenario(fresh=True))
    assert pacemaker._simulate.cache_info().hits == hits + 1


def test_dates_decided_by_crm_rule(bases: Bases) -> None:
    """crm_rule decides each date expression at a date; a date_spec it cannot decide gives two views."""
    cluster = bases.get("default-stickiness", ("node1", "node2")).copy(bases.root / "dates.xml")
    cluster.run("pcs resource defaults set create id=a meta resource-stickiness=1 rule date lt 2030-01-01")
    cluster.run("pcs resource defaults set create id=b meta resource-stickiness=2 rule date gt 2000-01-01")
    text = cluster.path.read_text()
    assert pacemaker.date_truths(text, FAR_FUTURE) == (False, True)
    assert pacemaker.date_truths(text, "2025-01-01 00:00:00") == (True, True)
    assert [w for w, _t in pacemaker.later_views(text)] == ["on 2099-12-31"]
    cluster.run("pcs resource defaults set create id=c meta resource-stickiness=3 rule date-spec hours=9-16")
    text = cluster.path.read_text()
    assert pacemaker.date_truths(text, FAR_FUTURE)[2] is None
    assert len(pacemaker.later_views(text)) == 2
    base = bases.get("resource-create", ("node1", "node2")).path.read_text()
    assert pacemaker.later_views(base) == []


def test_tool_errors_are_clear() -> None:
    with pytest.raises(PacemakerError, match="crm_resource"):
        pacemaker.meta_value("<cib/>", "web", "target-role")
