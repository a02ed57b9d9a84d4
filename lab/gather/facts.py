"""Facts: everything the checks may look at, gathered once per node (or from a saved CIB).

Checks are pure functions over Facts, so the same check runs on a live lab and
on a saved CIB. Gathering over SSH is one round trip per node: one script that
prints every section, each base64-encoded with its exit code.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, TypeVar

from lab.core.cib import Cib, cib_from_element
from lab.core.corosync import CorosyncConf, QuorumInfo, parse_corosync_conf, parse_quorumtool
from lab.core.errors import InputError, LabError, UsageError
from lab.core.status import Status, result_error, status_from_element
from lab.core.xmlsafe import MAX_INPUT_BYTES, loads_untrusted_json, one_line, parse_untrusted, read_untrusted_file
from lab.gather.probes import ProbeResult
from lab.transport.runner import CommandResult, run_local

SERVICES = ("corosync", "pacemaker", "pcsd")
CRM_MON_ARGS = ("crm_mon", "--one-shot", "--inactive", "--output-as=xml")
# How long one node's gather may take, seen from here. On the node the whole script ends
# (every process it started killed, its temporary copies removed) a few seconds earlier,
# and each section's command earlier still, so that one hung tool costs only its section.
GATHER_TIMEOUT = 60.0
TOO_LARGE = 153  # a section's exit status when it hit the size limit (128 + SIGXFSZ)
_TIMED_OUT = (124, 137)  # `timeout`'s status, and 128 + SIGKILL when the command ignored SIGTERM
T = TypeVar("T")


class Runner(Protocol):
    name: str

    def run(self, command: str | Sequence[str], *, timeout: float = 120.0,
            input_text: str | None = None) -> CommandResult: ...


@dataclass(frozen=True)
class SbdInfo:
    """sbd as one node has it: configured devices, daemon state, the slots on each disk."""

    devices: tuple[str, ...]
    active: bool
    slots: frozenset[str]
    header: bool | None  # False: a configured disk has no SBD header; None: no disk listed


def parse_sbd(text: str) -> SbdInfo | None:
    """The `sbd` gather section: ==CONF== file, ==ACTIVE== state, per disk ==LIST== output ==RC== rc."""
    if "==CONF==" not in text:
        return None
    devices: tuple[str, ...] = ()
    active = False
    slots: set[str] = set()
    header: bool | None = None
    mode = ""
    for line in text.splitlines():
        if line.startswith("==ACTIVE=="):
            active = line.split()[-1] == "active"
            mode = ""
        elif line.startswith("==CONF=="):
            mode = "conf"
        elif line.startswith("==LIST=="):
            mode = "list"
        elif line.startswith("==RC=="):
            ok_rc = line.split()[-1] == "0"
            header = ok_rc if header is None else header and ok_rc
            mode = ""
        elif mode == "conf":
            key, sep, value = line.strip().partition("=")
            if sep and key == "SBD_DEVICE":
                devices = tuple(d for d in value.strip().strip("\"'").split(";") if d)
        elif mode == "list":
            parts = line.split()
            if len(parts) >= 3 and parts[0].isdigit():
                slots.add(parts[1])
    return SbdInfo(devices, active, frozenset(slots), header)


def parse_fence_targets(text: str) -> dict[str, str]:
    """The `fence_targets` gather section: '==NODE== name' then stonith_admin --list output."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("==NODE== "):
            current = line.split(None, 1)[1].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {node: "\n".join(lines) for node, lines in out.items()}


