"""The ``Model`` protocol and the values that cross it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A model asks for a tool to run."""

    id: str
    """Id the model gave the call; results refer to it."""
    name: str
    """Registered tool name."""
    arguments: dict[str, Any]
    """Arguments as the model sent them (validated by the dispatcher, not here)."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation handed to a model."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCallRequest, ...] = ()
    """For assistant messages: the tools it asked for."""
    tool_call_id: str | None = None
    """For tool messages: which call this is the result of."""
    name: str | None = None
    """For tool messages: the tool's name."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What a model is told about a tool."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""
    tokens: int = field(init=False, compare=False, repr=False)
    """Its estimated size in a prompt, worked out once (every model call counts it)."""

    def __post_init__(self) -> None:
        told = {"name": self.name, "description": self.description, "schema": self.parameters}
        object.__setattr__(self, "tokens", estimate_tokens(json.dumps(told)))


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    """Every input token, the cached ones too."""
    output_tokens: int = 0
    cost_usd: float = 0.0
    cached_input_tokens: int = 0
    """Input tokens the provider read from its prompt cache (priced apart)."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            round(self.cost_usd + other.cost_usd, 8),
            self.cached_input_tokens + other.cached_input_tokens,
        )

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> Usage:
        """From its stored form (``as_dict``); nothing stored is no usage."""
        stored = stored or {}
        return cls(
            int(stored.get("input_tokens", 0)),
            int(stored.get("output_tokens", 0)),
            float(stored.get("cost_usd", 0.0)),
            int(stored.get("cached_input_tokens", 0)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cost_usd": self.cost_usd,
        }


StreamPart = TextDelta | ToolCallRequest | Usage
"""What a model stream yields: text as it comes, tool calls, and usage (once, at the end)."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    messages: Sequence[ChatMessage]
    tools: Sequence[ToolSpec] = field(default_factory=tuple)


class Model(Protocol):
    """A language model that streams its answer."""

    @property
    def id(self) -> str:
        """``provider:model`` (or a built-in name such as ``offline``)."""
        ...

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamPart]:
        """Stream one response: text deltas, tool call requests, then usage."""
        ...


def estimate_tokens(text: str) -> int:
    """A rough token count (≈ 4 characters a token) for models that report none."""
    return tokens_of_length(len(text))


def tokens_of_length(chars: int) -> int:
    """``estimate_tokens`` of a text of ``chars`` characters."""
    return max(1, (chars + 3) // 4) if chars else 0
