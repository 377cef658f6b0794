"""ContextBudget: what of a conversation a model is sent, so that its prompt fits its window.

A model call's prompt is the agent's system prompt, the tools' definitions, the thread's
earlier turns and the run's own part (its user message, then the tool calls and results of
its steps so far). The system prompt, the tools and the run's own part are always sent. The
earlier turns fill what is left of the budget newest first, whole turns only (a question with
its answer), and stop at the first that does not fit: the model sees the latest stretch of
the conversation, never a hole in it. What came before that stretch is in the thread's
summary, when there is one (``netra.engine.summary``: sent right after the system prompt,
``ContextReport.summarized``), or else left out (``ContextReport.dropped``).

The budget is the model's context window less what is kept for the answer
(``models.reserve_output_tokens``, at most a quarter of the window). Tokens are estimated as
for models that report none (``estimate_tokens``) plus ``MESSAGE_OVERHEAD`` per message: a
count the provider's tokenizer may exceed by a little for text that tokenizes densely.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from netra.models.base import ChatMessage, ToolSpec, estimate_tokens
from netra.models.summary import summary_message

MESSAGE_OVERHEAD = 4
"""Tokens a message costs beyond its text (its role and separators)."""


@dataclass(frozen=True, slots=True)
class ContextReport:
    """What one model call was sent."""

    turns: int
    """Earlier turns of the thread sent."""
    dropped: int
    """Earlier turns left out: they did not fit, and no summary holds them."""
    summarized: int
    """Earlier turns the summary sent holds (0: none sent)."""
    tokens: int
    """The prompt's estimated size."""
    window: int
    """The model's context window."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "dropped": self.dropped,
            "summarized": self.summarized,
            "tokens": self.tokens,
            "window": self.window,
        }


class ContextBudget:
    """The prompt budget of one run's model (the smallest window of it and its fallbacks)."""

    def __init__(self, window: int, *, reserve_output: int) -> None:
        self.window = window
        self.budget = window - min(reserve_output, window // 4)
        """Most tokens a prompt may take."""

    def room(
        self, system: str | None, tools: Sequence[ToolSpec], own: Sequence[ChatMessage]
    ) -> int:
        """Tokens left for earlier turns (and a summary) beside what is always sent."""
        spent = message_tokens(ChatMessage("system", system)) if system else 0
        spent += sum(map(message_tokens, own)) + sum(tool_tokens(tool) for tool in tools)
        return self.budget - spent

    def fit(
        self,
        system: str | None,
        tools: Sequence[ToolSpec],
        earlier: Sequence[ChatMessage],
        own: Sequence[ChatMessage],
        *,
        unread: int = 0,
        summary: str | None = None,
        summarized: int = 0,
    ) -> tuple[list[ChatMessage], ContextReport]:
        """The messages to send — the system prompt, the summary of the turns before
        ``earlier`` (which holds ``summarized`` of them), the newest earlier turns that fit,
        the run's own part — and what was kept and left out (``unread``: turns before
        ``earlier`` the caller did not read and no summary holds, left out too)."""
        head = [ChatMessage("system", system)] if system else []
        if summary:
            head.append(summary_message(summary))
        spent = sum(map(message_tokens, head)) + sum(map(message_tokens, own))
        spent += sum(tool_tokens(tool) for tool in tools)
        turns = split_turns(earlier)
        kept = 0
        for turn in reversed(turns):
            cost = sum(map(message_tokens, turn))
            if spent + cost > self.budget:
                break
            spent += cost
            kept += 1
        sent = [message for turn in turns[len(turns) - kept :] for message in turn]
        report = ContextReport(
            turns=kept,
            dropped=len(turns) - kept + unread,
            summarized=summarized if summary else 0,
            tokens=spent,
            window=self.window,
        )
        return [*head, *sent, *own], report


def message_tokens(message: ChatMessage) -> int:
    """A message's estimated size in a prompt."""
    tokens = MESSAGE_OVERHEAD + estimate_tokens(message.content)
    for call in message.tool_calls:
        tokens += estimate_tokens(call.name) + estimate_tokens(json.dumps(call.arguments))
    if message.name:
        tokens += estimate_tokens(message.name)
    return tokens


def tool_tokens(tool: ToolSpec) -> int:
    """A tool definition's estimated size in a prompt."""
    return tool.tokens


class _Said(Protocol):
    @property
    def role(self) -> str: ...


_M = TypeVar("_M", bound=_Said)


def split_turns(messages: Sequence[_M]) -> list[list[_M]]:
    """The conversation cut before each user message: a turn is a question and its answer."""
    turns: list[list[_M]] = []
    for message in messages:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns
