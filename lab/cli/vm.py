"""CLI commands for the VM lab: up, status, ssh, start, reset, solve, halt, destroy, doctor, info, log.

Commands that change a lab log to its command log from inside the VM layer (steps.mutating, under
the lab's lock); the read-only ones that reach the nodes (status) log here."""

from __future__ import annotations

import argparse
import os
import sys

from lab.core.errors import UsageError


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register VM lifecycle subcommands."""
    p = sub.add_parser("up", help="create (or finish) the lab: VMs, provisioning, cluster, snapshots")
    p.add_argument("--nodes", type=int, help="number of nodes, 1..5 (default 2)")
    p.add_argument("--box", help="debian12 (default, offline), alma8, rocky8, centos8")
    p.add_argument("--memory", type=int, metavar="MB", help="memory per node in MiB (default 768)")
    sub.add_parser("status", help="the lab's nodes, snapshots and cluster state")
    p = sub.add_parser("ssh", help="open a shell (or run a command) on a lab node")
    p.add_argument("node")
    p.add_argument("remote", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    p = sub.add_parser("start", help="revert the lab to the exercise's baseline and set up its start state "
                                     "(in seconds from the start state cached by an earlier start)")
    p.add_argument("exercise")
    fresh = ("build the start state from the baseline even if a cached one exists (or, for a start state "
             "that is the baseline itself or the baseline with a host fixture such as the SBD disk, wait for health "
             "and settling again), and cache it again "
             "(LAB_START_CACHE=N keeps at most N cached start states per lab, default 4; 0: none)")
    p.add_argument("--fresh", action="store_true", help=fresh)
    p = sub.add_parser("reset", help="start the current exercise again")
    p.add_argument("--fresh", action="store_true", help=fresh)
    p = sub.add_parser("solve", help="apply the exercise's reference solution (demos, tests)")
    p.add_argument("exercise")
    p.add_argument("--tool", choices=("pcs", "crmsh"), default="pcs",
                   help="which reference solution to apply (default pcs)")
    p.add_argument("--practice", action="store_true", help="during an exam: solve anyway (marks it practice)")
    sub.add_parser("halt", help="shut the lab's VMs down (snapshots are kept)")
    p = sub.add_parser("destroy", help="remove the lab: VMs, volumes, networks, snapshots, folder")
    p.add_argument("--force", metavar="NAME",
                   help="also without a lab folder, remove the libvirt objects named exactly as lab NAME "
                        "names them (flab-NAME-node1.., its networks and volumes; never flab-NAME-other-*)")
    sub.add_parser("doctor", help="check the host: libvirt, vagrant, KVM, disk, box")
    p = sub.add_parser("info", help="the lab's settings; --secrets adds the hacluster password")
    p.add_argument("--secrets", action="store_true")
    p = sub.add_parser("log", help="the lab's command log: what ran where, how long, its exit status")
    p.add_argument("--all", action="store_true", help="the whole log, not only its last lines")


def cmd_up(args: argparse.Namespace) -> int:
    from lab.vm import lifecycle
    from lab.vm.labstate import MAX_NODES

    if args.memory is not None and not 256 <= args.memory <= 65536:
        raise UsageError("--memory must be 256..65536 MiB")
    if args.nodes is not None and not 1 <= args.nodes <= MAX_NODES:
        raise UsageError(f"--nodes must be 1..{MAX_NODES}")
    lifecycle.up(nodes=args.nodes, box=args.box, memory=args.memory)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lab.cli import labinfo

    with labinfo.logged():
        print("\n".join(labinfo.status_lines()))
    return 0


def cmd_ssh(args: argparse.Namespace) -> int:
    from lab.vm import sshclient

    argv = sshclient.ssh_argv(args.node, args.remote)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def cmd_start(args: argparse.Namespace) -> int:
    from lab.vm import startstate

    startstate.start(args.exercise, fresh=args.fresh)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from lab.vm import startstate

    startstate.reset(fresh=args.fresh)
    return 0


def cmd_solve(args: argparse.Namespace) -> int:
    from lab.vm import startstate

    startstate.solve(args.exercise, tool=args.tool, params=getattr(args, "exam_params", None))
    return 0


def cmd_halt(args: argparse.Namespace) -> int:
    from lab.vm import lifecycle

    lifecycle.halt()
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    from lab.vm import lifecycle
    from lab.vm.labstate import Lab, current_name
    from lab.workflows import exam_run

    lab = Lab(args.force or current_name())
    exam_run.end_watcher(lab.dir)  # the exam's deadline watcher ends too
    if args.force is None and not lab.dir.exists():
        from lab.cli.labinfo import phrase
        from lab.core.progress import Progress

        Progress().say("lab", phrase(lifecycle.NoSuchLab(lab)))
        return 0
    if args.force is not None:
        lifecycle.destroy(args.force, force=True)
    else:
        lifecycle.destroy()
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from lab.vm import doctor

    items = doctor.run_checks()
    for item in items:
        print(item.line())
    return 1 if any(i.level == "FAIL" for i in items) else 0


def cmd_info(args: argparse.Namespace) -> int:
    from lab.cli import labinfo

    print("\n".join(labinfo.info_lines(secrets=args.secrets)))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from lab.cli import labinfo

    print("\n".join(labinfo.log_lines(everything=args.all)))
    return 0


COMMANDS: dict = {"up": cmd_up, "status": cmd_status, "ssh": cmd_ssh, "start": cmd_start, "reset": cmd_reset,
                  "solve": cmd_solve, "halt": cmd_halt, "destroy": cmd_destroy, "doctor": cmd_doctor,
                  "info": cmd_info, "log": cmd_log}
