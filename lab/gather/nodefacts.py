"""What the checks look at: one node's facts (NodeFacts) and the cluster's (Facts), plain frozen
data. Filled from the gather's sections (lab.gather.sections) or from a saved CIB."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lab.core.cib import Cib
from lab.core.corosync import CorosyncConf, QuorumInfo
from lab.core.status import Status
from lab.gather.probes import ProbeResult
from lab.transport.runner import CommandResult


@dataclass(frozen=True)
class SbdInfo:
    """sbd as one node has it: configured devices, daemon state, the slots on each disk."""

    devices: tuple[str, ...]
    active: bool
    slots: frozenset[str]
    header: bool | None  # False: a configured disk has no SBD header; None: no disk listed


@dataclass(frozen=True)
class FenceEvent:
    """One entry of the fencer's history (`stonith_admin --history '*' --output-as=xml`)."""

    action: str  # reboot, off, on
    target: str
    status: str  # success, failed, pending
    origin: str  # the node that asked
    delegate: str  # the node that executed it
    client: str  # e.g. stonith_admin.1234, pacemaker-controld.567
    completed: str  # pacemaker's own timestamp text ("" while pending)


@dataclass(frozen=True)
class NodeFacts:
    """What one node says about itself and the cluster; error is set when unreachable.

    Every field but name, error, extra and problems is filled by one fact section
    (lab.gather.sections.SECTIONS names which)."""

    name: str
    error: str | None = None
    hostname: str | None = None
    cib: Cib | None = None
    cib_xml: str | None = None
    status: Status | None = None
    corosync_conf: CorosyncConf | None = None
    quorum: QuorumInfo | None = None
    services: Mapping[str, bool] = field(default_factory=dict)
    services_enabled: Mapping[str, bool] = field(default_factory=dict)
    pcsd_known_hosts: frozenset[str] | None = None
    cmap: Mapping[str, str] = field(default_factory=dict)
    # corosync's knet link states (corosync-cmapctl -m stats stats.knet.): key -> value
    knet: Mapping[str, str] = field(default_factory=dict)
    shadows: Mapping[str, Cib | None] = field(default_factory=dict)
    fence_targets: Mapping[str, str] = field(default_factory=dict)  # node -> stonith_admin --list
    sbd: SbdInfo | None = None
    # answer file (/root/answers/NAME) -> key -> every value given for it (question exercises)
    answers: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    fence_history: tuple[FenceEvent, ...] | None = None  # None: the fencer gave no answer
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
