"""The lab on disk: its folder, state file, lock, nodes, SSH key, known_hosts and secrets.

A lab is lab_home()/labs/NAME. Its state file (state.json, written atomically, version
STATE_VERSION, read through LabState.from_json which checks every type and range) records
what `lab up` has done, so that an interrupted run converges when run again, and the exact
names of the libvirt objects the lab makes (Owned), which are all `lab destroy` removes.
Commands that change a lab hold LABDIR/lock (flock) for their whole run; readers do not.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.core.errors import LabError, UsageError
from lab.core.paths import lab_home
from lab.transport.ssh import NodeAddress

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}\Z")
MAX_NODES = 5
SSH_USER = "vagrant"
PRIVATE_HOST_OFFSET = 10  # node1 = .11, node2 = .12, ...
VIP_OFFSET = 200


def current_name() -> str:
    return os.environ.get("LAB_NAME") or "default"


def labs_dir() -> Path:
    return lab_home() / "labs"


def libvirt_prefix(name: str) -> str:
    """The prefix of every libvirt object of the lab (domains, volumes, networks)."""
    return f"flab-{name}-"


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


@dataclass(frozen=True)
class NodeSpec:
    name: str
    ip: str


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
    def derive(cls, name: str, nodes: int, pool: str | None) -> Owned:
        prefix = libvirt_prefix(name)
        domains = tuple(f"{prefix}{node_name(i)}" for i in range(1, nodes + 1))
        return cls(domains=domains,
                   volumes=tuple(f"{d}.img" for d in domains) + (f"{prefix}sbd.img",),
                   networks=(f"{prefix}mgmt", f"{prefix}priv"),
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

    def owned(self, key: str, name: str, nodes: int, pool: str) -> Owned:
        possible = Owned.anything_of(name)
        value = self.raw(key)
        if value is None:
            return Owned.derive(name, nodes, pool)
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
           "private_cidr", "mgmt_cidr", "steps", "exercise", "pcs_version", "owned")
_OPTIONAL = {"exercise": None, "pcs_version": None, "owned": None}
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

    def __post_init__(self) -> None:
        if self.owned is None:
            self.owned = Owned.derive(self.name, self.nodes, self.pool)

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
        state = cls(
            name=lab_name, nodes=nodes,
            box=read.text("box", _BOX_RE, "a box profile name such as debian12"),
            box_name=read.text("box_name", _BOX_NAME_RE, "a Vagrant box name"),
            memory=read.integer("memory", MIN_MEMORY, MAX_MEMORY),
            cpus=read.integer("cpus", 1, MAX_CPUS),
            driver=read.choice("driver", DRIVERS),
            uri=read.text("uri", _URI_RE, "a libvirt URI"),
            pool=pool,
            private_cidr=read.cidr("private_cidr"),
            mgmt_cidr=read.cidr("mgmt_cidr"),
            steps=read.steps("steps"),
            exercise=read.text("exercise", _EXERCISE_RE, "an exercise id or null", optional=True),
            pcs_version=read.text("pcs_version", _PCS_VERSION_RE, "a pcs version or null", optional=True),
            owned=read.owned("owned", lab_name, nodes, pool),
            version=STATE_VERSION,
        )
        if ipaddress.IPv4Network(state.private_cidr).overlaps(ipaddress.IPv4Network(state.mgmt_cidr)):
            raise read.fail("mgmt_cidr", f"overlaps private_cidr {state.private_cidr}")
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


# --- one lock per lab --------------------------------------------------------

DEFAULT_LOCK_WAIT = 30.0  # s a mutating command waits for another one on the same lab
_held: dict[str, list[Any]] = {}  # lock path -> [fd, depth]: re-entry in one process (reset -> start)
_held_guard = threading.Lock()


class LabBusy(LabError):
    """Another `lab` command holds the lab's lock."""


def lock_wait() -> float:
    raw = os.environ.get("LAB_LOCK_WAIT", "").strip()
    if not raw:
        return DEFAULT_LOCK_WAIT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:  # also rejects nan
        raise UsageError(f"LAB_LOCK_WAIT must be 0..86400 seconds, not '{raw[:20]}'")
    return value


def command_line() -> str:
    """This process's `lab` command as the lock's holder is shown to others."""
    words = [w for w in sys.argv[1:] if w.isprintable()][:6]
    return " ".join(["lab", *words])[:120]


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text()[:4096])
        return f"'{info['command']}' (pid {int(info['pid'])}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another lab command"


