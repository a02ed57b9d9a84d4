"""What provisioning does inside the nodes: box profiles and the scripts run over SSH.

Every script here is idempotent (a step already true is skipped inside the node, in
the same round trip) and is built by a pure function, so tests check the rendering.
Scripts run as root with the script on stdin (see run_root): the command line on the node
is always the same fixed bootstrap, so sudo's journal entry and /proc/PID/cmdline never hold
a script or a secret; secrets reach the commands that need them on stdin (chpasswd, pcs host
auth without -p, base64 -d), never as an argument.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import shlex
from collections.abc import Sequence

from lab.core.errors import NodeError
from lab.engine.exercises import pcs_generation
from lab.transport.runner import CommandResult
from lab.transport.ssh import SSHNode
from lab.vm.profiles import Profile

CLUSTER_NAME = "my_cluster"


# --- scripts -------------------------------------------------------------------

def hosts_file(nodes: Sequence[tuple[str, str]]) -> str:
    """/etc/hosts with every lab node and no 127.0.1.1 line (corosync would bind to loopback)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters", "# Failover Lab nodes"]
    lines += [f"{ip}\t{name}" for name, ip in nodes]
    return "\n".join(lines) + "\n"


def system_script(*, node: str, ip: str, cidr: str, nodes: Sequence[tuple[str, str]],
                  pubkey: str, profile: Profile, ssh_user: str = "vagrant") -> str:
    """Identity, /etc/hosts, the fixed cluster address, the lab's SSH key instead of the insecure one."""
    net = ipaddress.ip_network(cidr)
    network = profile.network.format(iface=profile.private_iface, ip=ip, prefixlen=net.prefixlen,
                                     netmask=net.netmask)
    home = f"/home/{ssh_user}"
    return f"""set -eu
[ "$(cat /etc/hostname 2>/dev/null)" = {node} ] || echo {node} >/etc/hostname
[ "$(hostname)" = {node} ] || hostname {node}
cat >/etc/hosts.lab <<'HOSTS'
{hosts_file(nodes)}HOSTS
cmp -s /etc/hosts.lab /etc/hosts && rm -f /etc/hosts.lab || mv /etc/hosts.lab /etc/hosts
{network.strip()}
install -d -m 0700 -o {ssh_user} -g {ssh_user} {home}/.ssh
printf '%s\\n' {shlex.quote(pubkey.strip())} >{home}/.ssh/authorized_keys.lab
chown {ssh_user}: {home}/.ssh/authorized_keys.lab; chmod 0600 {home}/.ssh/authorized_keys.lab
mv {home}/.ssh/authorized_keys.lab {home}/.ssh/authorized_keys
"""


def packages_script(profile: Profile) -> str:
    """EL: enable the HA repository and install the cluster packages (Debian box: nothing)."""
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


def unit_timeout_dropin() -> str:
    """The systemd drop-in that gives a unit the lab's start timeout (the box ships the same)."""
    return ("# Failover Lab: starts under software emulation can take minutes\n"
            f"[Service]\nTimeoutStartSec={UNIT_START_TIMEOUT}\n")


def unit_timeouts_script() -> str:
    """Install the start-timeout drop-in for every lab unit (boxes without it: EL, older builds)."""
    return f"""_reload=0
for _u in {' '.join(LAB_UNITS)}; do
  _d=/etc/systemd/system/$_u.service.d
  grep -qsx 'TimeoutStartSec={UNIT_START_TIMEOUT}' $_d/50-failover-lab-timeout.conf && continue
  install -d $_d; printf '%s' {shlex.quote(unit_timeout_dropin())} >$_d/50-failover-lab-timeout.conf; _reload=1
done
[ $_reload -eq 0 ] || systemctl daemon-reload
"""


# start_unit UNIT: start it; after a failed start say why on stderr (a line starting
# 'failover-lab: retry'), clear systemd's failed state and try again, up to START_TRIES times.
_START_UNIT = f"""start_unit() {{
  _try=1
  until systemctl is-active -q "$1"; do
    if _err=$(systemctl start "$1" 2>&1); then break; fi
    _why=$(systemctl show -p Result --value "$1" 2>/dev/null)
    if [ $_try -ge {START_TRIES} ]; then
      echo "$1 did not start after {START_TRIES} tries: $_err (result: $_why)" >&2; return 1
    fi
    echo "failover-lab: retry $1 (try $_try of {START_TRIES} failed: $_err; result: $_why)" >&2
    systemctl reset-failed "$1" pcsd-ruby.service 2>/dev/null || true
    _try=$((_try+1))
  done
}}
"""


def pcsd_script(password: str, *, wait: int = PCSD_WAIT) -> str:
    """hacluster password, no leftover cluster (Debian's one-node default), pcsd enabled, up and answering."""
    return f"""set -eu
echo {shlex.quote('hacluster:' + password)} | chpasswd
if [ -e /etc/corosync/corosync.conf ] && ! grep -q {CLUSTER_NAME} /etc/corosync/corosync.conf; then
  pcs cluster destroy --force >/dev/null 2>&1 || true
fi
{unit_timeouts_script()}systemctl is-enabled -q pcsd || systemctl enable -q pcsd
{_START_UNIT}start_unit pcsd
i=0
until ss -Hltn 'sport = :2224' | grep -q .; do
  i=$((i+1)); [ $i -le {wait * 4} ] || {{ echo "pcsd does not listen on 2224 after {wait} s" >&2; exit 1; }}
  sleep 0.25
done
dpkg-query -W -f '${{Version}}\\n' pcs 2>/dev/null || rpm -q --qf '%{{VERSION}}\\n' pcs
"""


PCS_REQUEST_TIMEOUT = 180


def auth_script(nodes: Sequence[str], password: str, pcs_version: str | None) -> str:
    """pcs host auth (0.10+) or pcs cluster auth (0.9), skipped when pcsd already knows every node.

    Without -p, pcs reads the password from stdin when stdin is not a terminal (pcs utils
    get_user_and_pass -> get_terminal_password, 0.9 to 0.11): printf is a shell builtin, so the
    password is in no process's arguments (with -p it would be in pcs's, for `ps` to see).
    """
    names = " ".join(nodes)
    if pcs_generation(pcs_version) == "0.9":
        check = "/var/lib/pcsd/tokens"
        auth = f"pcs cluster auth {names} -u hacluster"
    else:
        check = "/var/lib/pcsd/known-hosts"
        # pcs waits 60 s per request by default; a cold pcsd on a busy emulated guest took longer.
        auth = f"pcs host auth {names} -u hacluster --request-timeout={PCS_REQUEST_TIMEOUT}"
    test = " && ".join(f"grep -q '\"{n}\"' {check}" for n in nodes)
    return (f"set -eu\nif [ -e {check} ] && {test}; then echo already; exit 0; fi\n"
            f"printf '%s\\n' {shlex.quote(password)} | {auth}\n")


def setup_script(nodes: Sequence[str]) -> str:
    """pcs 0.9: create and start my_cluster through pcsd (skipped when corosync.conf names it)."""
    setup = f"pcs cluster setup --name {CLUSTER_NAME} {' '.join(nodes)} --start"
    return f"""set -eu
if grep -qs 'cluster_name: {CLUSTER_NAME}' /etc/corosync/corosync.conf; then
  systemctl is-active -q corosync && systemctl is-active -q pacemaker || pcs cluster start --all
  echo already; exit 0
fi
{setup}
"""


# Where a node's cluster identity lives; equal digests on every node = the cluster is configured.
CLUSTER_FILES = ("/etc/corosync/corosync.conf", "/etc/corosync/authkey", "/etc/pacemaker/authkey")


