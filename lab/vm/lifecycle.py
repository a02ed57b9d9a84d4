"""The VM lab lifecycle as small named steps over a state file: up, start, solve, destroy, ...

Every step checks whether it is already true (state file, libvirt, the node itself)
and is skipped if so; an interrupted `lab up` converges when run again.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import ipaddress
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lab.core.errors import LabError, NodeError, UsageError
from lab.core.paths import lab_home
from lab.core.progress import Progress
from lab.engine.exercises import Exercise, command_context, load, pcs_generation, render_command
from lab.transport import runner
from lab.transport.runner import CommandResult
from lab.transport.ssh import NodeAddress, SSHNode
from lab.vm import faults as faultlib
from lab.vm import fixtures, profiles, provision, virt
from lab.vm import vagrant as vg
from lab.vm.labstate import MAX_NODES, SSH_USER, Lab, LabState, Owned, StateError, current_name, labs_dir, write_atomic

DEFAULT_NODES = 2
DEFAULT_MEMORY = 768
DEFAULT_CPUS = 1
BOOT_TIMEOUT = float(vg.BOOT_TIMEOUT)
SNAP_INSTALLED = "installed"
SNAP_CLUSTER = "cluster"


# --- one command at a time per lab ---------------------------------------------

def _mutating(create: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a command that changes the lab under the lab's lock (Lab.locked): a second one waits a
    bounded time, then fails naming the holder. `create`: `lab up` makes the folder to lock it
    (and removes it again if it failed before anything but the lock was there)."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            name = signature.bind_partial(*args, **kwargs).arguments.get("name") or current_name()
            lab = Lab(name)
            fresh = create and not lab.dir.exists()
            with lab.locked(create=create):
                try:
                    return fn(*args, **kwargs)
                except BaseException:
                    if fresh and lab.dir.is_dir() and set(os.listdir(lab.dir)) <= {"lock"}:
                        shutil.rmtree(lab.dir, ignore_errors=True)
                    raise
        return run
    return wrap


# --- lab creation ------------------------------------------------------------

def _pick_subnets(taken: Sequence[str]) -> tuple[str, str]:
    """A free /24 for the cluster network and one for the management network."""
    used = [ipaddress.ip_network(c) for c in taken]
    for other in labs_dir().glob("*/state.json"):
        try:
            state = Lab.load(other.parent.name).state
        except LabError:  # a broken or foreign folder: its networks are found in libvirt anyway
            continue
        used += [ipaddress.ip_network(state.private_cidr), ipaddress.ip_network(state.mgmt_cidr)]
    for third in range(10, 250):
        priv = ipaddress.ip_network(f"10.231.{third}.0/24")
        mgmt = ipaddress.ip_network(f"10.232.{third}.0/24")
        if not any(priv.overlaps(u) or mgmt.overlaps(u) for u in used):
            return str(priv), str(mgmt)
    raise LabError("no free 10.231.x.0/24 subnet left for a new lab; destroy unused labs")


def _host_routes() -> list[str]:
    from lab.transport.runner import run_local

    out = []
    for line in run_local(["ip", "-4", "route"], timeout=10).stdout.splitlines():
        dest = line.split()[0] if line.split() else ""
        if "/" in dest:
            out.append(dest)
    return out


def _new_ssh_key() -> tuple[str, str]:
    """A fresh Ed25519 key: (private key in OpenSSH format, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


def _generate_key(lab: Lab) -> None:
    if lab.identity.exists():
        return
    private, public = _new_ssh_key()
    write_atomic(lab.identity.with_suffix(".pub"), f"{public} failover-lab-{lab.name}\n")
    write_atomic(lab.identity, private, mode=0o600)


def _root_ssh(lab: Lab, progress: Progress) -> None:
    """root on every node reaches every node by SSH (a key made here, host keys pinned), as
    `crm cluster init` leaves it: crmsh runs even local cluster start/stop over SSH."""
    nodes = _connect_all(lab)
    try:
        with progress.step("lab", "root SSH between the nodes (crmsh's cluster commands use it)"):
            keys = _parallel(lambda n: provision.run_root(n, provision.host_keys_script(), "host keys").stdout,
                             list(nodes.values()))
            known = provision.root_known_hosts({(n.name, n.ip): k for n, k in zip(lab.nodes, keys, strict=True)})
            private, public = _new_ssh_key()
            payload = provision.root_ssh_input(private, f"{public} root@{lab.name}", known)
            _parallel(lambda n: provision.run_root(n, provision.root_ssh_script(), "root SSH",
                                                   input_text=payload), list(nodes.values()))
    finally:
        _close(nodes)


def init_lab(name: str, *, nodes: int | None, box: str | None, memory: int | None,
             progress: Progress) -> Lab:
    """Create the lab's folder and state, or check that the arguments fit the existing lab."""
    lab = Lab.load(name)
    if lab.has_state:
        for key, value in (("nodes", nodes), ("box", box), ("memory", memory)):
            if value is not None and lab.state[key] != value:
                raise UsageError(f"lab '{name}' exists with {key}={lab.state[key]}; run 'lab destroy' "
                                 f"first to change it (or set LAB_NAME for a second lab)")
        return lab
    nodes = nodes or DEFAULT_NODES
    if not 1 <= nodes <= MAX_NODES:
        raise UsageError(f"--nodes must be 1..{MAX_NODES}")
    profile = profiles.load_profile(box or "debian12")
    driver, warning = virt.choose_driver(lab_home() / "kvm-probe.json")
    if warning:
        progress.say("host", f"warning: {warning}")
    priv, mgmt = _pick_subnets(virt.used_subnets() + _host_routes())
    lab.dir.mkdir(parents=True, exist_ok=True)
    lab.dir.chmod(0o700)
    # The exact names of every libvirt object the lab will make are recorded here, before any is
    # made: `lab destroy` removes those and nothing else.
    pool = "default"
    lab.state = LabState.from_json(
        {"name": name, "nodes": nodes, "box": profile.name, "box_name": profile.box,
         "memory": memory or DEFAULT_MEMORY, "cpus": DEFAULT_CPUS, "driver": driver,
         "uri": virt.uri(), "pool": pool, "private_cidr": priv, "mgmt_cidr": mgmt,
         "steps": {}, "exercise": None, "pcs_version": None,
         "owned": Owned.derive(name, nodes, pool).to_json()},
        f"new state of lab '{name}'", name=name)
    _generate_key(lab)
    lab.ensure_password()
    lab.save()
    progress.say("lab", f"new lab '{name}': {nodes} nodes, box {profile.name}, driver {driver}, "
                        f"cluster network {priv}")
    return lab


# --- SSH to nodes ------------------------------------------------------------

def _pin_host_key(lab: Lab, node: SSHNode, host: str) -> None:
    """Record the key met at first contact (management address) for the fixed address too."""
    client = node._client  # noqa: SLF001 - the key of the live connection
    if client is None or client.get_transport() is None:
        return
    key = client.get_transport().get_remote_server_key()
    line = f"{host} {key.get_name()} {key.get_base64()}\n"
    text = lab.known_hosts.read_text() if lab.known_hosts.exists() else ""
    if not any(ln.split()[:1] == [host] for ln in text.splitlines()):
        with lab.known_hosts.open("a") as handle:
            handle.write(line)


def lab_node(lab: Lab, name: str, timeout: float = 10.0) -> SSHNode:
    spec = lab.node(name)
    return SSHNode(NodeAddress(name, SSH_USER, spec.ip), identity=lab.identity,
                   known_hosts=lab.known_hosts, connect_timeout=timeout)


def connect_retry(make: Callable[[], SSHNode], deadline: float, what: str) -> SSHNode:
    """Connect, retrying every half second while the node boots; a changed host key fails at once,
    and so does a command being stopped (Ctrl-C, SIGTERM)."""
    last = ""
    began = time.monotonic()
    while True:
        node = make()
        try:
            node.connect()
            return node
        except NodeError as exc:
            last = str(exc)
            if "host key" in last and "changed" in last:
                raise
        if runner.stopping():
            raise NodeError(f"{what}: stopped while waiting for SSH")
        if time.monotonic() > deadline:
            raise NodeError(f"{what}: no SSH after {time.monotonic() - began:.0f} s: {last}")
        time.sleep(0.5)


def _connect_all(lab: Lab, names: Sequence[str] | None = None, deadline_s: float = 120.0) -> dict[str, SSHNode]:
    names = list(names or lab.node_names)
    deadline = time.monotonic() + deadline_s
    nodes = _parallel(lambda n: connect_retry(lambda: lab_node(lab, n, 5.0), deadline, n), names)
    return dict(zip(names, nodes, strict=True))


def _close(nodes: dict[str, SSHNode]) -> None:
    for node in nodes.values():
        node.close()


def _parallel(fn: Callable, items: Sequence) -> list:  # noqa: ANN001
    """fn over every item at once; the results in order, or the first item's exception.

    Daemon threads, not a thread pool: on Ctrl-C/SIGTERM the command ends at once, while a pool
    would hold its exit until every worker's SSH command or boot wait reached its own deadline
    (up to 20 minutes). What a worker started on a node is idempotent and is resumed by a rerun.
    """
    results: list = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)

    def work(index: int, item: object) -> None:
        try:
            results[index] = fn(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors[index] = exc

    threads = [threading.Thread(target=work, args=(i, item), daemon=True) for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


# --- lab up ------------------------------------------------------------------

def _provision_node(lab: Lab, name: str, profile: profiles.Profile, password: str,
                    progress: Progress, lock: threading.Lock, vagrant_failed: threading.Event) -> str:
    """Provision one node as soon as it answers SSH (overlapping vagrant's own waiting)."""
    spec = lab.node(name)
    deadline = time.monotonic() + BOOT_TIMEOUT
    system_done = lab.done(f"system:{name}")
    with progress.step(name, "boot and first SSH contact", limit=BOOT_TIMEOUT):
        if system_done:
            node = connect_retry(lambda: lab_node(lab, name, 5.0), deadline, name)
        else:
            domain = lab.domain_name(name)
            keys = vg.insecure_keys()
            if not keys:
                raise UsageError("Vagrant's insecure key is not found; install the vagrant package")
            while True:
                if vagrant_failed.is_set():
                    raise NodeError(f"{name}: vagrant up failed")
                if runner.stopping():
                    raise NodeError(f"{name}: stopped while waiting for a DHCP lease")
                ip = virt.lease_ip(domain)
                if ip:
                    break
                if time.monotonic() > deadline:
                    raise NodeError(f"{name}: no DHCP lease after {BOOT_TIMEOUT:g} s")
                time.sleep(0.5)
            node = connect_retry(lambda: SSHNode(NodeAddress(name, SSH_USER, ip), identity=keys[0],
                                                 known_hosts=lab.known_hosts, connect_timeout=5.0),
                                 deadline, name)
    try:
        if not system_done:
            with progress.step(name, f"hostname, /etc/hosts, {spec.ip} on {profile.private_iface}, lab SSH key"):
                pub = lab.identity.with_suffix(".pub").read_text()
                provision.run_root(node, provision.system_script(
                    node=name, ip=spec.ip, cidr=lab.state["private_cidr"],
                    nodes=[(n.name, n.ip) for n in lab.nodes], pubkey=pub, profile=profile), "system setup")
                _pin_host_key(lab, node, spec.ip)
            node.close()
            node = connect_retry(lambda: lab_node(lab, name, 5.0), deadline, name)
            with lock:
                lab.mark(f"system:{name}")
        if profile.repo_setup or profile.packages or profile.firewall:
            with progress.step(name, "HA repository, packages, firewalld high-availability"):
                provision.run_root(node, provision.packages_script(profile), "package setup", timeout=1800)
        with progress.step(name, "hacluster password, no stale cluster, pcsd enabled and answering",
                           limit=provision.PCSD_SETUP_TIMEOUT):
            result = provision.run_root(node, provision.pcsd_script(password), "pcsd setup",
                                        timeout=provision.PCSD_SETUP_TIMEOUT)
        _say_retries(progress, name, result)
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    finally:
        node.close()


def _say_retries(progress: Progress, who: str, result: CommandResult) -> None:
    """Show the reason of every unit start a node's script had to retry (provision._START_UNIT)."""
    for line in result.stderr.splitlines():
        if line.startswith("failover-lab: retry "):
            progress.say(who, line.removeprefix("failover-lab: "))


def _build_cluster(lab: Lab, progress: Progress) -> None:
    password = lab.password()
    version = lab.state.get("pcs_version")
    members = [(n.name, n.ip) for n in lab.nodes]
    nodes = _connect_all(lab)
    first = nodes[lab.node_names[0]]
    try:
        who = first.name
        with progress.step(who, "pcs host auth (as hacluster) to every node"):
            provision.run_root(first, provision.auth_script(lab.node_names, password, version), "pcs auth")
        if pcs_generation(version) == "0.9":
            with progress.step(who, f"pcs cluster setup {provision.CLUSTER_NAME} --start"):
                provision.run_root(first, provision.setup_script(lab.node_names), "pcs cluster setup")
        else:
            _setup_local(nodes, members, progress)
        with progress.step(who, "all nodes online and quorate", limit=300):
            provision.run_root(first, provision.wait_healthy_script(len(members), settle=False), "cluster start")
        with progress.step(who, "stonith-enabled=false, cluster settled (crm_resource --wait)", limit=900):
            provision.run_root(first, provision.stonith_script(), "stonith-enabled=false")
            provision.run_root(first, provision.wait_healthy_script(len(members)), "settle")
    finally:
        _close(nodes)


def _setup_local(nodes: dict[str, SSHNode], members: list[tuple[str, str]], progress: Progress) -> None:
    """pcs 0.10+: pcs's local-only setup writes corosync.conf on the first node; the lab installs it,
    fresh keys and pcsd's known hosts on every node and starts them all at once (see
    provision.local_setup_script for why not `pcs cluster setup` over pcsd)."""
    first = next(iter(nodes.values()))
    digests = _parallel(lambda n: provision.run_root(n, provision.cluster_files_digest_script(),
                                                     "cluster files").stdout.strip(), list(nodes.values()))
    if "missing" in digests or len(set(digests)) != 1:
        with progress.step(first.name, f"pcs cluster setup {provision.CLUSTER_NAME} (local mode), "
                           "corosync.conf and keys to every node"):
            conf = provision.run_root(first, provision.local_setup_script(members), "pcs cluster setup").stdout
            known = provision.run_root(first, "cat /var/lib/pcsd/known-hosts 2>/dev/null || true",
                                       "pcsd known hosts").stdout.encode()
            payload = provision.cluster_files_input(conf, known)
            _parallel(lambda n: provision.run_root(n, provision.install_cluster_files_script(),
                                                   "cluster files", input_text=payload), list(nodes.values()))
    with progress.step("lab", "corosync and pacemaker started on every node", limit=provision.CLUSTER_START_TIMEOUT):
        results = _parallel(lambda n: provision.run_root(n, provision.start_cluster_script(), "cluster start",
                                                         timeout=provision.CLUSTER_START_TIMEOUT),
                            list(nodes.values()))
    for node, result in zip(nodes.values(), results, strict=True):
        _say_retries(progress, node.name, result)


@_mutating(create=True)
def _prepare_domains(lab: Lab, states: dict[str, str], progress: Progress) -> list[str]:
    """Start the lab's existing domains through libvirt and return the nodes vagrant must create.

    vagrant only creates domains here. Starting an existing one through `vagrant up` makes
    vagrant-libvirt compare and redefine its XML, which failed after an interrupted run under
    software emulation ("CPU vendor specified without CPU model", the live host-model CPU written
    back). A domain that vagrant has no machine id for, or without a NIC on each of the lab's
    networks (vagrant-libvirt adds them after defining the domain: a run stopped in between left
    domains that booted with no network at all), is the remains of an interrupted create: it and
    its disk are removed (by their exact names) and made again.
    """
    to_create = []
    stopped = []
    networks = set(lab.owned.networks)
    for node in lab.node_names:
        domain = lab.domain_name(node)
        state = states.get(domain, "absent")
        half_made = Owned(domains=(domain,), volumes=(f"{domain}.img",), networks=(),
                          snapshots=lab.owned.snapshots, pool=lab.owned.pool)
        if state != "absent" and (not vg.machine_id_file(lab, node).is_file()
                                  or not networks <= (virt.domain_networks(domain) or set())):
            progress.say(node, f"{domain} was left half-made by an interrupted run: made again")
            virt.remove_owned(half_made)
            state = "absent"
        if state == "absent":
            # A disk without its domain (a create stopped before the define): vagrant-libvirt
            # refuses to go on ("Volume for domain is already created").
            removed, _ = virt.remove_owned(half_made)
            if removed.volumes:
                progress.say(node, f"removed {', '.join(removed.volumes)} left without its domain")
            with contextlib.suppress(FileNotFoundError):
                vg.machine_id_file(lab, node).unlink()
            to_create.append(node)
        elif state not in ("running", "paused"):
            stopped.append(domain)
    if stopped:
        with progress.step("lab", f"start {', '.join(stopped)} (libvirt)"):
            virt.start_networks(lab.owned.networks)
            virt.start_domains(stopped)
    return to_create


def up(name: str | None = None, *, nodes: int | None = None, box: str | None = None,
       memory: int | None = None, progress: Progress | None = None) -> Lab:
    progress = progress or Progress()
    lab = init_lab(name or current_name(), nodes=nodes, box=box, memory=memory, progress=progress)
    profile = profiles.load_profile(lab.state["box"])
    domains = [lab.domain_name(n) for n in lab.node_names]
    states = virt.domain_states(domains)
    if lab.done("cluster_snapshot") and all(s == "running" for s in states.values()):
        progress.say("lab", f"lab '{lab.name}' is up ({', '.join(lab.node_names)}); 'lab start EX' to begin")
        return lab
    made = virt.ensure_pool(lab.state.get("pool", virt.DEFAULT_POOL))
    if made:
        progress.say("lab", f"libvirt storage: {made}")
    done = vg.ensure_box(profile.box, profile.box_path)
    if done:
        progress.say("host", done)
    vg.write_vagrantfile(lab)
    if any(s == "paused" for s in states.values()):
        virt.resume([d for d, s in states.items() if s == "paused"])

    vagrant_error: list[BaseException] = []
    vagrant_failed = threading.Event()

    to_create = _prepare_domains(lab, states, progress)

    def run_vagrant() -> None:
        try:
            vg.up(lab, to_create)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            vagrant_error.append(exc)
            vagrant_failed.set()

    vthread = None
    if to_create:
        progress.say("lab", f"vagrant up {' '.join(to_create)} (parallel; log: {lab.log_file})")
        vthread = threading.Thread(target=run_vagrant, daemon=True)
        vthread.start()
    try:
        if not lab.done(SNAP_INSTALLED + "_snapshot"):
            password = lab.password()
            lock = threading.Lock()
            versions = _parallel(lambda n: _provision_node(lab, n, profile, password, progress, lock,
                                                           vagrant_failed), lab.node_names)
            lab.state["pcs_version"] = versions[0] or None
            lab.save()
    except NodeError:
        if vagrant_error:
            raise vagrant_error[0] from None
        raise
    if vthread is not None:
        with progress.step("lab", "vagrant up finishing", limit=BOOT_TIMEOUT):
            vthread.join()
        if vagrant_error:
            raise vagrant_error[0]
    if not lab.done("root_ssh") and not lab.done(SNAP_INSTALLED + "_snapshot"):
        _root_ssh(lab, progress)
        lab.mark("root_ssh")
    if not lab.done(SNAP_INSTALLED + "_snapshot"):
        with progress.step("lab", f"snapshot '{SNAP_INSTALLED}' of every node (paused together)"):
            virt.create_snapshot(domains, SNAP_INSTALLED)
        lab.mark(SNAP_INSTALLED + "_snapshot")
    if not lab.done("cluster_built"):
        if lab.done("cluster_attempted"):
            with progress.step("lab", f"an earlier cluster build was interrupted: revert to '{SNAP_INSTALLED}'"):
                virt.revert(domains, SNAP_INSTALLED)
                _sync_clocks(lab)
        lab.mark("cluster_attempted")
        _build_cluster(lab, progress)
        lab.mark("cluster_built")
    if not lab.done("cluster_snapshot"):
        with progress.step("lab", f"snapshot '{SNAP_CLUSTER}' of every node (paused together)"):
            virt.create_snapshot(domains, SNAP_CLUSTER)
        lab.mark("cluster_snapshot")
    progress.say("lab", f"lab '{lab.name}' is up in {progress.elapsed():.0f} s: my_cluster on "
                        f"{', '.join(lab.node_names)}; next: 'lab start EXERCISE'")
    return lab


# --- exercises ---------------------------------------------------------------

def _sync_clocks(lab: Lab, nodes: dict[str, SSHNode] | None = None) -> dict[str, SSHNode]:
    """After a memory revert each guest's clock is the snapshot's: set it from the host's."""
    nodes = nodes or _connect_all(lab)
    _parallel(lambda n: provision.run_root(n, provision.set_clock_script(time.time()), "clock"),
              list(nodes.values()))
    return nodes


def require_lab() -> Lab:
    from lab.vm.labstate import current_lab

    return current_lab()


def _context(lab: Lab) -> dict[str, str]:
    return command_context(lab.node_names, vip_ip=lab.vip, password=lab.password(),
                           vms=[lab.domain_name(n) for n in lab.node_names])


def _run_commands(nodes: dict[str, SSHNode], default: str, commands: Sequence[str],
                  context: dict[str, str], what: str) -> None:
    """Run commands as root on the default node; `on NODE: command` runs one elsewhere and
    `on all: command` on every node at once.

    Consecutive commands for the same target go in one script (one SSH round trip).
    """
    steps: list[tuple[tuple[str, ...], list[str]]] = []
    for raw in commands:
        text = render_command(raw, context)
        targets: tuple[str, ...] = (default,)
        match = re.match(r"on ([A-Za-z0-9_.-]+):\s*(.*)$", text, re.S)
        if match:
            text = match.group(2)
            targets = tuple(nodes) if match.group(1) == "all" else (match.group(1),)
            if any(t not in nodes for t in targets):
                raise UsageError(f"{what}: command for unknown node '{match.group(1)}'")
        if steps and steps[-1][0] == targets:
            steps[-1][1].append(text)
        else:
            steps.append((targets, [text]))
    for targets, texts in steps:
        script = "set -e\n" + "\n".join(texts) + "\n"
        _parallel(lambda target, s=script: provision.run_root(nodes[target], s, what, timeout=600), targets)


@dataclass(frozen=True)
class StartTimes:
    revert: float
    healthy: float
    total: float


@_mutating()
def start(exercise_id: str, progress: Progress | None = None) -> StartTimes:
    progress = progress or Progress()
    lab = require_lab()
    exercise = load(exercise_id)
    if exercise.start.min_nodes > len(lab.node_names):
        raise UsageError(f"{exercise.id} needs {exercise.start.min_nodes} nodes; this lab has "
                         f"{len(lab.node_names)} (lab destroy; lab up --nodes {exercise.start.min_nodes})")
    faults = faultlib.resolve(exercise.start.faults, lab.node_names)
    baseline = exercise.start.baseline
    if not lab.done(f"{baseline}_snapshot"):
        raise UsageError(f"the lab has no '{baseline}' snapshot yet: run 'lab up' to finish it")
    domains = [lab.domain_name(n) for n in lab.node_names]
    began = time.monotonic()
    with progress.step("lab", f"revert every node to '{baseline}'"):
        virt.revert(domains, baseline)
    reverted = time.monotonic() - began
    lab.state["exercise"] = exercise.id
    lab.save()
    nodes = _connect_all(lab)
    try:
        _sync_clocks(lab, nodes)
        first = nodes[lab.node_names[0]]
        if baseline == SNAP_CLUSTER:
            with progress.step(first.name, "cluster healthy (all online, quorate)", limit=300):
                provision.run_root(first, provision.wait_healthy_script(len(domains), settle=False), "health")
        healthy = time.monotonic() - began
        if exercise.start.fixtures:
            fixtures.apply(lab, exercise.start.fixtures, nodes, progress)
        if exercise.start.commands:
            with progress.step(first.name, "start state commands"):
                _run_commands(nodes, first.name, exercise.start.commands, _context(lab),
                              f"start state of {exercise.id}")
        _apply_faults(lab, faults, nodes, progress)
        if baseline == SNAP_CLUSTER:
            settle_after_faults(lab, faults, nodes, progress)
    finally:
        _close(nodes)
    total = time.monotonic() - began
    progress.say("lab", f"{exercise.id} is ready in {total:.1f} s: 'lab show {exercise.id}', "
                        f"'lab ssh node1', then 'lab check {exercise.id}'")
    return StartTimes(reverted, healthy, total)


def settle_after_faults(lab: Lab, faults: Sequence[faultlib.Fault], nodes: dict[str, SSHNode],
                        progress: Progress) -> None:
    """Wait, on a node no fault touched, until the nodes a fault takes out are seen offline and
    the scheduler has nothing left to do: a start state is ready only once its faults took effect."""
    faulted = {f.node for f in faults}
    settle_on = next((n for n in lab.node_names if n not in faulted), lab.node_names[0])
    gone = sorted({f.node for f in faults if faultlib.REGISTRY[f.kind].takes_node_out})
    if gone:
        with progress.step(settle_on, f"{', '.join(gone)} seen offline", limit=90):
            provision.run_root(nodes[settle_on], provision.wait_offline_script(gone), "fault effect")
    with progress.step(settle_on, "cluster settled (crm_resource --wait)", limit=130):
        nodes[settle_on].run("sudo -n crm_resource --wait --timeout=120s", timeout=130)


def _apply_faults(lab: Lab, faults: Sequence[faultlib.Fault], nodes: dict[str, SSHNode],
                  progress: Progress) -> None:
    for fault in faults:
        kind = faultlib.REGISTRY[fault.kind]
        with progress.step(fault.node, f"fault {fault.kind}"):
            if kind.script is not None:
                provision.run_root(nodes[fault.node], kind.script(fault.params), f"fault {fault.kind}")
            elif kind.domain_action == "kill":
                virt.destroy_domains([lab.domain_name(fault.node)])
            elif kind.domain_action == "pause":
                virt.suspend([lab.domain_name(fault.node)])


@_mutating()
def reset(progress: Progress | None = None) -> StartTimes:
    lab = require_lab()
    if not lab.state.get("exercise"):
        raise UsageError("no exercise started yet: 'lab start EXERCISE'")
    return start(lab.state["exercise"], progress)


@_mutating()
def solve(exercise_id: str, progress: Progress | None = None, tool: str = "pcs") -> None:
    """Apply a reference solution on node1 (pcs: in the installed pcs's syntax), then wait."""
    progress = progress or Progress()
    lab = require_lab()
    exercise: Exercise = load(exercise_id)
    commands = exercise.solution_crmsh if tool == "crmsh" else exercise.solution_for(lab.state.get("pcs_version"))
    nodes = _connect_all(lab)
    first = nodes[lab.node_names[0]]
    try:
        with progress.step(first.name, f"reference solution of {exercise.id}"):
            _run_commands(nodes, first.name, commands, _context(lab), f"solution of {exercise.id}")
        with progress.step(first.name, "cluster healthy and settled", limit=600):
            provision.run_root(first, provision.wait_healthy_script(len(lab.node_names)), "settle")
    finally:
        _close(nodes)


# --- status, info, halt, destroy ---------------------------------------------

def status_lines() -> list[str]:
    lab = require_lab()
    domains = {n: lab.domain_name(n) for n in lab.node_names}
    states = virt.domain_states(list(domains.values()))
    lines = [f"lab {lab.name}: box {lab.state['box']}, driver {lab.state['driver']}, "
             f"exercise {lab.state.get('exercise') or '-'}"]
    for name, dom in domains.items():
        snaps = ",".join(virt.snapshot_names(dom)) or "-"
        lines.append(f"  {name:<6} {lab.node(name).ip:<15} {states[dom]:<8} snapshots: {snaps}")
    running = [n for n, d in domains.items() if states[d] == "running"]
    if running:
        try:
            with lab_node(lab, running[0], 5.0) as node:
                result = node.run("sudo -n crm_mon --one-shot --simple-status", timeout=15)
            lines.append(f"  cluster: {(result.stdout.strip() or result.tail(1)) or 'no answer'}")
        except NodeError as exc:
            lines.append(f"  cluster: unknown ({exc})")
    return lines


def info_lines(secrets: bool = False) -> list[str]:
    lab = require_lab()
    lines = [f"lab:        {lab.name}", f"folder:     {lab.dir}", f"box:        {lab.state['box']} "
             f"({lab.state['box_name']})", f"driver:     {lab.state['driver']}",
             f"memory:     {lab.state['memory']} MiB x {len(lab.node_names)} nodes",
             f"network:    {lab.state['private_cidr']} (isolated), VIP for exercises {lab.vip}",
             f"nodes:      {', '.join(f'{n.name}={n.ip}' for n in lab.nodes)}",
             f"VMs:        {', '.join(f'{n}={lab.domain_name(n)}' for n in lab.node_names)} (libvirt domains)",
             f"ssh:        lab ssh NODE (key {lab.identity}, known_hosts {lab.known_hosts})",
             f"pcs:        {lab.state.get('pcs_version') or 'unknown'}",
             f"exercise:   {lab.state.get('exercise') or '-'}"]
    if secrets:
        lines.append(f"hacluster password: {lab.password()}")
    else:
        lines.append(f"hacluster password: in {lab.password_file} ('lab info --secrets' prints it)")
    return lines


def ssh_argv(node: str, command: Sequence[str]) -> list[str]:
    lab = require_lab()
    spec = lab.node(node)
    if shutil.which("ssh") is None:
        raise UsageError("the ssh client is not installed (apt-get install openssh-client)")
    return ["ssh", "-i", str(lab.identity), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR", f"{SSH_USER}@{spec.ip}", *command]


@_mutating()
def halt(progress: Progress | None = None) -> None:
    progress = progress or Progress()
    lab = require_lab()
    with progress.step("lab", "vagrant halt"):
        vg.halt(lab)


@_mutating()
def destroy(name: str | None = None, progress: Progress | None = None, *, force: bool = False) -> virt.Leftovers:
    """Remove exactly the libvirt objects the lab owns, then its folder.

    The owned names are the state file's. Without a usable state file (missing, corrupt, of
    wrong types) they are the names lab NAME makes, which its name alone decides; the folder
    goes too. Without a lab folder nothing is removed unless `force` (`lab destroy --force
    NAME`): then only objects named exactly as lab NAME names them (never flab-NAME-x-*).
    """
    progress = progress or Progress()
    lab = Lab(name or current_name())
    if not lab.dir.exists() and not force:
        progress.say("lab", f"there is no lab '{lab.name}' (no folder {lab.dir}): nothing removed; "
                            f"'lab destroy --force {lab.name}' removes libvirt objects named exactly as "
                            f"lab '{lab.name}' names them")
        return virt.Leftovers((), (), ())
    owned: Owned | None = None
    problem = ""
    try:
        lab = Lab.load(lab.name)
        if lab.has_state:
            owned = lab.owned
        else:
            problem = f"lab '{lab.name}' has no state file"
    except StateError as exc:
        problem = str(exc).split("; ")[0]
    derived = Owned.anything_of(lab.name)
    if owned is None:
        if lab.dir.exists():
            progress.say("lab", f"{problem}: removing the libvirt objects named as lab '{lab.name}' names them")
        owned = derived
    elif force:
        owned = owned.union(derived)
    fixtures.release(lab)
    if lab.has_state and lab.vagrantfile.exists() and any((lab.dir / ".vagrant" / "machines").glob("*/*/id")):
        with contextlib.suppress(LabError):  # a hard power-off first: vagrant destroy need not halt them
            virt.destroy_domains(virt.find_owned(Owned(owned.domains, (), (), (), owned.pool)).domains)
        with progress.step("lab", "vagrant destroy"):
            try:
                vg.destroy(lab)
            except LabError as exc:
                progress.say("lab", f"vagrant destroy failed ({exc}); removing through libvirt")
    with progress.step("lab", f"remove the lab's libvirt domains, snapshots, volumes and networks by name "
                              f"({', '.join(owned.domains[:2])}{', ...' if len(owned.domains) > 2 else ''})"):
        removed, left = virt.remove_owned(owned)
    if not left.empty:
        raise LabError(f"left behind: {left}; remove them by hand with virsh")
    if lab.dir.exists():
        shutil.rmtree(lab.dir)
    progress.say("lab", f"lab '{lab.name}' destroyed; removed: {removed}")
    return removed
