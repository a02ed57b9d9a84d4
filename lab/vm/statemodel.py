"""The lab's state file as a typed, versioned model: LabState (every field checked on read),
Owned (the exact libvirt names a lab makes) and StepName (what `lab up` records as done).

Kept apart from the lab folder (labstate.Lab) so the schema reads as one piece: what a state file
may hold, and nothing about where it lives or who may write it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lab.core.errors import UsageError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}\Z")
MAX_NODES = 5


def libvirt_prefix(name: str) -> str:
    """The prefix of every libvirt object of the lab (domains, volumes, networks)."""
    return f"flab-{name}-"


# The lab's networks: 10.231.X.0/24 the cluster (corosync link 0), 10.232.X.0/24 management
# (DHCP), 10.233.X.0/24 a second, dedicated cluster network for corosync link 1, all with the
# same X. Labs made before the second network have no link1_cidr (None).
LINK1_RANGE = "10.233.0.0/16"
NETWORK_NAMES = ("mgmt", "priv", "link1")  # libvirt network NAME is flab-LAB-NAME


def link1_subnet(private_cidr: str) -> str | None:
    """The second cluster network that goes with a cluster network 10.231.X.0/24 (10.233.X.0/24);
    None for any other network (a state built by hand with addresses of its own)."""
    net = ipaddress.IPv4Network(private_cidr)
    first, second, third, _ = net.network_address.packed
    if (first, second) != (10, 231) or net.prefixlen != 24:
        return None
    return f"10.233.{third}.0/24"


def same_host(ip: str, cidr: str, other_cidr: str) -> str:
    """The address with IP's host part (its offset in CIDR) in OTHER_CIDR: node1's .11 there."""
    offset = int(ipaddress.IPv4Address(ip)) - int(ipaddress.IPv4Network(cidr).network_address)
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Network(other_cidr).network_address) + offset))


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StepName(StrEnum):
    """What the state file's "steps" records as done; a rerun of `lab up` skips those.

    The values are the file's keys (state files of earlier versions use the same); a per-node
    step is recorded as "NAME:NODE" (`StepName.SYSTEM.on("node1")`)."""

    SYSTEM = "system"  # per node: hostname, /etc/hosts, fixed address, the lab's SSH key
    ROOT_SSH = "root_ssh"
    GRADER_ROOT = "grader_root"  # the lab's own key logs in as root: the grader needs no sudo
    INSTALLED_SNAPSHOT = "installed_snapshot"
    CLUSTER_ATTEMPTED = "cluster_attempted"
    CLUSTER_BUILT = "cluster_built"
    CLUSTER_SNAPSHOT = "cluster_snapshot"

    def on(self, node: str) -> str:
        """The key of this step for one node."""
        return f"{self.value}:{node}"


# --- the state file's schema -------------------------------------------------

STATE_VERSION = 2  # 1: the untyped file of before (no "version"), read and upgraded on save
SNAPSHOTS = ("installed", "cluster")
DRIVERS = ("kvm", "qemu")
MIN_MEMORY, MAX_MEMORY = 256, 65536
MAX_CPUS = 64
_BOX_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}\Z")
_BOX_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}\Z")
_POOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_URI_RE = re.compile(r"^[a-z][a-z0-9+]*://[!-~]{0,240}\Z")
_STEP_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}(:[a-z0-9_-]{1,20})?\Z")
_EXERCISE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")
_PCS_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+~:_-]{0,63}\Z")  # dpkg: 1:0.11.5-1
MAX_STATE_BYTES = 1 << 20  # a real state file is ~2 KiB; more is not a state file
REMAKE_HINT = "'lab destroy' removes the lab, then 'lab up' makes it again"


class StateError(UsageError):
    """The state file (or a value for it) does not fit the schema: names the file and the field."""


def node_name(index: int) -> str:
    return f"node{index}"


@dataclass(frozen=True)
class Owned:
    """The exact names of the libvirt objects a lab makes: `lab destroy` removes these and no other.

    vagrant-libvirt names a domain default_prefix + machine name and its disk DOMAIN.img in the
    lab's pool; the networks are named in the Vagrantfile, the snapshots and the SBD disk by `lab`.
    All are known from the lab's name, node count and pool before anything is made, so they are
    recorded when the lab is created. `pool` None means: the volume names in any active pool (a
    lab whose state is lost).
    """

    domains: tuple[str, ...]
    volumes: tuple[str, ...]
    networks: tuple[str, ...]
    snapshots: tuple[str, ...]
    pool: str | None

    @classmethod
    def derive(cls, name: str, nodes: int, pool: str | None, *, link1: bool = True) -> Owned:
        """LINK1: the lab has the second cluster network (labs made before it have not)."""
        prefix = libvirt_prefix(name)
        domains = tuple(f"{prefix}{node_name(i)}" for i in range(1, nodes + 1))
        kinds = NETWORK_NAMES if link1 else tuple(n for n in NETWORK_NAMES if n != "link1")
        return cls(domains=domains,
                   volumes=tuple(f"{d}.img" for d in domains) + (f"{prefix}sbd.img",),
                   networks=tuple(f"{prefix}{kind}" for kind in kinds),
                   snapshots=SNAPSHOTS, pool=pool)

    @classmethod
    def anything_of(cls, name: str) -> Owned:
        """Every name lab NAME could have made (any node count, any pool): for a lost state."""
        return cls.derive(name, MAX_NODES, None)

    def union(self, other: Owned) -> Owned:
        def merge(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(a + b))
        return Owned(merge(self.domains, other.domains), merge(self.volumes, other.volumes),
                     merge(self.networks, other.networks), merge(self.snapshots, other.snapshots),
                     self.pool if self.pool == other.pool else None)

    def to_json(self) -> dict[str, Any]:
        return {"domains": list(self.domains), "volumes": list(self.volumes), "networks": list(self.networks),
                "snapshots": list(self.snapshots), "pool": self.pool}


class _Reader:
    """Type and range checks of one state document; every failure names the file and the field."""

    def __init__(self, data: Mapping[str, Any], source: str, defaults: Mapping[str, Any] | None,
                 hint: str) -> None:
        self.data, self.source, self.defaults, self.hint = data, source, defaults, hint

    def fail(self, key: str, why: str) -> StateError:
        return StateError(f"{self.source}: field '{key}' {why}{self.hint}")

    def raw(self, key: str) -> Any:
        if key in self.data:
            return self.data[key]
        if self.defaults is not None and key in self.defaults:
            return self.defaults[key]
        raise self.fail(key, "is missing")

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"must be a whole number {low}..{high}, not {_show(value)}")
        return value

    def text(self, key: str, pattern: re.Pattern[str], what: str, optional: bool = False) -> Any:
        value = self.raw(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(key, f"must be {what}, not {_show(value)}")
        return value

    def choice(self, key: str, choices: Sequence[str]) -> str:
        value = self.raw(key)
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, not {_show(value)}")
        return value

    def cidr(self, key: str) -> str:
        value = self.raw(key)
        try:
            if not isinstance(value, str):
                raise ValueError
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError:
            raise self.fail(key, f"must be an IPv4 network such as 10.231.10.0/24, not {_show(value)}") from None
        if not 8 <= net.prefixlen <= 24:
            raise self.fail(key, f"must have a prefix length 8..24 (room for the nodes and the VIP), not {value}")
        return str(net)

    def optional_cidr(self, key: str) -> str | None:
        return None if self.raw(key) is None else self.cidr(key)

    def steps(self, key: str) -> dict[str, bool | int | str]:
        value = self.raw(key)
        if not isinstance(value, dict) or len(value) > 200:
            raise self.fail(key, f"must be an object of at most 200 steps, not {_show(value)}")
        for step, done in value.items():
            if not isinstance(step, str) or not _STEP_RE.match(step):
                raise self.fail(f"{key}.{str(step)[:40]}", "is not a step name")
            if not isinstance(done, bool | int | str) or isinstance(done, str) and len(done) > 200:
                raise self.fail(f"{key}.{step}", f"must be true/false, a number or a short text, not {_show(done)}")
        return dict(value)

    def owned(self, key: str, name: str, nodes: int, pool: str, link1: bool) -> Owned:
        possible = Owned.anything_of(name)
        value = self.raw(key)
        if value is None:
            return Owned.derive(name, nodes, pool, link1=link1)
        if not isinstance(value, dict) or set(value) != {"domains", "volumes", "networks", "snapshots", "pool"}:
            raise self.fail(key, "must be an object with domains, volumes, networks, snapshots and pool")
        if value["pool"] != pool:
            raise self.fail(f"{key}.pool", f"must be the lab's pool '{pool}', not {_show(value['pool'])}")
        lists = {}
        for kind in ("domains", "volumes", "networks", "snapshots"):
            items = value[kind]
            allowed = getattr(possible, kind)
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise self.fail(f"{key}.{kind}", "must be a list of names")
            stray = [i for i in items if i not in allowed]
            if stray:  # never let a state file name another lab's (or anybody's) objects
                raise self.fail(f"{key}.{kind}", f"names {_show(stray[0])}, which lab '{name}' never makes")
            lists[kind] = tuple(dict.fromkeys(items))
        return Owned(lists["domains"], lists["volumes"], lists["networks"], lists["snapshots"], pool)


def _show(value: Any) -> str:
    """A short, single-line rendering of a bad value for an error message."""
    text = json.dumps(value) if isinstance(value, str | int | float | bool | type(None)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


_FIELDS = ("version", "name", "nodes", "box", "box_name", "memory", "cpus", "driver", "uri", "pool",
           "private_cidr", "mgmt_cidr", "link1_cidr", "steps", "exercise", "pcs_version", "owned")
# A file without link1_cidr is a lab made before the second cluster network: it has none.
_OPTIONAL = {"exercise": None, "pcs_version": None, "owned": None, "link1_cidr": None}
_DERIVE = "derive"  # LabState(...) in code without link1_cidr: the one that goes with private_cidr
# What a state built by hand in code (tests) gets for the fields it leaves out; files need them all.
_HAND_DEFAULTS = {"box": "debian12", "box_name": "failover-lab/debian12", "memory": 768, "cpus": 1,
                  "driver": "qemu", "uri": "qemu:///system", "pool": "default",
                  "private_cidr": "10.231.10.0/24", "mgmt_cidr": "10.232.10.0/24", "steps": {}}


@dataclass
class LabState:
    """The lab's state file, typed. Read with from_json (validates everything), written with to_json.

    Version 2 adds "version" and "owned" (the exact libvirt names of the lab); a version 1 file
    (no "version") is read with its owned names derived from its inputs and written back as 2.
    """

    name: str
    nodes: int
    box: str
    box_name: str
    memory: int
    cpus: int
    driver: str
    uri: str
    pool: str
    private_cidr: str
    mgmt_cidr: str
    steps: dict[str, bool | int | str] = field(default_factory=dict)
    exercise: str | None = None
    pcs_version: str | None = None
    owned: Owned | None = None
    version: int = STATE_VERSION
    # The second cluster network (corosync link 1); None: a lab made before it. A new lab made
    # in code gets the one that goes with private_cidr (network.pick_subnets keeps it free).
    link1_cidr: str | None = _DERIVE

    def __post_init__(self) -> None:
        if self.link1_cidr == _DERIVE:
            self.link1_cidr = link1_subnet(self.private_cidr)
        if self.owned is None:
            self.owned = Owned.derive(self.name, self.nodes, self.pool, link1=self.link1_cidr is not None)

    @classmethod
    def from_json(cls, data: Any, source: str, *, name: str | None = None, by_hand: bool = False) -> LabState:
        """Validate a parsed state document (types, ranges, names, CIDRs, steps, owned names).

        `source` starts every error ("state file PATH"); by_hand: a state built in code, whose
        absent fields get defaults and whose errors are not the file's.
        """
        hint = "" if by_hand else f"; {REMAKE_HINT}"
        if not isinstance(data, dict):
            raise StateError(f"{source}: must hold a JSON object, not {_show(data)}{hint}")
        defaults = {**_OPTIONAL, **(_HAND_DEFAULTS if by_hand else {}), "version": 1}
        read = _Reader(data, source, defaults, hint)
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise read.fail(unknown[0][:40], "is not a field of a lab state file")
        version = read.integer("version", 1, 1 << 30)
        if version > STATE_VERSION:
            raise read.fail("version", f"is {version}: written by a newer Failover Lab (this one reads "
                                       f"up to {STATE_VERSION})")
        lab_name = read.text("name", NAME_RE, "a lab name (lowercase letters, digits, dashes; max 20)")
        if name is not None and lab_name != name:
            raise read.fail("name", f"is {_show(lab_name)} in the folder of lab '{name}'")
        nodes = read.integer("nodes", 1, MAX_NODES)
        pool = read.text("pool", _POOL_RE, "a libvirt pool name")
        private = read.cidr("private_cidr")
        # A state built in code without the field is a new lab's; a file without it an old lab's.
        link1 = (link1_subnet(private) if by_hand and "link1_cidr" not in data
                 else read.optional_cidr("link1_cidr"))
        state = cls(
            name=lab_name, nodes=nodes,
            box=read.text("box", _BOX_RE, "a box profile name such as debian12"),
            box_name=read.text("box_name", _BOX_NAME_RE, "a Vagrant box name"),
            memory=read.integer("memory", MIN_MEMORY, MAX_MEMORY),
            cpus=read.integer("cpus", 1, MAX_CPUS),
            driver=read.choice("driver", DRIVERS),
            uri=read.text("uri", _URI_RE, "a libvirt URI"),
            pool=pool,
            private_cidr=private,
            mgmt_cidr=read.cidr("mgmt_cidr"),
            link1_cidr=link1,
            steps=read.steps("steps"),
            exercise=read.text("exercise", _EXERCISE_RE, "an exercise id or null", optional=True),
            pcs_version=read.text("pcs_version", _PCS_VERSION_RE, "a pcs version or null", optional=True),
            owned=read.owned("owned", lab_name, nodes, pool, link1=link1 is not None),
            version=STATE_VERSION,
        )
        nets = [("private_cidr", state.private_cidr), ("mgmt_cidr", state.mgmt_cidr),
                ("link1_cidr", state.link1_cidr)]
        for index, (key, cidr) in enumerate(nets):
            for other, other_cidr in nets[:index]:
                if cidr and other_cidr and ipaddress.IPv4Network(cidr).overlaps(ipaddress.IPv4Network(other_cidr)):
                    raise read.fail(key, f"overlaps {other} {other_cidr}")
        return state

    def to_json(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in _FIELDS}
        out["owned"] = self.owned.to_json() if self.owned else None
        return out

    # Mapping-style access for callers written against the untyped dict (lab.state["box"]):
    # reads give the typed field, writes are validated like the file.
    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS or key == "owned":
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return key in _FIELDS

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in ("exercise", "pcs_version", "steps"):
            raise StateError(f"state field '{key}' is set when the lab is made; "
                             f"'lab destroy' and 'lab up' to change it")
        checked = LabState.from_json({**self.to_json(), key: value}, f"lab '{self.name}'", by_hand=True)
        setattr(self, key, getattr(checked, key))

