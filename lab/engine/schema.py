"""The exercise file's schema: pydantic models of one exercises/*.toml, as an author writes it.

lab.engine.exercises validates every file against ExerciseDoc when the catalogue loads and
builds the Exercise the rest of the lab reads from it. The JSON Schema authors' editors use,
exercises/exercise.schema.json, is generated from these models:

    python -m lab.engine.schema          # rewrite exercises/exercise.schema.json
    python -m lab.engine.schema --check  # exit 1 when the committed file is stale
"""

from __future__ import annotations

import json
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from checks import REGISTRY as CHECKS
from lab.core.tomlfile import expected, refused
from lab.engine.commands import LINK1_PLACEHOLDERS
from lab.engine.faultkinds import FAULT_KINDS, FAULT_NODE_PATTERN

# The host-side preparations a start state may ask for (made by lab.vm.fixtures).
FIXTURES = ("fence-virtd", "sbd-disk")
BASELINES = ("installed", "cluster")
ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# The {placeholders} lab.engine.commands fills in start and solution commands (node1..node5 too).
PLACEHOLDERS = ("nodes", "vip_ip", "password", "first_node", "last_node", "vm_map",
                *(f"node{i}" for i in range(1, 6)), *LINK1_PLACEHOLDERS)
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A drawn value lands in shell commands and CIB ids: a short plain token, nothing a shell reads.
PARAM_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$")
NODE_VALUE = re.compile(r"^node[1-5]$")
SCHEMA_FILE = "exercise.schema.json"


def _text(value: object) -> object:
    if not isinstance(value, str) or not value.strip():
        raise expected("a non-empty string")
    return value


def _between(low: int, high: int) -> Any:
    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise expected(f"an integer {low}..{high}")
        return value
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(check)]


