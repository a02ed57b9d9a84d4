"""Fast tests of the VM layer that need no VM: rendering, state convergence, faults, KVM logic.

The EL8 profiles (alma8, rocky8, centos8) need public boxes and mirrors, which this
offline host cannot reach: only the rendering of their commands is tested here.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from lab.core.corosync import parse_corosync_conf
from lab.core.errors import ExerciseSchemaError, UsageError
from lab.engine.exercises import load_all
from lab.transport import scripts
from lab.vm import faults, kvm, libvirt_conn, libvirt_host, libvirt_owned, profiles, provision, virt
from lab.vm import vagrant as vg
from lab.vm.labstate import Lab, current_lab, write_atomic


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAB_NAME", raising=False)
    return tmp_path / "home"


def make_lab(name: str = "t1", nodes: int = 3, driver: str = "qemu") -> Lab:
    lab = Lab(name)
    lab.state = {"name": name, "nodes": nodes, "box": "debian12", "box_name": "failover-lab/debian12",
                 "memory": 768, "cpus": 1, "driver": driver, "uri": "qemu:///system", "pool": "default",
                 "private_cidr": "10.231.42.0/24", "mgmt_cidr": "10.232.42.0/24", "steps": {}}
    lab.dir.mkdir(parents=True)
    return lab


def test_nodes_addresses_and_vip(home: Path) -> None:
    lab = make_lab()
    assert [(n.name, n.ip) for n in lab.nodes] == [("node1", "10.231.42.11"), ("node2", "10.231.42.12"),
                                                   ("node3", "10.231.42.13")]
    assert lab.vip == "10.231.42.200"
    assert [a.host for a in lab.addresses()] == ["10.231.42.11", "10.231.42.12", "10.231.42.13"]
    assert lab.domain_name("node2") == "flab-t1-node2"
    with pytest.raises(UsageError):
        lab.node("node9")


def test_bad_lab_name() -> None:
    with pytest.raises(UsageError):
        Lab("../etc")


def test_state_file_atomic_and_converges(home: Path) -> None:
    lab = make_lab()
    lab.save()
    lab.mark("system:node1")
    again = Lab.load("t1")
    assert again.done("system:node1") and not again.done("system:node2")
    again.unmark("system:node1")
    assert not Lab.load("t1").done("system:node1")
    assert not list(lab.dir.glob(".state.json.*"))  # no temporary file left behind


def test_write_atomic_mode(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_atomic(path, "x\n", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_password_is_0600_and_stable(home: Path) -> None:
    lab = make_lab()
    first = lab.ensure_password()
    assert len(first) >= 16
    assert stat.S_IMODE(lab.password_file.stat().st_mode) == 0o600
    assert lab.ensure_password() == first


def test_current_lab_needs_a_finished_lab(home: Path) -> None:
    with pytest.raises(UsageError, match="lab up"):
        current_lab()
    lab = make_lab("default")
    lab.save()
    with pytest.raises(UsageError):
        current_lab()
    lab.mark("cluster_snapshot")
    assert current_lab().name == "default"


def test_vagrantfile_renders(home: Path) -> None:
    lab = make_lab()
    text = vg.render_vagrantfile(lab)
    for expected in ("lv.driver = 'qemu'", "config.vm.define 'node3'", "ip: '10.231.42.13'",
                     "lv.default_prefix = 'flab-t1-'", "lv.management_network_mode = 'none'",
                     "libvirt__forward_mode: 'none'", "synced_folder '.', '/vagrant', disabled: true",
                     "libvirt__network_name: 'flab-t1-priv'", "lv.memory = 768"):
        assert expected in text, expected
    assert "node4" not in text
    assert '"' not in text.split("\n", 3)[3]  # no double-quoted (interpolating) Ruby string
    kvm = make_lab("t2", nodes=2, driver="kvm")
    assert "lv.driver = 'kvm'" in vg.render_vagrantfile(kvm)


DOMAIN = """<domain type='qemu'><name>tb</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64'>hvm</type></os><features>{features}</features></domain>"""


@pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby (vagrant's) not installed")
def test_the_translation_cache_reaches_libvirt_as_a_tcg_feature(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ruby reads the rendered features list, each written as <NAME/> (vagrant-libvirt 0.11's
    domain.xml.erb), and libvirt's own parser (test driver) reads it as the tcg tb-cache feature."""
    import libvirt

    line = next(ln for ln in vg.render_vagrantfile(make_lab()).splitlines() if "lv.features" in ln)
    rendered = subprocess.run(["ruby", "-e", "puts(" + line.split("=", 1)[1] + ".map { |f| '<' + f + '/>' }.join)"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert rendered.startswith("<acpi/><apic/><tcg>") and rendered.endswith("</tcg><pae/>")
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(DOMAIN.format(features=rendered))
        xml = dom.XMLDesc(0)
        dom.undefine()
    finally:
        conn.close()
    assert f"<tb-cache unit='KiB'>{vg.TB_CACHE_MIB * 1024}</tb-cache>" in xml and "<pae/>" in xml
    # KVM, or LAB_TB_CACHE_MIB=0: qemu's own default, no features line at all
    assert "lv.features" not in vg.render_vagrantfile(make_lab("t2", nodes=2, driver="kvm"))
    monkeypatch.setenv("LAB_TB_CACHE_MIB", "0")
    assert "lv.features" not in vg.render_vagrantfile(make_lab("t3", nodes=2))
    monkeypatch.setenv("LAB_TB_CACHE_MIB", "256")
    assert "<tb-cache unit=\\'MiB\\'>256<" in vg.render_vagrantfile(make_lab("t4", nodes=2))
    for index, bad in enumerate(("lots", "16", "-1")):
        monkeypatch.setenv("LAB_TB_CACHE_MIB", bad)
        with pytest.raises(UsageError, match="LAB_TB_CACHE_MIB"):
            vg.render_vagrantfile(make_lab(f"t{5 + index}", nodes=2))


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant not installed")
def test_vagrant_validate_offline(home: Path) -> None:
    """Vagrant itself accepts the rendered file (all three networks: mgmt, priv, link1)."""
    from lab.vm.keys import generate_key

    lab = make_lab()
    generate_key(lab)
    vg.write_vagrantfile(lab)
    assert "flab-t1-link1" in (lab.dir / "Vagrantfile").read_text()
    ok, output = vg.validate(lab)
    assert ok, output


def test_hosts_file_has_every_node_and_no_loopback_alias() -> None:
    text = provision.hosts_file([("node1", "10.0.0.11"), ("node2", "10.0.0.12")])
    assert "10.0.0.11\tnode1" in text and "10.0.0.12\tnode2" in text
    assert "127.0.1.1" not in text


def _fake_bin(tmp_path: Path, **commands: str) -> tuple[dict[str, str], Path]:
    """Stand-ins on PATH for the node commands a script runs: each logs its argv and its stdin to
    LOG, then runs the given shell body. Returns the environment to run under and the log."""
    bindir, log = tmp_path / "bin", tmp_path / "calls.log"
    bindir.mkdir(exist_ok=True)
    for name, body in commands.items():
        fake = bindir / name
        fake.write_text(f'#!/bin/bash\necho "{name} $*" >>{log}\n'
                        f'[ -t 0 ] || sed "s/^/  stdin: /" >>{log}\n{body}\n')
        fake.chmod(0o755)
    return dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}"), log


def _bash(script: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], input=stdin, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_system_script_debian() -> None:
    """The parameters reach the script intact (the profile's network text with its quotes and
    heredoc), and the script is sound shell."""
    profile = profiles.load_profile("debian12")
    script = provision.system_script(node="node2", ip="10.0.0.12", cidr="10.0.0.0/24",
                                     nodes=[("node1", "10.0.0.11"), ("node2", "10.0.0.12")],
                                     pubkey="ssh-ed25519 AAAA lab", profile=profile, link1=None)
    params = script.removesuffix(scripts.source("provision/system.sh"))  # the assignments in front
    shown = _bash(params + '\nprintf "%s|" "$NODE" "$SSH_USER" "$PUBKEY"; printf "%s" "$NETWORK$HOSTS"')
    node, user, pubkey, rest = shown.stdout.split("|", 3)
    assert (node, user, pubkey) == ("node2", "vagrant", "ssh-ed25519 AAAA lab")
    assert "    address 10.0.0.12/24\nNET\n" in rest and "grep -q ' 10.0.0.12/' ||" in rest
    assert rest.endswith(provision.hosts_file([("node1", "10.0.0.11"), ("node2", "10.0.0.12")]))
    assert 'hostname "$NODE"' in script and 'eval "$NETWORK"' in script
    assert _bash("set -n\n" + script).returncode == 0


def test_pcsd_script_keeps_password_off_command_lines() -> None:
    script = provision.pcsd_script("s3cr'et")
    assert "HACLUSTER_PASSWORD='s3cr'\"'\"'et'\n" in script
    assert 'echo "hacluster:$HACLUSTER_PASSWORD" | chpasswd' in script
    assert "pcs cluster destroy --force" in script


@pytest.mark.parametrize(("version", "auth"), [
    ("0.11.5", "pcs host auth node1 node2 -u hacluster --request-timeout=180"),
    ("0.10.8", "pcs host auth node1 node2 -u hacluster --request-timeout=180"),
    ("0.9.169", "pcs cluster auth node1 node2 -u hacluster"),
])
def test_pcs_auth_syntax_follows_version(version: str, auth: str, tmp_path: Path) -> None:
    """Run against a stand-in pcs: the syntax of the version, the password on stdin only."""
    if Path("/var/lib/pcsd/known-hosts").exists() or Path("/var/lib/pcsd/tokens").exists():
        pytest.skip("this host's pcsd has known hosts: auth_script would skip pcs")
    env, log = _fake_bin(tmp_path, pcs="")
    done = _bash(provision.auth_script(["node1", "node2"], "p w'd", version), env)
    assert done.returncode == 0, done.stderr
    assert log.read_text() == f"{auth}\n  stdin: p w'd\n"


def test_pcs09_setup_goes_through_pcsd(tmp_path: Path) -> None:
    if "cluster_name: my_cluster" in (Path("/etc/corosync/corosync.conf").read_text()
                                      if Path("/etc/corosync/corosync.conf").exists() else ""):
        pytest.skip("this host's corosync.conf is my_cluster's: setup_script would skip pcs")
    env, log = _fake_bin(tmp_path, pcs="")
    done = _bash(provision.setup_script(["node1", "node2"]), env)
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "pcs cluster setup --name my_cluster node1 node2 --start\n"


CRM_MON_XML = """<pacemaker-result><summary><current_dc with_quorum="{quorum}"/></summary><nodes>
<node name="node1" id="1" online="{n1}"/>
<node name="node2" id="2" online="{n2}"/>
</nodes></pacemaker-result>"""


@pytest.mark.parametrize(("n1", "n2", "quorum", "ok"), [
    ("true", "true", "true", True), ("true", "false", "true", False), ("true", "true", "false", False)])
def test_wait_healthy_script_waits_for_every_node_in_a_quorate_partition(
        tmp_path: Path, n1: str, n2: str, quorum: str, ok: bool) -> None:
    xml = CRM_MON_XML.format(n1=n1, n2=n2, quorum=quorum)
    env, log = _fake_bin(tmp_path, crm_mon=f"cat <<'XML'\n{xml}\nXML", crm_resource="")
    done = _bash(provision.wait_healthy_script(2, timeout=1), env)
    assert (done.returncode == 0) is ok, done.stderr
    if ok:
        assert "crm_resource --wait --timeout=1s" in log.read_text()
    else:
        assert f"only {1 if n2 == 'false' else 2} of 2 nodes online after 1 s" in done.stderr
        assert "crm_resource" not in log.read_text()
    unsettled = _bash(provision.wait_healthy_script(2, timeout=1, settle=False), env)
    assert unsettled.returncode == done.returncode
    assert log.read_text().count("crm_resource") == (1 if ok else 0)


def _crm_mon_of(path: Path) -> str:
    """What crm_mon prints for the CIB at PATH (real pacemaker, CIB_file)."""
    env = dict(os.environ, CIB_file=str(path))
    return subprocess.run(["crm_mon", "--one-shot", "--output-as=xml"], env=env, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("crm_simulate") is None or shutil.which("pcs") is None,
                    reason="needs pacemaker-cli-utils and pcs")
def test_settling_after_a_solution_waits_for_the_nodes_pacemaker_lists(tmp_path: Path) -> None:
    """node-remove's solution leaves 2 of the lab's 3 nodes in the cluster: settled once both are
    online. Only stopped (still listed, offline), node3 is waited for. crm_mon's answers are real
    (CIBs made by pcs, node3 removed with cibadmin as crm_node --remove does, or downed by crm_simulate),
    with a resource whose <node> lines must not count as nodes."""
    from lab.engine.offline import OfflineCluster

    whole = OfflineCluster.empty(tmp_path / "whole.xml", nodes=("node1", "node2", "node3"))
    whole.run("pcs resource create web ocf:pacemaker:Dummy")
    whole.simulate()
    # A live cluster has a DC (crm_mon: current_dc with_quorum); a simulated one names none.
    subprocess.run(["cibadmin", "--modify", "--xml-text", '<cib dc-uuid="node1"/>'], check=True,
                   capture_output=True, env=dict(os.environ, CIB_file=str(whole.path)))
    removed = whole.copy(tmp_path / "removed.xml")
    for xpath in ("//nodes/node[@uname='node3']", "//status/node_state[@uname='node3']"):
        subprocess.run(["cibadmin", "--delete-all", "--xpath", xpath, "--force"], check=True, capture_output=True,
                       env=dict(os.environ, CIB_file=str(removed.path)))
    stopped = tmp_path / "stopped.xml"
    subprocess.run(["crm_simulate", "-x", str(whole.path), "--node-down", "node3", "-S", "-O", str(stopped)],
                   check=True, capture_output=True)
    for name, path, ok in (("removed", removed.path, True), ("stopped", stopped, False), ("whole", whole.path, True)):
        answer = tmp_path / f"{name}.mon"
        answer.write_text(_crm_mon_of(path))
        assert "<node name=" in answer.read_text().split("</nodes>", 1)[1]  # the resource's own node lines
        env, _ = _fake_bin(tmp_path, crm_mon=f"cat {answer}", crm_resource="")
        done = _bash(provision.wait_healthy_script(None, timeout=1), env)
        assert (done.returncode == 0) is ok, (name, done.stderr)
        if not ok:
            assert "only 2 of 3 nodes online" in done.stderr
    # the lab's count still holds where it is asked for: 3 lab nodes, 2 in the cluster
    env, _ = _fake_bin(tmp_path, crm_mon=f"cat {tmp_path / 'removed.mon'}", crm_resource="")
    assert _bash(provision.wait_healthy_script(3, timeout=1), env).returncode == 1


def test_wait_offline_script_waits_until_every_named_node_is_offline(tmp_path: Path) -> None:
    xml = CRM_MON_XML.format(n1="true", n2="false", quorum="true")
    env, _ = _fake_bin(tmp_path, crm_mon=f"cat <<'XML'\n{xml}\nXML")
    assert _bash(provision.wait_offline_script(["node2"], timeout=1), env).returncode == 0
    waited = _bash(provision.wait_offline_script(["node1", "node2"], timeout=1), env)
    assert waited.returncode == 1 and "node1 node2 still online after 1 s" in waited.stderr


def test_the_clock_command_sets_the_clock_then_runs_what_follows_only_when_it_worked(tmp_path: Path) -> None:
    from lab.vm.nodes import clock_command

    env, log = _fake_bin(tmp_path, date="", crm_mon="exit 3")
    assert _bash(clock_command("root", 1700000000.25), env).returncode == 0
    assert _bash(clock_command("root", 1700000000.25, "crm_mon -1 >/dev/null"), env).returncode == 3
    assert log.read_text().splitlines() == ["date -s @1700000000.250", "date -s @1700000000.250", "crm_mon -1"]
    (tmp_path / "failing").mkdir()
    env, log = _fake_bin(tmp_path / "failing", date="exit 1", crm_mon="")
    assert _bash(clock_command("root", 5, "crm_mon -1"), env).returncode == 1
    assert log.read_text().splitlines() == ["date -s @5.000"]
    assert clock_command("vagrant", 5, "crm_mon -1") == "sudo -n date -s @5.000 >/dev/null && { sudo -n crm_mon -1; }"


def _cib_option(cib: Path, name: str) -> str | None:
    got = subprocess.run(["crm_attribute", "-t", "crm_config", "-n", name, "-q", "-G"], capture_output=True,
                         text=True, env=dict(os.environ, CIB_file=str(cib)), check=False)
    return got.stdout.strip() if got.returncode == 0 else None


def test_a_first_cluster_start_has_a_short_dc_deadtime_until_lab_up_deletes_it(tmp_path: Path) -> None:
    """The real cibadmin and crm_attribute (systemctl a stand-in: no services here): a first start
    writes the CIB pacemaker would begin with plus the short dc-deadtime, as pacemaker's user; a
    second start keeps the CIB it finds; the stonith step leaves stonith-enabled=false and
    dc-deadtime at pacemaker's default (absent)."""
    import pwd

    cib_dir = tmp_path / "root/var/lib/pacemaker/cib"
    cib_dir.mkdir(parents=True)
    env, log = _fake_bin(tmp_path, systemctl="")
    started = _bash(provision.start_cluster_script(str(tmp_path / "root")), env)
    assert started.returncode == 0, started.stderr
    cib = cib_dir / "cib.xml"
    assert _cib_option(cib, "dc-deadtime") == provision.FIRST_DC_DEADTIME
    assert pwd.getpwuid(cib.stat().st_uid).pw_name == "hacluster" and cib.stat().st_mode & 0o777 == 0o600
    assert "systemctl is-active -q corosync" in log.read_text().splitlines()
    cib.write_text(cib.read_text().replace(provision.FIRST_DC_DEADTIME, "7s"))
    assert _bash(provision.start_cluster_script(str(tmp_path / "root")), env).returncode == 0
    assert _cib_option(cib, "dc-deadtime") == "7s"
    done = _bash(provision.stonith_script(), dict(os.environ, CIB_file=str(cib)))
    assert done.returncode == 0, done.stderr
    assert (_cib_option(cib, "stonith-enabled"), _cib_option(cib, "dc-deadtime")) == ("false", None)
    again = _bash(provision.stonith_script(), dict(os.environ, CIB_file=str(cib)))  # a rerun of lab up
    assert again.returncode == 0, again.stderr


def test_local_setup_and_install_with_the_real_pcs(tmp_path: Path) -> None:
    """pcs 0.10+ local mode on the host's real pcs writes my_cluster's corosync.conf; the install
    script puts it, fresh keys and known hosts in place with pcs's owners and modes."""
    import grp
    import pwd

    members = [("node1", "10.0.0.11"), ("node2", "10.0.0.12"), ("node3", "10.0.0.13")]
    made = subprocess.run(["bash", "-c", provision.local_setup_script(members)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    conf = parse_corosync_conf(made.stdout)
    assert conf.cluster_name == "my_cluster"
    assert conf.node_names == ["node1", "node2", "node3"]
    assert "ring0_addr: 10.0.0.13" in made.stdout
    known = b'{"format_version": 1, "known_hosts": {}}'
    stdin = provision.cluster_files_input(made.stdout, known)
    root = tmp_path / "root"
    for _ in range(2):  # a second run (an interrupted `lab up` run again) is as good as the first
        done = subprocess.run(["bash", "-c", provision.install_cluster_files_script(str(root))],
                              input=stdin, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert (root / "etc/corosync/corosync.conf").read_text() == made.stdout.rstrip("\n") + "\n"
    assert (root / "var/lib/pcsd/known-hosts").read_bytes() == known
    corosync_key, pacemaker_key = root / "etc/corosync/authkey", root / "etc/pacemaker/authkey"
    assert len(corosync_key.read_bytes()) == 256 and len(pacemaker_key.read_bytes()) == 256
    assert corosync_key.read_bytes() != pacemaker_key.read_bytes()
    assert oct(corosync_key.stat().st_mode & 0o777) == "0o400"
    assert oct(pacemaker_key.stat().st_mode & 0o777) == "0o440"
    assert pwd.getpwuid(pacemaker_key.stat().st_uid).pw_name == "hacluster"
    assert grp.getgrgid(pacemaker_key.stat().st_gid).gr_name == "haclient"
    assert oct((root / "var/lib/pcsd/known-hosts").stat().st_mode & 0o777) == "0o600"
    # Fresh keys per lab.
    assert provision.cluster_files_input("x", b"").split("\n")[0] != stdin.split("\n")[0]


def test_cluster_files_digest_script_is_valid_shell() -> None:
    assert _bash("set -n\n" + provision.cluster_files_digest_script()).returncode == 0
    # This host has pacemaker's tools but no my_cluster: its files are missing.
    if "cluster_name: my_cluster" not in (Path("/etc/corosync/corosync.conf").read_text()
                                          if Path("/etc/corosync/corosync.conf").exists() else ""):
        assert _bash(provision.cluster_files_digest_script()).stdout == "missing\n"


@pytest.mark.parametrize("name", ["alma8", "rocky8", "centos8"])
def test_el8_profiles_render(name: str) -> None:
    """Not testable live here (public boxes and mirrors): the commands must render."""
    profile = profiles.load_profile(name)
    assert profile.box.startswith("generic/")
    script = provision.packages_script(profile)
    assert "dnf config-manager --set-enabled" in script
    assert "high-availability" in script
    assert "pacemaker corosync pcs" in script
    system = provision.system_script(node="node1", ip="10.0.0.11", cidr="10.0.0.0/24",
                                     nodes=[("node1", "10.0.0.11")], pubkey="k", profile=profile, link1=None)
    assert "nmcli con add type ethernet ifname eth1" in system and "10.0.0.11/24" in system
    if name == "centos8":
        assert "vault.centos.org" in script


def test_unknown_box() -> None:
    with pytest.raises(UsageError, match="unknown box"):
        profiles.load_profile("windows")


def test_fault_registry_resolves_seed_exercises() -> None:
    for exercise in load_all():
        resolved = faults.resolve(exercise.start.faults, ["node1", "node2"])
        for fault in resolved:
            assert fault.kind in faults.REGISTRY
    offline = next(e for e in load_all() if e.id == "troubleshoot-offline")
    assert faults.resolve(offline.start.faults, ["node1", "node2", "node3"])[0].node == "node3"


def test_fault_kinds_render() -> None:
    assert "systemctl stop pacemaker" in faults.REGISTRY["stop-cluster"].script({})
    assert "5404:5406" in faults.REGISTRY["cut-link"].script({})
    assert "corosync" in faults.REGISTRY["stop-daemon"].script({"daemon": "corosync"})
    assert "sed -i" in faults.REGISTRY["break-config"].script({"file": "/f", "sed": "s/a/b/"})
    assert faults.REGISTRY["kill-node"].domain_action == "kill"
    with pytest.raises(ExerciseSchemaError):
        faults.resolve([{"kind": "meteor"}], ["node1"])
    with pytest.raises(ExerciseSchemaError):
        faults.resolve([{"kind": "stop-cluster", "node": "node7"}], ["node1"])
    with pytest.raises(ExerciseSchemaError):
        faults.resolve([{"kind": "break-config", "node": "first"}], ["node1"])


def test_driver_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_FORCE_QEMU", "1")
    assert kvm.choose_driver() == ("qemu", None)
    monkeypatch.delenv("LAB_FORCE_QEMU")
    monkeypatch.setenv("LAB_DRIVER", "kvm")
    assert kvm.choose_driver() == ("kvm", None)


def test_kvm_probe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "probe.json"
    cache.write_text(json.dumps({"boot_id": kvm._boot_id(), "limit": kvm.KVM_PROBE_LIMIT,
                                 "usable": False, "reason": "cached", "seconds": None}))
    assert kvm.probe_kvm(cache).reason == "cached"


def test_kvm_probe_without_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os.path, "exists", lambda p: p != "/dev/kvm")
    assert not kvm._probe_kvm_uncached("qemu-system-x86_64", 1.0).usable


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu not installed")
def test_probe_guest_boots_under_software_emulation() -> None:
    """The probe guest itself is sound: under TCG it exits with the expected code."""
    result = kvm._run_probe("qemu-system-x86_64", "tcg", 20.0)
    assert result.usable, result.reason


def test_debian12_box_is_found_in_the_box_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """build.sh writes the box to the cache; the profile must look there, not in the source tree."""
    monkeypatch.setenv("LAB_BOX_DIR", str(tmp_path / "boxes"))
    assert profiles.load_profile("debian12").box_path == tmp_path / "boxes" / "debian12" / "debian12.box"
    assert profiles.load_profile("debian12").box_path == vg.debian12_box_file()
    assert vg.debian12_build_script().is_file()  # the hint for a missing box names a real file




def test_root_known_hosts_names_every_node_for_ssh(tmp_path: Path) -> None:
    """The nodes' known_hosts, read back by OpenSSH's own ssh-keygen -F, by name and address."""

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBu6Nf3Mh3uu6HyX6XR72iYQ7qSkXhfqyLLp76B39W30 root@node2"
    known = provision.root_known_hosts({("node1", "10.0.0.11"): "", ("node2", "10.0.0.12"): key + "\n"})
    path = tmp_path / "known_hosts"
    path.write_text(known)
    for host in ("node2", "10.0.0.12"):
        found = subprocess.run(["ssh-keygen", "-F", host, "-f", str(path)], capture_output=True, text=True)
        assert found.returncode == 0 and "ssh-ed25519" in found.stdout
    assert subprocess.run(["ssh-keygen", "-F", "node1", "-f", str(path)], capture_output=True).returncode != 0


def test_root_ssh_script_installs_key_authorization_and_host_keys(tmp_path: Path) -> None:
    """Run for real into a scratch root, twice (lab up run again): the key, one authorized line, the
    pinned hosts and the sshd drop-in that sorts before the box's PermitRootLogin no."""

    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\ndef\n-----END OPENSSH PRIVATE KEY-----\n"
    pub = "ssh-ed25519 AAAA root@lab"
    known = "node1,10.0.0.11 ssh-ed25519 K\n"
    (tmp_path / "etc/ssh/sshd_config.d").mkdir(parents=True)
    (tmp_path / "etc/ssh/sshd_config.d/failover-lab.conf").write_text("PermitRootLogin no\n")
    lab_pub = "ssh-ed25519 BBBB failover-lab"
    for _ in range(2):
        done = subprocess.run(["bash", "-c", provision.root_ssh_script(str(tmp_path))],
                              input=provision.root_ssh_input(private, pub, known, lab_pub),
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    ssh = tmp_path / "root/.ssh"
    assert (ssh / "id_ed25519").read_text() == private
    assert oct((ssh / "id_ed25519").stat().st_mode & 0o777) == "0o600"
    # root's own key (crmsh between the nodes) and the lab's (the grader's root login), once each
    assert (ssh / "authorized_keys").read_text() == pub + "\n" + lab_pub + "\n"
    without = subprocess.run(["bash", "-c", provision.root_ssh_script(str(tmp_path / "old"))],
                             input=provision.root_ssh_input(private, pub, known), capture_output=True, text=True)
    assert without.returncode == 0, without.stderr
    assert (tmp_path / "old/root/.ssh/authorized_keys").read_text() == pub + "\n"
    assert (ssh / "known_hosts").read_text() == known
    drop_ins = sorted(p.name for p in (tmp_path / "etc/ssh/sshd_config.d").iterdir())
    assert drop_ins[0] == "00-failover-lab-root.conf"
    assert (tmp_path / "etc/ssh/sshd_config.d" / drop_ins[0]).read_text() == "PermitRootLogin prohibit-password\n"


def test_domains_and_snapshots_through_libvirts_test_driver(test_driver: object) -> None:
    """The real libvirt API on its test driver's domain 'test': states, a checkpoint taken and
    reverted to (the lab's paused domains resume together), power off and on, and the errors."""
    assert virt.domain_states(["test", "flab-none-node1"]) == {"test": "running", "flab-none-node1": "absent"}
    virt.create_snapshot(["test"], "h3-cluster")
    assert virt.snapshot_names("test") == ["h3-cluster"]
    assert virt.domain_states(["test"]) == {"test": "running"}  # resumed after the checkpoint
    virt.suspend(["test"])
    assert virt.domain_states(["test"]) == {"test": "paused"}
    virt.revert(["test"], "h3-cluster")
    assert virt.domain_states(["test"]) == {"test": "running"}
    virt.delete_snapshot(["test"], "h3-cluster")
    assert virt.snapshot_names("test") == []
    virt.destroy_domains(["test"])
    assert virt.domain_states(["test"]) == {"test": "shutoff"}
    virt.start_domains(["test"])
    assert virt.domain_states(["test"]) == {"test": "running"}
    assert virt.domain_networks("test") == {"default"}
    assert virt.lease_ip("flab-none-node1") is None
    with pytest.raises(libvirt_conn.VirtError, match="test has no snapshot 'gone'"):
        virt.revert(["test"], "gone")
    with pytest.raises(libvirt_conn.VirtError, match="domain flab-none-node1 does not exist"):
        virt.suspend(["flab-none-node1"])


def test_networks_and_leftovers_through_libvirts_test_driver(test_driver: object) -> None:
    assert "192.168.122.0/24" in libvirt_host.used_subnets()
    assert libvirt_host.bridge_name("default") == "virbr0"
    with pytest.raises(libvirt_conn.VirtError, match="no libvirt network flab-none-priv"):
        libvirt_host.bridge_name("flab-none-priv")
    assert libvirt_owned.find_leftovers("flab-none-").empty
    with pytest.raises(libvirt_conn.VirtError, match="not a lab's prefix"):
        libvirt_owned.find_leftovers("test")


def test_a_kvm_device_libvirts_qemu_user_cannot_open_is_named(tmp_path: Path) -> None:
    """Without udev /dev/kvm stays 0600 root: libvirt's QEMU user cannot open it and libvirt
    probes QEMU again on every call. A stand-in device file: the permission arithmetic is the
    same (the real device's mode is what .ci/libvirt-up.sh and the doctor look at)."""
    import os
    import pwd

    from lab.vm import kvm

    nobody = pwd.getpwnam("nobody")
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    os.chown(device, 0, 0)
    device.chmod(0o600)
    problem = kvm.device_problem("nobody", device)
    assert problem is not None and "nobody" in problem and "600" in problem
    os.chown(device, 0, nobody.pw_gid)  # udev's way: the user's group may read and write
    device.chmod(0o660)
    assert kvm.device_problem("nobody", device) is None
    device.chmod(0o640)  # read only is not enough
    assert kvm.device_problem("nobody", device) is not None
    assert kvm.device_problem("root", device) is None  # root opens anything
    assert kvm.device_problem("nobody", tmp_path / "absent") is None
    conf = tmp_path / "qemu.conf"
    conf.write_text('#user = "libvirt-qemu"\nuser = "nobody"\n')
    assert kvm.libvirt_qemu_user(conf) == "nobody"
    conf.write_text('#user = "libvirt-qemu"\n')
    assert kvm.libvirt_qemu_user(conf) == next((u for u in ("libvirt-qemu", "qemu") if _has_user(u)), None)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
