"""Bringing the nodes up: the domains a rerun finds (started, or removed when half-made), vagrant
creating the missing ones in the background, and each node provisioned as soon as it answers SSH
(hostname and addresses, HA packages, pcsd), overlapping vagrant's own waiting."""

from __future__ import annotations

import contextlib
import threading
import time

from lab.core.errors import NodeError, UsageError
from lab.core.progress import Progress
from lab.transport.address import NodeAddress
from lab.transport.retry import GaveUp, retry
from lab.transport.ssh import SSHNode
from lab.vm import libvirt_host, libvirt_owned, profiles, provision, virt
from lab.vm import vagrant as vg
from lab.vm.cluster import say_retries
from lab.vm.keys import pin_host_key
from lab.vm.labstate import SSH_USER, Lab, Owned, StepName
from lab.vm.network import link1_addresses
from lab.vm.nodes import connect_retry, lab_node

BOOT_TIMEOUT = float(vg.BOOT_TIMEOUT)


def prepare_domains(lab: Lab, states: dict[str, str], progress: Progress) -> list[str]:
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
    for node in lab.node_names:
        domain = lab.domain_name(node)
        state = _remake_half_made(lab, node, states.get(domain, "absent"), progress)
        if state == "absent":
            to_create.append(node)
        elif state not in ("running", "paused"):
            stopped.append(domain)
    if stopped:
        with progress.step("lab", f"start {', '.join(stopped)} (libvirt)"):
            libvirt_host.start_networks(lab.owned.networks)
            virt.start_domains(stopped)
    return to_create


def _remake_half_made(lab: Lab, node: str, state: str, progress: Progress) -> str:
    """The domain's state once what an interrupted create left of it is gone ("absent" then)."""
    domain = lab.domain_name(node)
    half_made = Owned(domains=(domain,), volumes=(f"{domain}.img",), networks=(),
                      snapshots=lab.owned.snapshots, pool=lab.owned.pool)
    if state != "absent" and (not vg.machine_id_file(lab, node).is_file()
                              or not set(lab.owned.networks) <= (virt.domain_networks(domain) or set())):
        progress.say(node, f"{domain} was left half-made by an interrupted run: made again")
        libvirt_owned.remove_owned(half_made)
        state = "absent"
    if state == "absent":
        # A disk without its domain (a create stopped before the define): vagrant-libvirt
        # refuses to go on ("Volume for domain is already created").
        removed, _ = libvirt_owned.remove_owned(half_made)
        if removed.volumes:
            progress.say(node, f"removed {', '.join(removed.volumes)} left without its domain")
        with contextlib.suppress(FileNotFoundError):
            vg.machine_id_file(lab, node).unlink()
    return state


class VagrantFailed(NodeError):
    """vagrant up (in the background) failed while a node was being waited for."""


class _NoLease(Exception):
    """No DHCP lease yet: a failed try of the lease wait."""


def _wait_lease(name: str, domain: str, deadline: float, vagrant_failed: threading.Event) -> str:
    """The management address of a booting domain (its DHCP lease), while vagrant runs."""
    def attempt() -> str:
        if vagrant_failed.is_set():
            raise VagrantFailed(f"{name}: vagrant up failed")
        ip = virt.lease_ip(domain)
        if not ip:
            raise _NoLease("no lease yet")
        return ip

    try:
        return retry(attempt, what=f"{name}: DHCP lease", within=max(0.0, deadline - time.monotonic()),
                     every=0.5, retry_on=(_NoLease,), where=name)
    except GaveUp as exc:
        raise NodeError(str(exc)) from exc


def _first_contact(lab: Lab, name: str, deadline: float, vagrant_failed: threading.Event) -> SSHNode:
    """A new node over its management address with Vagrant's insecure key."""
    keys = vg.insecure_keys()
    if not keys:
        raise UsageError("Vagrant's insecure key is not found; install the vagrant package")
    ip = _wait_lease(name, lab.domain_name(name), deadline, vagrant_failed)
    return connect_retry(lambda: SSHNode(NodeAddress(name, SSH_USER, ip), identity=keys[0],
                                         known_hosts=lab.known_hosts, connect_timeout=5.0),
                         deadline, name)


def provision_node(lab: Lab, name: str, profile: profiles.Profile, password: str,
                   progress: Progress, lock: threading.Lock, vagrant_failed: threading.Event) -> str:
    """Provision one node as soon as it answers SSH; its pcs version (last line of pcsd setup)."""
    spec = lab.node(name)
    deadline = time.monotonic() + BOOT_TIMEOUT
    system_done = lab.done(StepName.SYSTEM.on(name))
    with progress.step(name, "boot and first SSH contact", limit=BOOT_TIMEOUT):
        if system_done:
            node = connect_retry(lambda: lab_node(lab, name, 5.0), deadline, name)
        else:
            node = _first_contact(lab, name, deadline, vagrant_failed)
    try:
        if not system_done:
            with progress.step(name, f"hostname, /etc/hosts, {spec.ip} on {profile.private_iface}, lab SSH key"):
                pub = lab.identity.with_suffix(".pub").read_text()
                provision.run_root(node, provision.system_script(
                    node=name, ip=spec.ip, cidr=lab.state.private_cidr,
                    nodes=[(n.name, n.ip) for n in lab.nodes], pubkey=pub, profile=profile,
                    link1=_link1(lab, name)), "system setup")
                pin_host_key(lab, node, spec.ip)
            node.close()
            node = connect_retry(lambda: lab_node(lab, name, 5.0), deadline, name)
            with lock:
                lab.mark(StepName.SYSTEM.on(name))
        if profile.repo_setup or profile.packages or profile.firewall:
            with progress.step(name, "HA repository, packages, firewalld high-availability"):
                provision.run_root(node, provision.packages_script(profile), "package setup", timeout=1800)
        with progress.step(name, "hacluster password, no stale cluster, pcsd enabled and answering",
                           limit=provision.PCSD_SETUP_TIMEOUT):
            script = provision.pcsd_script(password, provision.pcs_request_timeout(lab.state.driver))
            result = provision.run_root(node, script, "pcsd setup", timeout=provision.PCSD_SETUP_TIMEOUT)
        say_retries(progress, name, result)
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    finally:
        node.close()


def _link1(lab: Lab, name: str) -> tuple[str, str] | None:
    """The node's (address, network) on the second cluster network; None on a lab without one."""
    addresses = link1_addresses(lab)
    return (addresses[name], lab.state.link1_cidr) if addresses and lab.state.link1_cidr else None
