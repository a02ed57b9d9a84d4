"""Secrets never on a command line or in a log: scripts and secrets travel on stdin.

Every root script runs under one fixed command line (provision.ROOT_BOOTSTRAP, which sudo
logs on a node and `ps` shows); the script itself and every secret come on stdin, and inside
the scripts a secret reaches the command that needs it on a pipe from a shell builtin
(chpasswd, pcs without -p, base64 -d). The unit tests check every secret-bearing builder;
the loopback tests run the scripts through a real sshd on 127.0.0.1 (its sessions run as
root on this host, so their processes are visible here) while /proc/*/cmdline is sampled,
and record the arguments of every external command the scripts start.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shlex
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.engine.commands import command_context, render_command
from lab.engine.exercises import load
from lab.transport.address import NodeAddress
from lab.transport.ssh import SSHNode
from lab.vm import fencehost, provision
from lab.vm.commands import run_commands
from tests.sshd import Sshd

PASSWORD = "Pw-" + secrets.token_urlsafe(15)
NODES = ["node1", "node2"]


def _solution_scripts(password: str) -> list[str]:
    """The scripts `lab solve cluster-setup` runs (pcs in every syntax, crmsh), as lifecycle builds them."""
    exercise = load("cluster-setup")
    context = command_context(NODES, password=password)
    scripts = []
    for commands in (exercise.solution_pcs, exercise.solution_pcs09 or (), exercise.solution_crmsh):
        texts = [re.sub(r"^on [A-Za-z0-9_.-]+:\s*", "", render_command(c, context)) for c in commands]
        scripts.append("set -e\n" + "\n".join(texts) + "\n")
    return scripts


def secret_bearing(password: str, key: bytes, private_key: str) -> list[tuple[str, str, str | None, str]]:
    """(what, script, stdin, the secret as it can appear in text) for every builder that carries one."""
    fence_secret = base64.b64encode(key).decode()
    cases: list[tuple[str, str, str | None, str]] = [
        ("pcsd_script", provision.pcsd_script(password), None, password),
        *((f"auth_script {v}", provision.auth_script(NODES, password, v), None, password)
          for v in ("0.11.5", "0.10.8", "0.9.169", None)),
        *((f"solution {i}", s, None, password) for i, s in enumerate(_solution_scripts(password))),
        ("fence key", fencehost.guest_script(), fencehost.guest_input(key), fence_secret),
        ("cluster files", provision.install_cluster_files_script(),
         provision.cluster_files_input("totem {}\n", b"{}"), ""),
        ("root ssh", provision.root_ssh_script(),
         provision.root_ssh_input(private_key, "ssh-ed25519 AAAA root@t", "node1 ssh-ed25519 AAAA\n"),
         base64.b64encode(private_key.encode()).decode()),
    ]
    return cases


def test_every_root_script_runs_under_the_same_secret_free_command_line() -> None:
    """What sudo logs and `ps` shows is the bootstrap alone, whatever the script carries."""
    key, private_key = secrets.token_bytes(512), "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END-----\n"
    for user in ("vagrant", "root"):
        argv = provision.root_argv(user)
        assert argv[-3:] == ["bash", "-c", provision.ROOT_BOOTSTRAP]
        assert argv[:2] == (["sudo", "-n"] if user != "root" else ["bash", "-c"])
    joined = shlex.join(provision.root_argv("vagrant"))
    for what, script, stdin, secret in secret_bearing(PASSWORD, key, private_key):
        for needle in filter(None, (PASSWORD, secret, base64.b64encode(key).decode()[:40])):
            assert needle not in joined, what
        # ... and the script with its secret is on stdin: first line the script, then its input.
        sent = provision.root_input(script, stdin)
        first, _, rest = sent.partition("\n")
        assert base64.b64decode(first).decode() == script, what
        assert rest == (stdin or ""), what


def test_secrets_reach_commands_on_a_pipe_from_a_builtin() -> None:
    """In a script, a secret is only ever the argument of printf/echo (shell builtins: no process,
    no argv) piped into the command that needs it, either literally or through the UPPERCASE
    shell variable lab.transport.scripts.render assigns it to (an assignment runs no process);
    secrets given on stdin are not in the script."""
    key, private_key = secrets.token_bytes(512), "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END-----\n"
    piped = r"\s*(printf '%s\\n'|echo) \S+ \| \S"
    for what, script, stdin, secret in secret_bearing(PASSWORD, key, private_key):
        if stdin is not None:
            assert not secret or secret not in script, what
            continue
        lines = [ln for ln in script.splitlines() if secret in ln]
        assert lines, f"{what}: the secret is not in the script at all"
        for line in lines:
            assigned = re.fullmatch(r"([A-Z][A-Z0-9_]*)=\S+", line)
            if assigned:  # the parameter's uses: each one piped from a builtin
                uses = [ln for ln in script.splitlines()
                        if re.search(rf"\$\{{?{assigned[1]}\b(?!:\?)", ln)]
                assert uses, f"{what}: {assigned[1]} is never used"
                lines += uses
                continue
            assert re.match(piped, line), f"{what}: {line}"
            assert " -p " not in line, f"{what}: {line}"


def test_solutions_that_lab_solve_runs_never_pass_p() -> None:
    for script in _solution_scripts(PASSWORD):
        assert not re.search(r"\s-p\s", script), script


# --- through a real sshd on 127.0.0.1 ---------------------------------------------



@pytest.fixture
def node(sshd: Sshd, tmp_path: Path) -> Iterator[SSHNode]:
    """A root login on the loopback sshd: run_root runs the bootstrap without sudo (not installed here)."""
    with SSHNode(NodeAddress("node1", "root", "127.0.0.1", sshd.port), identity=sshd.client_key,
                 known_hosts=tmp_path / "known_hosts") as ssh_node:
        yield ssh_node


class ArgvSampler:
    """Reads every process's command line (/proc/*/cmdline) over and over while a script runs."""

    def __init__(self, *needles: str) -> None:
        self.needles = [n for n in needles if n]
        self.hits: list[str] = []
        self.bootstraps = 0  # samples that saw the bootstrap running: the sampler was not blind
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        marker = "failover-lab.XXXXXX"
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        text = handle.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if marker in text:
                    self.bootstraps += 1
                if any(n in text for n in self.needles):
                    self.hits.append(text)
            self.rounds += 1
            time.sleep(0.005)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH directory whose wrappers record the argv of every external command a script starts
    (then run the real one), plus a fake `pcs`: it stands in for pcs because no pcsd may be
    contacted here; it records its arguments and, for `host auth`/`cluster auth`, the password it
    read from stdin, slowly, so the sampler sees it run."""
    bin_dir, log = tmp_path / "bin", tmp_path / "argv.log"
    bin_dir.mkdir()
    for name in ("base64", "chmod", "mv", "install", "cat", "sleep", "sha256sum", "stat", "grep", "rm"):
        real = shutil.which(name)
        assert real, name
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >>{log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    pcs = bin_dir / "pcs"
    pcs.write_text(f"""#!/bin/sh
