"""The VM lab's commands as declared steps over the lab state: up, halt, destroy (start, reset and
solve: startstate.py).

Every step of `lab up` checks whether it is already true (its mark in the state file, libvirt, the
node itself) and is skipped if so; an interrupted `lab up` converges when run again. The steps
are data (UP_STEPS) run by the one step runner (steps.run_steps).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from dataclasses import dataclass, field

from lab.core.errors import LabError, NodeError, UsageError
from lab.core.paths import lab_home
from lab.core.progress import Progress
from lab.vm import fixtures, kvm, libvirt_conn, libvirt_host, libvirt_owned, profiles, virt
from lab.vm import vagrant as vg
from lab.vm.bringup import BOOT_TIMEOUT, prepare_domains, provision_node
from lab.vm.cluster import build_cluster
from lab.vm.keys import generate_key, root_ssh
from lab.vm.labstate import MAX_NODES, Lab, LabState, Owned, StateError, StepName, current_lab, current_name
from lab.vm.network import host_routes, pick_subnets
from lab.vm.nodes import parallel, sync_clocks
from lab.vm.startcache import PREFIX as START_SNAPSHOT_PREFIX
from lab.vm.startstate import (
    SNAP_CLUSTER,
    SNAP_INSTALLED,
)
from lab.vm.steps import Step, mutating, run_steps

DEFAULT_NODES = 2
DEFAULT_MEMORY = 768
DEFAULT_CPUS = 1

class LabMismatch(UsageError):
    """`lab up` with a setting that differs from the existing lab's (it is made again to change it)."""

    def __init__(self, name: str, key: str, has: object) -> None:
        super().__init__(f"lab '{name}' exists with {key}={has}; run 'lab destroy' first to change it "
                         f"(or set LAB_NAME for a second lab)")
        self.name, self.key, self.has = name, key, has


def init_lab(name: str, *, nodes: int | None, box: str | None, memory: int | None,
             progress: Progress) -> Lab:
    """Create the lab's folder and state, or check that the arguments fit the existing lab."""
    lab = Lab.load(name)
    if lab.has_state:
        for key, value in (("nodes", nodes), ("box", box), ("memory", memory)):
            if value is not None and lab.state[key] != value:
                raise LabMismatch(name, key, lab.state[key])
        return lab
    nodes = nodes or DEFAULT_NODES
    if not 1 <= nodes <= MAX_NODES:
        raise UsageError(f"a lab has 1..{MAX_NODES} nodes, not {nodes}")
    profile = profiles.load_profile(box or "debian12")
    driver, warning = kvm.choose_driver(lab_home() / "kvm-probe.json")
    if warning:
        progress.say("host", f"warning: {warning}")
    slow_libvirt = kvm.device_problem(kvm.libvirt_qemu_user())
    if slow_libvirt:
        progress.say("host", f"warning: {slow_libvirt}; fix: {kvm.DEVICE_FIX}")
    priv, mgmt = pick_subnets(libvirt_host.used_subnets() + host_routes())
    lab.dir.mkdir(parents=True, exist_ok=True)
    lab.dir.chmod(0o700)
    # The exact names of every libvirt object the lab will make are recorded here, before any is
    # made: `lab destroy` removes those and nothing else.
    pool = "default"
    lab.state = LabState(name=name, nodes=nodes, box=profile.name, box_name=profile.box,
                         memory=memory or DEFAULT_MEMORY, cpus=DEFAULT_CPUS, driver=driver, uri=libvirt_conn.uri(),
                         pool=pool, private_cidr=priv, mgmt_cidr=mgmt,
                         owned=Owned.derive(name, nodes, pool))
    lab.state = LabState.from_json(lab.state.to_json(), f"new state of lab '{name}'", name=name)
    generate_key(lab)
    lab.ensure_password()
    lab.save()
    progress.say("lab", f"new lab '{name}': {nodes} nodes, box {profile.name}, driver {driver}, "
                        f"cluster network {priv}")
    return lab


# --- lab up ------------------------------------------------------------------

@dataclass
class UpRun:
    """What the steps of `lab up` share."""

    lab: Lab
    progress: Progress
    profile: profiles.Profile
    states: dict[str, str]
    vagrant: threading.Thread | None = None
    vagrant_error: list[BaseException] = field(default_factory=list)
    vagrant_failed: threading.Event = field(default_factory=threading.Event)

    def domains(self) -> list[str]:
        return [self.lab.domain_name(n) for n in self.lab.node_names]


def _host(run: UpRun) -> None:
    """libvirt's pool, the box, the Vagrantfile; paused domains resumed."""
    made = libvirt_host.ensure_pool(run.lab.state.get("pool", libvirt_host.DEFAULT_POOL))
    if made:
        run.progress.say("lab", f"libvirt storage: {made}")
    done = vg.ensure_box(run.profile.box, run.profile.box_path)
    if done:
        run.progress.say("host", done)
    vg.write_vagrantfile(run.lab)
    if any(s == "paused" for s in run.states.values()):
        virt.resume([d for d, s in run.states.items() if s == "paused"])


