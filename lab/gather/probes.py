"""Probes: things a check can only learn by acting on the live cluster.

Gathering reads state; a probe does something first (fence a node, reboot every
node, try a write as an ACL user) and records what it saw, as plain data. The checks
stay pure functions: they judge the recorded result like any other fact.

Probes run after the gather (so every other check judges the state the candidate left),
one after another, only when an exercise's checks ask for them
(`@check(..., gathers=(FENCE,))`). They need a fresh connection per attempt because
nodes go away and come back: `connect(name)` makes one (any lab.transport.base.Runner).
Waiting for nodes to come back goes through the one retry policy (lab.transport.retry).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.core.errors import LabError
from lab.transport.base import Runner
from lab.transport.retry import GaveUp, retry
from lab.transport.runner import CommandResult

PREFIX = "probe:"
BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
REJOIN_TIMEOUT = 420.0  # from the fence or reboot until every node is back up
REJOIN_GRACE = 120.0  # from a node being up again until it must be a cluster member


Connect = Callable[[str], Runner]


@dataclass(frozen=True)
class Probe:
    """A probe as a check declares it (`gathers=(FENCE,)`); its section name is "probe:NAME"."""

    probe: str

    @property
    def name(self) -> str:
        return PREFIX + self.probe

    def names(self) -> frozenset[str]:
        return frozenset({self.name})


FENCE, REBOOT, ACL = Probe("fence"), Probe("reboot"), Probe("acl")


@dataclass(frozen=True)
class ProbeResult:
    """What a probe did and saw; `error` says why it could not run to the end."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


def probe_names(sections: frozenset[str] | None) -> list[str]:
    return sorted(s[len(PREFIX):] for s in sections or () if s.startswith(PREFIX))


def without_probes(sections: frozenset[str] | None) -> frozenset[str] | None:
    return None if sections is None else frozenset(s for s in sections if not s.startswith(PREFIX))


def _run(connect: Connect, node: str, command: str | Sequence[str], timeout: float = 60.0) -> CommandResult | None:
    """Run on a fresh connection; None when the node cannot be reached (it may be rebooting)."""
    try:
        conn = connect(node)
    except LabError:
        return None
    try:
        return conn.run(command, timeout=timeout)
    except LabError:
        return None
    finally:
        conn.close()


