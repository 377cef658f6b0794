"""The Anthropic provider against a real local HTTP server speaking the messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from netra.errors import ModelBehaviorError, ModelUnavailable, NetraError, UnknownModel
from netra.models.anthropic import AnthropicProvider
from netra.models.base import (
    ChatMessage,
    Model,
    ModelRequest,
    StreamPart,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
    Usage,
)
from netra.models.prices import ModelPrice, PriceTable
from netra.settings.models import ProviderSettings
from tests.models.fake_providers import (
    FAKE_KEY,
    FakeProvider,
    Reply,
    anthropic_text,
    anthropic_tool_use,
    error,
    hang,
)

CLOCK = ToolSpec("clock", "The time.", {"type": "object", "properties": {"timezone": {}}})
PRICES = PriceTable({"claude-haiku-4-5": ModelPrice(1.0, 5.0, 0.10)}, as_of="test")


async def _model(provider: FakeProvider, timeout_s: float) -> AsyncIterator[Model]:
    settings = ProviderSettings(
        kind="anthropic",
        base_url=provider.url,
        api_key=SecretStr(FAKE_KEY),
        timeout_s=timeout_s,
        max_retries=0,
        max_output_tokens=512,
    )
    client = AnthropicProvider("claude", settings, provider.url)
    yield client.model("claude-haiku-4-5-20251001", PRICES)
    await client.aclose()


@pytest.fixture
async def model(provider: FakeProvider) -> AsyncIterator[Model]:
    """The model with a timeout that only a stalled server reaches, however loaded the
    machine."""
    async for made in _model(provider, timeout_s=30):
        yield made


@pytest.fixture
async def impatient_model(provider: FakeProvider) -> AsyncIterator[Model]:
    """The model with a short timeout, for a server that stalls."""
    async for made in _model(provider, timeout_s=0.5):
        yield made


async def _parts(model: Model, *messages: ChatMessage) -> list[StreamPart]:
    request = ModelRequest(messages or (ChatMessage("user", "hi"),), (CLOCK,))
    return [part async for part in model.stream(request)]


async def _failure(model: Model) -> NetraError:
    with pytest.raises(NetraError) as caught:
        await _parts(model)
    return caught.value


async def test_text_streams_and_the_system_prompt_travels_apart(
    model: Model, provider: FakeProvider
) -> None:
    provider.push(anthropic_text("It is noon.", usage=(2000, 400)))
    parts = await _parts(model, ChatMessage("system", "Be brief."), ChatMessage("user", "time?"))
    assert [p.text for p in parts if isinstance(p, TextDelta)] == ["It", " is", " noon."]
    assert parts[-1] == Usage(2000, 400, cost_usd=round((2000 * 1.0 + 400 * 5.0) / 1e6, 8))

    sent = provider.received[0]
    assert sent.path == "/v1/messages"
    assert FAKE_KEY in sent.headers.get("x-api-key", sent.headers.get("authorization", ""))
    assert sent.body["model"] == "claude-haiku-4-5-20251001"
    assert sent.body["system"] == "Be brief."
    assert sent.body["max_tokens"] == 512
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "time?"}]}
    ]
    assert sent.body["tools"] == [
        {"name": "clock", "description": "The time.", "input_schema": CLOCK.parameters}
    ]


async def test_input_read_from_the_prompt_cache_counts_as_input_at_the_cached_price(
    model: Model, provider: FakeProvider
) -> None:
    """claude-haiku-4-5: $1 per million input tokens, $0.10 read from the cache; Anthropic
    counts cache reads apart from ``input_tokens``."""
    provider.push(anthropic_text("noon", usage=(200, 10), cache_read=1800))
    parts = await _parts(model, ChatMessage("user", "time?"))
    cost = round((200 * 1.0 + 1800 * 0.10 + 10 * 5.0) / 1e6, 8)
    assert parts[-1] == Usage(2000, 10, cost_usd=cost, cached_input_tokens=1800)


async def test_tool_use_input_is_assembled_and_results_go_back_as_tool_result_blocks(
    model: Model, provider: FakeProvider
) -> None:
    provider.push(anthropic_tool_use("clock", '{"timezone": "Asia/Tokyo"}', call_id="toolu_1"))
    parts = await _parts(model)
    assert parts[0] == TextDelta("Let me check.")
    assert parts[1] == ToolCallRequest("toolu_1", "clock", {"timezone": "Asia/Tokyo"})
    assert isinstance(parts[2], Usage)

    provider.push(anthropic_text("Noon in Tokyo."))
    await _parts(
        model,
        ChatMessage("user", "time in Tokyo?"),
        ChatMessage("assistant", "Let me check.", tool_calls=(parts[1],)),
        ChatMessage("tool", '{"time": "12:00"}', tool_call_id="toolu_1", name="clock"),
        ChatMessage("tool", '{"time": "12:00"}', tool_call_id="toolu_2", name="clock"),
    )
    assert provider.received[1].body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "clock",
                    "input": {"timezone": "Asia/Tokyo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"time": "12:00"}'},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": '{"time": "12:00"}'},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (anthropic_tool_use("clock", '{"timezone": '), "not JSON"),
        (anthropic_text("hi", stop_reason="exploded"), "unknown reason 'exploded'"),
        (Reply(events=anthropic_text("cut short").events[:4]), "before the message stopped"),
        (Reply(events=("event: message_start\ndata: {{{\n\n",)), "not JSON"),
    ],
    ids=["bad-input-json", "unknown-stop", "no-stop", "garbage"],
)
async def test_a_malformed_stream_is_a_model_behavior_error(
    model: Model, provider: FakeProvider, reply: Reply, words: str
) -> None:
    provider.push(reply)
    failure = await _failure(model)
    assert isinstance(failure, ModelBehaviorError)
    assert words in failure.message


@pytest.mark.parametrize("status", [429, 500, 529])
async def test_rate_limits_and_overload_mean_unavailable(
    model: Model, provider: FakeProvider, status: int
) -> None:
    provider.push(error(status, "overloaded"))
    failure = await _failure(model)
    assert isinstance(failure, ModelUnavailable) and f"HTTP {status}" in failure.message


@pytest.mark.parametrize(
    "reply",
    [hang(), Reply(events=anthropic_text("a b c").events, hang_after=4)],
    ids=["before-headers", "mid-stream"],
)
async def test_a_stalled_server_times_out_as_unavailable(
    impatient_model: Model, provider: FakeProvider, reply: Reply
) -> None:
    provider.push(reply)
    failure = await _failure(impatient_model)
    assert isinstance(failure, ModelUnavailable)
    assert failure.message == "claude:claude-haiku-4-5-20251001 timed out"


async def test_an_unknown_model_gets_a_suggestion_from_the_price_table(
    provider: FakeProvider,
) -> None:
    settings = ProviderSettings(kind="anthropic", base_url=provider.url, max_retries=0)
    client = AnthropicProvider("claude", settings, provider.url)
    provider.push(error(404, "model: claude-sonet-4-5"))
    failure = await _failure(client.model("claude-sonet-4-5", PriceTable.shipped()))
    await client.aclose()
    assert isinstance(failure, UnknownModel)
    assert "did you mean 'claude-sonnet-4-5'?" in failure.message
