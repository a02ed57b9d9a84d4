"""Parsers from what a tool prints to the typed values of NodeFacts. Nothing they read is
trusted: a value no tool prints raises (InputError or another exception), and the caller
(lab.gather.sections) records it as that section's problem."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from pathlib import Path

from lab.core.cib import Cib, cib_from_element
from lab.core.errors import InputError, LabError
from lab.core.status import Status, result_error, status_from_element
from lab.core.xmlsafe import loads_untrusted_json, one_line, parse_untrusted, read_untrusted_file
from lab.gather.nodefacts import FenceEvent, SbdInfo
from lab.transport.runner import CommandResult

SERVICES = ("corosync", "pacemaker", "pcsd")
ANSWER_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
MAX_ANSWER_LINES = 64  # an answer file holds a few key=value lines; more is not an answer
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


def answer_pairs(text: str) -> dict[str, tuple[str, ...]]:
    """An answer file's `key=value` lines (also `key: value`, any case, spaces, quotes, CRLF,
    # comments) as key -> every value given; a line without a separator is no answer."""
    pairs: dict[str, list[str]] = {}
    for line in text.lstrip("\ufeff").splitlines()[:MAX_ANSWER_LINES]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            continue
        key, value = line[:cut].strip().lower(), line[cut + 1:].strip().strip("\"'").strip()
        if key:
            pairs.setdefault(key, []).append(value)
    return {key: tuple(values) for key, values in pairs.items()}


def parse_answers(text: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """The `answers` gather section: one line per answer file, its name then its base64."""
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for line in text.splitlines():
        name, _, payload = line.partition(" ")
        if not ANSWER_FILE.match(name):
            continue
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            continue
        found[name] = answer_pairs(data.decode("utf-8", errors="replace"))
    return found


def parse_fence_history(result: CommandResult | None) -> tuple[FenceEvent, ...] | None:
    """`stonith_admin --history '*' --output-as=xml`: every fence_event; None when the fencer
    gave no answer (not running, or an error result)."""
    if result is None or not result.ok or not result.stdout.strip().startswith("<"):
        return None
    root = parse_untrusted(result.stdout, "stonith_admin --history output")
    if result_error(root) is not None:
        return None
    history = root.find("fence_history")
    if history is not None and history.get("status") not in (None, "0"):
        return None  # the fencer could not give its history (its own exit code)
    # pacemaker 2.1 lists the events in <list name="fencing history" count="N"> (count 0: empty,
    # still an answer); events are read wherever they are, so another version's wrapper reads too.
    return tuple(FenceEvent(action=e.get("action", ""), target=e.get("target", ""),
                            status=e.get("status", ""), origin=e.get("origin", ""),
                            delegate=e.get("delegate", ""), client=e.get("client", ""),
                            completed=e.get("completed", ""))
                 for e in root.iter("fence_event"))
