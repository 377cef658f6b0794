"""``JsonSchemaArguments``: the arguments of a tool that arrives with a JSON schema (an MCP
server's), checked with ``jsonschema``; apart from ``netra.tools.arguments`` so that package
loads only with the MCP servers that need it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import SchemaError, validators
from jsonschema.protocols import Validator

from netra.tools.arguments import ArgumentsInvalid


@dataclass(frozen=True, slots=True)
class JsonSchemaArguments:
    """Arguments checked against a JSON schema as given, under the draft it declares (the
    latest when it declares none). Values are passed on unchanged: no coercion, no defaults."""

    schema: dict[str, Any]
    _validator: Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cls = validators.validator_for(self.schema)
        try:
            cls.check_schema(self.schema)
        except SchemaError as exc:
            raise ValueError(f"invalid JSON schema: {exc.message}") from None
        object.__setattr__(self, "_validator", cls(self.schema))

    def json_schema(self) -> dict[str, Any]:
        schema = dict(self.schema)
        schema.pop("title", None)
        return schema

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        errors = sorted(self._validator.iter_errors(dict(raw)), key=lambda e: list(e.path))
        if errors:
            raise ArgumentsInvalid(
                [f"{'.'.join(str(p) for p in e.path) or 'arguments'}: {e.message}" for e in errors]
            )
        return dict(raw)
