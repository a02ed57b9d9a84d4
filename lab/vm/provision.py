"""What provisioning does inside the nodes: the scripts run over SSH, and how they run as root.

The scripts are files in lab/scripts/provision (shared functions in lab/scripts/lib), each
rendered by a pure builder here with its UPPERCASE parameters (lab.transport.scripts.render);
the box profile's own commands (boxes/profiles/*.toml) are passed in as they are. Every script
is idempotent (a step already true is skipped inside the node, in the same round trip).
Scripts run as root with the script on stdin (see run_root): the command line on the node
is always the same fixed bootstrap, so sudo's journal entry and /proc/PID/cmdline never hold
a script or a secret; secrets reach the commands that need them on stdin (chpasswd, pcs host
auth without -p, base64 -d), never as an argument.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Sequence

from lab.core.errors import NodeError
from lab.engine.pcs import pcs_generation
from lab.transport import scripts
from lab.transport.runner import CommandResult
from lab.transport.ssh import SSHNode
from lab.vm.labstate import SSH_USER
from lab.vm.profiles import Profile

CLUSTER_NAME = "my_cluster"


# --- scripts -------------------------------------------------------------------

def hosts_file(nodes: Sequence[tuple[str, str]]) -> str:
    """/etc/hosts with every lab node and no 127.0.1.1 line (corosync would bind to loopback)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters", "# Failover Lab nodes"]
    lines += [f"{ip}\t{name}" for name, ip in nodes]
    return "\n".join(lines) + "\n"


def _address_commands(profile: Profile, iface: str, ip: str, cidr: str) -> str:
    """The box profile's own commands that give IFACE the fixed address IP persistently."""
    net = ipaddress.ip_network(cidr)
    return profile.network.format(iface=iface, ip=ip, prefixlen=net.prefixlen, netmask=net.netmask).strip()


def system_script(*, node: str, ip: str, cidr: str, nodes: Sequence[tuple[str, str]],
                  pubkey: str, profile: Profile, link1: tuple[str, str] | None) -> str:
    """Identity, /etc/hosts, the fixed cluster addresses, the lab's SSH key instead of the insecure one.

    LINK1 is (address, network) on the second cluster network, on the profile's link1_iface;
    None for a lab made before that network (its domains have no such NIC)."""
    network = _address_commands(profile, profile.private_iface, ip, cidr)
    if isinstance(link1, tuple):
        network += "\n" + _address_commands(profile, profile.link1_iface, *link1)
    return scripts.render("provision/system.sh", NODE=node, HOSTS=hosts_file(nodes), NETWORK=network,
                          SSH_USER=SSH_USER, PUBKEY=pubkey.strip())


def packages_script(profile: Profile) -> str:
    """EL: enable the HA repository and install the cluster packages (Debian box: nothing).
    All of it is the box profile's own shell (boxes/profiles/*.toml), one command a line."""
    lines = ["set -eu"] + list(profile.repo_setup)
    if profile.install and profile.packages:
        lines.append(profile.install.format(packages=" ".join(profile.packages)))
    lines += list(profile.firewall)
    return "\n".join(lines) + "\n"


PCSD_WAIT = 300

# Units the lab starts, and how long systemd lets each start. Under software emulation a first
# start of pcsd-ruby took more than systemd's default 90 s (pcsd-ruby.service: start operation
# timed out; pacemaker's own unit says 60 s): the lab gives every such unit 5 minutes.
LAB_UNITS = ("pcsd-ruby", "pcsd", "corosync", "pacemaker")
UNIT_START_TIMEOUT = 300
START_TRIES = 3
# A script that starts units may need every try in full, plus its own waits.
PCSD_SETUP_TIMEOUT = START_TRIES * UNIT_START_TIMEOUT + PCSD_WAIT
CLUSTER_START_TIMEOUT = 2 * START_TRIES * UNIT_START_TIMEOUT
# The shared functions of lab/scripts/lib a script starting units uses: start_unit (retried after
# a failed start, see lab/scripts/lib/start_unit.sh) and install_unit_timeouts.
_UNIT_LIBS = ("start_unit.sh", "unit_timeouts.sh")


def unit_timeout_dropin() -> str:
    """The systemd drop-in that gives a unit the lab's start timeout (the box ships the same)."""
    return ("# Failover Lab: starts under software emulation can take minutes\n"
            f"[Service]\nTimeoutStartSec={UNIT_START_TIMEOUT}\n")


def _unit_params(root: str = "") -> dict[str, object]:
    return {"START_TRIES": START_TRIES, "LAB_UNITS": LAB_UNITS, "UNIT_START_TIMEOUT": UNIT_START_TIMEOUT,
            "UNIT_DROPIN": unit_timeout_dropin(), "ROOT": root}


def unit_timeouts_script(root: str = "") -> str:
    """Install the start-timeout drop-in for every lab unit (boxes without it: EL, older builds).
    ROOT prefixes the paths (tests install into a scratch directory)."""
    return scripts.render("provision/unit_timeouts.sh", libs=_UNIT_LIBS, **_unit_params(root))


