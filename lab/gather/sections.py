"""Fact sections as objects: what the gather script runs for each (`sec NAME COMMAND`), how its
output becomes a NodeFacts field, and the registry checks declare their sections from.

A check names the sections it reads by object (`@check(..., gathers=(QUORUM,))`), so it cannot
ask for one that does not exist; a live gather runs only the sections some check of the
exercise reads (under software emulation every process in the guest costs tenths of a second).
HOSTNAME is always gathered: it tells the nodes' answers apart and picks the cluster view.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lab.core.corosync import parse_corosync_conf, parse_quorumtool
from lab.core.errors import LabError
from lab.core.xmlsafe import MAX_INPUT_BYTES, one_line
from lab.gather import parsers
from lab.gather.nodefacts import NodeFacts
from lab.transport.runner import CommandResult

TOO_LARGE = 153  # a section's exit status when it hit the size limit (128 + SIGXFSZ)
EXTRA_PREFIX = "x_"  # sections of extra commands (not in the registry) are named x_KEY
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_HEADER = re.compile(r"==(LAB|ERR)== ([A-Za-z0-9_]{1,64})(?: (-?[0-9]{1,6}))?(?: ([0-9]{1,10}))?")
_OUT = "==OUT=="  # the line before the one base64 of every section's output


@dataclass(frozen=True)
class Answer:
    """One node's gathered sections, as a section's parser reads them."""

    node: str
    sections: Mapping[str, CommandResult]

    def result(self, name: str) -> CommandResult | None:
        return self.sections.get(name)

    def out(self, name: str) -> str | None:
        """The section's stdout when its command succeeded, else None."""
        res = self.sections.get(name)
        return res.stdout if res is not None and res.ok else None


Parser = Callable[[Answer], object]


@dataclass(frozen=True, eq=False)
class Section:
    """One part of a node's gather: the COMMAND after `sec NAME` in lab/scripts/gather/gather.sh,
    the PARSER that turns the answer into the value of NodeFacts.FIELD (a tuple of fields takes
    a tuple of values), the value when it gives none (EMPTY), and the sections its parser also
    reads (NEEDS: gathered with it). TOOL names a command whose failure is a tool error worth a
    reason; other sections fail as a normal answer (no sbd configured, corosync down)."""

    name: str
    command: str
    field: str | tuple[str, ...]
    parser: Parser | None
    empty: object = None
    needs: tuple[Section, ...] = ()
    tool: str | None = None

    def __repr__(self) -> str:
        return f"Section({self.name!r})"

    def fields(self) -> tuple[str, ...]:
        """The NodeFacts fields this section fills (none for a section another one reads)."""
        return self.field if isinstance(self.field, tuple) else (self.field,)

    def names(self) -> frozenset[str]:
        """This section's name and those of the sections it needs."""
        return frozenset({self.name}).union(*(s.names() for s in self.needs))


SECTIONS: dict[str, Section] = {}  # by name, in gather order


def section(name: str, command: str, field: str | tuple[str, ...], parser: Parser | None, *,
            empty: object = None, needs: tuple[Section, ...] = (), tool: str | None = None) -> Section:
    """Register a section; a name given twice, not a plain lowercase name, or a field NodeFacts
    does not have is a bug here (ValueError at import)."""
    if not _NAME.match(name) or name.startswith(EXTRA_PREFIX):
        raise ValueError(f"section name {name!r} must be lowercase letters, digits and _ (not x_...)")
    if name in SECTIONS:
        raise ValueError(f"section {name!r} registered twice")
    known = set(NodeFacts.__dataclass_fields__)
    new = Section(name, command, field, parser, empty, needs, tool)
    unknown = [f for f in new.fields() if f not in known]
    if unknown:
        raise ValueError(f"section {name!r} fills no NodeFacts field {unknown}")
    SECTIONS[name] = new
    return new


def registered(item: Section) -> Section:
    """ITEM itself when it is a registered section; ValueError otherwise (a check's typo)."""
    if not isinstance(item, Section) or SECTIONS.get(item.name) is not item:
        raise ValueError(f"{item!r} is not a registered fact section (known: {', '.join(SECTIONS)})")
    return item


def _cib(a: Answer) -> tuple[object, str | None]:
    xml = a.out("cib")
    return (parsers.cib_from_text(xml, f"CIB of {a.node}"), xml) if xml else (None, None)


