"""`lab check` on inputs it cannot use: exit 2, one 'Error:' line on stderr, no traceback.

Hostile XML samples are inputs, not cluster states, so they are written here by hand;
the truncated CIB and the crm_mon output come from the real tools.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.engine.exercises import exercises_dir
from lab.engine.offline import OfflineCluster
from lab.transport.runner import run_local

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE cib [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<cib validate-with="pacemaker-3.9"><configuration><crm_config/><nodes/><resources/>
<constraints/></configuration><status>&lol9;</status></cib>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE cib [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<cib validate-with="pacemaker-3.9"><configuration><crm_config/><nodes/>
<resources><primitive id="&xxe;" class="ocf" provider="pacemaker" type="Dummy"/></resources>
<constraints/></configuration><status/></cib>
"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE cib SYSTEM "http://127.0.0.1:9/cib.dtd">
<cib validate-with="pacemaker-3.9"><configuration><crm_config/><nodes/><resources/>
<constraints/></configuration><status/></cib>
"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE cib [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<cib><configuration/></cib>
"""


def lab_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True,
                          timeout=60, env=full_env, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error:"), proc.stderr
    assert proc.stdout == ""
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def real_cib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real simulated CIB with a running Dummy, made by the tools."""
    cluster = OfflineCluster.empty(tmp_path_factory.mktemp("real") / "cib.xml")
    cluster.run("pcs resource create Dummy ocf:pacemaker:Dummy op monitor interval=30s")
    cluster.simulate()
    return cluster.path


def test_real_cib_is_graded(real_cib: Path) -> None:
    """The control: the same file intact is graded (so the errors below are about the damage)."""
    proc = lab_cli("check", "resource-create", "--cib", str(real_cib))
    assert proc.returncode == 0, proc.stderr


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


@pytest.mark.parametrize(("name", "data", "words"), [
    pytest.param("malformed.xml", "<cib><configuration></cib>", ["well-formed"], id="malformed"),
    pytest.param("text.xml", "this is not xml\n", ["well-formed"], id="plain-text"),
    pytest.param("foo.xml", "<foo/>", ["not a CIB"], id="non-cib-foo"),
    pytest.param("noconf.xml", "<cib/>", ["not a CIB"], id="cib-without-configuration"),
    pytest.param("laughs.xml", BILLION_LAUGHS, ["refused"], id="billion-laughs"),
    pytest.param("xxe.xml", EXTERNAL_ENTITY, ["refused"], id="external-entity"),
    pytest.param("dtd.xml", EXTERNAL_DTD, ["refused"], id="external-dtd"),
    pytest.param("pe.xml", PARAMETER_ENTITY, ["refused"], id="parameter-entity"),
    pytest.param("empty.xml", "", ["empty"], id="empty-file"),
    pytest.param("blank.xml", "  \n\t\n", ["empty"], id="whitespace-only"),
    pytest.param("garbage.bin", bytes(range(256)) * 8, [], id="binary-garbage"),
    pytest.param("nul.xml", b"<cib>\x00\x00</cib>", [], id="nul-bytes"),
])
def test_hostile_or_broken_file(tmp_path: Path, name: str, data: str | bytes, words: list[str]) -> None:
    path = write(tmp_path, name, data)
    line = assert_one_line_error(lab_cli("check", "resource-create", "--cib", str(path)), *words)
    assert "root:" not in line  # nothing of /etc/passwd leaks into the message


def test_truncated_real_cib(tmp_path: Path, real_cib: Path) -> None:
    text = real_cib.read_text()
    path = write(tmp_path, "half.xml", text[: len(text) // 2])
    assert_one_line_error(lab_cli("check", "resource-create", "--cib", str(path)), "well-formed")


def test_crm_mon_output_is_not_a_cib(tmp_path: Path, real_cib: Path) -> None:
    result = run_local(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"],
                       env={"CIB_file": str(real_cib)})
    assert result.ok and "<pacemaker-result" in result.stdout
    path = write(tmp_path, "crm_mon.xml", result.stdout)
    assert_one_line_error(lab_cli("check", "resource-create", "--cib", str(path)),
                          "pacemaker-result", "not a CIB")


def test_directory(tmp_path: Path) -> None:
    assert_one_line_error(lab_cli("check", "resource-create", "--cib", str(tmp_path)), "directory")


def test_nonexistent_file(tmp_path: Path) -> None:
    assert_one_line_error(lab_cli("check", "resource-create", "--cib", str(tmp_path / "nope.xml")),
                          "nope.xml")


@pytest.mark.parametrize("exercise_id", ["no-such-exercise", "Resource-Create", "../resource-create",
                                         "resource-create.toml", ""])
def test_unknown_exercise(exercise_id: str, real_cib: Path) -> None:
    assert_one_line_error(lab_cli("check", exercise_id, "--cib", str(real_cib)), "unknown exercise")


# ---- exercise files that do not match the schema ----------------------------------------

ORIGINAL = (exercises_dir() / "resource-create.toml").read_text()


def broken(old: str, new: str, count: int = 1) -> str:
    assert old in ORIGINAL, old
    return ORIGINAL.replace(old, new, count)


@pytest.mark.parametrize(("text", "words"), [
    pytest.param(broken('title = "Create a Dummy resource with a 30 s monitor"\n', ""), ["title"],
                 id="missing-title"),
    pytest.param(broken('check = "primitive_agent"', 'check = "primitive_agnet"'),
                 ["primitive_agnet"], id="unknown-check-function"),
    pytest.param(broken('params = { resource = "Dummy", agent = "ocf:pacemaker:Dummy" }',
                        'params = { resource = "Dummy", agnet = "ocf:pacemaker:Dummy" }'),
                 ["params"], id="bad-params"),
    pytest.param(broken('params = { resource = "Dummy", agent = "ocf:pacemaker:Dummy" }',
                        'params = { resource = "Dummy" }'), ["params"], id="missing-param"),
    pytest.param(broken("points = 2", 'points = "2"'), ["points"], id="points-as-string"),
    pytest.param(broken("points = 2", "points = 0"), ["points"], id="points-zero"),
    pytest.param(broken("points = 2", "points = true"), ["points"], id="points-as-bool"),
    pytest.param(broken('hints = [', 'hints = "one hint"\nunused = [', 1), [], id="hints-wrong-type"),
    pytest.param(broken('id = "resource-create"', 'id = "resource-make"'), ["id"], id="id-not-file-name"),
    pytest.param(broken('id = "monitor"', 'id = "agent"'), ["duplicate"], id="duplicate-check-id"),
    pytest.param(broken('baseline = "cluster"', 'baseline = "nothing"'), ["baseline"], id="bad-baseline"),
    pytest.param(ORIGINAL + "\n[[checks]\n", ["TOML"], id="not-toml"),
    pytest.param('surprise = "field"\n' + ORIGINAL, ["surprise"], id="unknown-field"),
])
def test_broken_exercise_file(tmp_path: Path, real_cib: Path, text: str, words: list[str]) -> None:
    directory = tmp_path / "exercises"
    directory.mkdir()
    (directory / "resource-create.toml").write_text(text)
    proc = lab_cli("check", "resource-create", "--cib", str(real_cib),
                   env={"LAB_EXERCISES_DIR": str(directory)})
    assert_one_line_error(proc, *words)


def test_copied_exercise_file_is_fine(tmp_path: Path, real_cib: Path) -> None:
    """The control for the schema cases: the unbroken copy grades normally."""
    directory = tmp_path / "exercises"
    directory.mkdir()
    shutil.copy(exercises_dir() / "resource-create.toml", directory)
    proc = lab_cli("check", "resource-create", "--cib", str(real_cib),
                   env={"LAB_EXERCISES_DIR": str(directory)})
    assert proc.returncode == 0, proc.stderr


# ---- bad command lines --------------------------------------------------------------

@pytest.mark.parametrize("args", [
    pytest.param(["check", "resource-create", "--node", "foo"], id="node-without-address"),
    pytest.param(["check", "resource-create", "--node", "n1=root@"], id="node-without-host"),
    pytest.param(["check", "resource-create", "--cib"], id="cib-without-file"),
    pytest.param(["check", "resource-create", "--format", "xml", "--cib", "x"], id="bad-format"),
    pytest.param(["check", "resource-create", "--cib", "x", "--node", "n1=root@h"], id="cib-and-node"),
    pytest.param(["check", "resource-create", "--identity", "k", "--cib", "x"], id="identity-without-node"),
    pytest.param(["check", "resource-create", "--bogus"], id="unknown-flag"),
    pytest.param(["check"], id="no-exercise"),
])
def test_bad_flags(args: list[str], tmp_path: Path) -> None:
    proc = lab_cli(*args)
    assert_one_line_error(proc)


def test_utf16_cib_with_bom_is_graded_like_utf8(tmp_path) -> None:
    """A CIB saved through a Windows shell redirect (UTF-16 + BOM) is the same CIB."""
    from lab.engine.offline import OfflineCluster
    from tests.conftest import grade_file

    cluster = OfflineCluster.empty(tmp_path / "cib.xml")
    cluster.run("pcs resource create Dummy ocf:pacemaker:Dummy op monitor interval=30s")
    cluster.simulate()
    utf16 = tmp_path / "utf16.xml"
    utf16.write_bytes(cluster.path.read_text().encode("utf-16"))
    plain = grade_file("resource-create", cluster.path)
    converted = grade_file("resource-create", utf16)
    assert plain.passed and converted.passed
    assert [o.passed for o in plain.outcomes] == [o.passed for o in converted.outcomes]


def test_unforeseen_exception_is_one_line_and_a_traceback_on_request(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A failure no code path foresaw still ends in one line and exit 1; LAB_DEBUG=1 re-raises.
    The handler is replaced (the only mock here): no real input is known to reach this path."""
    from lab.cli import main as cli

    def broken(_args: object) -> int:
        raise RuntimeError("channel\nvanished")

    monkeypatch.setitem(cli.COMMANDS, "exercises", broken)
    monkeypatch.delenv("LAB_DEBUG", raising=False)
    assert cli.main(["exercises"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: unexpected RuntimeError: channel vanished"), err
    monkeypatch.setenv("LAB_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["exercises"])
