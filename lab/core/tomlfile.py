"""Read a TOML file of ours (exercises, profiles, rosters) and check it against its schema.

Every failure is one error type and one line: the file, the key path and what was expected,
e.g. "x.toml: start.min_nodes: expected an integer 1..5, got 'two'". The schemas are pydantic
models; `validated` turns pydantic's error list into that line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from lab.core.errors import LabError

M = TypeVar("M", bound=BaseModel)

# pydantic's error types, as the words an author reads after "expected".
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "string_type": "a string",
    "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list",
    "tuple_type": "a list", "dict_type": "a table", "model_type": "a table",
    "model_attributes_type": "a table", "float_type": "a number",
}


def read_toml(path: Path, what: str, error: type[LabError]) -> dict:
    """The parsed file, or `error` naming what the file is and why it cannot be used."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path.name} is not valid TOML: {exc}") from None


def expected(what: str) -> PydanticCustomError:
    """A validator's complaint, shown as "KEY: expected WHAT, got VALUE"."""
    return PydanticCustomError("expected", what)


def refused(why: str) -> PydanticCustomError:
    """A validator's complaint shown as it is: "KEY: WHY"."""
    return PydanticCustomError("refused", why)


def key_path(loc: tuple[int | str, ...]) -> str:
    """('start', 'faults', 0, 'kind') -> 'start.faults[0].kind'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def shown(value: Any, limit: int = 60) -> str:
    """A value as an author wrote it, cut short: one line whatever it holds."""
    text = repr(value)
    if isinstance(value, dict):
        text = "a table"
    elif isinstance(value, list):
        text = f"a list of {len(value)}"
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def problem(error: dict[str, Any]) -> str:
    """What is wrong in one pydantic error, without its key: "expected ..., got ..."."""
    kind, ctx = error["type"], error.get("ctx") or {}
    got = shown(error.get("input"))
    if kind == "missing":
        return "missing (a required key)"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "refused":
        return error["msg"]
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {got}"
    what = error["msg"] if kind == "expected" else _EXPECTED.get(kind)
    if what is None:
        what = error["msg"].removeprefix("Input should be ")
    return f"expected {what}, got {got}"


def describe(error: dict[str, Any]) -> str:
    """One pydantic error as "KEY: expected ..., got ..."."""
    loc, kind, ctx = key_path(tuple(error["loc"])), error["type"], error.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "kind")).strip("'")
        if kind == "union_tag_not_found":
            return f"{loc}.{key}: missing (a required key)"
        known = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"{loc}.{key}: unknown {key} {shown(ctx.get('tag'))} (known: {known})"
    return f"{loc}: {problem(error)}"


def validated(model: type[M], data: Any, where: str, error: type[LabError],
              context: dict[str, Any] | None = None) -> M:
    """`data` as a `model`, or `error` with one line naming WHERE, the key and what was expected."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        first = dict(exc.errors(include_url=False)[0])
        first["loc"] = _written(data, tuple(first["loc"]))
        raise error(f"{where}: {describe(first)}") from None


def _written(data: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The key path as the file has it: without the tags pydantic puts in for a tagged union
    (start.faults[0].break-config.sed is start.faults[0].sed in the file)."""
    out: list[int | str] = []
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(data, dict) and isinstance(part, str) and part not in data and not last:
            continue  # a union tag: the same table, one level down in pydantic's path only
        out.append(part)
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            data = None
    return tuple(out)
