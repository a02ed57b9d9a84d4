"""Near misses and alternative correct forms for every CIB-judged exercise, made systematically.

Near misses are generated from the exercise's own reference solutions (pcs and crmsh):
each mutation operator (drop an op, flip a sign, swap the order, add a lifetime or a date
rule, put the value in a second nvset, a ban instead of a standby, ordered=false,
clone-max/promoted-max off by one ...) rewrites or extends a solution, and the case names
the checks that pacemaker's effect of the result must fail. Alternatives are other correct
notations (pcs, crmsh, cibadmin/crm_resource/crm_attribute/crm_standby, tags, resource sets,
rules, several nvsets) and must pass. Every state is built with the real tools from the
exercise's start state (tests/test_catalogue_cib.py: Bases, outcome); never hand-written
XML beyond what cibadmin itself accepts as an object to add.
A mutation that no longer matches its solution fails the test (the corpus cannot go stale
silently when an exercise's solution changes).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from lab.engine.exercises import load, load_all
from tests.test_catalogue_cib import WAIT, Bases, outcome
from tests.test_catalogue_new_cib import CASES as NEW_CIB_CASES

UNTIL = '<rule id="{id}-r" score="INFINITY"><date_expression id="{id}-d" operation="lt" end="2030-01-01"/></rule>'
FROM = '<rule id="{id}-r" score="INFINITY"><date_expression id="{id}-d" operation="gt" start="2030-01-01"/></rule>'
WORK_HOURS = ('<rule id="{id}-r" score="INFINITY"><date_expression id="{id}-d" operation="date_spec">'
              '<date_spec id="{id}-s" hours="9-16"/></date_expression></rule>')
# Windows relative to the hour the tests run in (pacemaker reads date_spec in local time), so a
# check of the state now does not depend on the time of day: one that holds now and ends within
# two hours, one that never holds in the next two hours.
_HOUR = min(time.localtime().tm_hour, 22)
THIS_HOUR_ON = WORK_HOURS.replace('hours="9-16"', f'hours="{_HOUR}-{_HOUR + 1}"')
ANOTHER_HOUR = WORK_HOURS.replace('hours="9-16"', f'hours="{(time.localtime().tm_hour + 3) % 24}"')


def solution(exercise_id: str, tool: str) -> list[str]:
    exercise = load(exercise_id)
    return list(exercise.solution_pcs if tool == "pcs" else exercise.solution_crmsh)


def mutate(exercise_id: str, tool: str, pattern: str, replacement: str) -> list[str]:
    """The solution with the first match of pattern replaced (it must match somewhere)."""
    commands = solution(exercise_id, tool)
    for index, command in enumerate(commands):
        changed = re.sub(pattern, replacement, command, count=1)
        if changed != command:
            commands[index] = changed
            return commands
    raise AssertionError(f"{exercise_id} {tool} solution has no {pattern!r}: {commands}")


def plus(exercise_id: str, tool: str, *extra: str) -> list[str]:
    return solution(exercise_id, tool) + list(extra)


def nvset(tag: str, set_id: str, pairs: dict[str, str], rule: str = "", score: int = 100) -> str:
    """An attribute set with an optional rule, as cibadmin's object text."""
    nvpairs = "".join(f'<nvpair id="{set_id}-{k}" name="{k}" value="{v}"/>' for k, v in pairs.items())
    return f'<{tag} id="{set_id}" score="{score}">{rule.format(id=set_id)}{nvpairs}</{tag}>'


def meta_set(rsc: str, set_id: str, pairs: dict[str, str], rule: str = "", kind: str = "primitive") -> str:
    """cibadmin --modify adding a meta_attributes set (with a rule) to a resource."""
    text = nvset("meta_attributes", set_id, pairs, rule)
    return f"cibadmin --modify --xml-text '<{kind} id=\"{rsc}\">{text}</{kind}>'"


def property_set(set_id: str, pairs: dict[str, str], rule: str = "", score: int = 100) -> str:
    return f"cibadmin --create -o crm_config --xml-text '{nvset('cluster_property_set', set_id, pairs, rule, score)}'"


def create(section: str, xml: str) -> str:
    return f"cibadmin --create -o {section} --xml-text '{xml}'"