@dataclass(frozen=True)
class NodeFacts:
    """What one node says about itself and the cluster; error is set when unreachable."""

    name: str
    error: str | None = None
    hostname: str | None = None
    cib: Cib | None = None
    cib_xml: str | None = None
    status: Status | None = None
    corosync_conf: CorosyncConf | None = None
    quorum: QuorumInfo | None = None
    cfgtool: str | None = None
    services: Mapping[str, bool] = field(default_factory=dict)
    services_enabled: Mapping[str, bool] = field(default_factory=dict)
    pcsd_known_hosts: frozenset[str] | None = None
    pcs_version: str | None = None
    cmap: Mapping[str, str] = field(default_factory=dict)
    shadows: Mapping[str, Cib | None] = field(default_factory=dict)
    fence_targets: Mapping[str, str] = field(default_factory=dict)  # node -> stonith_admin --list
    sbd: SbdInfo | None = None
    extra: Mapping[str, CommandResult] = field(default_factory=dict)
    # section -> why its facts are missing: a tool's error, a timeout, a value that did not
    # parse. The node still counts for every other section.
    problems: Mapping[str, str] = field(default_factory=dict)

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Facts:
    """The cluster as the checks see it; `live` is False for a saved CIB."""

    live: bool
    expected_nodes: tuple[str, ...]
    cib: Cib | None
    cib_xml: str | None
    status: Status | None
    nodes: Mapping[str, NodeFacts]
    source: str
    probes: Mapping[str, ProbeResult] = field(default_factory=dict)

    @property
    def pcs_version(self) -> str | None:
        return next((n.pcs_version for n in self.nodes.values() if n.pcs_version), None)


def crm_mon_on_cib_file(path: Path) -> CommandResult:
    """crm_mon's view of a saved CIB, computed by the real pacemaker tools."""
    return run_local(CRM_MON_ARGS, env={"CIB_file": str(path)}, timeout=60)


def load_cib_text(path: Path) -> str:
    """A CIB file's text: a regular file within the size limit, UTF-8 or UTF-16."""
    data = read_untrusted_file(path, "CIB file")
    # A CIB saved through a Windows shell redirect is UTF-16 with a byte order mark.
    boms = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    codec = next((name for bom, name in boms if data.startswith(bom)), "utf-8")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 or UTF-16 text") from None


def cib_from_text(text: str, what: str) -> Cib:
    """The CIB view of untrusted text; anything wrong with it is an InputError naming `what`."""
    root = parse_untrusted(text, what)
    try:
        return cib_from_element(root)
    except LabError:
        raise
    except Exception as exc:  # a value no CIB should hold: a refusal, never a crash
        raise InputError(f"{what} cannot be read as a CIB: {type(exc).__name__}: "
                         f"{one_line(str(exc), 200)}") from None


def facts_from_cib_file(path: Path) -> Facts:
    """Facts from a saved CIB (cibadmin --query, or crm_simulate -S -O)."""
    text = load_cib_text(path)
    cib = cib_from_text(text, str(path))
    # crm_mon reads a private copy of the very text parsed here (re-encoded as UTF-8),
    # never the path again: the file may have changed, or be a FIFO by now.
    with tempfile.TemporaryDirectory(prefix="lab-cib-") as tmp:
        copy = Path(tmp) / "cib.xml"
        copy.write_text(re.sub(r"^\s*<\?xml[^>]*\?>", "", text), encoding="utf-8")
        result = crm_mon_on_cib_file(copy)
    if result.returncode == 127:
        raise UsageError("crm_mon not found: grading a CIB file needs pacemaker's CLI tools "
                         "(Debian/Ubuntu: apt-get install pacemaker-cli-utils)")
    status = status_from_crm_mon(result, str(path))
    return Facts(
        live=False,
        expected_nodes=tuple(cib.nodes),
        cib=cib,
        cib_xml=text,
        status=status,
        nodes=MappingProxyType({}),
        source=str(path),
    )


def status_from_crm_mon(result: CommandResult, where: str) -> Status:
    """crm_mon's view, or InputError with crm_mon's own message: its exit status, its
    <status code> and its <errors> are all read (an error result is no empty cluster)."""
    text = result.stdout.strip()
    if result.returncode in _TIMED_OUT:
        raise InputError(f"crm_mon on {where} timed out")
    if not text.startswith("<"):
        raise InputError(f"crm_mon cannot read {where} (exit {result.returncode}): "
                         f"{one_line(result.tail(2)) or 'no output'}")
    root = parse_untrusted(text, f"crm_mon output of {where}")
    problem = result_error(root)
    if problem is None and root.tag == "pacemaker-result" and root.find("summary") is None:
        problem = "its output has no cluster summary"
    if problem is None and result.returncode != 0:
        problem = f"exit {result.returncode}" + (f": {result.tail(2)}" if result.stderr.strip() else "")
    if problem is not None:
        raise InputError(f"crm_mon cannot read {where}: {one_line(problem)}")
    try:
        return status_from_element(root)
    except LabError:
        raise
    except Exception as exc:
        raise InputError(f"crm_mon output of {where} cannot be read: {type(exc).__name__}: "
                         f"{one_line(str(exc), 200)}") from None