def cluster_files_digest_script() -> str:
    """One line: the digest of this node's cluster files, or 'missing' (absent, or not my_cluster's)."""
    files = " ".join(CLUSTER_FILES)
    return (f"for f in {files}; do [ -s $f ] || {{ echo missing; exit 0; }}; done\n"
            f"grep -qs 'cluster_name: {CLUSTER_NAME}$' {CLUSTER_FILES[0]} || {{ echo missing; exit 0; }}\n"
            f"cat {files} | sha256sum | cut -c1-64\n")


def local_setup_script(nodes: Sequence[tuple[str, str]]) -> str:
    """pcs 0.10+ local-only mode: pcs writes my_cluster's corosync.conf without contacting the nodes.

    `pcs cluster setup` over pcsd first runs `pcs cluster destroy` on every node through pcsd;
    under software emulation that alone takes 60-80 s on a busy guest and misses pcs's fixed 60 s
    request timeout (3 guests on 2 cores). The lab writes pcs's own corosync.conf and the keys
    itself instead, the way `pcs cluster setup` would, and starts the nodes in parallel.
    """
    members = " ".join(f"{name} addr={ip}" for name, ip in nodes)
    path = "/run/lab-corosync.conf"
    return f"""set -eu
rm -f {path}
pcs cluster setup {CLUSTER_NAME} {members} --corosync_conf {path} >&2
cat {path}; rm -f {path}
"""


# Secrets and files reach a node on stdin, one base64 line each (never on a command line); the
# scripts decode them with put: `put B64 DEST MODE OWNER` writes DEST atomically.
_PUT = """put() {
  printf '%s' "$1" | base64 -d >"$2.lab"; chown "$4" "$2.lab"; chmod "$3" "$2.lab"; mv -f "$2.lab" "$2"
}
"""


def _b64_line(data: bytes) -> str:
    return base64.b64encode(data).decode() + "\n"


def install_cluster_files_script(root: str = "") -> str:
    """Install corosync.conf, both authkeys and pcsd's known hosts from stdin, owners and modes as pcs
    sets them. Stdin: corosync key, pacemaker key, known-hosts, corosync.conf (each base64 on one
    line). A half-configured node (an interrupted run) is stopped first. ROOT prefixes
    every path (tests install into a scratch directory)."""
    return f"""set -eu
{_PUT}C={shlex.quote(root)}/etc/corosync P={shlex.quote(root)}/etc/pacemaker K={shlex.quote(root)}/var/lib/pcsd
read -r corosync_key; read -r pacemaker_key; read -r known_hosts; read -r conf
[ -n {shlex.quote(root)} ] || systemctl stop pacemaker corosync 2>/dev/null || true
install -d -m 0755 "$C" "$P"
put "$corosync_key" "$C/authkey" 0400 root:root
put "$pacemaker_key" "$P/authkey" 0440 hacluster:haclient
if [ -n "$known_hosts" ]; then
  install -d -m 0700 "$K"
  put "$known_hosts" "$K/known-hosts" 0600 root:root
fi
put "$conf" "$C/corosync.conf" 0644 root:root
"""


def cluster_files_input(corosync_conf: str, known_hosts: bytes, *, key_bytes: int = 256) -> str:
    """Stdin for install_cluster_files_script: fresh random keys (256 bytes, as pcs makes them)."""
    return (_b64_line(secrets.token_bytes(key_bytes)) + _b64_line(secrets.token_bytes(key_bytes))
            + _b64_line(known_hosts) + _b64_line(corosync_conf.encode()))


def start_cluster_script() -> str:
    """Start corosync, then pacemaker, on this node (what `pcs cluster start` does locally), each
    retried after a timed-out start."""
    return f"set -eu\n{unit_timeouts_script()}{_START_UNIT}start_unit corosync\nstart_unit pacemaker\n"


