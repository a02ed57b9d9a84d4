"""Box profiles (boxes/profiles/*.toml): which box a lab boots and how its nodes get the HA stack."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from lab.core.errors import UsageError
from lab.core.paths import project_root


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    box: str
    box_file: str
    offline: bool
    private_iface: str
    repo_setup: tuple[str, ...]
    packages: tuple[str, ...]
    install: str
    firewall: tuple[str, ...]
    network: str

    @property
    def box_path(self) -> Path | None:
        """The local box file: 'cache:REL' is under the box cache (where build.sh writes), else
        relative to the project."""
        if not self.box_file:
            return None
        if self.box_file.startswith("cache:"):
            from lab.vm.vagrant import box_dir

            return box_dir() / self.box_file.removeprefix("cache:")
        return project_root() / self.box_file


def profiles_dir() -> Path:
    return project_root() / "boxes" / "profiles"


def profile_names() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.toml"))


def load_profile(name: str) -> Profile:
    path = profiles_dir() / f"{name}.toml"
    if not path.is_file():
        raise UsageError(f"unknown box '{name}' (known: {', '.join(profile_names())})")
    data = tomllib.loads(path.read_text())
    return Profile(
        name=data["name"], description=data.get("description", ""), box=data["box"],
        box_file=data.get("box_file", ""), offline=bool(data.get("offline", False)),
        private_iface=data.get("private_iface", "eth1"),
        repo_setup=tuple(data.get("repo_setup", ())), packages=tuple(data.get("packages", ())),
        install=data.get("install", ""), firewall=tuple(data.get("firewall", ())),
        network=data["network"],
    )