def _domains(run: UpRun) -> None:
    """The domains that exist started; vagrant creates the missing ones in the background."""
    to_create = prepare_domains(run.lab, run.states, run.progress)

    def vagrant_up() -> None:
        try:
            vg.up(run.lab, to_create)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            run.vagrant_error.append(exc)
            run.vagrant_failed.set()

    if to_create:
        run.progress.say("lab", f"vagrant up {' '.join(to_create)} (parallel; log: {run.lab.log_file})")
        run.vagrant = threading.Thread(target=vagrant_up, daemon=True)
        run.vagrant.start()


def _provision(run: UpRun) -> None:
    """Every node provisioned as soon as it answers (while vagrant still waits for the others)."""
    lab = run.lab
    password = lab.password()
    lock = threading.Lock()
    try:
        versions = parallel(lambda n: provision_node(lab, n, run.profile, password, run.progress, lock,
                                                     run.vagrant_failed), lab.node_names)
    except NodeError:
        if run.vagrant_error:  # the node failed because vagrant did: vagrant's error says why
            raise run.vagrant_error[0] from None
        raise
    lab.state["pcs_version"] = versions[0] or None
    lab.save()


def _vagrant_finished(run: UpRun) -> None:
    if run.vagrant is None:
        return
    with run.progress.step("lab", "vagrant up finishing", limit=BOOT_TIMEOUT):
        run.vagrant.join()
    if run.vagrant_error:
        raise run.vagrant_error[0]


def _snapshot(name: str) -> Step[UpRun]:
    """Pause every node, snapshot each, resume them together; a failed try leaves no snapshot."""
    mark = StepName.INSTALLED_SNAPSHOT if name == SNAP_INSTALLED else StepName.CLUSTER_SNAPSHOT

    def take(run: UpRun) -> None:
        with run.progress.step("lab", f"snapshot '{name}' of every node (paused together)"):
            virt.create_snapshot(run.domains(), name)

    return Step(f"snapshot {name}", take, mark=mark, undo=lambda run: virt.delete_snapshot(run.domains(), name))


def _cluster(run: UpRun) -> None:
    """An earlier build that was interrupted is started again from the installed snapshot."""
    lab = run.lab
    if lab.done(StepName.CLUSTER_ATTEMPTED):
        with run.progress.step("lab", f"an earlier cluster build was interrupted: revert to '{SNAP_INSTALLED}'"):
            virt.revert(run.domains(), SNAP_INSTALLED)
            sync_clocks(lab)
    lab.mark(StepName.CLUSTER_ATTEMPTED)
    build_cluster(lab, run.progress)


def _installed(run: UpRun) -> bool:
    return run.lab.done(StepName.INSTALLED_SNAPSHOT)


UP_STEPS: list[Step[UpRun]] = [
    Step("host: pool, box, Vagrantfile", _host, where="host"),
    Step("domains", _domains),
    Step("provision nodes", _provision, done=_installed),
    Step("vagrant up finished", _vagrant_finished),
    Step("root SSH", lambda run: root_ssh(run.lab, run.progress), mark=StepName.ROOT_SSH,
         done=lambda run: run.lab.done(StepName.ROOT_SSH) or _installed(run)),
    _snapshot(SNAP_INSTALLED),
    Step("cluster build", _cluster, mark=StepName.CLUSTER_BUILT),
    _snapshot(SNAP_CLUSTER),
]


@mutating(create=True)
def up(name: str | None = None, *, nodes: int | None = None, box: str | None = None,
       memory: int | None = None, progress: Progress | None = None) -> Lab:
    progress = progress or Progress()
    lab = init_lab(name or current_name(), nodes=nodes, box=box, memory=memory, progress=progress)
    profile = profiles.load_profile(lab.state.box)
    states = virt.domain_states([lab.domain_name(n) for n in lab.node_names])
    if lab.done(StepName.CLUSTER_SNAPSHOT) and all(s == "running" for s in states.values()):
        progress.say("lab", f"lab '{lab.name}' is up ({', '.join(lab.node_names)}); 'lab start EX' to begin")
        return lab
    run_steps("lab up", UP_STEPS, UpRun(lab, progress, profile, states))
    progress.say("lab", f"lab '{lab.name}' is up in {progress.elapsed():.0f} s: my_cluster on "
                        f"{', '.join(lab.node_names)}; next: 'lab start EXERCISE'")
    return lab


# --- halt, destroy --------------------------------------------------------

@dataclass
class HaltRun:
    lab: Lab
    progress: Progress


