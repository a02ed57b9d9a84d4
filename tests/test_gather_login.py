"""How the gather becomes root on a node, and connections opened ahead, on a real loopback sshd.

One sudo per gather: as root no sudo at all, as another user `sudo -n` straight away (no probe
first: a sudo costs about a second in an emulated guest), and when sudo refuses, the gather asks
once more as the login user. The node's `sudo` is a wrapper that notes each call (and refuses
or runs the command), earlier on the PATH that sshd gives the sessions.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.core.errors import NodeError
from lab.engine.offline import OfflineCluster
from lab.gather.facts import gather_node
from lab.transport.address import NodeAddress
from lab.transport.ssh import SSHNode
from tests.sshd import Sshd, running_sshd, throwaway_user

pytestmark = pytest.mark.skipif(shutil.which("crm_mon") is None or shutil.which("pcs") is None,
                                reason="needs pacemaker-cli-utils and pcs")

REFUSE = '#!/bin/sh\necho sudo >>{calls}\necho "sudo: a password is required" >&2\nexit 1\n'
ALLOW = '#!/bin/sh\necho sudo >>{calls}\n[ "$1" = -n ] && shift\nexec "$@"\n'


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Path]:
    """A directory every user may read: the CIB, the fake sudo and its call log live there."""
    work = Path(tempfile.mkdtemp(prefix="lab-login-"))
    work.chmod(0o755)
    cluster = OfflineCluster.empty(work / "cib.xml")
    cluster.run("pcs resource create Web ocf:pacemaker:Dummy")
    cluster.simulate()
    (work / "cib.xml").chmod(0o644)
    (work / "bin").mkdir(mode=0o755)
    (work / "calls").touch()
    (work / "calls").chmod(0o666)
    yield work
    shutil.rmtree(work, ignore_errors=True)


def node_server(world: Path, tmp_path: Path, sudo: str, users: tuple[str, ...]) -> Iterator[Sshd]:
    fake = world / "bin" / "sudo"
    fake.write_text(sudo.format(calls=world / "calls"))
    fake.chmod(0o755)
    path = f"{world / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return running_sshd(tmp_path / "sshd", world / "cib.xml", users=users, env={"PATH": path})


def gather_as(server: Sshd, user: str, tmp_path: Path) -> tuple[object, float]:
    node = SSHNode(NodeAddress.parse(server.spec("node1", user)), identity=server.client_key,
                   known_hosts=tmp_path / "known_hosts")
    began = time.monotonic()
    try:
        return gather_node(node, sections=frozenset({"cib"}), timeout=40), time.monotonic() - began
    finally:
        node.close()


def sudo_calls(world: Path) -> int:
    return len((world / "calls").read_text().splitlines())


def test_a_user_whom_sudo_refuses_is_gathered_as_that_user(world: Path, tmp_path: Path) -> None:
    with throwaway_user(f"labno{os.getpid() % 100000}") as user, \
            node_server(world, tmp_path, REFUSE, (user,)) as server:
        facts, _ = gather_as(server, user, tmp_path)
    assert facts.error is None, facts.error
    assert facts.hostname and facts.cib is not None and "Web" in facts.cib.resources
    assert sudo_calls(world) == 1  # refused once, then the script ran as the user


def test_a_user_with_sudo_needs_one_sudo(world: Path, tmp_path: Path) -> None:
    with throwaway_user(f"labyes{os.getpid() % 100000}") as user, \
            node_server(world, tmp_path, ALLOW, (user,)) as server:
        facts, _ = gather_as(server, user, tmp_path)
    assert facts.error is None and facts.cib is not None
    assert sudo_calls(world) == 1


def test_root_needs_no_sudo(world: Path, tmp_path: Path) -> None:
    with node_server(world, tmp_path, REFUSE, ("root",)) as server:
        facts, _ = gather_as(server, "root", tmp_path)
    assert facts.error is None and facts.cib is not None
    assert sudo_calls(world) == 0


def test_a_connection_opened_ahead_is_used_and_its_failure_kept(world: Path, tmp_path: Path) -> None:
    with node_server(world, tmp_path, ALLOW, ("root",)) as server:
        node = SSHNode(NodeAddress.parse(server.spec("node1")), identity=server.client_key,
                       known_hosts=tmp_path / "known_hosts")
        node.connect_in_background()
        assert node.run("echo ahead", timeout=20).stdout == "ahead\n"
        node.close()
    with socket.socket() as closed_port:  # nothing listens once this block ends
        closed_port.bind(("127.0.0.1", 0))
        port = closed_port.getsockname()[1]
    node = SSHNode(NodeAddress.parse(f"node9=root@127.0.0.1:{port}"), identity=None,
                   known_hosts=tmp_path / "known_hosts", connect_timeout=3)
    node.connect_in_background()
    with pytest.raises(NodeError, match="node9"):
        node.run("true", timeout=10)
    node.close()


def test_closing_while_it_connects_does_not_wait(tmp_path: Path) -> None:
    """A node that accepts TCP but never says its SSH banner: close() returns at once."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        node = SSHNode(NodeAddress.parse(f"node9=root@127.0.0.1:{silent.getsockname()[1]}"), identity=None,
                       known_hosts=tmp_path / "known_hosts", connect_timeout=5)
        node.connect_in_background()
        time.sleep(0.3)
        began = time.monotonic()
        node.close()
        assert time.monotonic() - began < 0.5