class Lab:
    """One lab folder. `state` is its typed state file (None before `lab up` made it)."""

    def __init__(self, name: str, state: LabState | Mapping[str, Any] | None = None) -> None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise UsageError(f"lab name '{name}' must be lowercase letters, digits and dashes (max 20)")
        self.name = name
        self.dir = labs_dir() / name
        self._state: LabState | None = None
        if state is not None:
            self.state = state

    @property
    def state(self) -> LabState:
        if self._state is None:
            raise UsageError(f"lab '{self.name}' has no state file ({self.state_file}); run 'lab up'")
        return self._state

    @state.setter
    def state(self, value: LabState | Mapping[str, Any]) -> None:
        """A LabState, or a dict built in code: validated like a file, absent fields defaulted."""
        if not isinstance(value, LabState):
            value = LabState.from_json(dict(value), f"lab '{self.name}'", name=self.name, by_hand=True)
        self._state = value

    # --- files -------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.dir / "lock"

    @property
    def vagrantfile(self) -> Path:
        return self.dir / "Vagrantfile"

    @property
    def identity(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def password_file(self) -> Path:
        return self.dir / "hacluster-password"

    @property
    def log_file(self) -> Path:
        return self.dir / "vagrant.log"

    @property
    def prefix(self) -> str:
        return libvirt_prefix(self.name)

    # --- state -------------------------------------------------------------
    @classmethod
    def load(cls, name: str) -> Lab:
        """The lab with its state file read and validated (no state file: has_state is False)."""
        lab = cls(name)
        try:
            with lab.state_file.open("rb") as handle:
                raw = handle.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return lab
        except OSError as exc:
            raise StateError(f"state file {lab.state_file} is unreadable ({exc.strerror}); "
                             f"{REMAKE_HINT}") from None
        if len(raw) > MAX_STATE_BYTES:
            raise StateError(f"state file {lab.state_file} is larger than {MAX_STATE_BYTES} bytes, not a lab "
                             f"state; {REMAKE_HINT}")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            detail = (str(exc).splitlines() or [type(exc).__name__])[0][:80]
            raise StateError(f"state file {lab.state_file} is not valid JSON ({detail}); "
                             f"{REMAKE_HINT}") from None
        lab._state = LabState.from_json(data, f"state file {lab.state_file}", name=name)
        return lab

    @property
    def exists(self) -> bool:
        return self.state_file.exists()

    @property
    def has_state(self) -> bool:
        return self._state is not None

    def save(self) -> None:
        write_atomic(self.state_file, json.dumps(self.state.to_json(), indent=2, sort_keys=True) + "\n")

    def done(self, step: str) -> bool:
        return self._state is not None and bool(self._state.steps.get(step))

    def mark(self, step: str, value: bool | int | str = True) -> None:
        self.state["steps"] = {**self.state.steps, step: value}
        self.save()

    def unmark(self, *steps: str) -> None:
        self.state.steps = {k: v for k, v in self.state.steps.items() if k not in steps}
        self.save()

    @property
    def owned(self) -> Owned:
        """The exact libvirt names this lab makes (recorded in its state)."""
        assert self.state.owned is not None  # set by LabState.__post_init__
        return self.state.owned

    # --- the lock ----------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, *, create: bool = False, wait: float | None = None,
               say: Callable[[str], None] | None = None) -> Iterator[bool]:
        """Hold the lab's lock (flock on LABDIR/lock) while a command changes the lab.

        Another holder: wait up to `wait` s (LAB_LOCK_WAIT, default 30) saying so once, then
        LabBusy naming the command that holds it. Re-entrant within a process (reset runs start).
        Without the folder (and create False) there is nothing to lock: yields False. Readers
        never lock: the state file is replaced atomically.
        """
        key = str(self.lock_file)
        with _held_guard:
            entered = key in _held
            if entered:
                _held[key][1] += 1
        if entered:
            try:
                yield True
            finally:
                with _held_guard:
                    _held[key][1] -= 1
            return
        fd = self._acquire(create, lock_wait() if wait is None else wait,
                           say or (lambda text: print(text, file=sys.stderr, flush=True)))
        if fd is None:
            yield False
            return
        with _held_guard:
            _held[key] = [fd, 1]
        try:
            yield True
        finally:
            with _held_guard:
                del _held[key]
            os.close(fd)  # closing the last descriptor releases the flock

    def _acquire(self, create: bool, wait: float, say: Callable[[str], None]) -> int | None:
        deadline = time.monotonic() + wait
        told = False
        while True:
            if create:
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                return None  # no lab folder (or destroyed meanwhile): nothing to lock
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _holder(self.lock_file)
                if time.monotonic() >= deadline:
                    raise LabBusy(f"lab '{self.name}' is busy: {holder} holds its lock; try again when "
                                  f"it has ended (LAB_LOCK_WAIT=SECONDS waits longer)") from None
                if not told:
                    say(f"lab '{self.name}' is busy with {holder}: waiting up to {wait:.0f} s for it to end")
                    told = True
                time.sleep(max(0.0, min(0.2, deadline - time.monotonic())))
                continue
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the folder was removed (lab destroy) while we waited: look again
                os.close(fd)
                continue
            info = {"command": command_line(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            return fd

    # --- nodes and addresses -----------------------------------------------
    @property
    def nodes(self) -> list[NodeSpec]:
        base = int(ipaddress.IPv4Network(self.state.private_cidr).network_address)
        return [NodeSpec(node_name(i), str(ipaddress.IPv4Address(base + PRIVATE_HOST_OFFSET + i)))
                for i in range(1, self.state.nodes + 1)]

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise UsageError(f"lab '{self.name}' has no node '{name}' (nodes: {', '.join(self.node_names)})")

    def domain_name(self, node: str) -> str:
        return f"{self.prefix}{node}"

    @property
    def vip(self) -> str:
        net = ipaddress.IPv4Network(self.state.private_cidr)
        return str(ipaddress.IPv4Address(int(net.network_address) + VIP_OFFSET))

    def addresses(self) -> list[NodeAddress]:
        """Where the grader and `lab ssh` reach the nodes: the fixed private addresses."""
        return [NodeAddress(n.name, SSH_USER, n.ip, 22) for n in self.nodes]

    # --- secrets -----------------------------------------------------------
    def ensure_password(self) -> str:
        if self.password_file.exists():
            return self.password().strip()
        value = secrets.token_urlsafe(15)
        write_atomic(self.password_file, value + "\n", mode=0o600)
        return value

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            raise UsageError(f"lab '{self.name}' has no password file; run 'lab up'") from None


def current_lab() -> Lab:
    """The lab that `lab check` and friends act on (LAB_NAME, default 'default')."""
    name = current_name()
    lab = Lab.load(name)
    if not lab.has_state or not lab.done("cluster_snapshot") and not lab.done("installed_snapshot"):
        raise UsageError(f"no lab '{name}' is up: run 'lab up' first, or grade other nodes with "
                         f"--node or a saved CIB with --cib")
    return lab