# How long pcs waits for each pcsd request: the auth step's --request-timeout, and on a lab under
# software emulation pcs's own default (60 s as shipped), which `pcs cluster setup` cannot be
# given on its command line: its first request (pcsd runs `pcs cluster destroy`) took 60-80 s there.
PCS_REQUEST_TIMEOUT = 180


def pcs_request_timeout(driver: str) -> int | None:
    """pcs's default request timeout on a lab with this libvirt DRIVER; None = as shipped (KVM)."""
    return PCS_REQUEST_TIMEOUT if driver == "qemu" else None


def pcsd_script(password: str, request_timeout: int | None = None) -> str:
    """hacluster password, no leftover cluster (Debian's one-node default), pcsd enabled, up and
    answering; with REQUEST_TIMEOUT, pcs waits that long for each pcsd instead of 60 s."""
    return scripts.render("provision/pcsd.sh", libs=(*_UNIT_LIBS, "pcs_timeout.sh"), **_unit_params(),
                          HACLUSTER_PASSWORD=password, CLUSTER_NAME=CLUSTER_NAME, PCSD_WAIT=PCSD_WAIT,
                          PCS_REQUEST_TIMEOUT="" if request_timeout is None else request_timeout)


def auth_script(nodes: Sequence[str], password: str, pcs_version: str | None) -> str:
    """pcs host auth (0.10+) or pcs cluster auth (0.9), skipped when pcsd already knows every node.

    Without -p, pcs reads the password from stdin when stdin is not a terminal (pcs utils
    get_user_and_pass -> get_terminal_password, 0.9 to 0.11): printf is a shell builtin, so the
    password is in no process's arguments (with -p it would be in pcs's, for `ps` to see).
    """
    return scripts.render("provision/auth.sh", NODES=tuple(nodes), HACLUSTER_PASSWORD=password,
                          PCS_GENERATION=pcs_generation(pcs_version), PCS_REQUEST_TIMEOUT=PCS_REQUEST_TIMEOUT)


def setup_script(nodes: Sequence[str]) -> str:
    """pcs 0.9: create and start my_cluster through pcsd (skipped when corosync.conf names it)."""
    return scripts.render("provision/setup09.sh", CLUSTER_NAME=CLUSTER_NAME, NODES=tuple(nodes))


# Where a node's cluster identity lives; equal digests on every node = the cluster is configured.
CLUSTER_FILES = ("/etc/corosync/corosync.conf", "/etc/corosync/authkey", "/etc/pacemaker/authkey")


def cluster_files_digest_script() -> str:
    """One line: the digest of this node's cluster files, or 'missing' (absent, or not my_cluster's)."""
    return scripts.render("provision/cluster_files_digest.sh", CLUSTER_FILES=CLUSTER_FILES,
                          CLUSTER_NAME=CLUSTER_NAME)


def local_setup_script(nodes: Sequence[tuple[str, str]]) -> str:
    """pcs 0.10+ local-only mode: pcs writes my_cluster's corosync.conf without contacting the nodes.

    `pcs cluster setup` over pcsd first runs `pcs cluster destroy` on every node through pcsd;
    under software emulation that alone takes 60-80 s on a busy guest and misses pcs's fixed 60 s
    request timeout (3 guests on 2 cores). The lab writes pcs's own corosync.conf and the keys
    itself instead, the way `pcs cluster setup` would, and starts the nodes in parallel.
    """
    members = tuple(word for name, ip in nodes for word in (name, f"addr={ip}"))
    return scripts.render("provision/local_setup.sh", CLUSTER_NAME=CLUSTER_NAME, MEMBERS=members)


def _b64_line(data: bytes) -> str:
    return base64.b64encode(data).decode() + "\n"


def install_cluster_files_script(root: str = "") -> str:
    """Install corosync.conf, both authkeys and pcsd's known hosts from stdin (cluster_files_input),
    owners and modes as pcs sets them. ROOT prefixes every path (tests install into a scratch
    directory)."""
    return scripts.render("provision/install_cluster_files.sh", libs=("put.sh",), ROOT=root)


CLUSTER_KEY_BYTES = 256  # as pcs makes the corosync and pacemaker keys


def pcsd_known_hosts_script() -> str:
    """pcsd's known-hosts file of this node (empty when there is none), for cluster_files_input."""
    return scripts.render("provision/pcsd_known_hosts.sh")


def cluster_files_input(corosync_conf: str, known_hosts: bytes) -> str:
    """Stdin for install_cluster_files_script: fresh random keys for every lab."""
    return (_b64_line(secrets.token_bytes(CLUSTER_KEY_BYTES)) + _b64_line(secrets.token_bytes(CLUSTER_KEY_BYTES))
            + _b64_line(known_hosts) + _b64_line(corosync_conf.encode()))


# A new cluster's first election: pacemaker's default dc-deadtime (20 s) is idle waiting in lab up.
FIRST_DC_DEADTIME = "5s"


