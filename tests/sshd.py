"""A real OpenSSH server on 127.0.0.1 for the SSH tests, as a child process.

The server has its own host key and accepts one throwaway user key (root login by
key only). `SetEnv CIB_file=...` makes `cibadmin --query` and `crm_mon` in the
remote session read a CIB file made by the real tools, so gathering over SSH sees a
real cluster state without a cluster.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_key(path: Path) -> Path:
    """A new ed25519 key pair without passphrase at path (private) and path.pub."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "failover-lab-test",
                    "-f", str(path)], check=True, capture_output=True)
    return path


@dataclass
class Sshd:
    """A running sshd: where it listens, which keys it knows, its log."""

    port: int
    host_key: Path
    client_key: Path
    cib: Path
    log: Path
    process: subprocess.Popen

    def spec(self, name: str, user: str = "root") -> str:
        return f"{name}={user}@127.0.0.1:{self.port}"


def _wait_for_banner(port: int, process: subprocess.Popen, log: Path, timeout: float = 10.0) -> None:
    """Return once the server on port greets with an SSH banner; fail if sshd died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on 127.0.0.1:{port} within {timeout:g} s: "
                       f"{log.read_text()[-2000:]}")


@contextmanager
def running_sshd(workdir: Path, cib: Path, *, port: int | None = None, host_key: Path | None = None,
                 client_key: Path | None = None, users: Sequence[str] = ("root",),
                 env: Mapping[str, str] | None = None, extra_config: str = "") -> Iterator[Sshd]:
    """Run /usr/sbin/sshd -D -e on 127.0.0.1 (a free port unless given) until the block ends.

    The authorized_keys file lives in a world-readable directory of its own, since sshd
    reads it as the logging-in user (non-root users included). `env` adds variables to the
    sessions' environment (sshd reads only its first SetEnv line, so all go on one);
    `extra_config` is appended to sshd_config (e.g. a ForceCommand for a hostile node).
    """
    if not SSHD.exists():
        pytest.skip("openssh-server (/usr/sbin/sshd) is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    port = port or free_port()
    host_key = host_key or make_key(workdir / f"host_key_{port}_{time.monotonic_ns()}")
    client_key = client_key or make_key(workdir / "client_key")
    keys_dir = Path(tempfile.mkdtemp(prefix="lab-sshd-keys-"))
    keys_dir.chmod(0o755)
    authorized = keys_dir / "authorized_keys"
    shutil.copyfile(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o644)
    config = workdir / f"sshd_config_{port}"
    log = workdir / f"sshd_{port}.log"
    config.write_text(
        f"ListenAddress 127.0.0.1:{port}\n"
        "AddressFamily inet\n"
        f"HostKey {host_key}\n"
        f"PidFile {workdir / f'sshd_{port}.pid'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        f"AllowUsers {' '.join(users)}\n"
        "StrictModes no\n"
        "UsePAM no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "LogLevel VERBOSE\n"
        f"SetEnv {' '.join(f'{k}={v}' for k, v in {'CIB_file': str(cib), **(env or {})}.items())}\n"
        + extra_config
    )
    check = subprocess.run([str(SSHD), "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"sshd -t rejected the test config: {check.stderr.strip()}")
    with log.open("wb") as log_handle:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                   stdout=log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_for_banner(port, process, log)
        yield Sshd(port, host_key, client_key, cib, log, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(keys_dir, ignore_errors=True)


@contextmanager
def throwaway_user(name: str) -> Iterator[str]:
    """A local user that may log in by key (not locked), removed afterwards."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("creating a user needs root and useradd")
    subprocess.run(["userdel", name], capture_output=True)  # a leftover of an interrupted run
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)
    try:
        # With UsePAM no, sshd refuses accounts whose password is locked ('!'); '*' is not locked.
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One loopback sshd per test module; tests copy the CIB state they need into `sshd.cib`.

    tests/conftest.py imports it, so every test module has it."""
    work = tmp_path_factory.mktemp("sshd")
    cib = work / "remote-cib.xml"
    cib.write_text("<cib/>")
    with running_sshd(work, cib) as server:
        yield server
