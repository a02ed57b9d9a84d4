"""The lab on disk: its folder, state file, nodes, SSH key, known_hosts and secrets.

A lab is lab_home()/labs/NAME. Its state file (state.json, written atomically)
records what `lab up` has done so that an interrupted run converges when run again.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import UsageError
from lab.paths import lab_home
from lab.ssh import NodeAddress

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
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


class Lab:
    """One lab folder. `state` is the parsed state file; save() writes it atomically."""

    def __init__(self, name: str, state: dict[str, Any] | None = None) -> None:
        if not NAME_RE.match(name):
            raise UsageError(f"lab name '{name}' must be lowercase letters, digits and dashes (max 20)")
        self.name = name
        self.dir = labs_dir() / name
        self.state: dict[str, Any] = state if state is not None else {}

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
        lab = cls(name)
        try:
            lab.state = json.loads(lab.state_file.read_text())
        except FileNotFoundError:
            lab.state = {}
        except (OSError, ValueError) as exc:
            raise UsageError(f"state file {lab.state_file} is unreadable ({exc}); "
                             f"run 'lab destroy' and 'lab up' again") from None
        return lab

    @property
    def exists(self) -> bool:
        return self.state_file.exists()

    def save(self) -> None:
        write_atomic(self.state_file, json.dumps(self.state, indent=2, sort_keys=True) + "\n")

    def done(self, step: str) -> bool:
        return bool(self.state.get("steps", {}).get(step))

    def mark(self, step: str, value: Any = True) -> None:
        self.state.setdefault("steps", {})[step] = value
        self.save()

    def unmark(self, *steps: str) -> None:
        for step in steps:
            self.state.setdefault("steps", {}).pop(step, None)
        self.save()

    # --- nodes and addresses -----------------------------------------------
    @property
    def nodes(self) -> list[NodeSpec]:
        net = ipaddress.ip_network(self.state["private_cidr"])
        base = int(net.network_address)
        return [NodeSpec(f"node{i}", str(ipaddress.ip_address(base + PRIVATE_HOST_OFFSET + i)))
                for i in range(1, int(self.state["nodes"]) + 1)]

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
        net = ipaddress.ip_network(self.state["private_cidr"])
        return str(ipaddress.ip_address(int(net.network_address) + VIP_OFFSET))

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
    if not lab.exists or not lab.done("cluster_snapshot") and not lab.done("installed_snapshot"):
        raise UsageError(f"no lab '{name}' is up: run 'lab up' first, or grade other nodes with "
                         f"--node or a saved CIB with --cib")
    return lab
