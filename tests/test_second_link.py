"""corosync-second-link: the lab's second cluster network, its placeholders, the knet facts and
the checks, judged on corosync's own output.

tests/captures/second_link/ holds real output (see its README.md): corosync 3.1.7 ran as a
two-node cluster on this host, each node in a network namespace of its own (veth pairs, nothing
outside the namespaces), through every state below; its corosync.conf files were written by
pcs 0.11.5's own library (ConfigFacade.add_link, what `pcs cluster link add` pushes) and by the
crmsh reference solution's awk. Two states are put together from those captures (marked
COMPOSED) because corosync cannot reach them: a runtime-only link (corosync 3.1 refuses
`corosync-cmapctl -s nodelist...` with CS_ERR_ACCESS) and an address outside the lab's networks.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from checks import REGISTRY
from checks.links import cmap_nodelist
from lab.core.corosync import parse_corosync_conf
from lab.core.errors import ExerciseSchemaError
from lab.engine.commands import command_context, render_command
from lab.engine.exercises import load
from lab.engine.grading import sections_for
from lab.gather.facts import Facts
from lab.gather.sections import node_facts_from_sections
from lab.transport.runner import CommandResult
from lab.vm import network, profiles, provision
from lab.vm import vagrant as vg
from lab.vm.commands import context, plan
from lab.vm.labstate import Lab, LabState, Owned, StateError
from lab.vm.statemodel import LINK1_RANGE, link1_subnet

CAPTURES = Path(__file__).parent / "captures" / "second_link"
NODES = ("node1", "node2")
EXERCISE = "corosync-second-link"
CHECKS = ("corosync_link_runtime", "corosync_link_connected", "corosync_conf_link")
LINK1 = {"node1": "10.233.10.11", "node2": "10.233.10.12"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAB_NAME", raising=False)
    return tmp_path / "home"


def new_lab(name: str = "t1", nodes: int = 2, third: int = 42, **extra: object) -> Lab:
    lab = Lab(name)
    lab.state = {"name": name, "nodes": nodes, "private_cidr": f"10.231.{third}.0/24",
                 "mgmt_cidr": f"10.232.{third}.0/24", **extra}
    lab.dir.mkdir(parents=True)
    return lab


def old_lab(name: str = "old") -> Lab:
    """A lab whose state file was written before the second network (no link1_cidr, owned recorded)."""
    lab = new_lab(name)
    data = lab.state.to_json()
    del data["link1_cidr"]
    data["owned"] = Owned.derive(name, 2, "default", link1=False).to_json()
    lab.state_file.write_text(json.dumps(data))
    return Lab.load(name)


# --- the network: allocation, state, libvirt names ----------------------------------------------

def test_a_new_lab_gets_three_disjoint_networks(home: Path) -> None:
    priv, mgmt = network.pick_subnets([])
    link1 = link1_subnet(priv)
    assert (priv, mgmt, link1) == ("10.231.10.0/24", "10.232.10.0/24", "10.233.10.0/24")
    nets = [ipaddress.ip_network(n) for n in (priv, mgmt, link1)]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    state = LabState(name="n", nodes=2, box="debian12", box_name="b", memory=768, cpus=1, driver="qemu",
                     uri="qemu:///system", pool="default", private_cidr=priv, mgmt_cidr=mgmt)
    assert state.link1_cidr == link1  # what lifecycle.init_lab builds
    assert "flab-n-link1" in state.owned.networks


def test_the_checks_judge_the_range_every_second_network_is_in() -> None:
    """Every lab's second network is a /24 of LINK1_RANGE, the network the exercise's checks accept."""
    assert all(ipaddress.ip_network(link1_subnet(f"10.231.{x}.0/24")).subnet_of(ipaddress.ip_network(LINK1_RANGE))
               for x in range(10, 250))
    assert {c.params.get("network") for c in load(EXERCISE).checks} - {None} == {LINK1_RANGE}


def test_the_second_network_must_be_free_too(home: Path) -> None:
    """A route or libvirt network on 10.233.10.0/24 (or inside it), or another lab's second
    network, moves the new lab to the next X."""
    assert network.pick_subnets(["10.233.10.0/25"])[0] == "10.231.11.0/24"
    new_lab("other", third=10).save()  # lab 'other' holds 10.231/10.232/10.233.10.0/24
    assert network.pick_subnets([])[0] == "10.231.11.0/24"
    assert network.pick_subnets(["10.233.11.0/24"])[0] == "10.231.12.0/24"


def test_old_state_without_the_field_loads_and_has_no_second_network(home: Path) -> None:
    lab = old_lab()
    assert lab.state.link1_cidr is None
    assert lab.owned.networks == ("flab-old-mgmt", "flab-old-priv")
    assert network.link1_addresses(lab) is None
    lab.save()  # written back as it is: still none
    assert json.loads(lab.state_file.read_text())["link1_cidr"] is None
    assert Lab.load("old").state.link1_cidr is None
    # A version-1 file (no owned either) derives owned names without the second network.
    data = json.loads(lab.state_file.read_text())
    del data["owned"], data["version"], data["link1_cidr"]
    lab.state_file.write_text(json.dumps(data))
    assert Lab.load("old").owned.networks == ("flab-old-mgmt", "flab-old-priv")


def test_state_refuses_a_second_network_that_overlaps(home: Path) -> None:
    with pytest.raises(StateError, match="'link1_cidr' overlaps private_cidr"):
        new_lab(link1_cidr="10.231.0.0/16")
    with pytest.raises(StateError, match="'link1_cidr'"):
        new_lab("t2", link1_cidr="10.233.42.7/24")


def test_destroy_force_knows_the_second_network() -> None:
    """`lab destroy --force NAME` (and a state's owned names) include flab-NAME-link1, exactly."""
    assert "flab-a-link1" in Owned.anything_of("a").networks
    assert not {n for n in Owned.anything_of("a-b").networks} & set(Owned.anything_of("a").networks)


def test_node_addresses_on_the_second_network(home: Path) -> None:
    lab = new_lab(nodes=3)
    assert network.link1_addresses(lab) == {"node1": "10.233.42.11", "node2": "10.233.42.12",
                                            "node3": "10.233.42.13"}


# --- the Vagrantfile and the guest's address ------------------------------------------------------

def test_vagrantfile_has_the_second_network_on_every_node(home: Path) -> None:
    text = vg.render_vagrantfile(new_lab(nodes=3))
    for expected in ("libvirt__network_name: 'flab-t1-link1'", "ip: '10.233.42.11'", "ip: '10.233.42.13'"):
        assert expected in text, expected
    link1 = text.split("flab-t1-link1", 1)[1].split("\n", 2)[1]
    assert "libvirt__forward_mode: 'none'" in link1 and "libvirt__dhcp_enabled: false" in link1
    assert text.count("libvirt__network_name: 'flab-t1-link1'") == 3
    assert '"' not in text.split("\n", 3)[3]


def test_vagrantfile_of_an_old_lab_has_no_second_network(home: Path) -> None:
    text = vg.render_vagrantfile(old_lab())
    assert "link1" not in text and "10.233." not in text
    assert "libvirt__network_name: 'flab-old-priv'" in text


@pytest.mark.parametrize("box", ["debian12", "alma8"])
def test_system_script_gives_eth2_its_address_persistently(box: str) -> None:
    profile = profiles.load_profile(box)
    assert profile.link1_iface == "eth2"
    script = provision.system_script(node="node2", ip="10.231.42.12", cidr="10.231.42.0/24",
                                     nodes=[("node1", "10.231.42.11"), ("node2", "10.231.42.12")],
                                     pubkey="ssh-ed25519 AAAA lab", profile=profile,
                                     link1=("10.233.42.12", "10.233.42.0/24"))
    if box == "debian12":
        assert "/etc/network/interfaces.d/lab-eth2" in script and "address 10.233.42.12/24" in script
        assert "/etc/network/interfaces.d/lab-eth1" in script and "address 10.231.42.12/24" in script
    else:
        assert "con-name lab-eth2 ipv4.method manual ipv4.addresses 10.233.42.12/24" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0
    none = provision.system_script(node="node2", ip="10.231.42.12", cidr="10.231.42.0/24", nodes=[],
                                   pubkey="k", profile=profile, link1=None)
    assert "eth2" not in none


# --- placeholders and the refusal on an old lab ---------------------------------------------------

def test_placeholders_of_the_second_network(home: Path) -> None:
    lab = new_lab()
    lab.ensure_password()
    values = context(lab)
    assert values["link1_addrs"] == "node1=10.233.42.11 node2=10.233.42.12"
    assert values["node2_link1_ip"] == "10.233.42.12"
    exercise = load(EXERCISE)
    assert render_command(exercise.solution_pcs[0], values) == \
        "pcs cluster link add node1=10.233.42.11 node2=10.233.42.12 options linknumber=1"
    offline = command_context(["node1", "node2"])  # offline states: TEST-NET-2, never a real host
    assert offline["link1_addrs"] == "node1=198.51.100.11 node2=198.51.100.12"


def test_an_old_lab_refuses_the_exercise_in_one_line(home: Path) -> None:
    lab = old_lab()
    lab.ensure_password()
    values = context(lab)
    exercise = load(EXERCISE)
    for commands in (exercise.start.commands, exercise.solution_pcs, exercise.solution_crmsh):
        with pytest.raises(network.NoSecondNetwork) as caught:
            plan(commands, list(lab.node_names), "node1", values, "start state")
        message = str(caught.value)
        assert "\n" not in message and "second cluster network" in message
        assert "'lab destroy' then 'lab up'" in message
        assert caught.value.exit_code == 2
    # Every other exercise still renders on the old lab; a typo is still a schema error.
    assert render_command("pcs status nodes {nodes} {vip_ip}", values).startswith("pcs status nodes node1 node2")
    with pytest.raises(ExerciseSchemaError, match="unknown placeholder"):
        render_command("echo {nodez}", values)


def test_lab_show_fills_the_addresses_without_a_lab(home: Path) -> None:
    from lab.cli.showing import render_exercise

    text = render_exercise(load(EXERCISE), solution=True, pcs_version="0.11.5", detect=False)
    assert "pcs cluster link add node1=NODE1_LINK1_ADDRESS node2=NODE2_LINK1_ADDRESS options linknumber=1" in text


def _fake_node(tmp_path: Path, name: str, ip_output: str, knet: str = "") -> dict[str, str]:
    bindir = tmp_path / f"bin-{name}"
    bindir.mkdir()
    for tool, text in (("uname", name + "\n"), ("ip", ip_output), ("corosync-cmapctl", knet)):
        (bindir / f"{tool}.out").write_text(text)
        (bindir / tool).write_text(f"#!/bin/sh\ncat '{bindir}/{tool}.out'\n")
        (bindir / tool).chmod(0o755)
    (bindir / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "sleep").chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def _on_all(command: str) -> str:
    return "set -e\n" + render_command(command, command_context(list(NODES), link1=list(LINK1.values())))\
        .removeprefix("on all: ") + "\n"


def test_start_command_checks_each_nodes_own_address(tmp_path: Path) -> None:
    start = _on_all(load(EXERCISE).start.commands[0])
    has = _fake_node(tmp_path, "node2", "3: eth2    inet 10.233.10.12/24 brd 10.233.10.255 scope global eth2\n")
    assert subprocess.run(["bash", "-c", start], env=has, capture_output=True, text=True).returncode == 0
    lacks = _fake_node(tmp_path, "node1", "2: eth1    inet 10.231.10.11/24 scope global eth1\n")
    done = subprocess.run(["bash", "-c", start], env=lacks, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == ("node1 has no address 10.233.10.11 on the second cluster network: "
                                   "'lab destroy' and 'lab up' make the lab again")


def test_solution_wait_ends_once_link1_is_connected(tmp_path: Path) -> None:
    wait = _on_all(load(EXERCISE).solution_pcs[-1])
    env = _fake_node(tmp_path, "node1", "", (CAPTURES / "both" / "node1.knet").read_text())
    done = subprocess.run(["bash", "-c", wait + "echo tries=$i"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "tries=1", done.stdout + done.stderr
    env = _fake_node(tmp_path, "node2", "", (CAPTURES / "link1_down" / "node2.knet").read_text())
    done = subprocess.run(["bash", "-c", wait + "echo tries=$i"], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "tries=30"  # gives up after its bound, the check judges


# --- pcs and crmsh write the same corosync.conf -----------------------------------------------------

@pytest.mark.parametrize("awk", ["mawk", "gawk"])
def test_crmsh_solution_edit_writes_what_pcs_writes(tmp_path: Path, awk: str) -> None:
    """The crmsh solution's awk on the lab's corosync.conf (pcs cluster setup's own) gives the
    file pcs 0.11.5's link add writes, byte for byte (mawk: Debian's awk)."""
    if shutil.which(awk) is None:
        pytest.skip(f"{awk} not installed")
    conf = tmp_path / "corosync.conf"
    conf.write_text((CAPTURES / "pcs_setup.conf").read_text())
    edit = render_command(load(EXERCISE).solution_crmsh[0], command_context(list(NODES), link1=list(LINK1.values())))
    edit = edit.replace("awk ", f"{awk} ", 1).replace("/etc/corosync/corosync.conf", str(conf))
    edit = edit.replace("/run/corosync.conf.link1", str(tmp_path / "new"))
    assert subprocess.run(["bash", "-c", edit], check=False).returncode == 0
    assert (tmp_path / "new").read_text() == (CAPTURES / "pcs_link_add.conf").read_text()


def test_conf_link_addresses_by_name() -> None:
    conf = parse_corosync_conf((CAPTURES / "pcs_link_add_udp.conf").read_text())
    assert conf.link_addresses(1) == LINK1
    assert conf.link_addresses(0) == {"node1": "10.231.10.11", "node2": "10.231.10.12"}
    assert parse_corosync_conf((CAPTURES / "pcs_setup.conf").read_text()).link_addresses(1) == {}


# --- facts from the captures ------------------------------------------------------------------------

def _node(state: str, name: str, conf_state: str | None = None) -> object:
    folder = CAPTURES / state
    sections = {"hostname": CommandResult("hostname", 0, name + "\n", ""),
                "cmap": CommandResult("cmap", 0, (folder / f"{name}.cmap").read_text(), ""),
                "knet": CommandResult("knet", 0, (folder / f"{name}.knet").read_text(), ""),
                "corosync_conf": CommandResult("corosync_conf", 0,
                                               (CAPTURES / (conf_state or state) / f"{name}.conf").read_text(), "")}
    return node_facts_from_sections(name, sections)


def facts_of(state: str, conf_state: str | None = None) -> Facts:
    nodes = {n: _node(state, n, conf_state) for n in NODES}
    return Facts(live=True, expected_nodes=NODES, cib=None, cib_xml=None, status=None, nodes=nodes,
                 source=f"capture {state}")


def verdicts(facts: Facts) -> dict[str, tuple[bool | None, str]]:
    params = {c.check: c.params for c in load(EXERCISE).checks}
    return {name: (v.passed, v.message) for name in CHECKS
            for v in [REGISTRY[name].function(facts, **params[name])]}


def test_the_exercise_gathers_cmap_knet_and_corosync_conf() -> None:
    assert {"cmap", "knet", "corosync_conf"} <= sections_for(load(EXERCISE))


def test_knet_stats_and_nodelist_parse_from_corosync_3() -> None:
    node = _node("odd_udp", "node1")
    assert node.knet["stats.knet.node3.link1.connected"] == "1"
    assert not node.problems
    nodelist = cmap_nodelist(node.cmap)
    assert {n: (v.nodeid, v.addrs) for n, v in nodelist.items()} == {
        "node1": ("7", {0: "10.231.10.11", 1: "10.233.10.11"}),
        "node2": ("3", {0: "10.231.10.12", 1: "10.233.10.12"})}


def test_a_node_without_corosync_gives_empty_knet_facts() -> None:
    refused = "Failed to initialize the cmap API. Error CS_ERR_LIBRARY\n"  # corosync-cmapctl, corosync down
    down = node_facts_from_sections("node1", {"knet": CommandResult("knet", 1, "", refused)})
    assert dict(down.knet) == {}


@pytest.mark.parametrize("state", ["both", "odd_udp", "live_pcs"])
def test_equivalent_forms_pass(state: str) -> None:
    """both: node1's file from pcs's link add, node2's from the crmsh awk, then reloaded.
    odd_udp: node ids 7 and 3, and link 1 with knet_transport udp and a link priority (pcs
    `options linknumber=1 transport=udp link_priority=2`). live_pcs: a real 2-node lab (Debian 12
    box, crypto on) after the pcs reference solution through pcsd."""
    found = verdicts(facts_of(state))
    assert all(passed for passed, _ in found.values()), found


def test_the_start_state_fails_every_check() -> None:
    found = verdicts(facts_of("baseline"))
    assert not any(passed for passed, _ in found.values()), found
    assert "no link 1 address for node1" in found["corosync_link_runtime"][1]
    assert "corosync-cfgtool -R" in found["corosync_link_runtime"][1]


NEAR_MISSES = [
    # (state, conf_state, checks that must fail, text in the first failing message)
    ("only_node1", None, CHECKS, "node2: the running corosync has no link 1 address"),
    ("edited_not_reloaded", None, ("corosync_link_runtime", "corosync_link_connected"), "corosync-cfgtool -R"),
    ("link1_down", None, ("corosync_link_connected",), "link 1 to node2 is down"),
    ("mgmt", None, ("corosync_link_runtime", "corosync_conf_link"), "10.232.10.11 is not on the second"),
    # COMPOSED: the running corosync of 'both' with the files of the start state.
    ("both", "baseline", ("corosync_conf_link",), "corosync.conf has no link 1 address for node1"),
]


@pytest.mark.parametrize(("state", "conf_state", "failing", "text"), NEAR_MISSES,
                         ids=[f"{s}-{c or s}" for s, c, _, _ in NEAR_MISSES])
def test_near_misses_fail(state: str, conf_state: str | None, failing: tuple[str, ...], text: str) -> None:
    found = verdicts(facts_of(state, conf_state))
    assert {name for name, (passed, _) in found.items() if not passed} == set(failing), found
    assert any(text in found[name][1] for name in failing), found


def _with_conf(state: str, name: str, old: str, new: str, cmap: bool = True) -> Facts:
    """COMPOSED facts: STATE's capture with NAME's corosync.conf line OLD changed to NEW."""
    facts = facts_of(state)
    text = (CAPTURES / state / f"{name}.conf").read_text().replace(old, new)
    running = (CAPTURES / state / f"{name}.cmap").read_text() if cmap else ""
    nodes = dict(facts.nodes)
    nodes[name] = node_facts_from_sections(name, {"corosync_conf": CommandResult("corosync_conf", 0, text, ""),
                                                  "cmap": CommandResult("cmap", 0, running, "")})
    return Facts(**{**facts.__dict__, "nodes": nodes})


def test_the_link_must_be_on_the_lab_network_not_any_address() -> None:
    """COMPOSED: node2's file names a link 1 address outside the lab's second network."""
    facts = _with_conf("both", "node2", "ring1_addr: 10.233.10.12", "ring1_addr: 192.168.7.12")
    found = REGISTRY["corosync_conf_link"].function(facts, link=1, network="10.233.0.0/16")
    assert not found.passed and "192.168.7.12 is not on the second cluster network" in found.message


def test_files_that_disagree_fail() -> None:
    """COMPOSED: node1's file gives node2 another link 1 address than node2's own file."""
    facts = _with_conf("both", "node1", "ring1_addr: 10.233.10.12", "ring1_addr: 10.233.10.99", cmap=False)
    found = REGISTRY["corosync_conf_link"].function(facts, link=1, network="10.233.0.0/16")
    assert not found.passed and re.search(r"gives node2 10\.233\.10\.(12|99) .*gives 10\.233\.10\.", found.message)


def test_file_and_running_corosync_must_agree() -> None:
    """COMPOSED: node2's file gives node2 another address than its running corosync uses."""
    facts = _with_conf("both", "node2", "ring1_addr: 10.233.10.12", "ring1_addr: 10.233.10.99")
    found = REGISTRY["corosync_conf_link"].function(facts, link=1, network="10.233.0.0/16")
    assert not found.passed, found.message


def test_lab_start_refuses_before_touching_an_old_lab(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a lab without the second network, `lab start corosync-second-link` is refused before the
    revert (no libvirt call: the URI points nowhere), so the lab stays as it was."""
    from lab.vm import startstate
    from lab.vm.labstate import StepName

    lab = old_lab()
    lab.mark(StepName.INSTALLED_SNAPSHOT)
    lab.mark(StepName.CLUSTER_SNAPSHOT)
    monkeypatch.setenv("LAB_NAME", "old")
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///nowhere")
    with pytest.raises(network.NoSecondNetwork):
        startstate.start(EXERCISE)
    assert Lab.load("old").state.get("exercise") in (None, "")