def _crm_mon(a: Answer) -> object:
    mon = a.result("crm_mon")
    return parsers.status_from_crm_mon(mon, a.node) if mon is not None else None


def _corosync_conf(a: Answer) -> object:
    text = a.out("corosync_conf")
    return parse_corosync_conf(text) if text is not None else None


def _quorum(a: Answer) -> object:
    res = a.result("quorum")  # corosync-quorumtool exits non-zero when not quorate: still read
    return parse_quorumtool(res.stdout) if res is not None else None


def _hostname(a: Answer) -> str | None:
    name = (a.out("hostname") or "").strip()
    return name if name and len(name) <= 255 else None


HOSTNAME = section("hostname", "node_name", "hostname", _hostname)  # uname -n, in the shell
CIB = section("cib", "cibadmin --query", ("cib", "cib_xml"), _cib, empty=(None, None),
              tool="cibadmin --query")
CRM_MON = section("crm_mon", "crm_mon --one-shot --inactive --output-as=xml", "status", _crm_mon,
                  tool="crm_mon")
COROSYNC_CONF = section("corosync_conf", "conf_file /etc/corosync/corosync.conf", "corosync_conf",
                        _corosync_conf)  # cat, in the shell
QUORUM = section("quorum", "corosync-quorumtool -s", "quorum", _quorum)
ACTIVE = section("active", "systemctl is-active corosync pacemaker pcsd", "services",
                 lambda a: parsers.unit_states(a.result("active"), "active"), empty={})
ENABLED = section("enabled", "systemctl is-enabled corosync pacemaker pcsd", "services_enabled",
                  lambda a: parsers.unit_states(a.result("enabled"), "enabled"), empty={})
TOKENS = section("tokens", "cat /var/lib/pcsd/tokens", (), None)  # pcs 0.9: read by KNOWN_HOSTS
KNOWN_HOSTS = section("known_hosts", "cat /var/lib/pcsd/known-hosts", "pcsd_known_hosts",
                      lambda a: parsers.known_hosts(a.out("known_hosts"), a.out("tokens")), needs=(TOKENS,))
CMAP = section("cmap", "corosync-cmapctl", "cmap", lambda a: parsers.parse_cmap(a.out("cmap") or ""), empty={})
# The stats map (corosync 3, knet): stats.knet.nodeID.linkN.connected (u8) = 1 per link and node.
KNET = section("knet", "corosync-cmapctl -m stats stats.knet.", "knet",
               lambda a: parsers.parse_cmap(a.out("knet") or ""), empty={})
SHADOWS = section("shadows", "shadow_cibs", "shadows",
                  lambda a: parsers.shadows(a.node, a.out("shadows") or ""), empty={})
FENCE_TARGETS = section("fence_targets", "fence_targets", "fence_targets",
                        lambda a: parsers.parse_fence_targets(a.out("fence_targets") or ""), empty={})
SBD = section("sbd", "sbd_facts", "sbd", lambda a: parsers.parse_sbd(a.out("sbd") or ""))
ANSWERS = section("answers", "answer_files", "answers",
                  lambda a: parsers.parse_answers(a.out("answers") or ""), empty={})
FENCE_HISTORY = section("fence_history", "stonith_admin --history '*' --output-as=xml --timeout 20",
                        "fence_history", lambda a: parsers.parse_fence_history(a.result("fence_history")))
CIB_SECTIONS = frozenset({CIB.name, CRM_MON.name})  # what every check that needs the CIB reads


