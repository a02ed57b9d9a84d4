"""Fencing, SBD and probe judgements without VMs.

What a probe saw (boot ids, exit codes) is plain data: these tests feed the checks the
outcomes a real lab can produce — a right map, a swapped map, an agent that reports
success without a reset, a node that does not come back — and the real run is in
tests/test_vm_catalogue.py. The sbd and stonith_admin texts follow those tools' output
formats (sbd's `list` prints "slot<TAB>node<TAB>message<TAB>sender"); the host here has
no sbd package to produce them.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from types import MappingProxyType

import pytest

from checks import get_check
from checks.fencing import _devices_for
from lab.core.errors import ExerciseSchemaError
from lab.core.tomlfile import read_toml
from lab.engine.exercises import load, parse_exercise
from lab.gather.facts import Facts, NodeFacts, parse_fence_targets, parse_sbd
from lab.gather.probes import ProbeResult, probe_names, without_probes
from lab.vm import fencehost
from lab.vm.labstate import Lab


def facts_with(probes: dict[str, ProbeResult] | None = None, nodes: dict[str, NodeFacts] | None = None,
               expected: tuple[str, ...] = ("node1", "node2")) -> Facts:
    return Facts(live=True, expected_nodes=expected, cib=None, cib_xml=None, status=None,
                 nodes=MappingProxyType(nodes or {n: NodeFacts(name=n) for n in expected}), source="live",
                 probes=MappingProxyType(probes or {}))


def fence(**data: object) -> Facts:
    base = {"target": "node2", "actor": "node1", "returncode": 0, "output": "", "rebooted": ["node2"],
            "unreachable": [], "rejoined": ["node2"], "seconds": 95.0}
    base.update(data)
    return facts_with({"fence": ProbeResult("fence", base)})


def judge(name: str, facts: Facts, **params: object) -> tuple[bool | None, str]:
    verdict = get_check(name).function(facts, **params)
    return verdict.passed, verdict.message


def test_real_fence_of_the_right_vm_passes() -> None:
    passed, message = judge("fencing_works", fence())
    assert passed, message
    assert "node2" in message


@pytest.mark.parametrize(("data", "words"), [
    ({"rebooted": ["node1"], "rejoined": []}, "node1"),            # host map swapped: the actor itself went
    ({"rebooted": ["node1", "node2"]}, "node1"),                    # both reset
    ({"unreachable": ["node1"], "returncode": None}, "node1"),      # actor lost mid-fence
    ({"returncode": 194, "output": "error: No such device", "rebooted": [], "rejoined": []}, "exit 194"),
    ({"rebooted": [], "rejoined": []}, "did not reboot"),           # an agent that only says 'OK'
    ({"rejoined": []}, "did not rejoin"),                           # reset, but the cluster not enabled at boot
])
def test_fence_near_misses_fail(data: dict, words: str) -> None:
    passed, message = judge("fencing_works", fence(**data))
    assert passed is False
    assert words in message


def test_fence_probe_error_fails() -> None:
    facts = facts_with({"fence": ProbeResult("fence", error="not reachable before fencing: node2")})
    assert judge("fencing_works", facts) == (False, "not reachable before fencing: node2")
    assert judge("fencing_works", facts_with())[0] is False


def test_reboot_probe_judgement() -> None:
    good = facts_with({"reboot": ProbeResult("reboot", {"rebooted": ["node1", "node2"],
                                                         "members": ["node1", "node2"], "seconds": 120.0})})
    assert judge("cluster_survives_reboot", good)[0]
    half = facts_with({"reboot": ProbeResult("reboot", {"rebooted": ["node1", "node2"], "members": ["node1"],
                                                         "seconds": 360.0})})
    passed, message = judge("cluster_survives_reboot", half)
    assert passed is False and "node2" in message
    stuck = facts_with({"reboot": ProbeResult("reboot", {"rebooted": ["node1"], "members": ["node1"],
                                                          "seconds": 360.0})})
    assert "did not come back" in judge("cluster_survives_reboot", stuck)[1]


@pytest.mark.parametrize(("read_rc", "write_rc", "passed"), [
    (0, 4, True),     # read allowed, write refused (CRM_EX_INSUFFICIENT_PRIV)
    (0, 0, False),    # write went through: ACLs off, or a write role
    (13, 13, False),  # nothing allowed: user without a role, or not in haclient
])
def test_acl_probe_judgement(read_rc: int, write_rc: int, passed: bool) -> None:
    data = {"user": "monitor", "read_rc": read_rc, "read_output": "", "write_rc": write_rc, "write_output": ""}
    facts = facts_with({"acl": ProbeResult("acl", data)})
    assert judge("acl_read_only_in_effect", facts, user="monitor")[0] is passed


SBD_LIST = "0\tnode1\tclear\t\n1\tnode2\tclear\t\n"


def sbd_section(conf: str, active: str = "active", listing: str = SBD_LIST, rc: int = 0) -> str:
    devices = [line.split("=", 1)[1].strip("\"'") for line in conf.splitlines() if line.startswith("SBD_DEVICE=")]
    text = f"==CONF==\n{conf}\n==ACTIVE== {active}\n"
    for dev in (devices[-1].split(";") if devices else []):
        text += f"==LIST== {dev}\n{listing}==RC== {rc}\n"
    return text


def test_parse_sbd_reads_devices_slots_and_state() -> None:
    info = parse_sbd(sbd_section('#SBD_DEVICE=/dev/old\nSBD_DEVICE="/dev/vdb"\nSBD_PACEMAKER=yes'))
    assert info is not None
    assert info.devices == ("/dev/vdb",)
    assert info.active and info.header
    assert info.slots == {"node1", "node2"}
    assert parse_sbd("") is None
    blank = parse_sbd(sbd_section("SBD_DEVICE=/dev/vdb", listing="== disk /dev/vdb unreadable!\n", rc=1))
    assert blank is not None and blank.header is False and not blank.slots


def sbd_facts(per_node: dict[str, str]) -> Facts:
    return facts_with(nodes={n: NodeFacts(name=n, sbd=parse_sbd(text)) for n, text in per_node.items()})


def test_sbd_checks_accept_the_set_up_cluster_and_reject_near_misses() -> None:
    good = sbd_section("SBD_DEVICE=/dev/vdb")
    assert judge("sbd_disk_lists_nodes", sbd_facts({"node1": good, "node2": good}), device="/dev/vdb")[0]
    assert judge("sbd_active", sbd_facts({"node1": good, "node2": good}))[0]
    # Configured on one node only.
    unset = "==CONF==\n#SBD_DEVICE=\n==ACTIVE== inactive\n"
    passed, message = judge("sbd_disk_lists_nodes", sbd_facts({"node1": good, "node2": unset}), device="/dev/vdb")
    assert passed is False and "node2" in message
    assert judge("sbd_active", sbd_facts({"node1": good, "node2": unset}))[0] is False
    # The disk created, but node2 never started sbd: no slot for it.
    one_slot = sbd_section("SBD_DEVICE=/dev/vdb", listing="0\tnode1\tclear\t\n")
    passed, message = judge("sbd_disk_lists_nodes", sbd_facts({"node1": one_slot, "node2": one_slot}),
                            device="/dev/vdb")
    assert passed is False and "node2" in message
    # Another disk.
    other = sbd_section("SBD_DEVICE=/dev/vdc")
    assert judge("sbd_disk_lists_nodes", sbd_facts({"node1": other, "node2": other}), device="/dev/vdb")[0] is False
    # Configured but never initialised.
    raw = sbd_section("SBD_DEVICE=/dev/vdb", listing="Header version mismatch\n", rc=1)
    passed, message = judge("sbd_disk_lists_nodes", sbd_facts({"node1": raw, "node2": raw}), device="/dev/vdb")
    assert passed is False and "not initialised" in message


def test_stonith_admin_listing() -> None:
    targets = parse_fence_targets("==NODE== node1\nxvm\n1 fence device found\n==NODE== node2\nNo fence devices found\n")
    assert _devices_for(targets["node1"]) == {"xvm"}
    assert _devices_for(targets["node2"]) == set()
    assert _devices_for(" xvm\n sbd-fence\n2 fence devices found\n") == {"xvm", "sbd-fence"}


def test_probe_sections_are_split_from_gather_sections() -> None:
    from lab.engine.grading import sections_for

    sections = sections_for(load("fencing"))
    assert probe_names(sections) == ["fence"]
    assert "fence_targets" in without_probes(sections) and not any(
        s.startswith("probe:") for s in without_probes(sections))
    assert probe_names(sections_for(load("cluster-enable"))) == ["reboot"]
    assert probe_names(sections_for(load("acl"))) == ["acl"]


def test_unknown_fixture_is_a_schema_error(tmp_path: Path) -> None:
    source = Path(load("fencing").path)
    data = read_toml(source, "exercise file", ExerciseSchemaError)
    data["start"]["fixtures"] = ["fence-ipmi"]
    with pytest.raises(ExerciseSchemaError, match="unknown fixture"):
        parse_exercise(data, source)


def test_fence_daemon_config_names_only_this_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    lab = Lab("t1")
    lab.state = {"name": "t1", "nodes": 2, "private_cidr": "10.231.42.0/24"}
    key = fencehost.ensure_key(lab)
    assert len(key) == 512 and fencehost.ensure_key(lab) == key  # made once
    assert stat.S_IMODE(os.stat(fencehost.key_file(lab)).st_mode) == 0o600
    text = fencehost.config_text(lab, "virbr7")
    assert 'interface = "virbr7";' in text
    assert text.count("ip = ") == 2 and 'ip = "10.231.42.11";' in text and 'ip = "10.231.42.12";' in text
    assert 'uuid = "flab-t1-node1";' in text and 'uuid = "flab-t1-node2";' in text
    assert str(fencehost.key_file(lab)) in text


def test_gather_script_is_valid_shell_and_keeps_section_names() -> None:
    """Helpers share the shell with `sec`: a syntax error or a clobbered $n loses every section."""
    import subprocess

    from lab.gather import facts as gather

    script = gather._GATHER_START + gather._section_lines(None) + gather._GATHER_END
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    helpers = gather._GATHER_START.split("\nsec()", 1)[1].split("\n}\n", 1)[1]  # after sec's body
    for variable in ("n=", "d=", "names=", "pids="):
        assert f" {variable}" not in helpers and f"\n{variable}" not in helpers and f"for {variable[:-1]} " \
            not in helpers


def test_sbd_solution_follows_the_pcs_version() -> None:
    """pcs 0.11 writes device=DISK, pcs 0.10 (EL8) --device=DISK."""
    sbd = load("sbd")
    assert any("device setup device=/dev/vdb" in c for c in sbd.solution_for("0.11.5"))
    assert any("device setup --device=/dev/vdb" in c for c in sbd.solution_for("0.10.8"))
    assert sbd.solution_for(None) == sbd.solution_pcs


def test_guest_script_installs_the_key_from_stdin_atomically(tmp_path: Path) -> None:
    """Run into a scratch root, twice (lab start again): the key where fence_xvm looks, 0600, no
    temporary file left; a key that changes replaces the old one."""
    for key in (b"\x00first key\n" * 40, os.urandom(512)):
        done = subprocess.run(["bash", "-c", fencehost.guest_script(str(tmp_path))], input=fencehost.guest_input(key),
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        path = tmp_path / fencehost.GUEST_KEY.lstrip("/")
        assert path.read_bytes() == key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
