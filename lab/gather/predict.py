"""The scheduler's own prediction for "what if NODE fails": `crm_simulate --node-fail` on a copy.

A question exercise (crm-simulate-predict) asks the student what pacemaker would do; the grader
asks pacemaker the same question about the same CIB (the live one, with its status), so the
reference answer is never a re-implementation. Nothing here touches a live cluster: the input
is a temporary file, the tool runs through lab.transport.runner.run_local with a timeout.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from lab.core.errors import PacemakerError
from lab.core.status import Status, revised_status
from lab.core.xmlsafe import parse_untrusted
from lab.gather.pacemaker import TIMEOUT
from lab.transport.runner import run_local


@functools.lru_cache(maxsize=64)
def after_node_fail(cib_xml: str, node: str) -> Status:
    """The revised cluster status crm_simulate prints when NODE fails (as the student runs
    `crm_simulate -L --node-fail NODE -S`, on this CIB instead of the live one)."""
    with tempfile.TemporaryDirectory(prefix="lab-predict-") as folder:
        path = Path(folder, "cib.xml")
        path.write_text(cib_xml, encoding="utf-8")
        argv = ["crm_simulate", "--xml-file", str(path), "--node-fail", node, "--simulate",
                "--output-as=xml"]
        result = run_local(argv, env={"CIB_file": "", "CIB_shadow": ""}, timeout=TIMEOUT,
                           label=f"predict: {node} fails")
    if not result.ok:
        raise PacemakerError(f"crm_simulate --node-fail {node} failed (exit {result.returncode}): "
                             f"{result.tail(3)}")
    return revised_status(parse_untrusted(result.stdout, "crm_simulate output"))


def placement_after_fail(cib_xml: str, node: str, rsc_id: str) -> frozenset[str]:
    """Where RSC_ID runs once the scheduler has reacted to NODE failing (empty: stopped)."""
    return frozenset(after_node_fail(cib_xml, node).running_nodes(rsc_id))


@functools.lru_cache(maxsize=64)
def settled(cib_xml: str) -> str:
    """The CIB once the scheduler's transition has run on it (`crm_simulate -S -O`): where every
    resource is after the cluster has acted, e.g. on a copy whose target-roles were dropped."""
    with tempfile.TemporaryDirectory(prefix="lab-settle-") as folder:
        path, out = Path(folder, "cib.xml"), Path(folder, "settled.xml")
        path.write_text(cib_xml, encoding="utf-8")
        argv = ["crm_simulate", "--xml-file", str(path), "--simulate", "--quiet", "--save-output", str(out)]
        result = run_local(argv, env={"CIB_file": "", "CIB_shadow": ""}, timeout=TIMEOUT, label="settle a copy")
        if not result.ok or not out.is_file():
            raise PacemakerError(f"crm_simulate --save-output failed (exit {result.returncode}): {result.tail(3)}")
        return out.read_text(encoding="utf-8")
