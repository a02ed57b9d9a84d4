"""TCP connections to the nodes' SSH port, opened before the SSH library is loaded.

On accepting a connection a guest's sshd forks and re-executes itself before it sends its
banner: about 0.17 s under software emulation, before any key exchange can start. Loading
paramiko and the grader costs the host about as long. `lab check` therefore opens the TCP
connections first (this module needs only the standard library), and the SSH handshake starts
on a socket the guest has already answered. A connection that fails keeps its error for the
SSH layer to report in its own words, so that knocking early never costs a second timeout.
"""

from __future__ import annotations

import socket
import threading


class EarlyConnection:
    """One TCP connection being opened in the background; take() hands it over once."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._error: OSError | None = None
        self._taken = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._open, name=f"tcp {host}:{port}", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:  # TimeoutError is one: the SSH layer says "no answer" for it
            self._error = exc
            return
        with self._lock:
            if self._taken:  # closed (or taken) before it was made: nobody will use it
                sock.close()
            else:
                self._sock = sock

    def take(self) -> socket.socket:
        """The connected socket (waits for the attempt), once; the attempt's OSError otherwise."""
        self._thread.join()
        with self._lock:
            if self._taken:
                raise OSError(f"the early connection to {self.host}:{self.port} was already used")
            self._taken = True
            sock, self._sock = self._sock, None
        if sock is None:
            raise self._error or OSError(f"no connection to {self.host}:{self.port}")
        sock.settimeout(None)  # from here on the SSH library sets its own timeouts
        return sock

    def close(self) -> None:
        """Drop the connection unused (or the attempt still under way, when it ends)."""
        with self._lock:
            self._taken = True
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
