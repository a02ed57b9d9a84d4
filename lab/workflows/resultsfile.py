"""results.json, the record `lab grade` writes (schema 1): the document, its HMAC-SHA256
signature, and reading it back (verified when signed). The exam's results are signed the same
way (lab.workflows.examscore). Every file is written atomically (write_file)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.core.errors import LabError, UsageError
from lab.core.xmlsafe import loads_untrusted_json, one_line, read_untrusted_file
from lab.workflows.classgrade import CheckResult, ClassResults, ExerciseResult, StudentResult

SCHEMA = 1
SIGNATURE_PREFIX = "hmac-sha256:"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64 * 1024
MAX_RESULTS_BYTES = 64 * 1024 * 1024


class SignatureError(LabError):
    """results.json does not carry the signature its key makes: it was changed, or the key differs."""


def results_document(results: ClassResults) -> dict[str, Any]:
    """The schema-1 record, exactly the fields the gradebook contract names (plus `dropped`)."""
    return {
        "schema": SCHEMA,
        "exercises": list(results.exercises),
        "dropped": list(results.dropped),
        "students": [{
            "id": s.id, "name": s.name, "status": s.status, "score": s.score, "max_score": s.max_score,
            "exercises": [{
                "exercise": e.exercise, "status": e.status, "passed": e.passed, "score": e.score,
                "max_score": e.max_score,
                "checks": [{"id": c.id, "passed": c.passed, "points": c.points, "message": c.message}
                           for c in e.checks],
                "error": e.error,
            } for e in s.exercises],
        } for s in results.students],
    }


def read_key(path: Path) -> bytes:
    """An HMAC key from a file (surrounding whitespace ignored), at least 16 bytes."""
    key = read_untrusted_file(path, "signing key", limit=MAX_KEY_BYTES).strip()
    if len(key) < MIN_KEY_BYTES:
        raise UsageError(f"signing key {path} has {len(key)} bytes; use at least {MIN_KEY_BYTES} "
                         "(e.g. head -c 32 /dev/urandom | base64 > KEYFILE)")
    return key


def _canonical(document: Mapping[str, Any]) -> bytes:
    """The signed bytes: the document without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_document(document: dict[str, Any], key: bytes) -> dict[str, Any]:
    digest = hmac.new(key, _canonical(document), hashlib.sha256).hexdigest()
    return {**document, "signature": SIGNATURE_PREFIX + digest}


def verify_document(document: Mapping[str, Any], key: bytes, where: str) -> None:
    """Raise SignatureError unless the document carries the HMAC-SHA256 this key makes."""
    given = document.get("signature")
    if not isinstance(given, str) or not given.startswith(SIGNATURE_PREFIX):
        raise SignatureError(f"{where} is not signed (grade with --sign-key to sign it)")
    expected = SIGNATURE_PREFIX + hmac.new(key, _canonical(document), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii")):
        raise SignatureError(f"{where}: the signature does not match: the file was changed after "
                             "grading, or it was signed with another key")


def load_document(path: Path) -> dict[str, Any]:
    try:
        text = read_untrusted_file(path, "results file", limit=MAX_RESULTS_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    data = loads_untrusted_json(text, str(path))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{path} is not a lab grade results file (schema {SCHEMA})")
    return data


def verify_dir(directory: Path, key: bytes) -> Path:
    """Check DIR/results.json against the key; the path on success, SignatureError otherwise."""
    path = directory / "results.json"
    verify_document(load_document(path), key, str(path))
    return path


def read_results(path: Path, key: bytes | None) -> ClassResults:
    """An earlier run's results.json (for --only-errors), verified when it is signed."""
    if not path.exists():
        raise UsageError(f"--only-errors merges into an earlier run's results, and {path} does not exist")
    document = load_document(path)
    if "signature" in document:
        if key is None:
            raise UsageError(f"{path} is signed: give --sign-key to check it before merging")
        verify_document(document, key, str(path))
    elif key is not None:
        raise SignatureError(f"{path} is not signed, so it cannot be trusted under --sign-key")
    try:
        return _results_from(document)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path} does not have the results layout (schema {SCHEMA}): "
                         f"{type(exc).__name__}: {one_line(str(exc), 100)}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected a whole number, got {type(value).__name__}")
    return value


def _results_from(document: Mapping[str, Any]) -> ClassResults:
    students = []
    for s in document["students"]:
        rows = []
        for e in s["exercises"]:
            checks = []
            for c in e["checks"]:
                passed = c["passed"]
                if passed not in (True, False, None):
                    raise TypeError("a check's passed must be true, false or null")
                checks.append(CheckResult(_text(c["id"]), passed, _int(c["points"]), _text(c["message"])))
            error = e.get("error")
            rows.append(ExerciseResult(_text(e["exercise"]), tuple(checks), _int(e["max_score"]),
                                       None if error is None else _text(error)))
        students.append(StudentResult(_text(s["id"]), _text(s["name"]), tuple(rows)))
    return ClassResults(tuple(_text(x) for x in document["exercises"]),
                        tuple(sorted(_text(x) for x in document.get("dropped", []))), tuple(students))


def write_file(path: Path, text: str) -> None:
    """Write through a temporary file and rename: an interrupted run never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
