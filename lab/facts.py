"""Facts: everything the checks may look at, gathered once per node (or from a saved CIB).

Checks are pure functions over Facts, so the same check runs on a live lab and
on a saved CIB. Gathering over SSH is one round trip per node: one script that
prints every section, each base64-encoded with its exit code.
"""

from __future__ import annotations

import base64
import codecs
import re
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from lab.cib import Cib, cib_from_element
from lab.corosync import CorosyncConf, QuorumInfo, parse_corosync_conf, parse_quorumtool
from lab.errors import InputError, LabError, UsageError
from lab.probes import ProbeResult
from lab.runner import CommandResult, run_local
from lab.status import Status, status_from_element
from lab.xmlsafe import parse_untrusted

SERVICES = ("corosync", "pacemaker", "pcsd")
CRM_MON_ARGS = ("crm_mon", "--one-shot", "--inactive", "--output-as=xml")


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
    try:
        if path.is_dir():
            raise InputError(f"{path} is a directory, not a CIB file")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    # A CIB saved through a Windows shell redirect is UTF-16 with a byte order mark.
    boms = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    codec = next((name for bom, name in boms if data.startswith(bom)), "utf-8")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 or UTF-16 text") from None


def facts_from_cib_file(path: Path) -> Facts:
    """Facts from a saved CIB (cibadmin --query, or crm_simulate -S -O)."""
    text = load_cib_text(path)
    cib = cib_from_element(parse_untrusted(text, str(path)))
    if text.encode("utf-8") != path.read_bytes():
        # crm_mon reads the file itself: give it the same text, re-encoded as UTF-8.
        with tempfile.TemporaryDirectory(prefix="lab-cib-") as tmp:
            copy = Path(tmp) / "cib.xml"
            copy.write_text(re.sub(r"^\s*<\?xml[^>]*\?>", "", text), encoding="utf-8")
            result = crm_mon_on_cib_file(copy)
    else:
        result = crm_mon_on_cib_file(path)
    if result.returncode == 127:
        raise UsageError("crm_mon not found: grading a CIB file needs pacemaker's CLI tools "
                         "(Debian/Ubuntu: apt-get install pacemaker-cli-utils)")
    status = _status_from_result(result, str(path))
    if status is None:
        raise InputError(f"crm_mon cannot read {path}: {result.tail(2)}")
    return Facts(
        live=False,
        expected_nodes=tuple(cib.nodes),
        cib=cib,
        cib_xml=text,
        status=status,
        nodes=MappingProxyType({}),
        source=str(path),
    )


def _status_from_result(result: CommandResult, where: str) -> Status | None:
    if not result.stdout.strip().startswith("<"):
        return None
    try:
        return status_from_element(parse_untrusted(result.stdout, f"crm_mon output of {where}"))
    except InputError:
        return None


# One round trip per node: every section runs at once (a guest under software emulation
# pays ~0.3 s per process start), then each is printed as "==LAB== name rc" and base64 of
# its stdout. The script runs as root through one sudo when the login user is not root.
_GATHER_START = r"""
d=$(mktemp -d) || exit 1
names=""
sec() { n=$1; shift; names="$names $n"; ( "$@" >"$d/$n.out" 2>/dev/null; echo $? >"$d/$n.rc" ) & }
# Helpers use their own variable names: `sec` keeps n, d and names in the same shell.
fence_targets() {
  for _node in $(crm_node -l 2>/dev/null | awk '{print $2}'); do
    echo "==NODE== $_node"; stonith_admin --list "$_node" --timeout 20 2>&1
  done
  return 0
}
sbd_facts() {
  _conf=/etc/default/sbd; [ -f "$_conf" ] || _conf=/etc/sysconfig/sbd; [ -f "$_conf" ] || return 3
  echo "==CONF=="; cat "$_conf"
  echo "==ACTIVE== $(systemctl is-active sbd 2>/dev/null)"
  for _dev in $(sed -n 's/^[[:space:]]*SBD_DEVICE=//p' "$_conf" | tail -n 1 | tr -d "\"'" | tr ';' ' '); do
    echo "==LIST== $_dev"; sbd -d "$_dev" list 2>&1; echo "==RC== $?"
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
for n in $names; do
  printf '==LAB== %s %s\n' "$n" "$(cat "$d/$n.rc")"; base64 <"$d/$n.out" | tr -d '\n'; echo
done
rm -rf "$d"
"""
# Become root once if we can; otherwise gather what an unprivileged user may read.
_AS_ROOT = ('if [ "$(id -u)" -ne 0 ] && sudo -n true 2>/dev/null; then exec sudo -n sh -c "$1"; '
            'else exec sh -c "$1"; fi')

