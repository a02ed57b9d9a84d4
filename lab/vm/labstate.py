"""The lab on disk: its folder, state file, lock, nodes, SSH key, known_hosts and secrets.

A lab is lab_home()/labs/NAME. Its state file (state.json, written atomically, version
STATE_VERSION, read through LabState.from_json which checks every type and range: statemodel.py)
records what `lab up` has done, so that an interrupted run converges when run again, and the exact
names of the libvirt objects the lab makes (Owned), which are all `lab destroy` removes.
Commands that change a lab hold LABDIR/lock (flock, lablock.py) for their whole run; readers do not.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core.errors import UsageError
from lab.core.paths import lab_home
from lab.transport import log
from lab.transport.address import NodeAddress
from lab.vm.lablock import DEFAULT_LOCK_WAIT, LabBusy, Locking, command_line, lock_wait
from lab.vm.statemodel import (
    MAX_NODES,
    MAX_STATE_BYTES,
    NAME_RE,
    REMAKE_HINT,
    SNAPSHOTS,
    STATE_VERSION,
    LabState,
    Owned,
    StateError,
    StepName,
    libvirt_prefix,
    node_name,
    write_atomic,
)

__all__ = ["DEFAULT_LOCK_WAIT", "MAX_NODES", "SNAPSHOTS", "SSH_USER", "STATE_VERSION", "Lab", "LabBusy",
           "LabState", "NoLabUp", "NodeSpec", "Owned", "StateError", "StepName", "command_line", "current_lab",
           "current_name", "labs_dir", "libvirt_prefix", "lock_wait", "write_atomic"]

SSH_USER = "vagrant"
PRIVATE_HOST_OFFSET = 10  # node1 = .11, node2 = .12, ...
VIP_OFFSET = 200


def current_name() -> str:
    return os.environ.get("LAB_NAME") or "default"


def labs_dir() -> Path:
    return lab_home() / "labs"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    ip: str


class Lab(Locking):
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

    def done(self, step: StepName | str) -> bool:
        """Whether STEP (a StepName, or its per-node key) is recorded as done."""
        return self._state is not None and bool(self._state.steps.get(str(step)))

    def mark(self, step: StepName | str, value: bool | int | str = True) -> None:
        """Record STEP as done, in the state file at once (atomically): a rerun skips it."""
        self.state["steps"] = {**self.state.steps, str(step): value}
        self.save()

    def unmark(self, *steps: StepName | str) -> None:
        keys = {str(s) for s in steps}
        self.state.steps = {k: v for k, v in self.state.steps.items() if k not in keys}
        self.save()

    @property
    def owned(self) -> Owned:
        """The exact libvirt names this lab makes (recorded in its state)."""
        assert self.state.owned is not None  # set by LabState.__post_init__
        return self.state.owned

    # --- the lock ----------------------------------------------------------
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

    def addresses(self, user: str | None = None) -> list[NodeAddress]:
        """Where the grader reaches the nodes: the fixed private addresses, as root when lab up
        authorized the lab's key for root (no sudo per gather), else as vagrant (USER: as that)."""
        login = self.root_login_user() if user is None else user
        return [NodeAddress(n.name, login, n.ip, 22) for n in self.nodes]

    def root_login_user(self) -> str:
        """root when lab up authorized the lab's key for root (no sudo per command), else vagrant."""
        return "root" if self.done(StepName.GRADER_ROOT) else SSH_USER

    # --- secrets -----------------------------------------------------------
    def ensure_password(self) -> str:
        """The hacluster password, made once; never written to the command log."""
        if self.password_file.exists():
            return self.password().strip()
        value = secrets.token_urlsafe(15)
        write_atomic(self.password_file, value + "\n", mode=0o600)
        log.redact(value)
        return value

    def password(self) -> str:
        """The hacluster password (registered with the command log's redaction when read)."""
        try:
            value = self.password_file.read_text().strip()
        except FileNotFoundError:
            raise UsageError(f"lab '{self.name}' has no password file; run 'lab up'") from None
        log.redact(value)
        return value


class NoLabUp(UsageError):
    """No lab of this name has got as far as its first snapshot: nothing to work on yet.
    The CLI adds where else grading can go (other nodes, a saved CIB)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no lab '{name}' is up: run 'lab up' first")
        self.name = name


def current_lab() -> Lab:
    """The lab that `lab check` and friends act on (LAB_NAME, default 'default')."""
    name = current_name()
    lab = Lab.load(name)
    if not lab.has_state or not lab.done(StepName.CLUSTER_SNAPSHOT) and not lab.done(StepName.INSTALLED_SNAPSHOT):
        raise NoLabUp(name)
    return lab