BOTH = ("pcs", "crmsh")
STICKY = "pcs resource defaults set create id=sticky meta resource-stickiness=100 rule "
# (exercise, case id, commands, checks that must fail; [] = must pass)
Case = tuple[str, str, list[str], list[str]]


def _seed_cases() -> list[Case]:
    cases: list[Case] = []
    ex = "resource-create"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:drop-op", mutate(ex, tool, r" op monitor interval=30s?", ""), ["monitor"]),
            (ex, f"{tool}:interval-off-by-one", mutate(ex, tool, r"interval=30s?", "interval=31s"), ["monitor"]),
            (ex, f"{tool}:second-monitor", mutate(ex, tool, r"(interval=30s?)", r"\1 op monitor interval=60s"),
             ["monitor"]),
            (ex, f"{tool}:monitor-disabled", mutate(ex, tool, r"(interval=30s?)", r"\1 enabled=false"), ["monitor"]),
            (ex, f"{tool}:id-case", mutate(ex, tool, r" Dummy ocf", " dummy ocf"), ["agent", "monitor", "running"]),
            (ex, f"{tool}:other-agent", mutate(ex, tool, r"ocf:pacemaker:Dummy", "ocf:heartbeat:Dummy"), ["agent"]),
            # pacemaker 2.1.5 reads `enabled` from the op itself only: its scheduler still runs the
            # monitor with op_defaults enabled=false (crm_simulate's transition has monitor=30000)
            (ex, f"{tool}:alt:op-defaults-enabled-false", plus(ex, tool, "crm configure op_defaults enabled=false"),
             []),
            (ex, f"{tool}:then-stopped", plus(ex, tool, "crm_resource -r Dummy --meta -p target-role -v Stopped"),
             ["running"]),
        ]
    cases += [
        (ex, "pcs:disabled", mutate(ex, "pcs", "$", " --disabled"), ["running"]),
        (ex, "alt:ms-interval", mutate(ex, "pcs", r"interval=30s", "interval=30000ms timeout=40s"), []),
        (ex, "alt:cibadmin-PT30S",
         [create("resources", '<primitive id="Dummy" class="ocf" provider="pacemaker" type="Dummy"><operations>'
                              '<op id="Dummy-mon" name="monitor" interval="PT30S"/></operations></primitive>')], []),
        (ex, "alt:in-a-group", mutate(ex, "pcs", "$", " --group g"), []),
        (ex, "alt:role-Started", mutate(ex, "crmsh", r"interval=30$", "interval=30 role=Started"), []),
        (ex, "alt:template",
         ["crm configure rsc_template t ocf:pacemaker:Dummy op monitor interval=30s",
          "crm configure primitive Dummy @t"], []),
    ]

    ex = "resource-update"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:other-interval", mutate(ex, tool, r"20s", "25s"), ["monitor"]),
            (ex, f"{tool}:then-disabled", plus(ex, tool, "crm resource stop Dummy"), ["running"]),
        ]
    cases += [
        (ex, "pcs:monitor-disabled", mutate(ex, "pcs", "$", " enabled=false"), ["monitor"]),
        (ex, "op-added-not-changed", ["pcs resource op add Dummy monitor interval=20s --force"], ["monitor"]),
        (ex, "alt:cibadmin-modify-op",
         ["cibadmin --modify --xml-text '<op id=\"Dummy-monitor-interval-30s\" interval=\"20s\"/>'"], []),
        (ex, "alt:pcs-op-remove-add",
         ["pcs resource op remove Dummy monitor interval=30s", "pcs resource op add Dummy monitor interval=20000ms"],
         []),
    ]

    ex = "resource-disable"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:until-a-date", [meta_set("Dummy", "off", {"target-role": "Stopped"}, UNTIL)], ["disabled"]),
            (ex, f"{tool}:then-deleted", plus(ex, tool, "cibadmin --delete --xml-text '<primitive id=\"Dummy\"/>'"),
             ["configured", "disabled"]),
        ]
    cases += [
        (ex, "unmanaged-instead", ["pcs resource unmanage Dummy"], ["disabled", "stopped"]),
        (ex, "disabled-but-unmanaged", ["pcs resource unmanage Dummy", "pcs resource disable Dummy"], ["stopped"]),
        (ex, "banned-everywhere-instead", ["pcs resource ban Dummy {node1}", "pcs resource ban Dummy {node2}"],
         ["disabled"]),
        # Stopped now, not for good: the disabled check looks ahead; the stopped check is about now.
        (ex, "only-this-hour-and-next", [meta_set("Dummy", "off", {"target-role": "Stopped"}, THIS_HOUR_ON)],
         ["disabled"]),
        (ex, "only-in-another-hour", [meta_set("Dummy", "off", {"target-role": "Stopped"}, ANOTHER_HOUR)],
         ["disabled", "stopped"]),
        (ex, "alt:crm_resource", ["crm_resource -r Dummy --meta -p target-role -v Stopped"], []),
        (ex, "alt:second-nvset", ["crm_resource -r Dummy --meta -p target-role -v Stopped --set-name Dummy-meta2"],
         []),
        (ex, "alt:from-2000-on",
         [meta_set("Dummy", "off", {"target-role": "Stopped"},
                   UNTIL.replace('operation="lt" end="2030-01-01"', 'operation="gt" start="2000-01-01"'))], []),
        (ex, "alt:group-disabled", ["pcs resource group add g Dummy", "pcs resource disable g"], []),
    ]

    ex = "resource-enable"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:then-banned-everywhere",
             plus(ex, tool, "crm_resource --ban -r Dummy -N {node1}", "crm_resource --ban -r Dummy -N {node2}"),
             ["running"]),
        ]
    cases += [
        (ex, "manage-instead", ["pcs resource manage Dummy"], ["enabled", "running"]),
        (ex, "enabled-until-a-date", [meta_set("Dummy", "on", {"target-role": "Started"}, UNTIL)], ["enabled"]),
        (ex, "alt:crm_resource-delete", ["crm_resource -r Dummy --meta -d target-role"], []),
        (ex, "alt:second-set-Started",
         ["crm_resource -r Dummy --meta -p target-role -v Started --set-name Dummy-meta2"], []),
        (ex, "Started-in-lower-set", [meta_set("Dummy", "on", {"target-role": "Started"}).replace(
            'score="100"', 'score="-100"')], ["enabled", "running"]),
        (ex, "alt:crm_resource-Started", ["crm_resource -r Dummy --meta -p target-role -v Started"], []),
        (ex, "alt:cibadmin-delete-nvpair",
         ["cibadmin --delete --xpath \"//primitive[@id='Dummy']//nvpair[@name='target-role']\""], []),
        (ex, "alt:stop-only-before-2000", [
            "crm_resource -r Dummy --meta -d target-role",
            meta_set("Dummy", "old", {"target-role": "Stopped"},
                     UNTIL.replace('end="2030-01-01"', 'end="2000-01-01"'))], []),
    ]

    ex = "resource-delete"
    for tool in BOTH:
        cases += [(ex, f"{tool}:only-stopped", solution(ex, tool)[:1] if tool == "crmsh" else
                   ["pcs resource disable Dummy"], ["absent"])]
    cases += [
        (ex, "orphan-left-running", ["pcs property set stop-orphan-resources=false", "pcs resource delete Dummy"],
         ["absent"]),
        (ex, "alt:cibadmin-delete", ["cibadmin --delete --xml-text '<primitive id=\"Dummy\"/>'"], []),
        (ex, "alt:crm_resource-delete", ["crm_resource -r Dummy -t primitive --delete"], []),
        (ex, "alt:unmanaged-then-deleted", ["pcs resource unmanage Dummy", "pcs resource delete Dummy"], []),
    ]
    return cases


