"""Shared helpers of the VM benchmarks: run `lab`, time it, sample the qemu processes' RAM."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def lab(*args: str, name: str, timeout: float = 1800, tree: Path | None = None) -> float:
    """Run `lab ARGS` for lab NAME; return its wall time; fail loudly. Python's bytecode cache is
    on, as on users' machines (PYTHONDONTWRITEBYTECODE would compile every module each run).
    TREE: run the `lab` of that checkout instead (`python -m` imports from the working directory)."""
    env = dict(os.environ, LAB_NAME=name)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, text=True,
                            capture_output=True, timeout=timeout, cwd=tree)
    seconds = time.monotonic() - began
    if result.returncode not in (0, 1) or (args[0] != "check" and result.returncode):
        sys.exit(f"lab {' '.join(args)} failed ({result.returncode}): {result.stderr[-1500:]}")
    return seconds


def qemu_rss_kib(marker: str) -> int:
    """Sum of VmRSS of qemu processes whose command line has MARKER (e.g. guest=flab-bench-)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "qemu-system" not in cmd or marker not in cmd:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def disk_mib(name: str) -> float:
    """Space on the host's disk (libvirt's allocation) of lab NAME's own volumes, by their exact
    names (as lab destroy finds them): internal snapshots (memory, disk blocks) live inside them."""
    from lab.vm.labstate import Lab
    from lab.vm.libvirt_conn import connection
    from lab.vm.libvirt_owned import find_owned

    volumes = find_owned(Lab.load(name).owned).volumes
    with connection() as conn:
        allocated = 0
        for pool_volume in volumes:
            pool, volume = pool_volume.split("/", 1)
            allocated += conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).info()[2]
    return allocated / (1 << 20)


class PeakRss:
    """Sample qemu RSS every half second in the background; .peak is the maximum seen (KiB)."""

    def __init__(self, marker: str) -> None:
        self.marker, self.peak, self._stop = marker, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, qemu_rss_kib(self.marker))
            self._stop.wait(0.5)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
