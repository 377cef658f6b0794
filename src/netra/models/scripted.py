"""The scripted model: plays back predetermined responses, for tests and demos."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from netra.errors import ModelBehaviorError
from netra.models.base import (
    ModelRequest,
    StreamPart,
    TextDelta,
    ToolCallRequest,
    Usage,
    estimate_tokens,
)


@dataclass(frozen=True, slots=True)
class ScriptedTurn:
    """One model response: text chunks and/or tool calls, with an optional pause per chunk."""

    chunks: Sequence[str] = ()
    tool_calls: Sequence[ToolCallRequest] = ()
    delay_s: float = 0.0
    """Pause before each chunk (and before the tool calls), to make runs last."""
    fail: str | None = None
    """When set, the model raises ``ModelBehaviorError`` with this message instead."""
    tokens: tuple[int, int] | None = None
    """The input and output tokens the call reports; None: estimated from the text."""

    @classmethod
    def text(cls, text: str, *, delay_s: float = 0.0) -> ScriptedTurn:
        return cls(chunks=tuple(text.split(" ")) if text else (), delay_s=delay_s)

    @classmethod
    def call(
        cls,
        name: str,
        arguments: dict[str, object],
        *,
        call_id: str = "call_1",
        delay_s: float = 0.0,
    ) -> ScriptedTurn:
        return cls(tool_calls=(ToolCallRequest(call_id, name, dict(arguments)),), delay_s=delay_s)


Responder = Callable[[ModelRequest], ScriptedTurn]


class ScriptedModel:
    """Answers each call with the next queued turn, or with ``responder`` when the queue is
    empty. Every request it sees is kept in ``requests`` for assertions."""

    def __init__(
        self,
        turns: Iterable[ScriptedTurn] = (),
        *,
        responder: Responder | None = None,
        model_id: str = "scripted",
    ) -> None:
        self._turns: deque[ScriptedTurn] = deque(turns)
        self.responder = responder
        self._id = model_id
        self.requests: list[ModelRequest] = []

    @property
    def id(self) -> str:
        return self._id

    def push(self, *turns: ScriptedTurn) -> None:
        self._turns.extend(turns)

    def _next(self, request: ModelRequest) -> ScriptedTurn:
        if self._turns:
            return self._turns.popleft()
        if self.responder is not None:
            return self.responder(request)
        raise ModelBehaviorError("the scripted model has no response left")

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamPart]:
        self.requests.append(request)
        turn = self._next(request)
        if turn.fail is not None:
            raise ModelBehaviorError(turn.fail)
        out = 0
        for index, chunk in enumerate(turn.chunks):
            if turn.delay_s:
                await asyncio.sleep(turn.delay_s)
            text = chunk if index == 0 else f" {chunk}"
            out += estimate_tokens(text)
            yield TextDelta(text)
        if turn.tool_calls and turn.delay_s:
            await asyncio.sleep(turn.delay_s)
        for call in turn.tool_calls:
            yield call
        if turn.tokens is not None:
            yield Usage(input_tokens=turn.tokens[0], output_tokens=turn.tokens[1])
            return
        prompt = sum(estimate_tokens(message.content) for message in request.messages)
        yield Usage(input_tokens=prompt, output_tokens=out + 8 * len(turn.tool_calls))
