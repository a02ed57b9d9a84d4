"""Facts: everything the checks may look at, gathered once per node (or from a saved CIB).

Checks are pure functions over Facts, so the same check runs on a live lab and on a saved CIB.
This module reads a saved CIB and is the one import for the rest: the data (nodefacts), the
sections as objects (sections), the parsers (parsers) and the live gather (live).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from lab.core.errors import UsageError
from lab.gather.hostmon import CRM_MON_ARGS, crm_mon_on_text
from lab.gather.live import GATHER_TIMEOUT, cluster_view, gather_live, gather_node, gather_script, section_lines
from lab.gather.nodefacts import Facts, NodeFacts, SbdInfo
from lab.gather.parsers import (
    SERVICES,
    cib_from_text,
    load_cib_text,
    parse_cmap,
    parse_fence_targets,
    parse_sbd,
    status_from_crm_mon,
)
from lab.gather.sections import TOO_LARGE, node_facts_from_sections, parse_sections
from lab.transport import scripts

# Older names, still imported elsewhere (examscore, tests): the same objects.
_cluster_view = cluster_view
_GATHER_END = "report\n"


# The gather script's parts under their former names (tests/test_fencing_units.py).
_GATHER_START = scripts.source("gather/gather.sh")
_section_lines = section_lines


__all__ = [
    "CRM_MON_ARGS", "GATHER_TIMEOUT", "SERVICES", "TOO_LARGE", "Facts", "NodeFacts", "SbdInfo",
    "cib_from_text", "facts_from_cib_file", "gather_live", "gather_node",
    "gather_script", "load_cib_text", "node_facts_from_sections", "parse_cmap", "parse_fence_targets",
    "parse_sbd", "parse_sections", "status_from_crm_mon",
]


def facts_from_cib_file(path: Path) -> Facts:
    """Facts from a saved CIB (cibadmin --query, or crm_simulate -S -O)."""
    text = load_cib_text(path)
    cib = cib_from_text(text, str(path))
    # crm_mon reads a private copy of the very text parsed here (re-encoded as UTF-8),
    # never the path again: the file may have changed, or be a FIFO by now.
    result = crm_mon_on_text(text)
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
