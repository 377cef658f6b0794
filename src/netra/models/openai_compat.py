"""Models behind OpenAI's chat completions API, on the official ``openai`` SDK.

The same API is served by OpenAI, Ollama, vLLM, the llama.cpp server, LM Studio, OpenRouter
and others; a provider of kind ``openai`` with a ``base_url`` reaches any of them. Responses
are streamed with ``stream_options.include_usage``: text is passed on as it arrives, tool
calls are assembled from their argument fragments and handed over once the response has
finished properly, usage comes last.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)

from netra.errors import ModelBehaviorError, NetraError
from netra.ids import new_id
from netra.model_ids import ModelId
from netra.models.base import (
    ChatMessage,
    Model,
    ModelRequest,
    StreamPart,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
    estimate_tokens,
)
from netra.models.prices import PriceTable
from netra.models.provider import (
    PROBE_TIMEOUT_S,
    api_key,
    priced,
    probe_verdict,
    sdk_failure,
    tool_arguments,
)
from netra.settings.models import ProviderSettings

OPENAI_URL = "https://api.openai.com/v1"
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


class OpenAICompatibleProvider:
    """One endpoint speaking the chat completions API; one ``AsyncOpenAI`` client, made on
    first use and shared by every model of the provider on this endpoint."""

    def __init__(self, name: str, settings: ProviderSettings, url: str) -> None:
        self._name = name
        self._settings = settings
        self._url = url
        self._client: openai.AsyncOpenAI | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def endpoint(self) -> str:
        return self._url

    def model(self, name: str, prices: PriceTable) -> Model:
        return OpenAIChatModel(ModelId(self._name, name), self._connect(), self._settings, prices)

    def _connect(self) -> openai.AsyncOpenAI:
        if self._client is None:
            # Everything explicit, so the SDK never falls back to its own environment lookups.
            self._client = openai.AsyncOpenAI(
                api_key=api_key(self._name, self._settings),
                base_url=self.endpoint,
                timeout=self._settings.timeout_s,
                max_retries=self._settings.max_retries,
            )
        return self._client

    async def probe(self) -> bool:
        try:
            await self._connect().with_options(max_retries=0, timeout=PROBE_TIMEOUT_S).models.list()
        except openai.APIStatusError as exc:
            return probe_verdict(self.endpoint, status=exc.status_code)
        except openai.APIConnectionError as exc:
            timed_out = isinstance(exc, openai.APITimeoutError)
            return probe_verdict(self.endpoint, status=None, timed_out=timed_out)
        except openai.OpenAIError:
            pass  # it answered, with a body the SDK cannot read: up all the same
        return True

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class OpenAIChatModel:
    """One model of an OpenAI-compatible provider."""

    def __init__(
        self,
        model_id: ModelId,
        client: openai.AsyncOpenAI,
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
        reader = _StreamReader(self._model_id)
        try:
            stream = await self._client.chat.completions.create(
                model=self._model_id.name,
                messages=_messages(request.messages),
                stream=True,
                stream_options={"include_usage": True},
                **_options(request.tools, self._settings),
            )
        except openai.OpenAIError as exc:
            raise self._failure(exc) from None
        try:
            async for chunk in stream:
                for text in reader.feed(chunk):
                    yield TextDelta(text)
        except openai.OpenAIError as exc:
            raise self._failure(exc) from None
        except json.JSONDecodeError:
            raise ModelBehaviorError(f"{self.id} streamed data that is not JSON") from None
        finally:
            await stream.close()
        for call in reader.tool_calls():
            yield call
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        input_tokens, output_tokens, cached = reader.usage(prompt)
        yield priced(self._price, input_tokens, output_tokens, cached)

    def _failure(self, exc: openai.OpenAIError) -> NetraError:
        if isinstance(exc, openai.APIResponseValidationError):
            return ModelBehaviorError(f"{self.id} answered with a response Netra cannot read")
        return sdk_failure(
            self._model_id,
            self._settings,
            self._known_models,
            body=exc.body if isinstance(exc, openai.APIError) else None,
            message=str(exc),
            status=exc.status_code if isinstance(exc, openai.APIStatusError) else None,
            timed_out=isinstance(exc, openai.APITimeoutError),
        )


def _options(tools: Sequence[ToolSpec], settings: ProviderSettings) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if tools:  # some servers refuse an empty list
        options["tools"] = [_tool(spec) for spec in tools]
    if settings.max_output_tokens is not None:
        options["max_completion_tokens"] = settings.max_output_tokens
    return options


def _tool(spec: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.parameters,
        },
    }


def _messages(messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
    converted: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role == "system":
            converted.append({"role": "system", "content": message.content})
        elif message.role == "user":
            converted.append({"role": "user", "content": message.content})
        elif message.role == "tool":
            converted.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id or "",
                    "content": message.content,
                }
            )
        elif message.tool_calls:
            calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ]
            converted.append(
                {"role": "assistant", "content": message.content or None, "tool_calls": calls}
            )
        else:
            converted.append({"role": "assistant", "content": message.content})
    return converted


@dataclass(slots=True)
class _DraftCall:
    id: str | None
    name: str | None
    arguments: list[str] = field(default_factory=list)


class _StreamReader:
    """Reads the chunks of one streamed completion."""

    def __init__(self, model_id: ModelId) -> None:
        self._model_id = model_id
        self._drafts: dict[int, _DraftCall] = {}
        self._finish: str | None = None
        self._usage: tuple[int, int, int] | None = None
        self._output: list[str] = []

    def feed(self, chunk: ChatCompletionChunk) -> list[str]:
        """The text the chunk carries; tool call fragments and usage are kept."""
        try:
            return self._read(chunk)
        except (AttributeError, TypeError, ValueError):
            raise ModelBehaviorError(
                f"{self._model_id} streamed a chunk that is not a chat completion chunk"
            ) from None

    def _read(self, chunk: ChatCompletionChunk) -> list[str]:
        if chunk.usage is not None:
            details = chunk.usage.prompt_tokens_details
            cached = int(details.cached_tokens or 0) if details is not None else 0
            self._usage = (
                int(chunk.usage.prompt_tokens),
                int(chunk.usage.completion_tokens),
                cached,
            )
        texts: list[str] = []
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            for text in (delta.content, delta.refusal):
                if text:
                    texts.append(str(text))
            for fragment in delta.tool_calls or ():
                draft = self._drafts.setdefault(int(fragment.index), _DraftCall(None, None))
                draft.id = draft.id or fragment.id
                if fragment.function is not None:
                    draft.name = draft.name or fragment.function.name
                    if fragment.function.arguments:
                        draft.arguments.append(str(fragment.function.arguments))
                        self._output.append(draft.arguments[-1])
            if choice.finish_reason is not None:
                if choice.finish_reason not in FINISH_REASONS:
                    raise ModelBehaviorError(
                        f"{self._model_id} finished with an unknown reason "
                        f"{str(choice.finish_reason)[:40]!r}"
                    )
                self._finish = choice.finish_reason
        self._output.extend(texts)
        return texts

    def tool_calls(self) -> list[ToolCallRequest]:
        """The assembled tool calls, once the stream has ended."""
        if self._finish is None:
            raise ModelBehaviorError(f"{self._model_id} ended its stream without finishing")
        calls = []
        for index in sorted(self._drafts):
            draft = self._drafts[index]
            if not draft.name:
                raise ModelBehaviorError(f"{self._model_id} sent a tool call without a name")
            arguments = tool_arguments(self._model_id, draft.name, "".join(draft.arguments))
            calls.append(ToolCallRequest(draft.id or new_id("call"), draft.name, arguments))
        return calls

    def usage(self, prompt_estimate: int) -> tuple[int, int, int]:
        """``(input, output, cached input)`` tokens as reported; estimated when the server
        reports none."""
        if self._usage is not None:
            return self._usage
        return prompt_estimate, estimate_tokens("".join(self._output)), 0