# One round trip per node: every section runs at once (a guest under software emulation
# pays ~0.3 s per process start), then each is printed as "==LAB== name rc" and base64 of
# its stdout (and "==ERR== name" with the end of its stderr when it failed). The script runs
# as root through one sudo when the login user is not root.
# Bounded on the node as well as here: each section's command by `timeout` and by a file
# size limit (ulimit -f, 512-byte blocks), the whole script by an outer `timeout`; however it
# ends (done, timed out, the connection closed under it) its trap removes the temporary
# directory (root-only copies of the CIB) and stops every process it started.
_GATHER_START = r"""
d=$(mktemp -d) || exit 1
names=""
finished=""
sec() { n=$1; shift; names="$names $n"; ( bounded "$@" >"$d/$n.out" 2>"$d/$n.err"; echo $? >"$d/$n.rc" ) & }
# Helpers use their own variable names: `sec` keeps n, d and names in the same shell.
cleanup() {
  trap '' HUP INT TERM PIPE; trap - EXIT
  rm -rf "$d"
  [ -n "$finished" ] || kill -TERM 0 2>/dev/null
}
trap cleanup EXIT
trap 'exit 143' HUP INT TERM PIPE
command -v timeout >/dev/null 2>&1 || timeout() { shift 4; "$@"; }
bounded() {  # runs in the section's subshell: the limits stay there
  ulimit -c 0; ulimit -f "$lab_blocks"
  case $1 in
    fence_targets|sbd_facts) "$@" ;;
    *) timeout --foreground -k 2 "$lab_section_timeout" "$@" ;;
  esac
}
fence_targets() {
  for _node in $(crm_node -l 2>/dev/null | awk '{print $2}'); do
    echo "==NODE== $_node"; timeout --foreground -k 2 25 stonith_admin --list "$_node" --timeout 20 2>&1
  done
  return 0
}
sbd_facts() {
  _conf=/etc/default/sbd; [ -f "$_conf" ] || _conf=/etc/sysconfig/sbd; [ -f "$_conf" ] || return 3
  echo "==CONF=="; cat "$_conf"
  echo "==ACTIVE== $(systemctl is-active sbd 2>/dev/null)"
  for _dev in $(sed -n 's/^[[:space:]]*SBD_DEVICE=//p' "$_conf" | tail -n 1 | tr -d "\"'" | tr ';' ' '); do
    echo "==LIST== $_dev"; timeout --foreground -k 2 20 sbd -d "$_dev" list 2>&1; echo "==RC== $?"
  done
}
"""
_GATHER_SECTIONS = r"""
sec hostname uname -n
sec cib cibadmin --query
sec crm_mon crm_mon --one-shot --inactive --output-as=xml
sec corosync_conf cat /etc/corosync/corosync.conf
sec quorum corosync-quorumtool -s
sec active systemctl is-active corosync pacemaker pcsd
sec enabled systemctl is-enabled corosync pacemaker pcsd
sec known_hosts cat /var/lib/pcsd/known-hosts
sec tokens cat /var/lib/pcsd/tokens
sec cmap corosync-cmapctl
sec shadows sh -c 'for f in /var/lib/pacemaker/cib/shadow.*; do [ -f "$f" ] || continue; \
  printf "%s " "${f##*/shadow.}"; base64 "$f" | tr -d "\n"; echo; done'
sec fence_targets fence_targets
sec sbd sbd_facts
sec pcs_version sh -c 'dpkg-query -W -f "\${Version}" pcs 2>/dev/null || rpm -q --qf "%{VERSION}" pcs'
"""
_GATHER_END = r"""
wait
finished=1
for n in $names; do
  rc=""; [ -f "$d/$n.rc" ] && read -r rc <"$d/$n.rc"
  rc=${rc:-125}
  printf '==LAB== %s %s\n' "$n" "$rc"; base64 <"$d/$n.out" | tr -d '\n'; echo
  if [ "$rc" != 0 ] && [ -s "$d/$n.err" ]; then
    printf '==ERR== %s\n' "$n"; tail -c 2000 "$d/$n.err" | base64 | tr -d '\n'; echo
  fi
done
"""
# Become root once if we can; otherwise gather what an unprivileged user may read.
# $2 bounds the whole script: `timeout` kills its process group, the script's trap cleans up.
_AS_ROOT = ('t=""; command -v timeout >/dev/null 2>&1 && t="timeout -k 2 $2"; '
            'if [ "$(id -u)" -ne 0 ] && sudo -n true 2>/dev/null; then exec sudo -n $t sh -c "$1"; '
            'else exec $t sh -c "$1"; fi')
