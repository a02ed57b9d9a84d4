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
from lab.workflows.checking import gather_from_addresses, login_refused
from tests.sshd import Sshd, free_port, make_key, running_sshd, throwaway_user

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


def _two_nodes(world: Path, tmp_path: Path, node2_users: tuple[str, ...], user: str):
    """node1 lets root and USER in, node2 only NODE2_USERS; one client key for both."""
    fake = world / "bin" / "sudo"
    fake.write_text(ALLOW.format(calls=world / "calls"))
    fake.chmod(0o755)
    env = {"PATH": f"{world / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    key = make_key(tmp_path / "client_key")
    first = running_sshd(tmp_path / "sshd1", world / "cib.xml", users=("root", user), env=env, client_key=key)
    second = running_sshd(tmp_path / "sshd2", world / "cib.xml", users=node2_users, env=env, client_key=key)
    return first, second, key


def _addresses(servers: tuple[Sshd, Sshd], user: str) -> list[NodeAddress]:
    return [NodeAddress.parse(s.spec(f"node{i}", user)) for i, s in enumerate(servers, start=1)]


def test_a_node_refusing_root_reads_every_node_as_the_fallback_user(world: Path, tmp_path: Path) -> None:
    """Root's key taken away on node2: the whole read is done again as the user with sudo (both
    nodes, one login user for the lab), and the root answers are not what is graded."""
    with throwaway_user(f"labfb{os.getpid() % 100000}") as user:
        first, second, key = _two_nodes(world, tmp_path, (user,), user)
        with first as server1, second as server2:
            facts = gather_from_addresses(_addresses((server1, server2), "root"), identity=key,
                                          known_hosts=tmp_path / "known_hosts", timeout=10,
                                          sections=frozenset({"cib"}),
                                          fallback=_addresses((server1, server2), user))
            log1 = server1.log.read_text()
    assert [n.error for n in facts.nodes.values()] == [None, None]
    assert all(n.cib is not None and "Web" in n.cib.resources for n in facts.nodes.values())
    assert "Accepted publickey for root" in log1 and f"Accepted publickey for {user}" in log1
    assert sudo_calls(world) == 2  # the fallback's read, once per node; root's needed none


def test_without_a_fallback_or_with_a_node_down_nothing_is_read_twice(world: Path, tmp_path: Path) -> None:
    """A refused login with no fallback (a vagrant-login lab) stays that node's error; a node that
    is down is not a refused login: no second read as the fallback user."""
    with throwaway_user(f"labnf{os.getpid() % 100000}") as user:
        first, second, key = _two_nodes(world, tmp_path, (user,), user)
        with first as server1, second as server2:
            facts = gather_from_addresses(_addresses((server1, server2), "root"), identity=key,
                                          known_hosts=tmp_path / "known_hosts", timeout=10,
                                          sections=frozenset({"cib"}))
            assert facts.nodes["node1"].error is None and facts.nodes["node1"].cib is not None
            assert login_refused(facts.nodes["node2"].error), facts.nodes["node2"].error
            down = NodeAddress.parse(f"node2=root@127.0.0.1:{free_port()}")
            facts = gather_from_addresses([_addresses((server1, server2), "root")[0], down], identity=key,
                                          known_hosts=tmp_path / "known_hosts", timeout=5,
                                          sections=frozenset({"cib"}),
                                          fallback=_addresses((server1, server2), user))
    assert facts.nodes["node1"].error is None and not facts.nodes["node2"].reachable
    assert not login_refused(facts.nodes["node2"].error)
    assert sudo_calls(world) == 0