def _boot_ids(connect: Connect, nodes: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for node in nodes:
        result = _run(connect, node, BOOT_ID, timeout=20)
        out[node] = result.stdout.strip() if result is not None and result.ok else None
    return out


def _online(connect: Connect, observer: str, node: str) -> bool:
    """Does the observer's pacemaker see `node` online (crm_node -l: 'id name member')."""
    result = _run(connect, observer, ["sudo", "-n", "crm_node", "-l"], timeout=20)
    if result is None or not result.ok:
        return False
    return any(line.split()[1:3] == [node, "member"] for line in result.stdout.splitlines()
               if len(line.split()) >= 3)


class _NotYet(Exception):
    """A node is not back yet (a failed try of the wait)."""


def _wait_back(connect: Connect, nodes: Sequence[str], before: Mapping[str, str | None],
               observer_pool: Sequence[str], deadline: float) -> tuple[dict[str, str | None], list[str]]:
    """Wait until every node in `nodes` has a new boot id, then (at most REJOIN_GRACE more)
    until each is a cluster member again; returns (new boot ids, members) as far as they got."""
    after: dict[str, str | None] = {}
    members: list[str] = []

    def rebooted() -> None:
        after.update({n: b for n, b in _boot_ids(connect, [n for n in nodes if n not in after]).items()
                      if b is not None and b != before.get(n)})
        missing = [n for n in nodes if n not in after]
        if missing:
            raise _NotYet(f"no new boot id from {', '.join(missing)}")

    def rejoined() -> None:
        observer = next((o for o in observer_pool if o not in nodes), nodes[0])
        members[:] = [n for n in nodes if _online(connect, observer, n)]
        if len(members) != len(nodes):
            raise _NotYet(f"not cluster members for {observer}: "
                          f"{', '.join(n for n in nodes if n not in members)}")

    try:
        retry(rebooted, what=f"{', '.join(nodes)} to come back with a new boot id",
              within=deadline - time.monotonic(), every=3, retry_on=(_NotYet,))
        retry(rejoined, what=f"{', '.join(nodes)} to rejoin the cluster",
              within=min(REJOIN_GRACE, max(0.0, deadline - time.monotonic())), every=3, retry_on=(_NotYet,))
    except GaveUp:
        pass
    return after, members


def fence_probe(nodes: Sequence[str], connect: Connect, *, target: str | None = None) -> ProbeResult:
    """Ask the cluster (stonith_admin on the first node) to reboot the second node; record
    which nodes really rebooted (boot ids) and whether the target rejoined."""
    if len(nodes) < 2:
        return ProbeResult("fence", error="fencing needs at least two nodes")
    target = target or nodes[1]
    actor = next(n for n in nodes if n != target)
    before = _boot_ids(connect, nodes)
    if any(v is None for v in before.values()):
        down = [n for n, v in before.items() if v is None]
        return ProbeResult("fence", error=f"not reachable before fencing: {', '.join(down)}")
    began = time.monotonic()
    result = _run(connect, actor, ["sudo", "-n", "stonith_admin", "--reboot", target, "--timeout", "240"],
                  timeout=300)
    data: dict[str, Any] = {"target": target, "actor": actor}
    if result is None:
        data["returncode"] = None
        data["output"] = f"lost the connection to {actor} while it fenced {target}"
    else:
        data["returncode"] = result.returncode
        data["output"] = (result.stdout + result.stderr).strip()[-400:]
    if result is not None and result.ok:
        after, rejoined = _wait_back(connect, [target], before, nodes, began + REJOIN_TIMEOUT)
    else:
        after, rejoined = {}, []
        time.sleep(5)  # a wrong device may have hit another VM: give that a moment to show
    final = {**_boot_ids(connect, [n for n in nodes if n not in after]), **after}
    data.update(
        rebooted=sorted(n for n in nodes if final.get(n) not in (None, before[n])),
        unreachable=sorted(n for n in nodes if final.get(n) is None),
        rejoined=rejoined,
        seconds=round(time.monotonic() - began, 1),
    )
    return ProbeResult("fence", data)


def reboot_probe(nodes: Sequence[str], connect: Connect) -> ProbeResult:
    """Reboot every node (as an exam re-check would) and record which came back as cluster members."""
    before = _boot_ids(connect, nodes)
    down = [n for n, v in before.items() if v is None]
    if down:
        return ProbeResult("reboot", error=f"not reachable before the reboot: {', '.join(down)}")
    began = time.monotonic()
    for node in nodes:
        # Detached, so the SSH session ends cleanly before the node goes down.
        _run(connect, node, ["sudo", "-n", "sh", "-c", "nohup sh -c 'sleep 1; systemctl reboot' >/dev/null 2>&1 &"],
             timeout=20)
    after, members = _wait_back(connect, list(nodes), before, nodes, began + REJOIN_TIMEOUT)
    return ProbeResult("reboot", {"rebooted": sorted(after), "members": sorted(members),
                                  "seconds": round(time.monotonic() - began, 1)})


ACL_PROBE_ATTRIBUTE = "lab-acl-probe"


def acl_probe(nodes: Sequence[str], connect: Connect, *, user: str = "monitor") -> ProbeResult:
    """As OS user `user`: read the CIB, then try one harmless write (a cluster property that is
    removed again as root if the write went through)."""
    node = nodes[0]
    as_user = ["sudo", "-n", "-u", user]
    read = _run(connect, node, as_user + ["cibadmin", "--query", "--scope", "nodes"], timeout=60)
    write = _run(connect, node, as_user + ["crm_attribute", "--type", "crm_config", "--name",
                                          ACL_PROBE_ATTRIBUTE, "--update", "1"], timeout=60)
    if read is None or write is None:
        return ProbeResult("acl", error=f"{node} is not reachable")
    if write.ok:  # undo the write the ACL should have refused
        _run(connect, node, ["sudo", "-n", "crm_attribute", "--type", "crm_config", "--name",
                             ACL_PROBE_ATTRIBUTE, "--delete"], timeout=60)
    return ProbeResult("acl", {
        "user": user,
        "read_rc": read.returncode, "read_output": read.stdout[:200] + read.stderr[-300:],
        "write_rc": write.returncode, "write_output": (write.stdout + write.stderr).strip()[-300:],
    })


# What each probe does, said before it runs: some take minutes and all of them act on the lab.
ANNOUNCE = {
    "fence": "fencing node2 through the cluster, then waiting for it to come back (a few minutes)",
    "reboot": "rebooting every node, then waiting for them to rejoin the cluster (a few minutes)",
    "acl": "reading and trying one write to the CIB as the ACL user",
}

# Probes that disrupt the machines they act on: on machines named by `lab check --node` (not the
# candidate's own lab) they run only when the examiner says --yes.
DESTRUCTIVE = frozenset({"fence", "reboot"})


def destructive_probes(sections: frozenset[str] | None) -> list[str]:
    """The probes among SECTIONS that reset or reboot machines."""
    return [name for name in probe_names(sections) if name in DESTRUCTIVE]


PROBES: dict[str, Callable[[Sequence[str], Connect], ProbeResult]] = {
    "fence": fence_probe,
    "reboot": reboot_probe,
    "acl": acl_probe,
}


def run_probes(names: Sequence[str], nodes: Sequence[str], connect: Connect,
               say: Callable[[str], None] | None = None) -> dict[str, ProbeResult]:
    results = {}
    for name in names:
        if say is not None:
            say(ANNOUNCE[name])
        results[name] = PROBES[name](nodes, connect)
    return results