def _advanced_cases() -> list[Case]:
    cases: list[Case] = []
    ex = "clone"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:clone-max-off-by-one", mutate(ex, tool, r" clone( everywhere-clone everywhere)?$",
                                                      r" clone\1 meta clone-max=1" if tool == "crmsh"
                                                      else " clone clone-max=1"), ["cloned"]),
            (ex, f"{tool}:clone-banned-from-node2", plus(ex, tool, "crm_resource --ban -r everywhere-clone -N {node2}"),
             ["cloned"]),
            (ex, f"{tool}:banned-from-2030", plus(ex, tool, "pcs constraint location everywhere-clone rule "
                                                 "score=-INFINITY '#uname' eq {node2} and date gt 2030-01-01"),
             ["cloned"]),
            (ex, f"{tool}:disabled", plus(ex, tool, "crm resource stop everywhere-clone"), ["cloned"]),
        ]
    cases += [
        (ex, "crmsh:not-cloned", solution(ex, "crmsh")[:1], ["cloned"]),
        (ex, "pcs:other-agent", mutate(ex, "pcs", "pacemaker:Dummy", "heartbeat:Dummy"), ["agent"]),
        (ex, "alt:clone-max-3", mutate(ex, "pcs", "clone$", "clone clone-max=3"), []),
        (ex, "alt:globally-unique", mutate(ex, "pcs", "clone$", "clone globally-unique=true"), []),
        (ex, "alt:pcs-clone-later", ["pcs resource create everywhere ocf:pacemaker:Dummy",
                                     "pcs resource clone everywhere"], []),
        (ex, "alt:cloned-group", ["pcs resource create everywhere ocf:pacemaker:Dummy --group g",
                                  "pcs resource clone g"], []),
        (ex, "alt:cibadmin",
         [create("resources", '<clone id="c"><primitive id="everywhere" class="ocf" provider="pacemaker" '
                              'type="Dummy"/></clone>')], []),
    ]

    ex = "promotable"
    cases += [
        (ex, "pcs:promoted-max-0", mutate(ex, "pcs", "promotable$", "promotable promoted-max=0"), ["promoted"]),
        (ex, "pcs:clone-max-1", mutate(ex, "pcs", "promotable$", "promotable clone-max=1"), ["promoted"]),
        (ex, "pcs:plain-clone", mutate(ex, "pcs", "promotable$", "clone"), ["promoted"]),
        (ex, "crmsh:promotable-false", mutate(ex, "crmsh", "promotable=true", "promotable=false"), ["promoted"]),
        (ex, "crmsh:promoted-max-2", mutate(ex, "crmsh", "promotable=true", "promotable=true promoted-max=2"),
         ["promoted"]),
        (ex, "crmsh:not-cloned", solution(ex, "crmsh")[:1], ["promoted"]),
        (ex, "pcs:no-promotion-from-2030", plus(ex, "pcs", "pcs constraint location state-clone rule role=Promoted "
                                                        "score=-INFINITY date gt 2030-01-01"), ["promoted"]),
        (ex, "pcs:other-agent", mutate(ex, "pcs", "pacemaker:Stateful", "heartbeat:Stateful"), ["agent"]),
        (ex, "alt:crmsh-legacy-master-max", mutate(ex, "crmsh", "promotable=true", "promotable=true master-max=1"),
         []),
        (ex, "alt:pcs-promotable-options", mutate(ex, "pcs", "promotable$", "promotable promoted-max=1 notify=true"),
         []),
        (ex, "alt:cibadmin",
         [create("resources", '<clone id="state-clone"><meta_attributes id="sc-meta"><nvpair id="sc-p" '
                              'name="promotable" value="true"/></meta_attributes><primitive id="state" class="ocf" '
                              'provider="pacemaker" type="Stateful"/></clone>')], []),
    ]

    ex = "group"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:swapped", mutate(ex, tool, r"vip web$", "web vip"), ["members"]),
            (ex, f"{tool}:only-vip", mutate(ex, tool, r"vip web$", "vip"), ["members"]),
            (ex, f"{tool}:ordered-false", plus(ex, tool, "crm_resource -r webgroup --meta -p ordered -v false"),
             ["members"]),
            (ex, f"{tool}:collocated-false", plus(ex, tool, "crm_resource -r webgroup --meta -p collocated -v false"),
             ["members"]),
            (ex, f"{tool}:defaults-ordered-false", plus(ex, tool, "pcs resource defaults update ordered=false"),
             ["members"]),
        ]
    cases += [
        (ex, "alt:one-by-one", ["pcs resource group add webgroup vip", "pcs resource group add webgroup web"], []),
        (ex, "alt:before", ["pcs resource group add webgroup web", "pcs resource group add webgroup vip --before web"],
         []),
        (ex, "alt:ordered-true-in-second-set", plus(ex, "crmsh", "crm_resource -r webgroup --meta -p ordered -v true "
                                                                 "--set-name webgroup-meta2"), []),
    ]

    ex = "resource-template"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:interval-off", mutate(ex, tool, r'interval=("?)15s', r"interval=\g<1>16s"),
             ["template", "monitor"]),
            (ex, f"{tool}:then-stopped", plus(ex, tool, "crm resource stop from-template"), ["running"]),
        ]
    cases += [
        (ex, "crmsh:own-monitor-overrides",
         mutate(ex, "crmsh", r"@dummy-template$", "@dummy-template op monitor interval=30s"), ["monitor"]),
        (ex, "crmsh:template-monitor-disabled",
         mutate(ex, "crmsh", r"interval=15s$", "interval=15s enabled=false"), ["template", "monitor"]),
        (ex, "alt:crmsh-PT15S", mutate(ex, "crmsh", r"interval=15s$", "interval=PT15S"), []),
    ]
    return cases


