"""SSH to lab nodes with paramiko: one connection per node, bounded waits, pinned host keys.

Host keys are recorded at first contact (trust on first use) in a known_hosts
file of the lab's own and checked on every later connection.
"""

from __future__ import annotations

import logging
import math
import shlex
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from lab.core.errors import NodeError, UsageError
from lab.transport import log
from lab.transport.address import NodeAddress
from lab.transport.early import EarlyConnection
from lab.transport.paramiko_import import paramiko
from lab.transport.runner import CommandResult

# paramiko logs transport failures (e.g. "Error reading SSH protocol banner") from its own
# thread; without a handler Python prints them to stderr next to our one-line error.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class _RecordNewKey(paramiko.MissingHostKeyPolicy):
    """Trust on first use: remember an unknown host's key in the lab's known_hosts."""

    def __init__(self, path: Path, lock: threading.Lock) -> None:
        self.path = path
        self.lock = lock

    def missing_host_key(self, client, hostname, key) -> None:  # noqa: ANN001
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


_known_hosts_lock = threading.Lock()

# How long a channel request may wait on an established connection (see SSHNode._open_session).
OPEN_TIMEOUT = 30.0


# The most a node may send on one stream of one command. The biggest answer is a gather:
# one node's CIB, crm_mon view and shadow CIBs, each at most lab.core.xmlsafe.MAX_INPUT_BYTES
# (16 MiB, several times a large production CIB) and sent as base64 (4/3 of that). 32 MiB
# holds a CIB at that limit with its crm_mon view, and bounds the memory a hostile or broken
# node can make us spend (a node answering `cat /dev/zero` used to end in MemoryError).
MAX_STREAM_BYTES = 32 * 1024 * 1024


class _TooMuch(Exception):
    """A stream went over MAX_STREAM_BYTES (internal to SSHNode.run)."""


def _take(buffer: bytearray, chunk: bytes, stream: str, node: str) -> None:
    """Append chunk to buffer, refusing to hold more than MAX_STREAM_BYTES."""
    if len(buffer) + len(chunk) > MAX_STREAM_BYTES:
        raise _TooMuch(f"{node}: the command's {stream} exceeded {MAX_STREAM_BYTES // 2**20} MiB; "
                       "stopped reading it (a broken or hostile node?)")
    buffer += chunk


# After a command's exit status, how long to wait for the rest of its output when none comes.
# OpenSSH may send the exit status before it has read all the command's output from the pipe
# (seen here: 2 of 50 runs of a 533 KB answer came back cut, exit 0), so output is read to its
# end (EOF), not to the exit status; only a command that leaves a process holding its output
# open (a daemon it started without closing stdout) ends the read by this grace instead.
EOF_GRACE = 10.0


def _drained(channel: paramiko.Channel) -> bool:
    """The server said the output ended (EOF, or closed the channel) and every byte is read."""
    return ((channel.eof_received or channel.closed)
            and not channel.recv_ready() and not channel.recv_stderr_ready())


