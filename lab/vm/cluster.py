"""Building the cluster on provisioned nodes: pcs host auth, the cluster's files on every node
(pcs 0.10+ local setup; pcs 0.9 over pcsd), corosync and pacemaker started, stonith off, settled."""

from __future__ import annotations

from collections.abc import Callable

from lab.core.progress import Progress
from lab.engine.pcs import pcs_generation
from lab.transport.runner import CommandResult
from lab.transport.ssh import SSHNode
from lab.vm import provision
from lab.vm.labstate import Lab
from lab.vm.nodes import close, connect_all, parallel


def say_retries(progress: Progress, who: str, result: CommandResult) -> None:
    """Show the reason of every unit start a node's script had to retry (provision._START_UNIT)."""
    for line in result.stderr.splitlines():
        if line.startswith("failover-lab: retry "):
            progress.say(who, line.removeprefix("failover-lab: "))


def build_cluster(lab: Lab, progress: Progress) -> None:
    """From nodes with pcsd answering to a healthy, settled cluster of every node."""
    password = lab.password()
    version = lab.state.get("pcs_version")
    members = [(n.name, n.ip) for n in lab.nodes]
    nodes = connect_all(lab)
    first = nodes[lab.node_names[0]]
    try:
        who = first.name

        def auth() -> None:
            with progress.step(who, "pcs host auth (as hacluster) to every node"):
                provision.run_root(first, provision.auth_script(lab.node_names, password, version), "pcs auth")

        if pcs_generation(version) == "0.9":
            auth()
            with progress.step(who, f"pcs cluster setup {provision.CLUSTER_NAME} --start"):
                provision.run_root(first, provision.setup_script(lab.node_names), "pcs cluster setup")
        else:
            setup_local(nodes, members, progress, auth)
        with progress.step(who, "all nodes online and quorate", limit=300):
            provision.run_root(first, provision.wait_healthy_script(len(members), settle=False), "cluster start")
        with progress.step(who, "stonith-enabled=false, cluster settled (crm_resource --wait)", limit=900):
            provision.run_root(first, provision.stonith_script(), "stonith-enabled=false")
            provision.run_root(first, provision.wait_healthy_script(len(members)), "settle")
    finally:
        close(nodes)


def setup_local(nodes: dict[str, SSHNode], members: list[tuple[str, str]], progress: Progress,
                auth: Callable[[], None]) -> None:
    """pcs 0.10+: pcs's local-only setup writes corosync.conf on the last node while AUTH (pcs host
    auth on the first node; both are seconds of pcs's Python start-up in a slow guest) runs; the
    lab installs it, fresh keys and the first node's pcsd known hosts on every node and starts them
    all at once (see provision.local_setup_script for why not `pcs cluster setup` over pcsd)."""
    every = list(nodes.values())
    first, writer = every[0], every[-1]
    digests = parallel(lambda n: provision.run_root(n, provision.cluster_files_digest_script(),
                                                    "cluster files").stdout.strip(), every)
    configured = "missing" not in digests and len(set(digests)) == 1

    def corosync_conf() -> str:
        with progress.step(writer.name, f"pcs cluster setup {provision.CLUSTER_NAME} (local mode): corosync.conf"):
            return provision.run_root(writer, provision.local_setup_script(members), "pcs cluster setup").stdout

    if configured:
        auth()
    else:
        _, conf = parallel(lambda task: task(), [auth, corosync_conf])
        with progress.step("lab", "corosync.conf, keys and pcsd's known hosts to every node"):
            known = provision.run_root(first, provision.pcsd_known_hosts_script(), "pcsd known hosts").stdout.encode()
            payload = provision.cluster_files_input(conf, known)
            parallel(lambda n: provision.run_root(n, provision.install_cluster_files_script(),
                                                  "cluster files", input_text=payload), every)
    with progress.step("lab", "corosync and pacemaker started on every node", limit=provision.CLUSTER_START_TIMEOUT):
        results = parallel(lambda n: provision.run_root(n, provision.start_cluster_script(), "cluster start",
                                                        timeout=provision.CLUSTER_START_TIMEOUT), every)
    for node, result in zip(every, results, strict=True):
        say_retries(progress, node.name, result)