def _constraint_cases() -> list[Case]:
    cases: list[Case] = []
    ex = "colocation"
    cases += [
        (ex, "pcs:anti", mutate(ex, "pcs", "INFINITY$", "-INFINITY"), ["follows"]),
        (ex, "pcs:finite", mutate(ex, "pcs", "INFINITY$", "1000"), ["follows"]),
        (ex, "pcs:swapped", mutate(ex, "pcs", "web with vip", "vip with web"), ["follows"]),
        (ex, "crmsh:anti", mutate(ex, "crmsh", "inf:", "-inf:"), ["follows"]),
        (ex, "crmsh:finite", mutate(ex, "crmsh", "inf:", "1000:"), ["follows"]),
        (ex, "crmsh:swapped", mutate(ex, "crmsh", "web vip$", "vip web"), ["follows"]),
        (ex, "pcs:set-swapped", ["pcs constraint colocation set web vip"], ["follows"]),
        (ex, "pcs:set-not-sequential", ["pcs constraint colocation set vip web sequential=false"], ["follows"]),
        # crmsh writes three or more resources as one sequential set, where pacemaker places each
        # member with the one before it: `web vip x` puts vip with web (the reverse of two resources)
        (ex, "crmsh:three-is-a-chain", ["crm configure primitive x ocf:pacemaker:Dummy",
                                        "crm configure colocation c1 inf: web vip x"], ["follows"]),
        (ex, "crmsh:then-vip-stopped", plus(ex, "crmsh", "crm resource stop vip"), ["web-running", "vip-running"]),
        (ex, "pcs:then-web-disabled", plus(ex, "pcs", "pcs resource disable web"), ["web-running"]),
        (ex, "alt:pcs-two-sets", ["pcs constraint colocation set web set vip"], []),
        (ex, "alt:crmsh-set-form", ["crm configure colocation c1 inf: web '(' vip ')'"], []),
        (ex, "alt:crmsh-chain-of-three", ["crm configure primitive x ocf:pacemaker:Dummy",
                                          "crm configure colocation c1 inf: vip web x"], []),
        (ex, "alt:influence-false", mutate(ex, "pcs", "INFINITY$", "INFINITY influence=false"), []),
        (ex, "alt:cibadmin", [create("constraints", '<rsc_colocation id="c1" rsc="web" with-rsc="vip" '
                                                    'score="INFINITY"/>')], []),
        (ex, "alt:cibadmin-roles", [create("constraints", '<rsc_colocation id="c1" rsc="web" with-rsc="vip" '
                                                          'rsc-role="Started" with-rsc-role="Started" '
                                                          'score="+INFINITY"/>')], []),
        # a role vip never has: the colocation never applies
        (ex, "with-promoted-vip", [create("constraints", '<rsc_colocation id="c1" rsc="web" with-rsc="vip" '
                                                         'with-rsc-role="Promoted" score="INFINITY"/>')],
         ["follows"]),
        (ex, "crmsh:with-promoted-vip", mutate(ex, "crmsh", "web vip$", "web vip:Promoted"), ["follows"]),
    ]

    ex = "order"
    cases += [
        (ex, "pcs:swapped", mutate(ex, "pcs", "start vip then start web", "start web then start vip"), ["order"]),
        (ex, "pcs:first-stop", mutate(ex, "pcs", "start vip then", "stop vip then"), ["order"]),
        (ex, "pcs:optional", mutate(ex, "pcs", "$", " kind=Optional"), ["order"]),
        # An optional order plus a colocation moves web with vip, but a failed vip does not make
        # pacemaker restart web after it: only a mandatory order does (a false pass once).
        (ex, "pcs:optional-plus-colocation", mutate(ex, "pcs", "$", " kind=Optional")
         + ["pcs constraint colocation add web with vip INFINITY"], ["order"]),
        (ex, "pcs:serialize", mutate(ex, "pcs", "$", " kind=Serialize"), ["order"]),
        (ex, "crmsh:swapped", mutate(ex, "crmsh", "vip web$", "web vip"), ["order"]),
        (ex, "crmsh:optional", mutate(ex, "crmsh", "Mandatory:", "Optional:"), ["order"]),
        (ex, "crmsh:score-0", mutate(ex, "crmsh", "Mandatory:", "0:"), ["order"]),
        (ex, "crmsh:first-stop", mutate(ex, "crmsh", "vip web$", "vip:stop web:start"), ["order"]),
        (ex, "pcs:set-not-sequential", ["pcs constraint order set vip web sequential=false"], ["order"]),
        (ex, "pcs:sets-swapped", ["pcs constraint order set web set vip"], ["order"]),
        (ex, "crmsh:unordered-set", ["crm configure order o1 Mandatory: [ vip web ]"], ["order"]),
        (ex, "pcs:then-web-stopped", plus(ex, "pcs", "pcs resource disable web"), ["web-running"]),
        (ex, "alt:pcs-two-sets", ["pcs constraint order set vip set web"], []),
        (ex, "alt:crmsh-set-form", ["crm configure order o1 Mandatory: '(' vip ')' web"], []),
        (ex, "crmsh:then-vip-stopped", plus(ex, "crmsh", "crm resource stop vip"), ["web-running"]),
        (ex, "alt:crmsh-chain-of-three", ["crm configure primitive x ocf:pacemaker:Dummy",
                                          "crm configure order o1 Mandatory: vip x web"], []),
        (ex, "alt:crmsh-score-inf", mutate(ex, "crmsh", "Mandatory:", "inf:"), []),
        (ex, "alt:cibadmin", [create("constraints", '<rsc_order id="o1" first="vip" then="web"/>')], []),
        # an action vip never takes (it is not promotable): pacemaker blocks web's start for good
        (ex, "after-promote", [create("constraints", '<rsc_order id="o1" first="vip" first-action="promote" '
                                                     'then="web" then-action="start"/>')], ["order", "web-running"]),
        (ex, "crmsh:then-stop", mutate(ex, "crmsh", "vip web$", "vip:start web:stop"), ["order"]),
        (ex, "alt:cibadmin-score", [create("constraints", '<rsc_order id="o1" first="vip" first-action="start" '
                                                          'then="web" then-action="start" score="100"/>')], []),
    ]

    ex = "location-avoid"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:finite", mutate(ex, tool, r"avoids \{node2\}$|-inf:", r"avoids {node2}=100"
                                          if tool == "pcs" else "-100:"), ["never-node2"]),
            (ex, f"{tool}:flipped", mutate(ex, tool, r"avoids \{|-inf:", "prefers {" if tool == "pcs" else "inf:"),
             ["never-node2"]),
            (ex, f"{tool}:other-node", mutate(ex, tool, r"\{node2\}$", "{node1}"), ["never-node2"]),
            (ex, f"{tool}:ban-expires", ["crm resource ban web {node2} P1D" if tool == "crmsh" else
                                         "pcs resource ban web {node2} lifetime=P1D"], ["never-node2"]),
        ]
    cases += [
        (ex, "alt:crm_resource-ban", ["crm_resource --ban -r web -N {node2}"], []),
        (ex, "alt:rule-ne-node1", ["pcs constraint location web rule score=-INFINITY '#uname' ne {node1}"], []),
    ]

    ex = "location-prefer"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:flipped", mutate(ex, tool, r"=50$| 50:", "=-50" if tool == "pcs" else " -50:"),
             ["score", "placed"]),
            (ex, f"{tool}:off-by-one", mutate(ex, tool, r"=50$| 50:", "=51" if tool == "pcs" else " 51:"), ["score"]),
            (ex, f"{tool}:until-2030", ["pcs constraint location web rule score=50 '#uname' eq {node1} "
                                        "and date lt 2030-01-01"], ["score"]),
        ]
    cases += [
        (ex, "alt:cibadmin-node-case", [create("constraints", '<rsc_location id="l1" rsc="web" node="NODE1" '
                                                              'score="50"/>')], []),
    ]

    ex = "rule-location"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:finite", mutate(ex, tool, r"-INFINITY|-inf:", "-100" if tool == "pcs" else "-100:"),
             ["rule"]),
            (ex, f"{tool}:eq-instead-of-ne", mutate(ex, tool, r" ne east", " eq west"), ["rule", "placed"]),
            (ex, f"{tool}:attribute-on-node2", mutate(ex, tool, r"\{node1\}", "{node2}"), ["attribute", "placed"]),
            (ex, f"{tool}:until-2030", mutate(ex, tool, r"ne east$", "ne east and date lt 2030-01-01"), ["rule"]),
        ]
    cases += [
        (ex, "alt:crm_attribute", ["crm_attribute --node {node1} --name datacenter --update east",
                                   "pcs constraint location web rule score=-INFINITY datacenter ne east"], []),
    ]

    ex = "resource-move"
    cases += [
        (ex, "pcs:not-cleared", solution(ex, "pcs")[:-1], ["clean"]),
        (ex, "crmsh:not-cleared", solution(ex, "crmsh")[:-1], ["clean"]),
        (ex, "pcs:cleared-before-moving", [c for c in solution(ex, "pcs") if c != WAIT], ["moved"]),
        (ex, "crmsh:move-with-lifetime", mutate(ex, "crmsh", r"\{node2\}$", "{node2} P1D")[:-1], ["clean"]),
        (ex, "alt:crm_resource", ["crm_resource --move -r web -N {node2}", WAIT, "crm_resource --clear -r web"], []),
    ]
    return cases


