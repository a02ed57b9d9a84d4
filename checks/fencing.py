"""Checks on fencing: STONITH on, devices that really cover the nodes, a real fence, SBD."""

from __future__ import annotations

import re

from checks import Verdict, check, fail, ok
from checks.cluster import _on_every_node
from lab.core.scores import is_true
from lab.gather.facts import Facts, NodeFacts
from lab.gather.probes import ACL, FENCE, REBOOT, ProbeResult
from lab.gather.sections import FENCE_TARGETS, SBD


def _probe(facts: Facts, name: str) -> ProbeResult | Verdict:
    """The named probe's result, or the failing verdict when it did not run to the end."""
    probe = facts.probes.get(name)
    if probe is None:
        return fail(f"the {name} probe did not run")
    if probe.error:
        return fail(probe.error)
    return probe


@check("stonith_enabled")
def stonith_enabled(facts: Facts) -> Verdict:
    """STONITH is on as pacemaker itself evaluates it (crm_mon's cluster options): an explicit
    true, or the property removed (the default is true)."""
    value = facts.status.cluster_options.get("stonith-enabled")
    if value is None:
        return fail("crm_mon does not report stonith-enabled")
    if not is_true(value):
        return fail("STONITH is disabled (stonith-enabled=false)")
    return ok("STONITH is enabled")


_FOUND_LINE = re.compile(r"^\s*(\d+|no) (fence )?devices? found", re.I)


def _devices_for(output: str) -> set[str]:
    """Device ids in `stonith_admin --list NODE` output (one per line, then a count line)."""
    return {line.strip() for line in output.splitlines()
            if line.strip() and not _FOUND_LINE.match(line) and " " not in line.strip()}


@check("fence_devices_cover_nodes", live=True, gathers=(FENCE_TARGETS,))
def fence_devices_cover_nodes(facts: Facts) -> Verdict:
    """For every node, the fencer names a started STONITH device that can fence it
    (`stonith_admin --list NODE`: host maps, host lists and dynamic lists as pacemaker reads them)."""
    stonith = {r.id for r in facts.cib.resources.values() if r.standard == "stonith"}
    if not stonith:
        return fail("no STONITH device is configured")
    started = {rid for rid in stonith if facts.status.running_nodes(rid)}
    if not started:
        return fail(f"no STONITH device is started ({', '.join(sorted(stonith))})")
    listings = [n.fence_targets for n in facts.nodes.values() if n.fence_targets]
    if not listings:
        return fail("no node answered stonith_admin --list")
    uncovered = []
    for node in facts.expected_nodes:
        devices = set().union(*(_devices_for(listing.get(node, "")) for listing in listings)) & started
        if not devices:
            uncovered.append(node)
    if uncovered:
        return fail(f"no started STONITH device can fence {', '.join(uncovered)} "
                    "(check pcmk_host_map / pcmk_host_list: node names differ from VM names)")
    return ok(f"every node can be fenced by {', '.join(sorted(started))}")


@check("fencing_works", live=True, needs_cib=False, gathers=(FENCE,))
def fencing_works(facts: Facts) -> Verdict:
    """Fencing the second node through the cluster really resets that VM (a new boot), no
    other, and the node rejoins the cluster."""
    probe = _probe(facts, "fence")
    if isinstance(probe, Verdict):
        return probe
    data = probe.data
    target = data["target"]
    others = [n for n in list(data["rebooted"]) + list(data["unreachable"]) if n != target]
    if others:
        return fail(f"fencing {target} reset {', '.join(sorted(set(others)))}: a node is mapped to the "
                    "wrong VM")
    if data["returncode"] != 0:
        last = (data.get("output") or "").strip().splitlines()[-1:] or ["no output"]
        return fail(f"stonith_admin --reboot {target} failed (exit {data['returncode']}): {last[0]}")
    if target not in data["rebooted"]:
        return fail(f"the fence device reported success but {target} did not reboot")
    if target not in data["rejoined"]:
        return fail(f"{target} was reset but did not rejoin the cluster within {data['seconds']:.0f} s "
                    "(does the cluster start at boot there?)")
    return ok(f"{target} was fenced (reset) and rejoined the cluster after {data['seconds']:.0f} s")


@check("cluster_survives_reboot", live=True, needs_cib=False, gathers=(REBOOT,))
def cluster_survives_reboot(facts: Facts) -> Verdict:
    """Every node, rebooted, comes back as a member of the cluster without anyone's help."""
    probe = _probe(facts, "reboot")
    if isinstance(probe, Verdict):
        return probe
    expected = list(facts.expected_nodes)
    not_back = [n for n in expected if n not in probe.data["rebooted"]]
    if not_back:
        return fail(f"{', '.join(not_back)} did not come back after the reboot")
    not_member = [n for n in expected if n not in probe.data["members"]]
    if not_member:
        return fail(f"after a reboot, {', '.join(not_member)} did not rejoin the cluster within "
                    f"{probe.data['seconds']:.0f} s")
    return ok(f"every node rebooted and rejoined the cluster ({probe.data['seconds']:.0f} s)")


@check("acl_read_only_in_effect", live=True, needs_cib=False, gathers=(ACL,))
def acl_read_only_in_effect(facts: Facts, user: str) -> Verdict:
    """As the OS user, reading the CIB works and a change is refused (pacemaker enforces the ACL)."""
    probe = _probe(facts, "acl")
    if isinstance(probe, Verdict):
        return probe
    data = probe.data
    if data["read_rc"] != 0:
        return fail(f"as {user}, cibadmin --query fails (exit {data['read_rc']}): reading must be allowed")
    if data["write_rc"] == 0:
        return fail(f"as {user}, a change to the CIB went through: the ACL must refuse writes")
    return ok(f"as {user}, the CIB can be read and a change is refused")


# --- SBD -------------------------------------------------------------------------

@check("sbd_disk_lists_nodes", live=True, needs_cib=False, gathers=(SBD,))
def sbd_disk_lists_nodes(facts: Facts, device: str) -> Verdict:
    """Every node's sbd uses the shared disk, and every node has a slot on it (`sbd list`)."""

    def complaint(node: NodeFacts) -> str | None:
        if node.sbd is None:
            return "no sbd configuration (/etc/default/sbd or /etc/sysconfig/sbd)"
        if device not in node.sbd.devices:
            shown = ";".join(node.sbd.devices) or "none"
            return f"SBD_DEVICE is {shown}, expected {device}"
        if node.sbd.header is False:
            return f"{device} is not initialised for SBD (sbd -d {device} create)"
        missing = [n for n in facts.expected_nodes if n not in node.sbd.slots]
        if missing:
            return f"{device} has no slot for {', '.join(missing)} yet (sbd allocates it when it starts there)"
        return None

    return _on_every_node(facts, complaint, f"every node uses {device}, which lists every node")


@check("sbd_active", live=True, needs_cib=False, gathers=(SBD,))
def sbd_active(facts: Facts) -> Verdict:
    """The sbd daemon runs on every node (it starts with corosync once enabled)."""
    return _on_every_node(facts, lambda n: None if n.sbd is not None and n.sbd.active else "sbd is not running",
                          "sbd runs on every node")
