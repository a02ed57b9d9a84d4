"""`pip install .` (a wheel, not an editable install) gives a `lab` that works from any directory.

The wheel is built from this checkout and installed into a fresh venv; every command then runs
from a directory outside the checkout, so nothing can be found through the source tree. The venv
sees the host's site-packages only for the third-party dependencies (paramiko, libvirt-python:
the test host may have no network); the test proves `lab` itself comes from the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import start_state

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel of this checkout installed: its bin directory."""
    base = tmp_path_factory.mktemp("wheel")
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(base / "venv")
    python = base / "venv" / "bin" / "python"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(base / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600,
                           cwd=base)
    assert build.returncode == 0, build.stderr
    wheels = list((base / "dist").glob("failover_lab-*.whl"))
    assert len(wheels) == 1
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              "--force-reinstall", str(wheels[0])], capture_output=True, text=True, timeout=600,
                             cwd=base)
    if "no such option: --python" in install.stderr:  # pip < 22.3
        install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheels[0])],
                                 capture_output=True, text=True, timeout=600, cwd=base)
    assert install.returncode == 0, install.stderr
    return base / "venv" / "bin"


def _env() -> dict[str, str]:
    """This environment without PYTHONPATH: a checkout on it would shadow the installed wheel."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _lab(bindir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LAB_HOME=str(cwd / "home"), PATH=f"{bindir}:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(bindir / "lab"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_lab_comes_from_the_venv_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "python"), "-c", "import lab, lab.core.paths as p; "
                            "print(lab.__file__); print(p.project_root())"],
                           cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    module, data = where.stdout.split()
    assert str(installed.parent) in module and str(ROOT) not in module
    assert (Path(data) / "Vagrantfile.j2").is_file() and (Path(data) / "boxes" / "profiles" / "debian12.toml").is_file()
    assert (Path(data) / "boxes" / "debian12" / "build.sh").is_file()


def test_catalogue_show_and_check_a_saved_cib(installed: Path, tmp_path: Path) -> None:
    listed = _lab(installed, "exercises", "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {"resource-create", "cluster-setup"} <= {e["id"] for e in json.loads(listed.stdout)}
    shown = _lab(installed, "show", "resource-create", "--solution", cwd=tmp_path)
    assert shown.returncode == 0 and "pcs resource create" in shown.stdout
    red = start_state("resource-create", tmp_path)
    failed = _lab(installed, "check", "resource-create", "--cib", str(red.path), cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr


def test_every_node_script_is_installed(installed: Path, tmp_path: Path) -> None:
    shipped = {p.relative_to(ROOT / "lab").as_posix() for p in (ROOT / "lab" / "scripts").rglob("*.sh")}
    site = Path(subprocess.run([str(installed / "python"), "-c", "import lab; print(lab.__file__)"],
                               env=_env(), capture_output=True, text=True, cwd=tmp_path).stdout.strip()).parent
    assert shipped, "lab/scripts holds the node scripts"
    assert shipped == {p.relative_to(site).as_posix() for p in (site / "scripts").rglob("*.sh")}


def test_doctor_runs_from_anywhere(installed: Path, tmp_path: Path) -> None:
    doctor = _lab(installed, "doctor", cwd=tmp_path)
    assert "Traceback" not in doctor.stderr, doctor.stderr
    assert doctor.returncode in (0, 1), doctor.stderr
    assert "libvirt" in doctor.stdout