_HEADER = re.compile(r"==(LAB|ERR)== ([A-Za-z0-9_]{1,64})(?: (-?[0-9]{1,6}))?")


def _script_bounds(timeout: float) -> tuple[int, int]:
    """(whole script, one section) in seconds on the node, both ending before `timeout` here."""
    whole = max(1, int(timeout) - 4)  # + 2 s for `timeout -k 2` to kill what ignores TERM
    return whole, max(1, whole - 6)


def parse_sections(text: str) -> dict[str, CommandResult]:
    """The gather's answer by section; a malformed line is skipped, never trusted."""
    sections: dict[str, CommandResult] = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _HEADER.fullmatch(line)
        if match is None:
            continue
        kind, name, rc_text = match.groups()
        payload = lines[index + 1] if index + 1 < len(lines) else ""
        try:
            decoded = base64.b64decode(payload).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            decoded = ""
        if kind == "ERR":
            if name in sections and sections[name].returncode != TOO_LARGE:
                sections[name] = CommandResult(name, sections[name].returncode, sections[name].stdout,
                                               decoded)
            continue
        if rc_text is None:
            continue
        rc = int(rc_text)
        if rc == TOO_LARGE or len(decoded) >= MAX_INPUT_BYTES:
            sections[name] = CommandResult(name, TOO_LARGE, "", f"its output reached the "
                                           f"{MAX_INPUT_BYTES // 2**20} MiB limit")
            continue
        sections[name] = CommandResult(name, rc, decoded, "")
    return sections


# Sections whose command failing is a tool error worth a reason (others fail as a normal
# answer: no sbd configured, no tokens file on pcs 0.10+, corosync down).
_TOOL_SECTIONS = {"cib": "cibadmin --query", "crm_mon": "crm_mon"}


def _section_problem(key: str, result: CommandResult) -> str | None:
    """Why a section gave no usable output, or None when its exit status is an answer."""
    if result.returncode == TOO_LARGE:
        return f"section '{key}': {one_line(result.stderr, 200)}"
    if result.returncode in _TIMED_OUT:
        return f"section '{key}' timed out on the node"
    if key in _TOOL_SECTIONS and not result.ok:
        detail = one_line(result.tail(2), 300) or "no message"
        return f"{_TOOL_SECTIONS[key]} failed (exit {result.returncode}): {detail}"
    return None


