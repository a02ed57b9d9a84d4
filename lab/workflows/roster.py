"""The instructor's roster: who is graded, from handed-in evidence or from their nodes over SSH.

A TOML file ([[student]] tables, an optional top-level identity) or a CSV file with the same
columns. Each entry is checked against StudentDoc (pydantic); a bad roster is one UsageError
naming the file, the entry and the key, e.g. "roster r.toml student[2] (s03): key 'nodes': ...".
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator, model_validator

from lab.core.errors import UsageError
from lab.core.tomlfile import key_path, problem, read_toml, refused
from lab.core.xmlsafe import one_line, read_untrusted_file
from lab.transport.address import NodeAddress

# A student id names a file (feedback/<id>.md) and a JUnit suite: a plain, short name.
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
STUDENT_KEYS = ("id", "name", "email", "evidence", "nodes", "identity")
MAX_ROSTER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Student:
    """One roster entry: graded from an evidence folder or from nodes over SSH."""

    id: str
    name: str = ""
    email: str = ""
    evidence: Path | None = None
    nodes: tuple[NodeAddress, ...] = ()
    identity: Path | None = None


class StudentDoc(BaseModel):
    """A [[student]] table (or CSV row) as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: StrictStr = ""
    email: StrictStr = ""
    evidence: StrictStr | None = None
    nodes: tuple[StrictStr, ...] | None = Field(None, min_length=1)
    identity: StrictStr | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _plain_id(cls, value: object) -> object:
        if not isinstance(value, str) or not STUDENT_ID.match(value):
            raise refused("must be letters, digits, '.', '_' or '-' (at most 64, a letter or digit first)")
        return value

    @field_validator("nodes", mode="before")
    @classmethod
    def _addresses(cls, value: object) -> object:
        if not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value):
            raise refused("must be a list of NAME=USER@HOST[:PORT] strings")
        names = []
        for spec in value:
            try:
                names.append(NodeAddress.parse(spec).name)
            except UsageError:
                raise refused(f"has '{one_line(spec, 80)}', which is not NAME=USER@HOST[:PORT]") from None
        if len(set(names)) != len(names):
            raise refused("names a node twice")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> StudentDoc:
        if (self.evidence is None) == (self.nodes is None):
            raise refused("key 'evidence' or 'nodes' is needed, not both: evidence = \"FOLDER\" or "
                          "nodes = [\"NAME=USER@HOST[:PORT]\", ...]")
        return self


class RosterDoc(BaseModel):
    """A TOML roster's top level: an SSH key for every student, and the [[student]] tables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: StrictStr | None = Field(None, description="the SSH key file, relative to the roster")
    # Checked one by one (StudentDoc), so that an error names the entry and its id.
    student: list[Any] = Field(min_length=1)


def load_roster(path: Path) -> list[Student]:
    """A roster TOML ([[student]] tables), or CSV with the same columns (by the .csv suffix).

    Paths are relative to the roster. A bad roster is one UsageError naming file, entry and key.
    """
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(path)
        default_identity = None
    else:
        top = _top_level(path, read_toml(path, "roster", UsageError))
        default_identity = top.identity
        rows = [(f"student[{i}]", s) for i, s in enumerate(top.student)]
    out: list[Student] = []
    seen: set[str] = set()
    for where, row in rows:
        student = _student(path, where, row, default_identity)
        if student.id in seen:
            raise UsageError(f"roster {path} {where}: key 'id': '{student.id}' is given twice")
        seen.add(student.id)
        out.append(student)
    return out


def _top_level(path: Path, data: dict) -> RosterDoc:
    try:
        return RosterDoc.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # A misspelt key first: it is why [[student]] seems to be missing.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        if error["loc"] == ("student",):
            raise UsageError(f"roster {path} has no [[student]] entries") from None
        raise UsageError(f"roster {path}: key '{key_path(tuple(error['loc']))}': "
                         f"{problem(dict(error))} (the top level has identity and [[student]] tables)") from None


def _csv_rows(path: Path) -> list[tuple[str, dict]]:
    """CSV rows as dicts of the non-empty cells; nodes are separated by spaces or ';'."""
    try:
        text = read_untrusted_file(path, "roster", limit=MAX_ROSTER_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"roster {path} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if "id" not in header:
        raise UsageError(f"roster {path}: the first line must name the columns, 'id' among them "
                         f"({', '.join(STUDENT_KEYS)})")
    unknown = [h for h in header if h not in STUDENT_KEYS]
    if unknown:
        raise UsageError(f"roster {path}: unknown column '{unknown[0]}' (columns: {', '.join(STUDENT_KEYS)})")
    reader.fieldnames = header
    rows = []
    try:
        for row in reader:
            if None in row:
                raise UsageError(f"roster {path} line {reader.line_num}: more cells than columns")
            cells = {k: v.strip() for k, v in row.items() if isinstance(v, str) and v.strip()}
            if not cells:
                continue
            if "nodes" in cells:
                cells["nodes"] = [n for n in re.split(r"[\s;]+", cells["nodes"]) if n]
            rows.append((f"line {reader.line_num}", cells))
    except csv.Error as exc:
        raise UsageError(f"roster {path} line {reader.line_num}: {exc}") from None
    if not rows:
        raise UsageError(f"roster {path} has no students")
    return rows


def _entry(path: Path, where: str, row: object) -> tuple[StudentDoc, str]:
    """The entry checked against StudentDoc, and WHERE with its id for the messages after."""
    if not isinstance(row, dict):
        raise UsageError(f"roster {path} {where}: must be a table of keys")
    sid = row.get("id")
    if isinstance(sid, str) and STUDENT_ID.match(sid):
        where = f"{where} ({sid})"
    try:
        return StudentDoc.model_validate(row), where
    except ValidationError as exc:
        error = dict(exc.errors(include_url=False)[0])
        key = key_path(tuple(error["loc"])) if error["loc"] else ""
        if key and error["type"] == "extra_forbidden":
            why = f"unknown key (keys: {', '.join(STUDENT_KEYS)})"
        else:
            why = problem(error)
        raise UsageError(f"roster {path} {where}: " + (f"key '{key}': {why}" if key else why)) from None


def _student(path: Path, where: str, row: object, default_identity: str | None) -> Student:
    doc, where = _entry(path, where, row)
    identity = None
    identity_text = doc.identity if doc.identity is not None else default_identity
    if doc.nodes is not None and identity_text is not None:
        identity = _relative(path, identity_text)
        if not identity.is_file():
            key = "identity" if doc.identity is not None else "identity (top level)"
            raise UsageError(f"roster {path} {where}: key '{key}' names {identity}, which is not a file")
    return Student(id=doc.id, name=doc.name, email=doc.email,
                   evidence=_relative(path, doc.evidence) if doc.evidence is not None else None,
                   nodes=tuple(NodeAddress.parse(n) for n in doc.nodes or ()), identity=identity)


def _relative(roster: Path, text: str) -> Path:
    candidate = Path(text).expanduser()
    return candidate if candidate.is_absolute() else roster.parent / candidate
