"""A rerun of `lab up` after an interrupted one: existing domains are started through libvirt,
half-made ones are made again, vagrant only creates what is missing.

libvirt runs as its in-process test driver (test:///default, shared by this process's
connections; fixtures from tests/test_labstate.py); vagrant is not run here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.core.progress import Progress
from lab.vm import bringup, virt
from lab.vm import vagrant as vg
from lab.vm.labstate import Lab
from tests.test_labstate import existing, good_state, home, make_objects, shared_libvirt, write_state  # noqa: F401

pytest.importorskip("libvirt")


def vagrant_knows(lab: Lab, nodes: tuple[str, ...]) -> None:
    """Write vagrant-libvirt's machine id of NODES, as its create does right after the define."""
    for node in nodes:
        vg.machine_id_file(lab, node).parent.mkdir(parents=True)
        vg.machine_id_file(lab, node).write_text("uuid")


def plug_nics(conn, lab: Lab, nodes: tuple[str, ...]) -> None:  # noqa: ANN001
    """Give the domains of NODES a NIC on each of the lab's networks, as vagrant-libvirt's create
    finishes (make_objects defines bare domains, as a create stopped half-way leaves them)."""
    for node in nodes:
        xml = conn.lookupByName(lab.domain_name(node)).XMLDesc(2)  # the persistent definition
        nics = "".join(f"<interface type='network'><source network='{net}'/></interface>"
                       for net in lab.owned.networks)
        if "<devices>" in xml:
            xml = xml.replace("<devices>", "<devices>" + nics, 1)
        else:
            xml = xml.replace("</domain>", f"<devices>{nics}</devices></domain>")
        conn.defineXML(xml)


def test_rerun_starts_stopped_domains_and_remakes_half_made_ones(home: Path, shared_libvirt) -> None:  # noqa: ANN001, F811
    conn = shared_libvirt
    make_objects(conn, "a", 4, 50)
    write_state(home, "a", good_state("a", nodes=4))
    lab = Lab.load("a")
    # node1: made by vagrant, then stopped (a halted lab, or a killed run before its start);
    # node2: running and vagrant's; node3: running, but vagrant never recorded it (killed mid-create).
    # node4: vagrant's (machine id) but stopped before it added the NICs: booted without network.
    conn.lookupByName("flab-a-node1").destroy()
    vagrant_knows(lab, ("node1", "node2", "node4"))
    plug_nics(conn, lab, ("node1", "node2", "node3"))
    states = virt.domain_states(lab.owned.domains)
    assert states == {"flab-a-node1": "shutoff", "flab-a-node2": "running", "flab-a-node3": "running",
                      "flab-a-node4": "running"}

    to_create = bringup.prepare_domains(lab, states, Progress(quiet=True))

    assert to_create == ["node3", "node4"]
    assert virt.domain_states(lab.owned.domains) == {"flab-a-node1": "running", "flab-a-node2": "running",
                                                      "flab-a-node3": "absent", "flab-a-node4": "absent"}
    left = existing(conn)
    assert "default/flab-a-node3.img" not in left and "default/flab-a-node4.img" not in left
    assert "default/flab-a-node2.img" in left
    assert not vg.machine_id_file(lab, "node4").exists()
    assert {"flab-a-mgmt", "flab-a-priv"} <= left


def test_a_fresh_lab_creates_every_node(home: Path, shared_libvirt) -> None:  # noqa: ANN001, F811
    write_state(home, "a", good_state("a", nodes=2))
    lab = Lab.load("a")
    states = virt.domain_states(lab.owned.domains)
    assert bringup.prepare_domains(lab, states, Progress(quiet=True)) == ["node1", "node2"]


def test_a_disk_left_without_its_domain_is_removed(home: Path, shared_libvirt) -> None:  # noqa: ANN001, F811
    conn = shared_libvirt
    pool = conn.storagePoolLookupByName("default")
    pool.createXML("<volume><name>flab-a-node2.img</name><capacity>1024</capacity></volume>", 0)
    pool.createXML("<volume><name>flab-a-b-node2.img</name><capacity>1024</capacity></volume>", 0)
    write_state(home, "a", good_state("a", nodes=2))
    lab = Lab.load("a")
    assert bringup.prepare_domains(lab, virt.domain_states(lab.owned.domains), Progress(quiet=True)) == [
        "node1", "node2"]
    assert set(pool.listVolumes()) == {"flab-a-b-node2.img"}  # another lab's disk stays


def test_inactive_networks_are_started_before_the_domains(home: Path, shared_libvirt) -> None:  # noqa: ANN001, F811
    conn = shared_libvirt
    make_objects(conn, "a", 1, 60)
    write_state(home, "a", good_state("a", nodes=1))
    lab = Lab.load("a")
    conn.lookupByName("flab-a-node1").destroy()
    for name in lab.owned.networks:
        conn.networkLookupByName(name).destroy()
    vagrant_knows(lab, ("node1",))
    plug_nics(conn, lab, ("node1",))
    assert bringup.prepare_domains(lab, virt.domain_states(lab.owned.domains), Progress(quiet=True)) == []
    assert all(conn.networkLookupByName(n).isActive() for n in lab.owned.networks)
    assert conn.lookupByName("flab-a-node1").isActive()