def _halt(run: HaltRun) -> None:
    with run.progress.step("lab", "vagrant halt"):
        vg.halt(run.lab)


HALT_STEPS: list[Step[HaltRun]] = [Step("vagrant halt", _halt)]


@mutating()
def halt(progress: Progress | None = None) -> None:
    """Shut the nodes down (vagrant halt); the snapshots stay."""
    run_steps("lab halt", HALT_STEPS, HaltRun(current_lab(), progress or Progress()))


@dataclass
class DestroyRun:
    """What the steps of `lab destroy` share: the lab and the exact names it removes."""

    lab: Lab
    progress: Progress
    owned: Owned
    removed: libvirt_owned.Leftovers = field(default_factory=lambda: libvirt_owned.Leftovers((), (), ()))


def _vagrant_made(run: DestroyRun) -> bool:
    lab = run.lab
    return lab.has_state and lab.vagrantfile.exists() and any((lab.dir / ".vagrant" / "machines").glob("*/*/id"))


def _vagrant_destroy(run: DestroyRun) -> None:
    with contextlib.suppress(LabError):  # a hard power-off first: vagrant destroy need not halt them
        virt.destroy_domains(libvirt_owned.find_owned(Owned(run.owned.domains, (), (), (), run.owned.pool)).domains)
    with run.progress.step("lab", "vagrant destroy"):
        try:
            vg.destroy(run.lab)
        except LabError as exc:
            run.progress.say("lab", f"vagrant destroy failed ({exc}); removing through libvirt")


def _forget_start_states(run: DestroyRun) -> None:
    """The cached start states' snapshots forgotten first (their data goes with the disks): libvirt
    refuses to undefine a domain with snapshots, and vagrant-libvirt deletes them one by one."""
    try:
        count = virt.forget_snapshots(run.owned.domains, START_SNAPSHOT_PREFIX)
    except LabError as exc:  # vagrant destroy and the removal by name still handle them
        run.progress.say("lab", f"cached start states not forgotten ({exc}); removing them with the domains")
        return
    if count:
        run.progress.say("lab", f"forgot {count} cached start state snapshot(s)")


def _remove_owned(run: DestroyRun) -> None:
    domains = run.owned.domains
    with run.progress.step("lab", f"remove the lab's libvirt domains, snapshots, volumes and networks by name "
                                  f"({', '.join(domains[:2])}{', ...' if len(domains) > 2 else ''})"):
        run.removed, left = libvirt_owned.remove_owned(run.owned)
    if not left.empty:
        raise LabError(f"left behind: {left}; remove them by hand with virsh")


DESTROY_STEPS: list[Step[DestroyRun]] = [
    Step("release host fixtures", lambda run: fixtures.release(run.lab)),
    Step("forget cached start states", _forget_start_states),
    Step("vagrant destroy", _vagrant_destroy, done=lambda run: not _vagrant_made(run)),
    Step("remove libvirt objects", _remove_owned),
    Step("remove the lab folder", lambda run: shutil.rmtree(run.lab.dir), done=lambda run: not run.lab.dir.exists()),
]


class NoSuchLab(UsageError):
    """`lab destroy` of a lab that has no folder: nothing is removed unless forced."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(f"there is no lab '{lab.name}' (no folder {lab.dir}): nothing removed")
        self.name, self.dir = lab.name, lab.dir


def _owned_names(lab: Lab, force: bool, progress: Progress) -> tuple[Lab, Owned]:
    """The names to remove: the state file's; without a usable one those lab NAME makes."""
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
        return lab, derived
    return lab, owned.union(derived) if force else owned


@mutating()
def destroy(name: str | None = None, progress: Progress | None = None, *,
            force: bool = False) -> libvirt_owned.Leftovers:
    """Remove exactly the libvirt objects the lab owns, then its folder.

    The owned names are the state file's. Without a usable state file (missing, corrupt, of
    wrong types) they are the names lab NAME makes, which its name alone decides; the folder
    goes too. Without a lab folder nothing is removed unless `force`: then only objects named
    exactly as lab NAME names them (never flab-NAME-x-*).
    """
    progress = progress or Progress()
    lab = Lab(name or current_name())
    if not lab.dir.exists() and not force:
        progress.say("lab", str(NoSuchLab(lab)))
        return libvirt_owned.Leftovers((), (), ())
    lab, owned = _owned_names(lab, force, progress)
    run = DestroyRun(lab, progress, owned)
    try:  # what is there now: vagrant destroy removes most of it before the removal by name
        present: libvirt_owned.Leftovers | None = libvirt_owned.find_owned(owned)
    except LabError:
        present = None
    run_steps("lab destroy", DESTROY_STEPS, run)
    progress.say("lab", f"lab '{lab.name}' destroyed; removed: {present if present is not None else run.removed}")
    return run.removed