def node_facts_from_sections(name: str, sections: Mapping[str, CommandResult],
                             extra: Mapping[str, CommandResult] | None = None) -> NodeFacts:
    """Turn one node's gathered sections into NodeFacts.

    Nothing from the node is trusted: a section that fails or does not parse is left
    out with its reason in `problems`, and every other section still counts.
    """
    problems: dict[str, str] = {}
    for key, result in sections.items():
        problem = _section_problem(key, result)
        if problem is not None:
            problems[key] = problem

    def out(key: str) -> str | None:
        res = sections.get(key)
        return res.stdout if res is not None and res.ok else None

    def guarded(key: str, parse: Callable[[], T]) -> T | None:
        try:
            return parse()
        except LabError as exc:
            problems.setdefault(key, one_line(str(exc), 400))
        except Exception as exc:  # a value no tool prints: that section's failure, not the node's
            problems.setdefault(key, f"section '{key}' cannot be read: {type(exc).__name__}: "
                                     f"{one_line(str(exc), 200)}")
        return None

    cib_xml = out("cib")
    cib = guarded("cib", lambda: cib_from_text(cib_xml, f"CIB of {name}")) if cib_xml else None
    if cib is None:
        cib_xml = None
    mon = sections.get("crm_mon")
    status = guarded("crm_mon", lambda: status_from_crm_mon(mon, name)) if mon is not None else None
    conf_text = out("corosync_conf")
    conf = guarded("corosync_conf", lambda: parse_corosync_conf(conf_text)) if conf_text is not None else None
    quorum_res = sections.get("quorum")
    quorum = guarded("quorum", lambda: parse_quorumtool(quorum_res.stdout)) if quorum_res is not None else None
    services = guarded("active", lambda: _unit_states(sections.get("active"), "active")) or {}
    enabled = guarded("enabled", lambda: _unit_states(sections.get("enabled"), "enabled")) or {}
    known = guarded("known_hosts", lambda: _known_hosts(out("known_hosts"), out("tokens")))
    version = out("pcs_version")
    hostname = (out("hostname") or "").strip()
    return NodeFacts(
        cmap=MappingProxyType(guarded("cmap", lambda: parse_cmap(out("cmap") or "")) or {}),
        shadows=MappingProxyType(guarded("shadows", lambda: _shadows(name, out("shadows") or "")) or {}),
        fence_targets=MappingProxyType(
            guarded("fence_targets", lambda: parse_fence_targets(out("fence_targets") or "")) or {}),
        sbd=guarded("sbd", lambda: parse_sbd(out("sbd") or "")),
        name=name,
        hostname=hostname if hostname and len(hostname) <= 255 else None,
        cib=cib,
        cib_xml=cib_xml,
        status=status,
        corosync_conf=conf,
        quorum=quorum,
        cfgtool=out("cfgtool"),
        services=MappingProxyType(services),
        services_enabled=MappingProxyType(enabled),
        pcsd_known_hosts=known,
        pcs_version=one_line(version.strip(), 64) if version and version.strip() else None,
        extra=MappingProxyType(dict(extra or {})),
        problems=MappingProxyType(problems),
    )


def _unit_states(result: CommandResult | None, wanted: str) -> dict[str, bool]:
    """`systemctl is-active/is-enabled A B C` prints one line per unit, in order."""
    lines = result.stdout.splitlines() if result is not None else []
    return {unit: i < len(lines) and lines[i].strip() == wanted for i, unit in enumerate(SERVICES)}


