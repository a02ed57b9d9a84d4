"""`lab ssh`: the OpenSSH client's command line for a node of the current lab, with the lab's
own key and pinned host keys. Only the lab state is loaded (no SSH library): the command
execs ssh at once."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from lab.core.errors import UsageError
from lab.vm.labstate import SSH_USER, current_lab


class NoSSHClient(UsageError):
    """`lab ssh` needs the OpenSSH client on this host."""


def ssh_argv(node: str, command: Sequence[str]) -> list[str]:
    lab = current_lab()
    spec = lab.node(node)
    if shutil.which("ssh") is None:
        raise NoSSHClient("the ssh client is not installed (apt-get install openssh-client)")
    return ["ssh", "-i", str(lab.identity), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR", f"{SSH_USER}@{spec.ip}", *command]
