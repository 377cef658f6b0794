"""The OpenAI-compatible provider against a real local HTTP server speaking the API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from netra.errors import (
    ConfigurationError,
    ModelBehaviorError,
    ModelRequestRejected,
    ModelUnavailable,
    NetraError,
    UnknownModel,
)
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
from netra.models.openai_compat import OPENAI_URL, OpenAICompatibleProvider
from netra.models.prices import ModelPrice, PriceTable
from netra.settings.models import ProviderSettings
from tests.models.fake_providers import (
    FAKE_KEY,
    FakeProvider,
    Reply,
    error,
    garbage,
    hang,
    openai_text,
    openai_tool_call,
)

CALCULATOR = ToolSpec(
    "calculator",
    "Evaluate arithmetic.",
    {"type": "object", "properties": {"expression": {"type": "string"}}},
)
PRICES = PriceTable({"gpt-4o-mini": ModelPrice(0.15, 0.60, 0.075)}, as_of="test")


async def _model(provider: FakeProvider, timeout_s: float) -> AsyncIterator[Model]:
    settings = ProviderSettings(
        base_url=provider.openai_url,
        api_key=SecretStr(FAKE_KEY),
        timeout_s=timeout_s,
        max_retries=0,
    )
    client = OpenAICompatibleProvider("fake", settings, provider.openai_url)
    yield client.model("gpt-4o-mini", PRICES)
    await client.aclose()


@pytest.fixture
async def model(provider: FakeProvider) -> AsyncIterator[Model]:
    """The model with a timeout that only a hung server reaches, however loaded the machine."""
    async for made in _model(provider, timeout_s=30):
        yield made


@pytest.fixture
async def impatient_model(provider: FakeProvider) -> AsyncIterator[Model]:
    """The model with a short timeout, for a server that never answers."""
    async for made in _model(provider, timeout_s=0.5):
        yield made


async def _parts(model: Model, *messages: ChatMessage) -> list[StreamPart]:
    request = ModelRequest(messages or (ChatMessage("user", "hi"),), (CALCULATOR,))
    return [part async for part in model.stream(request)]


async def _failure(model: Model) -> NetraError:
    with pytest.raises(NetraError) as caught:
        await _parts(model)
    return caught.value


async def test_text_streams_in_pieces_and_usage_is_reported_and_priced(
    model: Model, provider: FakeProvider
) -> None:
    provider.push(openai_text("twelve times seven is 84", usage=(1000, 2000)))
    parts = await _parts(model, ChatMessage("system", "Be brief."), ChatMessage("user", "12*7?"))
    assert [p.text for p in parts if isinstance(p, TextDelta)] == [
        "twelve",
        " times",
        " seven",
        " is",
        " 84",
    ]
    assert parts[-1] == Usage(1000, 2000, cost_usd=round((1000 * 0.15 + 2000 * 0.60) / 1e6, 8))
    sent = provider.received[0]
    assert sent.path == "/v1/chat/completions"

    assert sent.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "12*7?"},
    ]
    assert sent.body["tools"][0]["function"]["name"] == "calculator"


async def test_input_read_from_the_prompt_cache_is_priced_at_the_cached_price(
    model: Model, provider: FakeProvider
) -> None:
    """gpt-4o-mini: $0.15 per million input tokens, $0.075 read from the cache."""
    provider.push(openai_text("84", usage=(1000, 10), cached=800))
    parts = await _parts(model, ChatMessage("user", "12*7?"))
    cost = round((200 * 0.15 + 800 * 0.075 + 10 * 0.60) / 1e6, 8)
    assert parts[-1] == Usage(1000, 10, cost_usd=cost, cached_input_tokens=800)


async def test_tool_call_fragments_are_assembled_and_results_go_back_as_tool_messages(
    model: Model, provider: FakeProvider
) -> None:
    provider.push(openai_tool_call("calculator", '{"expression": "12*7"}', call_id="call_a"))
    parts = await _parts(model)
    assert parts[0] == ToolCallRequest("call_a", "calculator", {"expression": "12*7"})
    assert isinstance(parts[1], Usage) and len(parts) == 2

    provider.push(openai_text("84"))
    await _parts(
        model,
        ChatMessage("user", "12*7?"),
        ChatMessage("assistant", "", tool_calls=(parts[0],)),
        ChatMessage("tool", '{"result": 84}', tool_call_id="call_a", name="calculator"),
    )
    history = provider.received[1].body["messages"]
    assert history[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "calculator", "arguments": '{"expression": "12*7"}'},
            }
        ],
    }
    assert history[2] == {"role": "tool", "tool_call_id": "call_a", "content": '{"result": 84}'}


async def test_a_server_that_reports_no_usage_gets_an_estimate(
    model: Model, provider: FakeProvider
) -> None:
    reply = openai_text("a short answer")
    provider.push(Reply(events=tuple(e for e in reply.events if '"usage"' not in e)))
    usage = (await _parts(model))[-1]
    assert isinstance(usage, Usage) and usage.input_tokens > 0 and usage.output_tokens > 0


async def test_arguments_that_are_not_json_are_a_model_behavior_error(
    model: Model, provider: FakeProvider
) -> None:
    provider.push(openai_tool_call("calculator", '{"expression": "12*7"'))
    failure = await _failure(model)
    assert isinstance(failure, ModelBehaviorError)
    assert "calculator" in failure.message and "not JSON" in failure.message


async def test_arguments_that_are_not_an_object_are_a_model_behavior_error(
    model: Model, provider: FakeProvider
) -> None:
    provider.push(openai_tool_call("calculator", json.dumps(["12*7"])))
    failure = await _failure(model)
    assert isinstance(failure, ModelBehaviorError) and "JSON object" in failure.message


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (openai_text("hi", finish="exploded"), "unknown reason 'exploded'"),
        (garbage(), "not JSON"),
        (Reply(events=('data: {"unexpected": true}\n\n', "data: [DONE]\n\n")), "not a chat"),
        (Reply(events=openai_text("cut short").events[:2]), "without finishing"),
    ],
    ids=["unknown-finish", "garbage", "wrong-shape", "no-finish"],
)
async def test_a_malformed_stream_is_a_model_behavior_error(
    model: Model, provider: FakeProvider, reply: Reply, words: str
) -> None:
    provider.push(reply)
    failure = await _failure(model)
    assert isinstance(failure, ModelBehaviorError)
    assert words in failure.message


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_rate_limits_and_server_errors_mean_unavailable(
    model: Model, provider: FakeProvider, status: int
) -> None:
    provider.push(error(status, "try later"))
    failure = await _failure(model)
    assert isinstance(failure, ModelUnavailable)
    assert failure.message == f"fake:gpt-4o-mini answered HTTP {status}: try later"


async def test_a_hung_server_times_out_as_unavailable(
    impatient_model: Model, provider: FakeProvider
) -> None:
    provider.push(hang())
    failure = await _failure(impatient_model)
    assert isinstance(failure, ModelUnavailable) and "timed out" in failure.message


async def test_a_refused_key_is_rejected_and_the_key_never_appears_in_the_error(
    model: Model, provider: FakeProvider
) -> None:
    provider.push(error(401, f"Incorrect API key provided: {FAKE_KEY}"))
    failure = await _failure(model)
    assert isinstance(failure, ModelRequestRejected)
    assert "401" in failure.message and FAKE_KEY not in failure.message


async def test_a_model_the_server_does_not_know_is_unknown_with_a_suggestion(
    provider: FakeProvider,
) -> None:
    settings = ProviderSettings(base_url=provider.openai_url, timeout_s=5, max_retries=0)
    client = OpenAICompatibleProvider("local", settings, provider.openai_url)
    provider.push(error(404, "model not found"))
    failure = await _failure(client.model("gpt-4o-mnii", PriceTable.shipped()))
    await client.aclose()
    assert isinstance(failure, UnknownModel)
    assert "'gpt-4o-mnii'" in failure.message and "did you mean 'gpt-4o-mini'?" in failure.message
    assert provider.received[0].headers["authorization"] == "Bearer none"  # no key configured


def test_the_public_api_without_a_key_is_a_configuration_error_naming_the_setting() -> None:
    client = OpenAICompatibleProvider("openai", ProviderSettings(), OPENAI_URL)
    with pytest.raises(ConfigurationError, match="NETRA_MODELS__PROVIDERS__OPENAI__API_KEY"):
        client.model("gpt-4o", PRICES)