def parse_cmap(text: str) -> dict[str, str]:
    """`corosync-cmapctl` lines 'key (type) = value' into a dict."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.split(" (", 1)[0].strip()] = value.strip()
    return values


def _shadows(node: str, text: str) -> dict[str, Cib | None]:
    """Shadow CIBs (crm_shadow) by name; one that does not parse is recorded as None."""
    found: dict[str, Cib | None] = {}
    for line in text.splitlines():
        name, _, payload = line.partition(" ")
        try:
            xml = base64.b64decode(payload).decode("utf-8")
            found[name] = cib_from_element(parse_untrusted(xml, f"shadow CIB {name} on {node}"))
        except (ValueError, InputError):
            found[name] = None
    return found


def _known_hosts(known_hosts: str | None, tokens: str | None) -> frozenset[str] | None:
    """Hosts pcsd is authenticated to: pcs 0.10+ known-hosts, or pcs 0.9 tokens (both JSON).

    Malformed JSON counts as no file; JSON nested too deep to read safely is an InputError.
    """
    names: set[str] = set()
    found = False
    for text, key, what in ((known_hosts, "known_hosts", "pcsd's known-hosts"),
                            (tokens, "tokens", "pcsd's tokens")):
        if not text:
            continue
        try:
            data = loads_untrusted_json(text, what)
        except InputError as exc:
            if "deeper" in str(exc):
                raise
            continue
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            names.update(str(host) for host in data[key])
            found = True
    return frozenset(names) if found else None


def _section_lines(sections: frozenset[str] | None) -> str:
    """The gather lines for the wanted sections (all when None); hostname always."""
    lines = []
    for line in _GATHER_SECTIONS.strip().replace("\\\n", "\x00").splitlines():
        name = line.split()[1]
        if sections is None or name == "hostname" or name in sections:
            lines.append(line.replace("\x00", "\\\n"))
    return "\n".join(lines) + "\n"


def gather_node(runner: Runner, extra_commands: Mapping[str, str] | None = None,
                sections: frozenset[str] | None = None, *,
                timeout: float = GATHER_TIMEOUT) -> NodeFacts:
    """Gather one node's facts in one command; an unreachable node becomes an error fact.

    Only the sections the checks read are gathered: under software emulation every
    process started in the guest costs a few tenths of a second. Whatever the node
    answers, the result is this node's facts or this node's error, never an exception.
    """
    try:
        return _gather_node(runner, extra_commands, sections, timeout)
    except LabError as exc:
        return NodeFacts(name=runner.name, error=one_line(str(exc), 500))
    except Exception as exc:  # an answer nobody foresaw: this node's failure, not everyone's
        return NodeFacts(name=runner.name, error=f"{runner.name}: its answer cannot be read: "
                                                 f"{type(exc).__name__}: {one_line(str(exc), 200)}")


def _gather_node(runner: Runner, extra_commands: Mapping[str, str] | None,
                 sections: frozenset[str] | None, timeout: float) -> NodeFacts:
    whole, section = _script_bounds(timeout)
    script = (f"lab_blocks={MAX_INPUT_BYTES // 512}; lab_section_timeout={section}\n"
              + _GATHER_START + _section_lines(sections))
    for key, command in (extra_commands or {}).items():
        script += f"sec {shlex.quote('x_' + key)} sh -c {shlex.quote(command)}\n"
    script += _GATHER_END
    result = runner.run(["sh", "-c", _AS_ROOT, "lab-gather", script, str(whole)], timeout=timeout)
    if result.returncode in _TIMED_OUT:
        return NodeFacts(name=runner.name, error=f"{runner.name}: gathering facts timed out")
    found = parse_sections(result.stdout)
    if "hostname" not in found:
        return NodeFacts(name=runner.name,
                         error=f"{runner.name}: the answer holds no facts (exit {result.returncode}): "
                               f"{one_line(result.tail(2), 200) or 'no output'}")
    extra = {k[2:]: v for k, v in found.items() if k.startswith("x_")}
    return node_facts_from_sections(runner.name, found, extra)


def gather_live(runners: Sequence[Runner], expected_nodes: Sequence[str],
                extra_commands: Mapping[str, str] | None = None,
                sections: frozenset[str] | None = None,
                on_node: Callable[[str], None] | None = None) -> Facts:
    """Gather every node in parallel and pick the cluster view to judge."""
    with ThreadPoolExecutor(max_workers=max(1, len(runners))) as pool:
        gathered = list(pool.map(lambda r: gather_node(r, extra_commands, sections), runners))
    nodes = {n.name: n for n in gathered}
    if on_node:
        for name in nodes:
            on_node(name)
    view = _cluster_view(gathered)
    return Facts(
        live=True,
        expected_nodes=tuple(expected_nodes),
        cib=view.cib if view else None,
        cib_xml=view.cib_xml if view else None,
        status=view.status if view else None,
        nodes=MappingProxyType(nodes),
        source="live",
    )


def _cluster_view(nodes: Sequence[NodeFacts]) -> NodeFacts | None:
    """The node whose view to judge: the DC if one answers, else a quorate one, else any."""
    with_cib = [n for n in nodes if n.cib is not None and n.status is not None]
    for node in with_cib:
        if node.status is not None and node.status.dc and node.status.dc in (node.name, node.hostname):
            return node
    for node in with_cib:
        if node.status is not None and node.status.quorate:
            return node
    return with_cib[0] if with_cib else None
