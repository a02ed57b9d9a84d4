"""Parsers from what a tool prints to the typed values of NodeFacts. Nothing they read is
trusted: a value no tool prints raises (InputError or another exception), and the caller
(lab.gather.sections) records it as that section's problem."""

from __future__ import annotations

import base64
import codecs
from pathlib import Path

from lab.core.cib import Cib, cib_from_element
from lab.core.errors import InputError, LabError
from lab.core.status import Status, result_error, status_from_element
from lab.core.xmlsafe import loads_untrusted_json, one_line, parse_untrusted, read_untrusted_file
from lab.gather.nodefacts import SbdInfo
from lab.transport.runner import CommandResult

SERVICES = ("corosync", "pacemaker", "pcsd")
TIMED_OUT = (124, 137)  # `timeout`'s status, and 128 + SIGKILL when the command ignored SIGTERM


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


def parse_cmap(text: str) -> dict[str, str]:
    """`corosync-cmapctl` lines 'key (type) = value' into a dict."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.split(" (", 1)[0].strip()] = value.strip()
    return values


def unit_states(result: CommandResult | None, wanted: str) -> dict[str, bool]:
    """`systemctl is-active/is-enabled A B C` prints one line per unit, in order."""
    lines = result.stdout.splitlines() if result is not None else []
    return {unit: i < len(lines) and lines[i].strip() == wanted for i, unit in enumerate(SERVICES)}


def shadows(node: str, text: str) -> dict[str, Cib | None]:
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


def known_hosts(known_hosts_text: str | None, tokens: str | None) -> frozenset[str] | None:
    """Hosts pcsd is authenticated to: pcs 0.10+ known-hosts, or pcs 0.9 tokens (both JSON).

    Malformed JSON counts as no file; JSON nested too deep to read safely is an InputError.
    """
    names: set[str] = set()
    found = False
    for text, key, what in ((known_hosts_text, "known_hosts", "pcsd's known-hosts"),
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


def status_from_crm_mon(result: CommandResult, where: str) -> Status:
    """crm_mon's view, or InputError with crm_mon's own message: its exit status, its
    <status code> and its <errors> are all read (an error result is no empty cluster)."""
    text = result.stdout.strip()
    if result.returncode in TIMED_OUT:
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
