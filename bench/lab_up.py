"""Benchmark: `lab up` to a healthy 2-node cluster vs the plain path, same box, same run.

The plain path is what a user does without Failover Lab: `vagrant up --no-parallel` with a
shell provisioner doing the course's steps (pcsd, auth, setup, start, a Dummy resource).
Prints both times and the ratio (goal <= 0.33) and the peak RAM of the qemu processes.

    python bench/lab_up.py [--nodes 2] [--skip-plain]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _vmbench import PeakRss, lab  # noqa: E402

PLAIN_VAGRANTFILE = """
Vagrant.configure("2") do |config|
  config.vm.box = "failover-lab/debian12"
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |lv|
    lv.driver = "{driver}"
    lv.memory = 768
    lv.cpus = 1
    lv.default_prefix = "flab-plainbench-"
    lv.management_network_name = "flab-plainbench-mgmt"
    lv.management_network_address = "10.233.77.0/24"
    lv.management_network_mode = "none"
  end
  nodes = {nodes}
  nodes.each_with_index do |(name, ip), i|
    config.vm.define name do |node|
      node.vm.hostname = name
      node.vm.network :private_network, ip: ip, libvirt__forward_mode: "none",
        libvirt__network_name: "flab-plainbench-priv"
      node.vm.provision "shell", inline: <<-SHELL
        sed -i '/^127.0.1.1/d' /etc/hosts
        {hosts}
        echo hacluster:plainpw | chpasswd
        systemctl enable --now pcsd
        until ss -Hltn 'sport = :2224' | grep -q .; do sleep 1; done
        if [ "#{{name}}" = "{last}" ]; then
          pcs host auth {names} -u hacluster -p plainpw
          pcs cluster setup my_cluster {names} --start --wait=300
          pcs property set stonith-enabled=false
          pcs resource create Dummy ocf:pacemaker:Dummy op monitor interval=30s
          crm_resource --wait --timeout=300s
        fi
      SHELL
    end
  end
end
"""


def plain_path(nodes: int, driver: str) -> float:
    names = [f"node{i}" for i in range(1, nodes + 1)]
    ips = {n: f"10.233.78.{10 + i}" for i, n in enumerate(names, 1)}
    hosts = "\n        ".join(f"echo '{ip} {n}' >> /etc/hosts" for n, ip in ips.items())
    ruby_nodes = "{" + ", ".join(f'"{n}" => "{ip}"' for n, ip in ips.items()) + "}"
    with tempfile.TemporaryDirectory(prefix="plainbench-") as tmp:
        Path(tmp, "Vagrantfile").write_text(PLAIN_VAGRANTFILE.format(
            driver=driver, nodes=ruby_nodes, hosts=hosts, names=" ".join(names), last=names[-1]))
        env = dict(os.environ, VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_DEFAULT_PROVIDER="libvirt")
        began = time.monotonic()
        try:
            result = subprocess.run(["vagrant", "up", "--no-parallel"], cwd=tmp, env=env, text=True,
                                    capture_output=True, timeout=3600)
            seconds = time.monotonic() - began
        finally:  # failed, timed out or interrupted: the VMs go too
            subprocess.run(["vagrant", "destroy", "-f"], cwd=tmp, env=env, capture_output=True, timeout=600)
            from lab.vm import libvirt_owned

            libvirt_owned.remove_leftovers("flab-plainbench-")
    if result.returncode:
        sys.exit(f"plain vagrant up failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--skip-plain", action="store_true")
    args = parser.parse_args()
    name = f"bench{args.nodes}"
    destroy_quietly(name)  # a killed earlier run's leftovers
    try:
        with PeakRss(f"guest=flab-{name}-") as rss:
            ours = lab("up", "--nodes", str(args.nodes), name=name)
    finally:  # lab up failed or was interrupted: nothing of the bench lab stays behind
        destroy_quietly(name)
    print(f"lab up ({args.nodes} nodes, healthy cluster, snapshots taken): {ours:.1f} s")
    print(f"peak host RAM of the {args.nodes} qemu processes: {rss.peak / 1024:.0f} MiB")
    if not args.skip_plain:
        from lab.vm import kvm

        driver, _ = kvm.choose_driver()
        plain = plain_path(args.nodes, driver)
        print(f"plain vagrant up --no-parallel + shell provisioner: {plain:.1f} s")
        print(f"ratio lab up / plain: {ours / plain:.2f} (goal <= 0.33)")


def destroy_quietly(name: str) -> None:
    """`lab destroy --force NAME`, whatever state the lab is in; never exits the bench itself."""
    env = dict(os.environ, LAB_NAME=name)
    subprocess.run([sys.executable, "-m", "lab.cli", "destroy", "--force", name], env=env,
                   capture_output=True, timeout=900)


if __name__ == "__main__":
    main()