def _config_cases() -> list[Case]:
    cases: list[Case] = []
    ex = "default-stickiness"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:off-by-one", mutate(ex, tool, "=100", "=99"), ["default"]),
            (ex, f"{tool}:until-2030", mutate(ex, tool, "^.*=100$", STICKY + "date lt 2030-01-01"), ["default"]),
        ]
    cases += [
        (ex, "only-during-work-hours", [STICKY + "date-spec hours=9-16"], ["default"]),
        (ex, "only-from-2030", [STICKY + "date gt 2030-01-01"], ["default"]),
        (ex, "only-for-clones", [STICKY + "resource ::Dummy and date gt 2000-01-01"], ["default"]),
        (ex, "alt:cibadmin", [create("configuration", '<rsc_defaults><meta_attributes id="d"><nvpair id="d-s" '
                                                      'name="resource-stickiness" value="100"/></meta_attributes>'
                                                      '</rsc_defaults>')], []),
        (ex, "alt:lasting-date-rule", [STICKY + "date gt 2000-01-01"], []),
        (ex, "alt:years-2000-2200", [STICKY + "date-spec years=2000-2200"], []),
    ]

    ex = "failure-policy"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:threshold-off-by-one", mutate(ex, tool, r"migration-threshold(=| )3",
                                                        r"migration-threshold\g<1>4"), ["threshold"]),
            (ex, f"{tool}:timeout-other", mutate(ex, tool, r"failure-timeout(=| )60s", r"failure-timeout\g<1>90s"),
             ["timeout"]),
        ]
    cases += [
        (ex, "until-2030", [meta_set("web", "fp", {"migration-threshold": "3", "failure-timeout": "60s"}, UNTIL)],
         ["threshold", "timeout"]),
        (ex, "alt:crm_resource", ["crm_resource -r web --meta -p migration-threshold -v 3",
                                  "crm_resource -r web --meta -p failure-timeout -v 60000ms"], []),
    ]

    ex = "maintenance-mode"
    for tool in BOTH:
        cases += [(ex, f"{tool}:false", mutate(ex, tool, "=true", "=false"), ["property", "unmanaged"])]
    cases += [
        (ex, "until-2030", [property_set("mm", {"maintenance-mode": "true"}, UNTIL)], ["property", "unmanaged"]),
        (ex, "work-hours", [property_set("mm", {"maintenance-mode": "true"}, WORK_HOURS)], ["property", "unmanaged"]),
        (ex, "alt:crm_attribute", ["crm_attribute --type crm_config --name maintenance-mode --update on"], []),
    ]

    ex = "no-quorum-policy"
    for tool in BOTH:
        cases += [(ex, f"{tool}:stop", mutate(ex, tool, "=freeze", "=stop"), ["policy", "freezes"])]
    cases += [
        (ex, "until-2030", [property_set("nq", {"no-quorum-policy": "freeze"}, UNTIL)], ["policy", "freezes"]),
        (ex, "alt:crm_attribute", ["crm_attribute --type crm_config --name no-quorum-policy --update freeze"], []),
    ]

    ex = "acl"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:not-enabled", solution(ex, tool)[1:], ["enabled"]),
            (ex, f"{tool}:write-grant", mutate(ex, tool, r"read xpath", "write xpath"), ["user"]),
            (ex, f"{tool}:enabled-until-2030",
             [property_set("acl-on", {"enable-acl": "true"}, UNTIL, score=1000), *solution(ex, tool)[1:]],
             ["enabled"]),
        ]
    cases += [
        (ex, "alt:crm_attribute", ["crm_attribute --type crm_config --name enable-acl --update true",
                                   *solution(ex, "pcs")[1:]], []),
    ]

    ex = "node-standby"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:other-node", mutate(ex, tool, r"\{node2\}", "{node1}"),
             ["node2-standby", "node1-active", "empty"]),
            (ex, f"{tool}:both-nodes", plus(ex, tool, "crm_standby -N {node1} -v on"), ["node1-active", "web-running"]),
        ]
    cases += [
        (ex, "crmsh:standby-off", mutate(ex, "crmsh", "standby on", "standby off"), ["node2-standby", "empty"]),
        (ex, "bans-instead", ["pcs resource ban web {node2}", "pcs resource ban vip {node2}"], ["node2-standby"]),
        (ex, "alt:crm_standby", ["crm_standby -N {node2} -v on"], []),
        (ex, "alt:crm_standby-reboot", ["crm_standby -N {node2} -v true -l reboot"], []),
        (ex, "alt:pcs-node-attribute", ["pcs node attribute {node2} standby=yes"], []),
    ]

    ex = "resource-class-systemd"
    for tool in BOTH:
        cases += [
            (ex, f"{tool}:drop-op", mutate(ex, tool, r" op monitor interval=60s", ""),
             ["monitor"] if tool == "crmsh" else []),  # pcs adds a default monitor (60 s) itself
            (ex, f"{tool}:lsb", mutate(ex, tool, "systemd:cron", "lsb:cron"), ["class"]),
        ]
    cases += [(ex, "alt:unit-suffix", mutate(ex, "crmsh", "systemd:cron", "systemd:cron.service"), [])]
    return cases


CASES: list[Case] = _seed_cases() + _advanced_cases() + _constraint_cases() + _config_cases()


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    return Bases(tmp_path_factory.mktemp("near-bases"))


@pytest.mark.parametrize(("exercise_id", "commands", "must_fail"),
                         [pytest.param(e, c, f, id=f"{e}:{i}") for e, i, c, f in CASES])
def test_verdict(bases: Bases, tmp_path: Path, exercise_id: str, commands: list[str], must_fail: list[str]) -> None:
    assert sorted(outcome(bases, tmp_path, exercise_id, commands)) == sorted(must_fail)


def test_every_cib_judged_exercise_has_near_misses_and_alternatives() -> None:
    judged = {e.id for e in load_all() if not e.live_only}
    every = CASES + NEW_CIB_CASES
    near = {e for e, _i, _c, f in every if f}
    alternatives = {e for e, _i, _c, f in every if not f}
    assert judged - near == set()
    assert judged - alternatives == set()
