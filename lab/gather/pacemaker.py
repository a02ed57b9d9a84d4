"""Pacemaker's own answers about a CIB: the one module that runs pacemaker's tools for the checks.

Checks ask what a configuration *means* (where may a resource run and with which
score, which value of a meta attribute is in effect, what may an ACL user read or
write); pacemaker answers that better than any re-implementation, including the
forms nobody here has thought of (tags, patterns, rules, dates, several nvsets).
Every tool runs on a temporary copy of the CIB text through lab.transport.runner.run_local,
with a timeout; a tool that fails raises PacemakerError naming the command.
Results are cached per (CIB text, question): a grading asks the same question
from several checks, and a saved CIB is graded for several exercises.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from xml.etree.ElementTree import Element, SubElement, tostring

from lab.core.errors import PacemakerError
from lab.core.scores import parse_score
from lab.core.status import Status, revised_status
from lab.core.xmlsafe import parse_untrusted
from lab.transport.runner import CommandResult, run_local

TIMEOUT = 60.0
# A date far enough ahead that every lifetime (ban/move --lifetime, date rules) has run out.
FAR_FUTURE = "2099-12-31 00:00:00"
CACHE_SIZE = 512


def _env(path: Path, user: str | None = None) -> dict[str, str]:
    env = {"CIB_file": str(path), "CIB_shadow": ""}
    if user:
        env["CIB_user"] = user
    return env


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> CommandResult:
    result = run_local(argv, env=env, timeout=TIMEOUT)
    if result.returncode in (124, 127):
        raise PacemakerError(f"{argv[0]}: {result.tail(2)}")
    return result


def _require(result: CommandResult, what: str) -> CommandResult:
    if not result.ok:
        raise PacemakerError(f"{what} failed (exit {result.returncode}): {result.tail(3)}")
    return result


class _Copy:
    """A temporary file holding the CIB text (the tools read and may write it)."""

    def __init__(self, cib_xml: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="lab-pcmk-")
        self.path = Path(self._dir.name, "cib.xml")
        self.path.write_text(cib_xml, encoding="utf-8")

    def __enter__(self) -> _Copy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()


# --- the scheduler: crm_simulate ----------------------------------------------------


@dataclass(frozen=True)
class Simulation:
    """One scheduler run: allocation scores, the transition, the state after it."""

    scores: Mapping[str, Mapping[str, int]]  # resource (instance) id -> node -> allocation score
    status: Status  # revised cluster status, after the transition
    graph: Element | None

    def running(self, rsc_id: str) -> list[str]:
        return sorted(set(self.status.running_nodes(rsc_id)))

    def score(self, rsc_id: str, node: str) -> int | None:
        return self.scores.get(rsc_id, {}).get(node)

    def actions(self) -> list[tuple[str, str, str, tuple[str, ...]]]:
        """(action id, resource id, operation, input action ids) for every graph action."""
        found: list[tuple[str, str, str, tuple[str, ...]]] = []
        if self.graph is None:
            return found
        for synapse in self.graph.iter("synapse"):
            inputs = tuple(a.get("id", "") for t in synapse.iter("trigger") for a in t)
            for action_set in synapse.iter("action_set"):
                for action in action_set:
                    prim = action.find("primitive")
                    if prim is not None:
                        rsc = prim.get("long-id") or prim.get("id", "")
                    else:  # pseudo actions of groups and clones: "webgroup_start_0"
                        rsc = action.get("operation_key", "").rsplit("_", 2)[0]
                    found.append((action.get("id", ""), rsc, action.get("operation", ""), inputs))
        return found

    def monitors(self, rsc_id: str) -> list[tuple[int, str | None]]:
        """(interval ms, role) of every recurring monitor the transition schedules for rsc_id."""
        found = []
        if self.graph is None:
            return found
        for action in self.graph.iter("rsc_op"):
            prim = action.find("primitive")
            attrs = action.find("attributes")
            if prim is None or attrs is None or action.get("operation") != "monitor":
                continue
            name = (prim.get("long-id") or prim.get("id", "")).split(":", 1)[0]
            interval = int(attrs.get("CRM_meta_interval", "0") or 0)
            if name == rsc_id and interval > 0:
                found.append((interval, attrs.get("CRM_meta_role")))
        return sorted(set(found))


def _scores(allocations: Element | None) -> dict[str, dict[str, int]]:
    """node_weight lines; a primitive's own assignment line wins over its group's or clone's."""
    out: dict[str, dict[str, int]] = {}
    own: set[tuple[str, str]] = set()
    if allocations is None:
        return out
    for weight in allocations.iter("node_weight"):
        rsc, node = weight.get("id", ""), weight.get("node", "")
        score = parse_score(weight.get("score"))
        if score is None:
            continue
        primitive = "primitive" in weight.get("function", "") or "native" in weight.get("function", "")
        if (rsc, node) in own and not primitive:
            continue
        if primitive:
            own.add((rsc, node))
        out.setdefault(rsc, {})[node] = score
    return out