printf '%s\\n' "pcs $*" >>{log}
case "$1 $2" in
  "host auth"|"cluster auth") IFS= read -r pw; sleep 0.5; printf '%s' "$pw" >{tmp_path}/pcs-password ;;
esac
""")
    pcs.chmod(0o755)
    return bin_dir, log


def _with_path(bin_dir: Path, script: str) -> str:
    return f"export PATH={bin_dir}:$PATH\n{script}"


def test_a_slow_script_with_a_secret_shows_it_in_no_process_argument(node: SSHNode, tmp_path: Path,
                                                                     recorder: tuple[Path, Path]) -> None:
    bin_dir, log = recorder
    script = _with_path(bin_dir, f"""set -eu
secret={shlex.quote(PASSWORD)}
echo "mode $(stat -c %a "$0")"
sleep 1
printf '%s\\n' "$secret" | (sleep 1; sha256sum)
""")
    with ArgvSampler(PASSWORD) as sampler:
        result = provision.run_root(node, script, "slow secret script")
    assert sampler.hits == []
    assert sampler.bootstraps > 0 and sampler.rounds > 20, "the sampler never saw the script run"
    assert result.stdout.splitlines()[0] == "mode 600"  # the script's file on the node
    assert result.stdout.split()[2] == hashlib.sha256((PASSWORD + "\n").encode()).hexdigest()
    assert "sleep 1" in log.read_text() and PASSWORD not in log.read_text()
    assert not list(Path("/run").glob("failover-lab.*"))  # the script's file is gone


@pytest.mark.parametrize("version", ["0.11.5", "0.9.169"])
def test_pcs_auth_gets_the_password_on_stdin(node: SSHNode, tmp_path: Path, recorder: tuple[Path, Path],
                                            version: str) -> None:
    bin_dir, log = recorder
    if Path("/var/lib/pcsd/known-hosts").exists() or Path("/var/lib/pcsd/tokens").exists():
        pytest.skip("this host's pcsd has known hosts: auth_script would skip pcs")
    with ArgvSampler(PASSWORD) as sampler:
        provision.run_root(node, _with_path(bin_dir, provision.auth_script(NODES, PASSWORD, version)), "pcs auth")
    assert (tmp_path / "pcs-password").read_text() == PASSWORD
    calls = log.read_text()
    assert ("pcs host auth node1 node2 -u hacluster" if version != "0.9.169"
            else "pcs cluster auth node1 node2 -u hacluster") in calls
    assert PASSWORD not in calls
    assert sampler.bootstraps > 0 and sampler.hits == []


def test_lab_solve_of_cluster_setup_puts_the_password_in_no_argument(node: SSHNode, tmp_path: Path,
                                                                     recorder: tuple[Path, Path]) -> None:
    """The reference solution through lab solve's own runner (lab.vm.commands.run_commands, run_root)."""
    bin_dir, log = recorder
    exercise = load("cluster-setup")
    context = command_context(["node1", "node2"], password=PASSWORD)
    with ArgvSampler(PASSWORD) as sampler:
        run_commands({"node1": node}, "node1", [f"export PATH={bin_dir}:$PATH", *exercise.solution_pcs],
                                context, "solution of cluster-setup")
    assert sampler.hits == []
    assert sampler.bootstraps > 0
    assert (tmp_path / "pcs-password").read_text() == PASSWORD
    calls = log.read_text().splitlines()
    assert "pcs cluster setup my_cluster node1 node2" in calls and PASSWORD not in "\n".join(calls)


