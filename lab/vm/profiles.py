"""Box profiles (boxes/profiles/*.toml): which box a lab boots and how its nodes get the HA stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from lab.core.errors import UsageError
from lab.core.paths import project_root
from lab.core.tomlfile import read_toml, validated
from lab.vm.vagrant import box_dir


class ProfileDoc(BaseModel):
    """A box profile file as written: every key typed, an unknown key is an error (a typo)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(min_length=1)
    description: StrictStr = ""
    box: StrictStr = Field(min_length=1)
    box_file: StrictStr = ""
    offline: StrictBool = False
    private_iface: StrictStr = Field("eth1", min_length=1)
    link1_iface: StrictStr = Field("eth2", min_length=1)  # the second cluster network's NIC
    repo_setup: tuple[StrictStr, ...] = ()
    packages: tuple[StrictStr, ...] = ()
    install: StrictStr = ""
    firewall: tuple[StrictStr, ...] = ()
    # Placeholders {iface} {ip} {prefixlen} {netmask}.
    network: StrictStr = Field(min_length=1)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    box: str
    box_file: str
    offline: bool
    private_iface: str
    link1_iface: str
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
    return parse_profile(read_toml(path, "box profile", UsageError), path)


def parse_profile(data: dict, path: Path) -> Profile:
    """A profile's data checked against ProfileDoc: a UsageError naming the file and the key."""
    doc = validated(ProfileDoc, data, f"box profile {path.name}", UsageError)
    return Profile(**doc.model_dump())