@functools.lru_cache(maxsize=CACHE_SIZE)
def _simulate(cib_xml: str, up: tuple[str, ...], down: tuple[str, ...], date: str | None,
              quorum: bool, graph: bool, inject: tuple[str, ...] = ()) -> Simulation:
    with _Copy(cib_xml) as copy:
        graph_file = copy.path.with_name("graph.xml")
        argv = ["crm_simulate", "--xml-file", str(copy.path), "--simulate", "--show-scores",
                "--output-as=xml", "--quorum", "true" if quorum else "false"]
        for node in up:
            argv += ["--node-up", node]
        for node in down:
            argv += ["--node-down", node]
        if date:
            argv += ["--set-datetime", date]
        for op_result in inject:  # RSC_OP_INTERVAL@NODE=RC: an operation result the scheduler reacts to
            argv += ["--op-inject", op_result]
        if graph:
            argv += ["--save-graph", str(graph_file)]
        result = _require(_run(argv, env={"CIB_file": "", "CIB_shadow": ""}), "crm_simulate")
        root = parse_untrusted(result.stdout, "crm_simulate output")
        status = revised_status(root)
        graph_el = None
        if graph and graph_file.exists():
            graph_el = parse_untrusted(graph_file.read_text(encoding="utf-8"), "transition graph")
    scores = {k: MappingProxyType(v) for k, v in _scores(root.find("allocations")).items()}
    return Simulation(MappingProxyType(scores), status, graph_el)


def simulate(cib_xml: str, *, up: Sequence[str] = (), down: Sequence[str] = (), date: str | None = None,
             quorum: bool = True, graph: bool = False, inject: Sequence[str] = ()) -> Simulation:
    """crm_simulate -S -s on the text: nodes brought up/down, quorum as given, at `date` (default now)."""
    return _simulate(cib_xml, tuple(up), tuple(down), date, quorum, graph, tuple(inject))


# --- effective values: crm_resource, crm_mon ----------------------------------------


@functools.lru_cache(maxsize=CACHE_SIZE)
def meta_value(cib_xml: str, rsc_id: str, name: str) -> str | None:
    """The meta attribute's value in effect for the resource (own sets, parents, rsc_defaults,
    rules evaluated now), as `crm_resource --meta --get-parameter` computes it."""
    with _Copy(cib_xml) as copy:
        result = _run(["crm_resource", "--resource", rsc_id, "--meta", "--get-parameter", name],
                      env=_env(copy.path))
    if not result.ok:
        raise PacemakerError(f"crm_resource cannot read meta attribute {name} of {rsc_id}: {result.tail(2)}")
    value = result.stdout.strip()
    return value.splitlines()[-1].strip() if value else None


@functools.lru_cache(maxsize=CACHE_SIZE)
def cluster_options(cib_xml: str) -> Mapping[str, str]:
    """The cluster options crm_mon reports in effect (the scheduler's own precedence of sets)."""
    with _Copy(cib_xml) as copy:
        result = _require(_run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"],
                               env=_env(copy.path)), "crm_mon")
    options = parse_untrusted(result.stdout, "crm_mon output").find("summary/cluster_options")
    return MappingProxyType(dict(options.attrib) if options is not None else {})


# --- ACLs: the CIB manager enforces them on a file too -------------------------------


@functools.lru_cache(maxsize=CACHE_SIZE)
def read_as(cib_xml: str, user: str | None) -> str | None:
    """`cibadmin --query` as user (None: as root); None when the CIB manager refuses the read."""
    with _Copy(cib_xml) as copy:
        result = _run(["cibadmin", "--query"], env=_env(copy.path, user))
    if not result.ok:
        if _denied(result):
            return None
        raise PacemakerError(f"cibadmin --query as {user or 'root'} failed: {result.tail(2)}")
    return result.stdout


