"""Tool declarations: a typed Python function becomes a tool with a JSON schema.

    @tool(description="Evaluate arithmetic.")
    def calculator(expression: str) -> dict[str, object]: ...

The argument model is built from the signature by pydantic, so the schema the model sees and
the validation the dispatcher applies can never disagree. Tools from elsewhere (MCP servers)
carry their own JSON schema instead (``netra.tools.arguments``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, get_type_hints

from pydantic import ConfigDict, create_model

from netra.context import UserExecutionContext
from netra.models.base import ToolSpec
from netra.tools.arguments import Arguments, ModelArguments


class SideEffects(StrEnum):
    """What re-running a tool call after a crash would do."""

    NONE = "none"
    """Reads only: safe to run again."""
    IDEMPOTENT = "idempotent"
    """Writes, but running twice equals running once."""
    UNSAFE = "unsafe"
    """Running twice does harm: never repeated when its outcome is unknown."""


ToolFunction = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the dispatcher can run."""

    name: str
    description: str
    function: ToolFunction
    """Sync or async; may take a ``ctx: UserExecutionContext`` parameter."""
    arguments: Arguments
    """Validates the model's arguments; its JSON schema is what the model sees."""
    permission: str | None = None
    """Permission the user needs; None means every signed-in user."""
    side_effects: SideEffects = SideEffects.NONE
    requires_approval: bool = False
    """Pause the run until the owning user approves the call."""
    timeout_s: float | None = None
    """Time limit of one call; None uses the configured default."""
    max_output_chars: int | None = None
    """Largest serialised result; None uses the configured default."""
    wants_context: bool = False
    spec: ToolSpec = field(init=False, repr=False, compare=False)
    """What the model is told; built once, as generating a schema is not cheap."""

    def __post_init__(self) -> None:
        schema = self.arguments.json_schema()
        object.__setattr__(self, "spec", ToolSpec(self.name, self.description, schema))

    async def invoke(self, ctx: UserExecutionContext, arguments: dict[str, Any]) -> Any:
        """Call the function with validated ``arguments`` (from ``self.arguments.validate``)."""
        kwargs = dict(arguments)
        if self.wants_context:
            kwargs["ctx"] = ctx
        if inspect.iscoroutinefunction(self.function):
            return await self.function(**kwargs)
        # Sync tools run in a thread so a slow one cannot stall the event loop.
        result: Any = await asyncio.to_thread(self.function, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result


def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    permission: str | None = None,
    side_effects: SideEffects = SideEffects.NONE,
    requires_approval: bool = False,
    timeout_s: float | None = None,
    max_output_chars: int | None = None,
) -> Callable[[ToolFunction], Tool]:
    """Declare a tool from a typed function (see the module docstring)."""

    def decorate(function: ToolFunction) -> Tool:
        hints = get_type_hints(function)
        fields: dict[str, Any] = {}
        wants_context = False
        for parameter in inspect.signature(function).parameters.values():
            if parameter.name == "ctx":
                wants_context = True
                continue
            annotation = hints.get(parameter.name, Any)
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (annotation, default)
        tool_name = name or function.__name__
        model = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        doc = inspect.getdoc(function) or ""
        return Tool(
            name=tool_name,
            description=description or doc.split("\n\n")[0] or tool_name,
            function=function,
            arguments=ModelArguments(model),
            permission=permission,
            side_effects=side_effects,
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_output_chars=max_output_chars,
            wants_context=wants_context,
        )

    return decorate