def wanted(names: Iterable[str] | None) -> list[Section]:
    """The sections to gather for NAMES (all when None), in gather order; HOSTNAME always.

    Probe names ("probe:...") are not gathered and are passed over; any other unknown name is a
    bug in the caller (ValueError), never a section silently left out."""
    if names is None:
        return list(SECTIONS.values())
    asked = {n for n in names if not n.startswith("probe:")}
    unknown = sorted(asked - set(SECTIONS))
    if unknown:
        raise ValueError(f"no fact section {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    closed = frozenset({HOSTNAME.name}).union(*(SECTIONS[n].names() for n in asked))
    return [s for s in SECTIONS.values() if s.name in closed]


def parse_sections(text: str) -> dict[str, CommandResult]:
    """The gather's answer by section; a malformed line is skipped, never trusted.

    Two forms. Today's gather.sh: a "==LAB== name rc size" line per section, then "==OUT==" and
    one base64 of every section's output in header order, split by the sizes; when the sizes do
    not add up to the output (a forged answer, a file that grew while it was read) none of those
    sections is taken. Earlier versions (exam evidence they recorded, evidence the exam writes
    itself): each "==LAB== name rc" header followed by its own base64 line.
    """
    sections: dict[str, CommandResult] = {}
    errors: dict[str, str] = {}
    sized: list[tuple[str, int, int]] = []
    outs: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        payload = lines[index + 1] if index + 1 < len(lines) else ""
        if line == _OUT:
            outs.append(payload)
            continue
        match = _HEADER.fullmatch(line)
        if match is None:
            continue
        kind, name, rc_text, size_text = match.groups()
        if kind == "ERR":
            errors[name] = _decoded(payload)
        elif rc_text is not None and size_text is None:
            sections[name] = _section(name, int(rc_text), _decoded(payload))
        elif rc_text is not None:
            sized.append((name, int(rc_text), int(size_text)))
    if sized and len(outs) == 1:
        sections.update(_split(sized, outs[0]))
    for name, stderr in errors.items():
        if name in sections and sections[name].returncode != TOO_LARGE:
            sections[name] = CommandResult(name, sections[name].returncode, sections[name].stdout, stderr)
    return sections


def _split(sized: list[tuple[str, int, int]], payload: str) -> dict[str, CommandResult]:
    """The sections of one base64 of all outputs; none when the sizes do not add up to it."""
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return {}
    if sum(size for _, _, size in sized) != len(data):
        return {}
    found, offset = {}, 0
    for name, rc, size in sized:
        found[name] = _section(name, rc, data[offset:offset + size].decode("utf-8", errors="replace"))
        offset += size
    return found


def _decoded(payload: str) -> str:
    try:
        return base64.b64decode(payload).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _section(name: str, rc: int, stdout: str) -> CommandResult:
    """One section's result; output at the size limit is no output (TOO_LARGE), never a cut one."""
    if rc == TOO_LARGE or len(stdout) >= MAX_INPUT_BYTES:
        return CommandResult(name, TOO_LARGE, "", f"its output reached the {MAX_INPUT_BYTES // 2**20} MiB limit")
    return CommandResult(name, rc, stdout, "")


def section_problem(key: str, result: CommandResult) -> str | None:
    """Why a section gave no usable output, or None when its exit status is an answer."""
    if result.returncode == TOO_LARGE:
        return f"section '{key}': {one_line(result.stderr, 200)}"
    if result.returncode in parsers.TIMED_OUT:
        return f"section '{key}' timed out on the node"
    tool = SECTIONS[key].tool if key in SECTIONS else None
    if tool and not result.ok:
        detail = one_line(result.tail(2), 300) or "no message"
        return f"{tool} failed (exit {result.returncode}): {detail}"
    return None


def _parsed(item: Section, answer: Answer, problems: dict[str, str]) -> object:
    """The section's value; a parser that raises is that section's problem, not the node's."""
    assert item.parser is not None
    try:
        return item.parser(answer)
    except LabError as exc:
        problems.setdefault(item.name, one_line(str(exc), 400))
    except Exception as exc:  # a value no tool prints: that section's failure, not the node's
        problems.setdefault(item.name, f"section '{item.name}' cannot be read: {type(exc).__name__}: "
                                       f"{one_line(str(exc), 200)}")
    return item.empty


def node_facts_from_sections(name: str, sections: Mapping[str, CommandResult],
                             extra: Mapping[str, CommandResult] | None = None) -> NodeFacts:
    """Turn one node's gathered sections into NodeFacts.

    Nothing from the node is trusted: a section that fails or does not parse is left
    out with its reason in `problems`, and every other section still counts.
    """
    problems: dict[str, str] = {}
    for key, result in sections.items():
        problem = section_problem(key, result)
        if problem is not None:
            problems[key] = problem
    answer = Answer(name, sections)
    values: dict[str, object] = {}
    for item in SECTIONS.values():
        if item.parser is None:
            continue
        value = _parsed(item, answer, problems)
        if value is None:
            value = item.empty
        for key, one in zip(item.fields(), value if isinstance(item.field, tuple) else (value,), strict=True):
            values[key] = MappingProxyType(one) if isinstance(one, dict) else one
    return NodeFacts(name=name, **values, extra=MappingProxyType(dict(extra or {})),  # type: ignore[arg-type]
                     problems=MappingProxyType(problems))