def _positive(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise expected("a positive integer")
    return value


def _matching(pattern: str, what: str) -> Any:
    def check(value: object) -> object:
        if not isinstance(value, str) or not re.match(pattern, value):
            raise expected(what)
        return value
    return Annotated[str, BeforeValidator(check), Field(pattern=pattern)]


def _fixture(value: object) -> object:
    if value not in FIXTURES:
        raise refused(f"unknown fixture {value!r} (known: {', '.join(FIXTURES)})")
    return value


def _check_name(value: object) -> object:
    if not isinstance(value, str) or value not in CHECKS:
        raise refused(f"unknown check function {value!r}")
    return value


Text = Annotated[str, BeforeValidator(_text), Field(min_length=1)]
Texts = tuple[Text, ...]
Fixture = Annotated[str, BeforeValidator(_fixture), WithJsonSchema({"enum": list(FIXTURES)})]
CheckName = Annotated[str, BeforeValidator(_check_name), WithJsonSchema({"enum": sorted(CHECKS)})]
Points = Annotated[int, BeforeValidator(_positive), Field(ge=1)]


class Strict(BaseModel):
    """Every table: frozen, and a key the schema does not know is an error (typos are caught)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _fault_model(name: str) -> type[BaseModel]:
    spec = FAULT_KINDS[name]
    fields: dict[str, Any] = {
        "kind": (Literal[name], Field(description=spec.description)),
        "node": (_matching(FAULT_NODE_PATTERN, "first, last or node1..node5"),
                 Field("last", description="first, last or nodeN (default last)"))}
    fields |= {p: (Text, ...) for p in spec.required}
    fields |= {p: (StrictStr, Field(default)) for p, default in spec.optional.items()}
    return create_model(f"Fault_{name.replace('-', '_')}", __base__=Strict, **fields)


Fault = Annotated[Union[tuple(_fault_model(n) for n in FAULT_KINDS)],  # noqa: UP007 (a runtime tuple)
                  Field(discriminator="kind")]


class StartDoc(Strict):
    """[start]: how `lab start` prepares the exercise."""

    baseline: Literal["installed", "cluster"] = Field(
        description="the snapshot to revert to: installed (no cluster yet) or cluster")
    commands: Texts = Field((), description="run on node1 after the revert ({placeholders} filled)")
    faults: tuple[Fault, ...] = Field((), description="faults injected after the commands")
    min_nodes: _between(1, 5) = Field(2, description="the smallest lab the exercise works on")
    max_nodes: _between(1, 5) | None = Field(
        None, description="the largest lab it works on (e.g. 2 for corosync's two_node mode); none: any")
    fixtures: tuple[Fixture, ...] = Field((), description="host-side preparations")

    @model_validator(mode="after")
    def _sizes(self) -> StartDoc:
        if self.max_nodes is not None and self.max_nodes < self.min_nodes:
            raise ValueError(f"max_nodes {self.max_nodes} is below min_nodes {self.min_nodes}")
        return self


class SolutionDoc(Strict):
    """[solution]: the reference solutions `lab solve` runs and the tests prove."""

    pcs: Texts
    crmsh: Texts
    pcs09: Texts = Field((), description="pcs 0.9 syntax, where it differs")
    pcs010: Texts = Field((), description="pcs 0.10.x only, where 0.11 changed a syntax")


class CheckDoc(Strict):
    """[[checks]]: one graded check, a registered check function with its parameters."""

    id: Text
    check: CheckName
    description: Text
    points: Points
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_fit(self) -> CheckDoc:
        problem = CHECKS[self.check].validate_params(self.params)
        if problem:
            raise refused(f"params do not fit '{self.check}': {problem}")
        return self


class TouchesDoc(Strict):
    """What a task changes or depends on: two exam tasks never share any of it ("*" = all)."""

    resources: Texts = ()
    nodes: Texts = Field((), description='node names, "first", "last" or "*"')
    properties: Texts = ()
    daemons: Texts = ()
    corosync: StrictBool = False
    fixtures: Texts = ()


class ParamDoc(Strict):
    """[params.NAME]: a value drawn per exam seed, written {NAME} in the exercise's texts."""

    default: StrictStr | StrictInt
    choices: tuple[StrictStr | StrictInt, ...] = Field(min_length=2)
    kind: Literal["value", "node"] = "value"

    @field_validator("choices", mode="before")
    @classmethod
    def _enough(cls, value: object) -> object:
        if not isinstance(value, list) or len(value) < 2:
            raise expected("a list of at least two values")
        return value

    @model_validator(mode="after")
    def _tokens(self) -> ParamDoc:
        pattern, what = (NODE_VALUE, "node1..node5") if self.kind == "node" else (
            PARAM_VALUE, "letters, digits, _.:-")
        for value in self.choices:
            if not pattern.match(str(value)):
                raise refused(f"choice {value!r} is not a plain token ({what})")
        if len(set(map(str, self.choices))) != len(self.choices):
            raise refused("choices lists a value twice")
        if self.default not in self.choices:
            raise refused(f"default {self.default!r} must be one of the choices")
        return self


class ExerciseDoc(Strict):
    """One exercise file (exercises/ID.toml)."""

    id: _matching(ID_PATTERN, "lowercase letters, digits and dashes") = Field(
        description="the file name without .toml")
    title: Text
    objective: Text = Field(description="the exam objective it belongs to (groups the catalogue)")
    task: Text
    hints: Texts = Field(description="from a nudge to the answer, shown one at a time")
    start: StartDoc
    solution: SolutionDoc
    checks: tuple[CheckDoc, ...]
    live_only: StrictBool = Field(False, description="judged on a live lab only, never a saved CIB")
    notes: StrictStr = ""
    touches: TouchesDoc = TouchesDoc()
    persistent: StrictBool = Field(True, description="must the effect survive a reboot (exam)")
    params: dict[str, ParamDoc] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _file_name(cls, value: str, info: ValidationInfo) -> str:
        stem = (info.context or {}).get("stem")
        if stem is not None and value != stem:
            raise refused(f"id {value!r} must be lowercase-dashed and match the file name ({stem})")
        return value

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, ParamDoc]) -> dict[str, ParamDoc]:
        for name in value:
            if not PARAM_NAME.match(name) or name in PLACEHOLDERS:
                raise refused(f"parameter {name!r}: a parameter name is lowercase letters, digits and _ "
                              "and not a command placeholder (node1, nodes, vip_ip, ...)")
        return value

    @field_validator("checks")
    @classmethod
    def _unique_checks(cls, value: tuple[CheckDoc, ...]) -> tuple[CheckDoc, ...]:
        if not value:
            raise refused("an exercise needs at least one check")
        seen: set[str] = set()
        for index, check in enumerate(value):
            if check.id in seen:
                raise refused(f"duplicate check id {check.id!r} (checks[{index}])")
            seen.add(check.id)
        return value


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an exercise file (TOML read as JSON), for authors' editors."""
    schema = ExerciseDoc.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_FILE, **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write (or with --check, compare) exercises/exercise.schema.json next to the exercises."""
    path = Path(str(resources.files("exercises"))) / SCHEMA_FILE
    if "--check" in argv:
        same = path.is_file() and path.read_text() == schema_text()
        print(f"{path}: {'up to date' if same else 'stale: run python -m lab.engine.schema'}")
        return 0 if same else 1
    path.write_text(schema_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
