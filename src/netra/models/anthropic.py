"""Claude models behind Anthropic's messages API, on the official ``anthropic`` SDK.

System messages travel apart from the conversation; tool calls come back as ``tool_use``
blocks whose input streams as JSON fragments; tool results go back as ``tool_result`` blocks
in a user turn. Text is passed on as it arrives, tool calls once the message has stopped
properly, usage last.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anthropic
import httpx2
from anthropic.types import (
    MessageParam,
    RawMessageStreamEvent,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)

from netra.errors import ModelBehaviorError, NetraError
from netra.model_ids import ModelId
from netra.models.base import (
    ChatMessage,
    Model,
    ModelRequest,
    StreamPart,
    TextDelta,
    ToolCallRequest,
)
from netra.models.prices import PriceTable
from netra.models.provider import (
    PROBE_TIMEOUT_S,
    api_key,
    call_failure,
    priced,
    probe_verdict,
    sdk_failure,
    tool_arguments,
)
from netra.settings.models import ProviderSettings

ANTHROPIC_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096
"""The messages API requires a cap on the answer; used when the provider sets none."""
STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
Block = TextBlockParam | ToolUseBlockParam | ToolResultBlockParam


class AnthropicProvider:
    """One endpoint speaking the messages API; one ``AsyncAnthropic`` client, made on first
    use and shared by every model of the provider on this endpoint."""

    def __init__(self, name: str, settings: ProviderSettings, url: str) -> None:
        self._name = name
        self._settings = settings
        self._url = url
        self._client: anthropic.AsyncAnthropic | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def endpoint(self) -> str:
        return self._url

    def model(self, name: str, prices: PriceTable) -> Model:
        return AnthropicModel(ModelId(self._name, name), self._connect(), self._settings, prices)

    def _connect(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            # Everything explicit, so the SDK never falls back to its environment or profiles.
            self._client = anthropic.AsyncAnthropic(
                api_key=api_key(self._name, self._settings),
                base_url=self.endpoint,
                timeout=self._settings.timeout_s,
                max_retries=self._settings.max_retries,
                open_telemetry=False,
            )
        return self._client

    async def probe(self) -> bool:
        try:
            await self._connect().with_options(max_retries=0, timeout=PROBE_TIMEOUT_S).models.list()
        except anthropic.APIStatusError as exc:
            return probe_verdict(self.endpoint, status=exc.status_code)
        except anthropic.APIConnectionError as exc:
            timed_out = isinstance(exc, anthropic.APITimeoutError)
            return probe_verdict(self.endpoint, status=None, timed_out=timed_out)
        except anthropic.AnthropicError:
            pass  # it answered, with a body the SDK cannot read: up all the same
        return True

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class AnthropicModel:
    """One Claude model of an Anthropic provider."""

    def __init__(
        self,
        model_id: ModelId,
        client: anthropic.AsyncAnthropic,
        settings: ProviderSettings,
        prices: PriceTable,
    ) -> None:
        self._model_id = model_id
        self._client = client
        self._settings = settings
        self._price = prices.lookup(model_id)
        self._known_models = prices.names()
        """Model names to suggest when the provider says it has no such model."""

    @property
    def id(self) -> str:
        return str(self._model_id)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamPart]:
        system, messages = _conversation(request.messages)
        options: dict[str, Any] = {}
        if system:
            options["system"] = system
        if request.tools:
            options["tools"] = [
                ToolParam(name=t.name, description=t.description, input_schema=t.parameters)
                for t in request.tools
            ]
        reader = _EventReader(self._model_id)
        try:
            stream = await self._client.messages.create(
                model=self._model_id.name,
                max_tokens=self._settings.max_output_tokens or DEFAULT_MAX_TOKENS,
                messages=messages,
                stream=True,
                **options,
            )
        except anthropic.AnthropicError as exc:
            raise self._failure(exc) from None
        try:
            async for event in stream:
                for text in reader.feed(event):
                    yield TextDelta(text)
        except anthropic.AnthropicError as exc:
            raise self._failure(exc) from None
        except httpx2.TimeoutException:  # mid-stream reads are not wrapped by the SDK
            raise call_failure(self._model_id, status=None, detail="", timed_out=True) from None
        except httpx2.TransportError as exc:
            raise call_failure(self._model_id, status=None, detail=type(exc).__name__) from None
        except json.JSONDecodeError:
            raise ModelBehaviorError(f"{self.id} streamed data that is not JSON") from None
        finally:
            await stream.close()
        for call in reader.tool_calls():
            yield call
        input_tokens, output_tokens, cached = reader.usage()
        yield priced(self._price, input_tokens, output_tokens, cached)

    def _failure(self, exc: anthropic.AnthropicError) -> NetraError:
        if isinstance(exc, anthropic.APIResponseValidationError):
            return ModelBehaviorError(f"{self.id} answered with a response Netra cannot read")
        return sdk_failure(
            self._model_id,
            self._settings,
            self._known_models,
            body=exc.body if isinstance(exc, anthropic.APIError) else None,
            message=str(exc),
            status=exc.status_code if isinstance(exc, anthropic.APIStatusError) else None,
            timed_out=isinstance(exc, anthropic.APITimeoutError),
        )


def _conversation(messages: Sequence[ChatMessage]) -> tuple[str, list[MessageParam]]:
    """The system prompt, apart, and the turns: consecutive messages of one side merged, tool
    results as ``tool_result`` blocks of a user turn."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[tuple[Literal["user", "assistant"], list[Block]]] = []
    for message in messages:
        if message.role == "system":
            continue
        role: Literal["user", "assistant"] = "assistant" if message.role == "assistant" else "user"
        blocks: list[Block] = []
        if message.role == "tool":
            blocks.append(
                ToolResultBlockParam(
                    type="tool_result",
                    tool_use_id=message.tool_call_id or "",
                    content=message.content,
                )
            )
        elif message.content:
            blocks.append(TextBlockParam(type="text", text=message.content))
        for call in message.tool_calls:
            blocks.append(
                ToolUseBlockParam(
                    type="tool_use", id=call.id, name=call.name, input=dict(call.arguments)
                )
            )
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    converted: list[MessageParam] = []
    for role, blocks in turns:
        if role == "user":
            converted.append({"role": "user", "content": blocks})
        else:
            converted.append({"role": "assistant", "content": blocks})
    return system, converted