def _write_probes(cib_xml: str) -> list[tuple[str, list[str]]]:
    """One valid write to each part of the CIB a grant could cover (configuration sections, status).

    Only writes the CIB schema accepts on any lab CIB: a refusal then means ACLs, nothing else.
    """
    root = parse_untrusted(cib_xml, "CIB")
    node = next((n.get("uname") or n.get("id", "") for n in root.iterfind("configuration/nodes/node")), None)
    primitives = [p.get("id", "") for p in root.iterfind("configuration/resources//primitive")]
    probes: list[tuple[str, list[str]]] = [
        ("a cluster property", ["crm_attribute", "--type", "crm_config", "--name", "lab-acl-probe",
                                "--update", "1"]),
        ("a new resource", ["cibadmin", "--create", "-o", "resources", "--xml-text",
                            '<primitive id="lab-acl-probe" class="ocf" provider="pacemaker" type="Dummy"/>']),
        ("an ACL", ["cibadmin", "--create", "-o", "acls", "--xml-text", '<acl_role id="lab-acl-probe"/>']),
    ]
    if node:
        probes += [
            (f"a node attribute of {node}", ["crm_attribute", "--node", node, "--name", "lab-acl-probe",
                                             "--update", "1"]),
            (f"the status of {node}", ["crm_attribute", "--node", node, "--name", "lab-acl-probe",
                                       "--update", "1", "--lifetime", "reboot"]),
        ]
    if node and primitives:
        probes.append(("a new constraint", ["cibadmin", "--create", "-o", "constraints", "--xml-text",
                                            f'<rsc_location id="lab-acl-probe" rsc="{primitives[0]}" '
                                            f'node="{node}" score="0"/>']))
    for rid in primitives:
        probes.append((f"resource {rid}", ["crm_resource", "--resource", rid, "--meta",
                                           "--set-parameter", "lab-acl-probe", "--parameter-value", "1"]))
    return probes


def _denied(result: CommandResult) -> bool:
    """The CIB manager refused for ACLs (cibadmin/crm_attribute: Permission denied; crm_resource:
    Insufficient privileges)."""
    text = (result.stderr + result.stdout).lower()
    return "permission denied" in text or "insufficient privileges" in text


@functools.lru_cache(maxsize=CACHE_SIZE)
def writes_as(cib_xml: str, user: str) -> tuple[str, ...]:
    """What user may change: each probe write runs as user on its own copy; the allowed ones."""
    allowed = []
    for what, argv in _write_probes(cib_xml):
        with _Copy(cib_xml) as copy:
            result = _run(argv, env=_env(copy.path, user))
        if result.ok:
            allowed.append(what)
        elif not _denied(result):
            raise PacemakerError(f"{' '.join(argv[:2])} as {user} failed for another reason: {result.tail(2)}")
    return tuple(allowed)


# --- dates: crm_rule ---------------------------------------------------------------------
# crm_resource, crm_mon and cibadmin evaluate rules only as of now; crm_simulate alone takes
# a date. To ask them about a later date, every date_expression of a copy is replaced by a
# constant with the truth value crm_rule gives it at that date. Pacemaker evaluates each
# expression on its own and combines the results by the rule's boolean-op (lib/pengine/
# rules.c, pe_test_rule_xml/pe__eval_date_expr), so the rule keeps its value at that date.

_ALWAYS = {"operation": "gt", "start": "1970-01-01"}  # true from 1970 on
_NEVER = {"operation": "lt", "end": "1970-01-01"}  # true only before 1970
# crm_rule's results: 0 in effect, 110 expired, 111 not yet in effect, 112 date_spec unsatisfied.
_RULE_TRUTH = {"0": True, "110": False, "111": False, "112": False}


@functools.lru_cache(maxsize=CACHE_SIZE)
def date_truths(cib_xml: str, date: str) -> tuple[bool | None, ...]:
    """crm_rule --check at date for each date_expression of the CIB, in document order;
    None where crm_rule cannot tell (a date_spec with more than years, a moon phase)."""
    if "date_expression" not in cib_xml:  # no parse for the common CIB without dates
        return ()
    root = parse_untrusted(cib_xml, "CIB")
    expressions = list(root.iter("date_expression"))
    if not expressions:
        return ()
    scratch = Element("cib", dict(root.attrib))
    config = SubElement(scratch, "configuration")
    for tag in ("crm_config", "nodes", "resources", "constraints"):
        SubElement(config, tag)
    defaults = SubElement(config, "rsc_defaults")
    rule_ids = []
    for index, expression in enumerate(expressions):
        nvset = SubElement(defaults, "meta_attributes", {"id": f"lab-date-set-{index}"})
        rule = SubElement(nvset, "rule", {"id": f"lab-date-rule-{index}", "score": "INFINITY"})
        rule.append(expression)  # a reference is enough: `root` is this function's own parse
        rule_ids.append(rule.get("id", ""))
    SubElement(scratch, "status")
    argv = ["crm_rule", "--check", "--xml-text", "-", "--date", date, "--output-as=xml"]
    for rule_id in rule_ids:
        argv += ["--rule", rule_id]
    result = run_local(argv, env={"CIB_file": "", "CIB_shadow": ""},
                       input_text=tostring(scratch, encoding="unicode"), timeout=TIMEOUT)
    if result.returncode in (124, 127):
        raise PacemakerError(f"crm_rule: {result.tail(2)}")
    checks = parse_untrusted(result.stdout, "crm_rule output").iter("rule-check")
    answers = {c.get("rule-id"): c.get("rc") for c in checks}
    if not answers:
        raise PacemakerError(f"crm_rule answered nothing (exit {result.returncode}): {result.tail(2)}")
    return tuple(_RULE_TRUTH.get(answers.get(r) or "") for r in rule_ids)


