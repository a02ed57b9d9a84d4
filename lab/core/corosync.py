"""corosync.conf and corosync tool outputs, read into plain data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab.core.errors import InputError


@dataclass
class Section:
    """A corosync.conf block: its options and nested blocks (a name may repeat)."""

    options: dict[str, str] = field(default_factory=dict)
    sections: list[tuple[str, Section]] = field(default_factory=list)

    def section(self, name: str) -> Section | None:
        return next((s for n, s in self.sections if n == name), None)

    def all(self, name: str) -> list[Section]:
        return [s for n, s in self.sections if n == name]


@dataclass(frozen=True)
class CorosyncConf:
    text: str
    root: Section

    @property
    def cluster_name(self) -> str | None:
        totem = self.root.section("totem")
        return totem.options.get("cluster_name") if totem else None

    @property
    def node_names(self) -> list[str]:
        """Nodes of the nodelist by `name`, else by ring0 address (corosync 2 style)."""
        nodelist = self.root.section("nodelist")
        if nodelist is None:
            return []
        names = []
        for node in nodelist.all("node"):
            name = node.options.get("name") or node.options.get("ring0_addr")
            if name:
                names.append(name)
        return names

    def link_addresses(self, link: int) -> dict[str, str]:
        """Each nodelist node's address on corosync link LINK (ringLINK_addr), by node name
        (`name`, else its ring0 address); nodes without one are left out."""
        nodelist = self.root.section("nodelist")
        found: dict[str, str] = {}
        for node in nodelist.all("node") if nodelist is not None else []:
            name = node.options.get("name") or node.options.get("ring0_addr")
            addr = node.options.get(f"ring{link}_addr")
            if name and addr:
                found[name] = addr
        return found

    def option(self, path: str) -> str | None:
        """An option by dotted path, e.g. 'totem.token' or 'quorum.wait_for_all'."""
        *sections, key = path.split(".")
        current: Section | None = self.root
        for name in sections:
            current = current.section(name) if current else None
        return current.options.get(key) if current else None


_TOKEN = re.compile(r"\{|\}|[^\s{}]+(?:[ \t]+[^\s{}:]+)*\s*:\s*[^\n{}]*|[^\s{}]+")


def parse_corosync_conf(text: str) -> CorosyncConf:
    """Parse corosync.conf's brace syntax; raise InputError when it does not balance."""
    root = Section()
    stack = [root]
    pending_name: str | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        while line:
            if line.startswith("}"):
                if len(stack) == 1:
                    raise InputError("corosync.conf has an unbalanced '}'")
                stack.pop()
                line = line[1:].strip()
                continue
            if "{" in line and (":" not in line or line.index("{") < line.index(":")):
                name, line = line.split("{", 1)
                name = name.strip() or (pending_name or "")
                child = Section()
                stack[-1].sections.append((name, child))
                stack.append(child)
                pending_name = None
                line = line.strip()
                continue
            if ":" in line:
                key, value = line.split(":", 1)
                value = value.strip()
                if "}" in value:
                    value, line = value.split("}", 1)
                    line = "}" + line
                else:
                    line = ""
                stack[-1].options[key.strip()] = value.strip()
                continue
            pending_name = line
            line = ""
    if len(stack) != 1:
        raise InputError("corosync.conf has an unclosed '{'")
    return CorosyncConf(text=text, root=root)


@dataclass(frozen=True)
class QuorumInfo:
    quorate: bool
    flags: frozenset[str]
    expected_votes: int | None
    total_votes: int | None


def parse_quorumtool(text: str) -> QuorumInfo | None:
    """`corosync-quorumtool -s` output, or None when corosync did not answer."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    if "Quorate" not in fields:
        return None

    def number(key: str) -> int | None:
        value = fields.get(key, "").split()[:1]
        return int(value[0]) if value and value[0].isascii() and value[0].isdigit() and len(value[0]) < 10 else None

    return QuorumInfo(
        quorate=fields["Quorate"].lower().startswith("yes"),
        flags=frozenset(fields.get("Flags", "").split()),
        expected_votes=number("Expected votes"),
        total_votes=number("Total votes"),
    )
