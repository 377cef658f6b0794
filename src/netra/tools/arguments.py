"""How a tool's arguments are described to the model and checked before the tool runs.

Two kinds, one protocol: ``ModelArguments`` for tools declared from a typed Python function
(a pydantic model built from its signature) and ``JsonSchemaArguments`` for tools that arrive
with a JSON schema (MCP servers; in ``netra.tools.json_schema``, so ``jsonschema`` loads only
with them). Either way the schema the model sees and the validation the
dispatcher applies come from the same object, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError


class ArgumentsInvalid(Exception):
    """Raised by ``Arguments.validate`` with every problem found, each naming its place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Arguments(Protocol):
    """The arguments a tool takes."""

    def json_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments object: what the model is told."""
        ...

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments to call the tool with; raises ``ArgumentsInvalid``."""
        ...


@dataclass(frozen=True, slots=True)
class ModelArguments:
    """Arguments checked (and converted) by a pydantic model."""

    model: type[BaseModel]

    def json_schema(self) -> dict[str, Any]:
        schema = self.model.model_json_schema()
        schema.pop("title", None)
        return schema

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return dict(self.model.model_validate(raw))
        except ValidationError as exc:
            raise ArgumentsInvalid(
                [
                    f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                    for e in exc.errors()
                ]
            ) from None