@dataclass(slots=True)
class _DraftCall:
    id: str
    name: str
    initial: dict[str, Any]
    fragments: list[str] = field(default_factory=list)


class _EventReader:
    """Reads the events of one streamed message."""

    def __init__(self, model_id: ModelId) -> None:
        self._model_id = model_id
        self._drafts: dict[int, _DraftCall] = {}
        self._input_tokens = 0
        self._output_tokens = 0
        self._cached_input_tokens = 0
        self._stop_reason: str | None = None
        self._stopped = False

    def feed(self, event: RawMessageStreamEvent) -> list[str]:
        """The text the event carries; tool input fragments, usage and the stop are kept."""
        try:
            return self._read(event)
        except (AttributeError, TypeError, ValueError, KeyError):
            raise ModelBehaviorError(
                f"{self._model_id} streamed an event that is not a messages API event"
            ) from None

    def _read(self, event: RawMessageStreamEvent) -> list[str]:
        if event.type == "message_start":
            self._count(event.message.usage.input_tokens, event.message.usage)
            self._output_tokens = int(event.message.usage.output_tokens or 0)
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                initial = block.input if isinstance(block.input, dict) else {}
                self._drafts[event.index] = _DraftCall(str(block.id), str(block.name), initial)
            elif block.type == "text" and block.text:
                return [str(block.text)]
        elif event.type == "content_block_delta":
            return self._delta(event)
        elif event.type == "message_delta":
            self._message_delta(event)
        elif event.type == "message_stop":
            self._stopped = True
        return []

    def _delta(self, event: Any) -> list[str]:
        delta = event.delta
        if delta.type == "text_delta":
            return [str(delta.text)] if delta.text else []
        if delta.type == "input_json_delta":
            if event.index not in self._drafts:
                raise ModelBehaviorError(
                    f"{self._model_id} streamed tool input for a block that is no tool call"
                )
            self._drafts[event.index].fragments.append(str(delta.partial_json))
        return []

    def _message_delta(self, event: Any) -> None:
        if event.usage.input_tokens is not None:
            self._count(event.usage.input_tokens, event.usage)
        self._output_tokens = int(event.usage.output_tokens)
        if event.delta.stop_reason is not None:
            if event.delta.stop_reason not in STOP_REASONS:
                raise ModelBehaviorError(
                    f"{self._model_id} stopped with an unknown reason "
                    f"{str(event.delta.stop_reason)[:40]!r}"
                )
            self._stop_reason = event.delta.stop_reason

    def _count(self, input_tokens: int, usage: Any) -> None:
        # Anthropic counts the cache apart from input_tokens: written to it, and read from
        # it (which is what is priced as cached input).
        read = int(usage.cache_read_input_tokens or 0)
        self._cached_input_tokens = read
        self._input_tokens = int(input_tokens) + int(usage.cache_creation_input_tokens or 0) + read

    def tool_calls(self) -> list[ToolCallRequest]:
        """The assembled tool calls, once the message has stopped."""
        if not self._stopped or self._stop_reason is None:
            raise ModelBehaviorError(
                f"{self._model_id} ended its stream before the message stopped"
            )
        calls = []
        for index in sorted(self._drafts):
            draft = self._drafts[index]
            raw = "".join(draft.fragments)
            arguments = tool_arguments(self._model_id, draft.name, raw) if raw else draft.initial
            calls.append(ToolCallRequest(draft.id, draft.name, arguments))
        return calls

    def usage(self) -> tuple[int, int, int]:
        """``(input, output, cached input)`` tokens; input counts the cached too."""
        return self._input_tokens, self._output_tokens, self._cached_input_tokens