def host_keys_script() -> str:
    """This node's SSH host public keys, one per line."""
    return "cat /etc/ssh/ssh_host_*_key.pub\n"


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
    """root's SSH key, authorized on every node, and the nodes' pinned host keys: crmsh's cluster
    commands (`crm cluster start/stop`, `crm corosync push`, `crm cluster run`) reach every node,
    this one included, as root over SSH, as after `crm cluster init`. Stdin: the private key, the
    public key line and known_hosts (private key and known_hosts in base64 on one line). ROOT
    prefixes every path (tests install into a scratch directory, sshd is left alone)."""
    r = shlex.quote(root)
    return f"""set -eu
S={r}/root/.ssh D={r}/etc/ssh/sshd_config.d
{_PUT}read -r key; read -r pub; read -r known
umask 077
install -d -m 0700 "$S"
put "$key" "$S/id_ed25519" 0600 root:root
printf '%s\\n' "$pub" >"$S/id_ed25519.pub"
grep -qxF "$pub" "$S/authorized_keys" 2>/dev/null || printf '%s\\n' "$pub" >>"$S/authorized_keys"
put "$known" "$S/known_hosts" 0600 root:root
# Key-only root login (the box says no); sshd takes the first value, and 00- sorts first.
if [ -d "$D" ] && ! [ -e "$D/00-failover-lab-root.conf" ]; then
  echo 'PermitRootLogin prohibit-password' >"$D/00-failover-lab-root.conf"
  [ -n {r} ] || systemctl reload ssh 2>/dev/null || systemctl reload sshd
fi
"""


def root_ssh_input(private_key: str, public_key: str, known_hosts: str) -> str:
    return _b64_line(private_key.encode()) + public_key.strip() + "\n" + _b64_line(known_hosts.encode())


def wait_healthy_script(count: int, *, timeout: int = 300, settle: bool = True) -> str:
    """Poll (every 0.5 s) until COUNT nodes are online in a quorate partition; then let it settle."""
    settle_cmd = f"crm_resource --wait --timeout={timeout}s >/dev/null 2>&1 || true" if settle else ""
    return f"""set -u
end=$(( $(date +%s) + {timeout} ))
while :; do
  out=$(crm_mon --one-shot --output-as=xml 2>/dev/null || true)
  online=$(printf '%s' "$out" | grep -c '<node name=[^>]* online="true"' || true)
  if [ "$online" -ge {count} ] && printf '%s' "$out" | grep -q 'with_quorum="true"'; then break; fi
  [ "$(date +%s)" -lt "$end" ] || {{ echo "only $online of {count} nodes online after {timeout} s" >&2; exit 1; }}
  sleep 0.5
done
{settle_cmd}
"""


def wait_offline_script(nodes: list[str], *, timeout: int = 90) -> str:
    """Poll until this node's pacemaker reports every named node offline (a fault took effect)."""
    checks = " && ".join(
        f"printf '%s' \"$out\" | grep -q '<node name=\"{n}\"[^>]* online=\"false\"'" for n in nodes)
    return f"""set -u
end=$(( $(date +%s) + {timeout} ))
while :; do
  out=$(crm_mon --one-shot --output-as=xml 2>/dev/null || true)
  if {checks}; then break; fi
  [ "$(date +%s)" -lt "$end" ] || {{ echo "{' '.join(nodes)} still online after {timeout} s" >&2; exit 1; }}
  sleep 0.5
done
"""


def stonith_script() -> str:
    """stonith-enabled=false with the C tool (pcs costs seconds of Python start-up per call)."""
    return ("set -eu\n[ \"$(crm_attribute -t crm_config -n stonith-enabled -q -G 2>/dev/null)\" = false ] || "
            "crm_attribute -t crm_config -n stonith-enabled -v false\n")


def set_clock_script(epoch: float) -> str:
    """After a memory snapshot revert the guest clock is the snapshot's: set it to the host's."""
    return f"date -s @{epoch:.3f} >/dev/null\n"


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


def root_argv(user: str) -> list[str]:
    """The argv run on a node for every root script: the bootstrap, through sudo unless USER is root."""
    prefix = [] if user == "root" else ["sudo", "-n"]
    return [*prefix, "bash", "-c", ROOT_BOOTSTRAP]


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
        raise NodeError(f"{node.name}: {what} failed (exit {result.returncode}): {result.tail(3)}")
    return result
