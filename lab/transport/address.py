"""Where a node is reached (NAME=USER@HOST[:PORT]): plain data, no SSH library, so that
modules which only name nodes (the lab state, rosters) load without paramiko."""

from __future__ import annotations

from dataclasses import dataclass

from lab.core.errors import UsageError


@dataclass(frozen=True)
class NodeAddress:
    """Where a node is reached: name=user@host:port."""

    name: str
    user: str
    host: str
    port: int = 22

    @classmethod
    def parse(cls, spec: str) -> NodeAddress:
        """Parse 'NAME=USER@HOST[:PORT]'."""
        name, sep, target = spec.partition("=")
        user, at, hostport = target.partition("@")
        if not sep or not at or not name or not user or not hostport:
            raise UsageError(f"--node '{spec}' is not NAME=USER@HOST[:PORT]")
        host, port = hostport, 22
        if hostport.startswith("["):  # [ipv6]:port
            host, _, rest = hostport[1:].partition("]")
            if rest.startswith(":"):
                port = _port(rest[1:], spec)
        elif hostport.count(":") == 1:
            host, port_text = hostport.split(":")
            port = _port(port_text, spec)
        return cls(name=name, user=user, host=host, port=port)


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"--node '{spec}' has an invalid port '{text}'")
    return int(text)