def parse_sections(text: str) -> dict[str, CommandResult]:
    sections: dict[str, CommandResult] = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("==LAB== "):
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
            continue
        payload = lines[index + 1] if index + 1 < len(lines) else ""
        try:
            out = base64.b64decode(payload).decode("utf-8", errors="replace")
        except ValueError:
            out = ""
        sections[parts[1]] = CommandResult(parts[1], int(parts[2]), out, "")
    return sections


def node_facts_from_sections(name: str, sections: Mapping[str, CommandResult],
                             extra: Mapping[str, CommandResult] | None = None) -> NodeFacts:
    """Turn one node's gathered sections into NodeFacts; bad XML is recorded, not trusted."""

    def out(key: str) -> str | None:
        res = sections.get(key)
        return res.stdout if res is not None and res.ok else None

    cib = None
    cib_xml = out("cib")
    if cib_xml:
        try:
            cib = cib_from_element(parse_untrusted(cib_xml, f"CIB of {name}"))
        except InputError:
            cib, cib_xml = None, None
    status = None
    mon = sections.get("crm_mon")
    if mon is not None:
        status = _status_from_result(mon, name)
    conf = None
    conf_text = out("corosync_conf")
    if conf_text is not None:
        try:
            conf = parse_corosync_conf(conf_text)
        except InputError:
            conf = None
    quorum_res = sections.get("quorum")
    quorum = parse_quorumtool(quorum_res.stdout) if quorum_res is not None else None
    services = _unit_states(sections.get("active"), "active")
    enabled = _unit_states(sections.get("enabled"), "enabled")
    known = _known_hosts(out("known_hosts"), out("tokens"))
    version = out("pcs_version")
    return NodeFacts(
        cmap=MappingProxyType(parse_cmap(out("cmap") or "")),
        shadows=MappingProxyType(_shadows(name, out("shadows") or "")),
        fence_targets=MappingProxyType(parse_fence_targets(out("fence_targets") or "")),
        sbd=parse_sbd(out("sbd") or ""),
        name=name,
        hostname=(out("hostname") or "").strip() or None,
        cib=cib,
        cib_xml=cib_xml,
        status=status,
        corosync_conf=conf,
        quorum=quorum,
        cfgtool=out("cfgtool"),
        services=MappingProxyType(services),
        services_enabled=MappingProxyType(enabled),
        pcsd_known_hosts=known,
        pcs_version=version.strip() if version else None,
        extra=MappingProxyType(dict(extra or {})),
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
    """Hosts pcsd is authenticated to: pcs 0.10+ known-hosts, or pcs 0.9 tokens (both JSON)."""
    import json

    names: set[str] = set()
    found = False
    for text, key in ((known_hosts, "known_hosts"), (tokens, "tokens")):
        if not text:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            names.update(data[key])
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
                sections: frozenset[str] | None = None) -> NodeFacts:
    """Gather one node's facts in one command; an unreachable node becomes an error fact.

    Only the sections the checks read are gathered: under software emulation every
    process started in the guest costs a few tenths of a second.
    """
    script = _GATHER_START + _section_lines(sections)
    for key, command in (extra_commands or {}).items():
        script += f"sec {shlex.quote('x_' + key)} sh -c {shlex.quote(command)}\n"
    script += _GATHER_END
    try:
        result = runner.run(["sh", "-c", _AS_ROOT, "lab-gather", script], timeout=60)
    except LabError as exc:
        return NodeFacts(name=runner.name, error=str(exc))
    if result.returncode == 124:
        return NodeFacts(name=runner.name, error=f"{runner.name}: gathering facts timed out")
    sections = parse_sections(result.stdout)
    if "hostname" not in sections:
        return NodeFacts(name=runner.name,
                         error=f"{runner.name}: unexpected answer (exit {result.returncode}): {result.tail(2)}")
    extra = {k[2:]: v for k, v in sections.items() if k.startswith("x_")}
    return node_facts_from_sections(runner.name, sections, extra)


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