def start_cluster_script(root: str = "") -> str:
    """Start corosync, then pacemaker, on this node (what `pcs cluster start` does locally), each
    retried after a timed-out start; a first start with FIRST_DC_DEADTIME in its new CIB. ROOT
    prefixes the paths (tests)."""
    return scripts.render("provision/start_cluster.sh", libs=_UNIT_LIBS, DC_DEADTIME=FIRST_DC_DEADTIME,
                          **_unit_params(root))


def host_keys_script() -> str:
    """This node's SSH host public keys, one per line."""
    return scripts.render("provision/host_keys.sh")


def root_known_hosts(host_keys: dict[tuple[str, str], str]) -> str:
    """known_hosts lines naming each node by name and cluster address: {(name, ip): host_keys_script output}."""
    lines = []
    for (name, ip), text in host_keys.items():
        for key in text.splitlines():
            fields = key.split()
            if len(fields) >= 2:
                lines.append(f"{name},{ip} {fields[0]} {fields[1]}")
    return "\n".join(lines) + "\n"


def root_ssh_script(root: str = "") -> str:
    """root's SSH key, authorized on every node, and the nodes' pinned host keys, for crmsh's
    cluster commands (`crm cluster start/stop`, `crm corosync push`, `crm cluster run`); stdin is
    root_ssh_input. ROOT prefixes every path (tests install into a scratch directory)."""
    return scripts.render("provision/root_ssh.sh", libs=("put.sh",), ROOT=root)


def root_ssh_input(private_key: str, public_key: str, known_hosts: str, lab_public_key: str = "") -> str:
    """Stdin for root_ssh_script: the private key and known_hosts in base64, the public key line as
    is, then the lab's own public key line (authorized for root too: the grader's login)."""
    return (_b64_line(private_key.encode()) + public_key.strip() + "\n" + _b64_line(known_hosts.encode())
            + lab_public_key.strip() + "\n")


def wait_healthy_script(count: int | None, *, timeout: int = 300, settle: bool = True) -> str:
    """Poll (every 0.5 s) until COUNT nodes are online in a quorate partition; then let it settle.
    COUNT None: every node in pacemaker's node list (after a solution that added or removed one)."""
    return scripts.render("provision/wait_healthy.sh", COUNT="configured" if count is None else count,
                          TIMEOUT=timeout,
                          SETTLE="yes" if settle else "no")


def wait_offline_script(nodes: list[str], *, timeout: int = 90) -> str:
    """Poll until this node's pacemaker reports every named node offline (a fault took effect)."""
    return scripts.render("provision/wait_offline.sh", NODES=tuple(nodes), TIMEOUT=timeout)


def stonith_script() -> str:
    """stonith-enabled=false with the C tool (pcs costs seconds of Python start-up per call);
    dc-deadtime deleted (start_cluster_script set it for the first election only)."""
    return scripts.render("provision/stonith.sh")


def set_clock_command(epoch: float) -> str:
    """After a memory snapshot revert the guest clock is the snapshot's: set it to the host's
    (a root command line: one process, where a root script starts several)."""
    return f"date -s @{epoch:.3f} >/dev/null"


# --- running them --------------------------------------------------------------

# The one command line every root script runs under (sudo logs it, `ps` shows it): a fixed
# bootstrap that reads the script from the first line of stdin (base64), writes it to a 0600 file
# (under /run, a tmpfs, or $TMPDIR/tmp where /run is not writable), runs it with the rest of stdin
# as its stdin and removes it. bash's read takes exactly one line from a pipe, and the script is
# in its file before it starts: a command in it that reads stdin (crmsh does when it is not a
# terminal) reads the script's input, never the script.
ROOT_BOOTSTRAP = (
    'umask 077; f=$(mktemp /run/failover-lab.XXXXXX 2>/dev/null || mktemp) || exit 125; '
    "trap 'rm -f \"$f\"' EXIT; "
    'IFS= read -r s && printf %s "$s" | base64 -d >"$f" || { echo "no script on stdin" >&2; exit 125; }; '
    'unset s; bash "$f"'
)


def sudo_words(user: str) -> list[str]:
    """What a root command is prefixed with when logged in as USER: nothing for root."""
    return [] if user == "root" else ["sudo", "-n"]


def root_argv(user: str) -> list[str]:
    """The argv run on a node for every root script: the bootstrap, through sudo unless USER is root."""
    return [*sudo_words(user), "bash", "-c", ROOT_BOOTSTRAP]


def root_input(script: str, input_text: str | None = None) -> str:
    """What the bootstrap reads: the script as one base64 line, then the script's own stdin."""
    return base64.b64encode(script.encode()).decode() + "\n" + (input_text or "")


def run_root(node: SSHNode, script: str, what: str, *, timeout: float = 600,
             input_text: str | None = None) -> CommandResult:
    """Run a script as root on the node (script and secrets on stdin, see ROOT_BOOTSTRAP); a failure
    is a NodeError naming the node and the step."""
    result = node.run(root_argv(node.address.user), timeout=timeout, input_text=root_input(script, input_text),
                      label=f"root script: {what}")
    if not result.ok:
        raise NodeError(f"{node.name}: {what} failed (exit {result.returncode}): {result.tail(3)}",
                        node=node.name, command=what)
    return result