@functools.lru_cache(maxsize=CACHE_SIZE)
def as_of(cib_xml: str, date: str, undecided: bool = True) -> str:
    """The CIB text whose date expressions all have, now, the value they have at date
    (those crm_rule cannot decide take `undecided`): the text the tools read as that date."""
    truths = date_truths(cib_xml, date)
    if not truths:
        return cib_xml
    root = parse_untrusted(cib_xml, "CIB")
    for expression, truth in zip(root.iter("date_expression"), truths, strict=True):
        keep = expression.get("id", "")
        for child in list(expression):
            expression.remove(child)
        expression.attrib.clear()
        expression.attrib.update({"id": keep, **(_ALWAYS if (undecided if truth is None else truth) else _NEVER)})
    return tostring(root, encoding="unicode")


def later_views(cib_xml: str, date: str = FAR_FUTURE) -> list[tuple[str, str]]:
    """(when, text) for a setting that must last: the CIB as of date, and, where crm_rule cannot
    decide a date_spec, once with it true and once false (it holds at some times, not others).
    Empty when nothing in the CIB depends on the date: "now" is then the whole answer."""
    views: list[tuple[str, str]] = []
    for undecided, when in ((True, f"on {date[:10]}"), (False, "at times a date_spec leaves out")):
        text = as_of(cib_xml, date, undecided)
        if text != cib_xml and text not in (v for _w, v in views):
            views.append((when, text))
    return views


# --- crm_verify: the configuration's own errors and warnings ---------------------------

_VERIFY_LINE = re.compile(r"^\s*(?:\([^)]*\)\s*)?(error|warning):\s*(.*)$")


@dataclass(frozen=True)
class Verification:
    """What `crm_verify -V` says of a CIB: its exit status and each distinct error or warning."""
    returncode: int
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.errors and not self.warnings


@functools.lru_cache(maxsize=CACHE_SIZE)
def verify(cib_xml: str) -> Verification:
    """`crm_verify --xml-file COPY -V` (as `crm_verify -L -V` on the live cluster): each line it
    marks error or warning, once, in its order."""
    with _Copy(cib_xml) as copy:
        result = _run(["crm_verify", "--xml-file", str(copy.path), "-V"], env={"CIB_file": "", "CIB_shadow": ""})
    found: dict[str, list[str]] = {"error": [], "warning": []}
    for match in filter(None, map(_VERIFY_LINE.match, (result.stderr + "\n" + result.stdout).splitlines())):
        if match.group(2) not in found[match.group(1)]:
            found[match.group(1)].append(match.group(2))
    if result.returncode not in (0, 78) and not found["error"]:  # 78: "config not valid"
        raise PacemakerError(f"crm_verify failed (exit {result.returncode}): {result.tail(2)}")
    return Verification(result.returncode, tuple(found["error"]), tuple(found["warning"]))


@functools.lru_cache(maxsize=CACHE_SIZE)
def with_property(cib_xml: str, name: str, value: str) -> str:
    """A what-if: the CIB text with cluster option name=value (`crm_attribute` on a copy)."""
    with _Copy(cib_xml) as copy:
        _require(_run(["crm_attribute", "--type", "crm_config", "--name", name, "--update", value],
                      env=_env(copy.path)), f"crm_attribute --name {name}")
        return copy.path.read_text(encoding="utf-8")


def cache_clear() -> None:
    """Forget every cached answer (tests that change tools or files)."""
    for function in (_simulate, meta_value, cluster_options, read_as, writes_as, date_truths, as_of,
                     verify, with_property):
        function.cache_clear()
