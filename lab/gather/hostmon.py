"""crm_mon's view of a node's CIB, computed on this host when this host runs the cluster's build.

crm_mon computes everything it shows from the CIB (the status section holds membership, joins,
every operation's result; the scheduler runs on it): a node's `cibadmin --query` and this
host's crm_mon of the very pacemaker build give the answer the node's crm_mon would. Under
software emulation that saves a crm_mon in every guest (a scheduler run: seconds when the host
is busy). When the builds differ, or this host has no crm_mon, or it cannot read the CIB, the
node's own crm_mon answers (lab.gather.live asks it in a second round trip): never a
re-implementation, never another version's reading.
"""

from __future__ import annotations

import functools
import re
import tempfile
import threading
from pathlib import Path

from lab.core.errors import LabError
from lab.core.status import result_error
from lab.core.xmlsafe import parse_untrusted
from lab.transport.runner import CommandResult, run_local

CRM_MON_ARGS = ("crm_mon", "--one-shot", "--inactive", "--output-as=xml")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def crm_mon_on_text(cib_xml: str, *, label: str | None = None) -> CommandResult:
    """crm_mon's answer for this CIB text, by this host's pacemaker tools on a private copy."""
    with tempfile.TemporaryDirectory(prefix="lab-cib-") as tmp:
        copy = Path(tmp) / "cib.xml"
        copy.write_text(_XML_DECLARATION.sub("", cib_xml), encoding="utf-8")
        return run_local(CRM_MON_ARGS, env={"CIB_file": str(copy), "CIB_shadow": ""}, timeout=60, label=label)


_ASKING = threading.Lock()  # the nodes' gathers ask at once: crm_mon --version runs once


def host_build() -> tuple[str, str] | None:
    """(version, build) of this host's crm_mon, e.g. ("2.1.5", "a3f44794f94"); None without one."""
    with _ASKING:
        return _host_build()


@functools.cache
def _host_build() -> tuple[str, str] | None:
    result = run_local(("crm_mon", "--version", "--output-as=xml"), timeout=20, label="crm_mon --version")
    if not result.ok:
        return None
    try:
        element = parse_untrusted(result.stdout, "crm_mon --version").find("version")
    except LabError:
        return None
    if element is None or not element.get("version") or not element.get("build"):
        return None
    return element.get("version", ""), element.get("build", "")


def cluster_build(cib_xml: str) -> tuple[str, str] | None:
    """(version, build) from the CIB's dc-version ("2.1.5-a3f44794f94", on EL
    "2.1.7-5.el8_10-0f7f88312"), which the DC writes; None when no DC has written one."""
    try:
        root = parse_untrusted(cib_xml, "CIB")
    except LabError:
        return None
    for nvpair in root.iterfind("configuration/crm_config/cluster_property_set/nvpair"):
        if nvpair.get("name") == "dc-version":
            parts = (nvpair.get("value") or "").strip().split("-")
            if len(parts) >= 2 and parts[0] and parts[-1]:
                return parts[0], parts[-1]
    return None


def status_here(cib_xml: str, node: str) -> CommandResult | None:
    """The node's crm_mon answer computed here; None when this host cannot give exactly that
    (another build, no crm_mon here, or this crm_mon refused the CIB)."""
    build = cluster_build(cib_xml)
    if build is None or build != host_build():
        return None
    result = crm_mon_on_text(cib_xml, label=f"crm_mon of {node}'s CIB (on this host)")
    if not result.ok:
        return None
    try:  # crm_mon says some failures in its XML with exit 0 (a CIB failing its schema)
        root = parse_untrusted(result.stdout, "crm_mon output")
    except LabError:
        return None
    return result if result_error(root) is None and root.find("summary") is not None else None