def test_fence_key_travels_on_stdin(node: SSHNode, tmp_path: Path, recorder: tuple[Path, Path]) -> None:
    bin_dir, log = recorder
    key = secrets.token_bytes(512)
    root = tmp_path / "guest"
    encoded = base64.b64encode(key).decode()
    with ArgvSampler(encoded[:32]) as sampler:
        provision.run_root(node, _with_path(bin_dir, fencehost.guest_script(str(root))), "fence key",
                           input_text=fencehost.guest_input(key))
    path = root / fencehost.GUEST_KEY.lstrip("/")
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "base64 -d" in log.read_text() and encoded[:32] not in log.read_text()
    assert sampler.hits == []


def test_a_command_that_reads_stdin_cannot_eat_the_script(node: SSHNode) -> None:
    """crmsh reads stdin when it is not a terminal: it gets the script's input, never the script."""
    result = provision.run_root(node, "cat\necho after\n", "stdin", input_text="input line\n")
    assert result.stdout == "input line\nafter\n"
    result = provision.run_root(node, "cat >/dev/null\necho still here\n", "no input")
    assert result.stdout == "still here\n"


def test_a_failing_script_names_node_step_and_output(node: SSHNode) -> None:
    from lab.core.errors import NodeError

    with pytest.raises(NodeError, match=r"node1: the step failed \(exit 3\): went wrong"):
        provision.run_root(node, "echo went wrong >&2; exit 3\n", "the step")


def test_no_secret_in_the_logs_this_host_keeps(sshd: Sshd, node: SSHNode) -> None:
    """After a secret-bearing script: not in the sshd's log, nor in any log under /var/log written since."""
    began = time.time() - 1
    provision.run_root(node, provision.auth_script(NODES, PASSWORD, "0.11.5").replace("pcs ", ": pcs "), "auth")
    time.sleep(0.2)
    assert PASSWORD not in sshd.log.read_text(errors="replace")
    for path in Path("/var/log").rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime >= began and path.stat().st_size < 50_000_000:
                assert PASSWORD.encode() not in path.read_bytes(), path
        except PermissionError:
            continue