class SSHNode:
    """A live connection to one node; run() returns a CommandResult and never raises on rc."""

    def __init__(
        self,
        address: NodeAddress,
        *,
        identity: Path | None,
        known_hosts: Path,
        connect_timeout: float = 10.0,
        password: str | None = None,
        early: EarlyConnection | None = None,
    ) -> None:
        """EARLY: a TCP connection to the node already being opened (lab.transport.early);
        the first connect uses it, a later one (a replaced connection) opens its own."""
        self.address = address
        self.identity = identity
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self.password = password
        self._client: paramiko.SSHClient | None = None
        self.host_key_changed = False
        self._ahead: threading.Thread | None = None
        self._ahead_error: NodeError | None = None
        self._ahead_lock = threading.Lock()
        self._abandoned = self._connecting = False
        self._early = early

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def login_user(self) -> str:
        """Who the commands run as before any sudo: the gather skips asking the node."""
        return self.address.user

    def connect_in_background(self) -> None:
        """Start connecting now, while the caller does other work (`lab check` loads the
        exercise meanwhile); the first command waits for it. A failure is kept and raised by
        that command, so an unreachable node costs one connect timeout, not two. close() does
        not wait for it: the connection is closed as soon as it is made."""
        def connect() -> None:
            try:
                self.connect()
            except NodeError as exc:
                self._ahead_error = exc
            except Exception as exc:  # noqa: BLE001 - kept for the caller's thread, never lost
                self._ahead_error = NodeError(f"{self.name}: cannot connect: {type(exc).__name__}: {exc}")
            with self._ahead_lock:
                self._connecting = False
                if self._abandoned:
                    self._close_client()
        self._abandoned, self._connecting = False, True
        self._ahead = threading.Thread(target=connect, name=f"connect {self.name}", daemon=True)
        self._ahead.start()

    def _wait_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead.join()
            self._ahead = None
            error, self._ahead_error = self._ahead_error, None
            if error is not None:
                raise error

    def connect(self) -> None:
        client = paramiko.SSHClient()
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(_RecordNewKey(self.known_hosts, _known_hosts_lock))
        where = f"{self.address.user}@{self.address.host}:{self.address.port}"
        started = time.monotonic()
        early, self._early = self._early, None
        try:
            sock = early.take() if early is not None else None  # its failure: handled as connect's
            client.connect(
                self.address.host,
                port=self.address.port,
                username=self.address.user,
                key_filename=str(self.identity) if self.identity else None,
                password=self.password,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                allow_agent=self.identity is None,
                look_for_keys=self.identity is None,
                sock=sock,
            )
        except paramiko.BadHostKeyException:
            client.close()
            self.host_key_changed = True
            raise NodeError(
                f"{self.name}: host key of {where} changed since first contact; if the node was "
                f"rebuilt, remove its line from {self.known_hosts}"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            raise NodeError(f"{self.name}: authentication to {where} failed (check --identity)") from None
        except TimeoutError:
            client.close()
            raise NodeError(f"{self.name}: no answer from {where} within {self.connect_timeout:g} s") from None
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            if time.monotonic() - started >= self.connect_timeout:
                # paramiko goes on after a handshake that timed out and then fails with
                # unhelpful messages ("No existing session"): say what happened.
                raise NodeError(f"{self.name}: no SSH answer from {where} within "
                                f"{self.connect_timeout:g} s") from None
            raise NodeError(f"{self.name}: cannot connect to {where}: {exc}") from None
        transport = client.get_transport()
        if transport is not None:
            # A node that is reset (fenced, rebooted) never closes the connection: keepalives
            # make the rebooted node answer with a reset, so run() notices instead of waiting.
            transport.set_keepalive(5)
        self._client = client

    def _open_session(self) -> paramiko.Channel:
        """A session channel on the connection, with one fresh connection when that fails.

        A node busy booting under software emulation can take longer than the connect
        timeout to answer a channel request on an established connection (measured: more
        than 5 s on a 3-node lab on 2 cores); the wait is at least OPEN_TIMEOUT, and a
        connection that still does not answer is replaced once.
        """
        self._wait_ahead()
        wait = max(self.connect_timeout, OPEN_TIMEOUT)
        problem = ""
        for _attempt in (1, 2):
            if self._client is None:
                self.connect()
            assert self._client is not None
            transport = self._client.get_transport()
            try:
                if transport is None or not transport.is_active():
                    raise EOFError("the connection was closed")
                return transport.open_session(timeout=wait)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self.close()
                problem = str(exc) or type(exc).__name__
        raise NodeError(f"{self.name}: the SSH server opened no session, also not on a fresh "
                        f"connection (a request waits up to {wait:g} s): {problem}")

    def run(self, command: str | Sequence[str], *, timeout: float = 120.0,
            input_text: str | None = None, label: str | None = None) -> CommandResult:
        """Run a command (a shell string, or an argv list that is quoted here), recorded in the
        command log as LABEL (what it is for: a script sent on stdin says nothing by its argv).

        Reading is bounded in time (`timeout`, then exit 124) and in size: beyond
        MAX_STREAM_BYTES on stdout or stderr the channel is closed and NodeError raised.
        """
        if not 0 < timeout < math.inf:  # nan and inf would wait forever
            raise UsageError(f"a command timeout must be a finite number of seconds above 0, not {timeout}")
        text = command if isinstance(command, str) else shlex.join(command)
        timer = log.Timer()
        try:
            result = self._run(text, timeout, input_text)
        except NodeError as exc:
            log.record(self.name, label or text, -1, timer.seconds(), output_tail=str(exc))
            raise
        log.record(self.name, label or text, result.returncode, timer.seconds(), output_tail=result.tail())
        return result

    def _run(self, text: str, timeout: float, input_text: str | None) -> CommandResult:
        channel = self._open_session()
        channel.settimeout(1.0)
        channel.exec_command(text)
        if input_text is not None:
            channel.sendall(input_text.encode())
        channel.shutdown_write()
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        try:
            ended = self._read_output(channel, out, err, deadline)
        except _TooMuch as exc:
            channel.close()  # stop reading: the rest is never fetched, the command sees EOF/SIGPIPE
            raise NodeError(str(exc)) from None
        # The exit status comes before or after the end of the output (OpenSSH sends it when the
        # command exits, whether or not its pipes are drained).
        if not ended or not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
            channel.close()
            why = "" if not ended else " (its output ended, the command did not)"
            return CommandResult(text, 124, out.decode(errors="replace"),
                                 f"timed out after {timeout:g} s on {self.name}{why}")
        rc = channel.recv_exit_status()
        channel.close()
        return CommandResult(text, rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def _read_output(self, channel: paramiko.Channel, out: bytearray, err: bytearray, deadline: float) -> bool:
        """Read stdout and stderr to their end (see EOF_GRACE); False when the deadline came first.

        A short wait per read of stdout: stderr is drained between reads, so a command flooding
        stderr is read at full speed (with 1 s, 32 MiB of stderr took 30 s)."""
        channel.settimeout(0.05)
        progress = time.monotonic()  # when the last byte came
        while True:
            while channel.recv_ready():
                _take(out, channel.recv(65536), "output", self.name)
                progress = time.monotonic()
            while channel.recv_stderr_ready():
                _take(err, channel.recv_stderr(65536), "error output", self.name)
                progress = time.monotonic()
            if channel.closed and not channel.exit_status_ready():
                self.close()
                raise NodeError(f"{self.name}: connection lost while running a command")
            if _drained(channel):
                return True
            if channel.exit_status_ready() and time.monotonic() - progress > EOF_GRACE:
                return True  # exited, but something it started holds its output open
            if time.monotonic() > deadline:
                return False
            try:
                chunk = channel.recv(65536)
            except TimeoutError:
                continue
            if chunk:
                _take(out, chunk, "output", self.name)
                progress = time.monotonic()

    def close(self) -> None:
        early, self._early = self._early, None
        if early is not None:  # never used: the node was not asked anything
            early.close()
        ahead, self._ahead, self._ahead_error = self._ahead, None, None
        if ahead is not None:
            with self._ahead_lock:
                if self._connecting:  # still connecting: it closes what it opens
                    self._abandoned = True
                    return
        self._close_client()

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> SSHNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
