"""Runs through a real Netra server whose models are real providers (fake ones, on
127.0.0.1): streamed tool-calling conversations, failover, timeouts, malformed output,
unknown model ids and circuit breakers. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from netra.agents.base import AgentDefinition
from netra.models.catalog import provider_service
from netra.models.prices import ModelPrice
from tests.conftest import ProviderFactory, ServerFactory
from tests.models.fake_providers import (
    FAKE_KEY,
    FakeProvider,
    Reply,
    anthropic_text,
    anthropic_tool_use,
    error,
    hang,
    openai_text,
    openai_tool_call,
)
from tests.support import (
    CanaryWatch,
    LiveServer,
    answer_text,
    assert_run_grammar,
    make_user,
    open_socket,
)


def _openai(fake: FakeProvider, *, timeout_s: float = 10.0) -> dict[str, Any]:
    return {
        "kind": "openai",
        "base_url": fake.openai_url,
        "api_key": FAKE_KEY,
        "timeout_s": timeout_s,
        "max_retries": 0,
        # What a failing call does is tested here, health probes in test_pools.py: a probe
        # at start under a test's short timeout, on a busy machine, could take the provider
        # out of the choice before the run's call and turn the failure tested into another.
        "probe_interval_s": 0,
    }


def _anthropic(fake: FakeProvider, *, timeout_s: float = 10.0) -> dict[str, Any]:
    return {**_openai(fake, timeout_s=timeout_s), "kind": "anthropic", "base_url": fake.url}


async def _chat(
    server: LiveServer, content: str, *, agent: str | None = None
) -> list[dict[str, Any]]:
    """One message from a new user over the socket; the run's events, checked for grammar."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        fields = {"agent": agent} if agent else {}
        ack = await socket.send_message(content, **fields)
        assert ack["type"] == "ack", ack
        events = await socket.run_to_end(ack["run_id"])
        await socket.close()
    assert_run_grammar(events)
    return events


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def _failovers(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [e["data"]["failover"] for e in _of(events, "agent_thinking") if "failover" in e["data"]]


async def test_a_tool_calling_conversation_streams_through_an_openai_compatible_provider(
    server_factory: ServerFactory, provider: FakeProvider
) -> None:
    server = server_factory(
        models={"default": "fake:gpt-4o-mini", "providers": {"fake": _openai(provider)}}
    )
    provider.push(
        openai_tool_call(
            "calculator", '{"expression": "12*7"}', call_id="call_c1", usage=(5000, 2000)
        ),
        openai_text("12*7 is 84.", usage=(8000, 1000)),
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("what is 12*7?")
        events = await socket.run_to_end(ack["run_id"])
        await socket.close()
        run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        me = (await http.get("/me", headers=user.auth)).json()
    assert_run_grammar(events)

    assert events[0]["data"]["model"] == "fake:gpt-4o-mini"
    [executing] = _of(events, "tool_executing")
    [completed] = _of(events, "tool_completed")
    assert executing["data"]["tool_call_id"] == completed["data"]["tool_call_id"] == "call_c1"
    assert executing["data"]["arguments"] == {"expression": "12*7"}
    assert completed["data"]["status"] == "ok" and completed["data"]["result"]["result"] == 84
    assert answer_text(events) == "12*7 is 84."

    price = ModelPrice(0.15, 0.60)  # gpt-4o-mini in the shipped table
    cost = round(price.cost(5000, 2000) + price.cost(8000, 1000), 8)
    usage = events[-1]["data"]["usage"]
    assert usage == {
        "input_tokens": 13000,
        "output_tokens": 3000,
        "cached_input_tokens": 0,
        "cost_usd": pytest.approx(cost),
    }
    assert events[-1]["data"]["outcome"] == "completed"
    assert run["usage"] == usage and run["status"] == "completed"
    assert me["usage"]["today"]["cost_usd"] == pytest.approx(cost) == 0.00375

    second = provider.received[1].body["messages"]
    assert second[0]["role"] == "system"
    assert second[1] == {"role": "user", "content": "what is 12*7?"}
    assert second[2]["tool_calls"][0]["id"] == "call_c1"
    assert second[3]["role"] == "tool" and second[3]["tool_call_id"] == "call_c1"
    assert "84" in second[3]["content"]


async def test_a_tool_calling_conversation_streams_through_an_anthropic_provider(
    server_factory: ServerFactory, provider: FakeProvider
) -> None:
    server = server_factory(
        models={
            "default": "claude:claude-haiku-4-5-20251001",
            "providers": {"claude": _anthropic(provider)},
        }
    )
    provider.push(
        anthropic_tool_use(
            "clock", '{"timezone": "Asia/Tokyo"}', call_id="toolu_t1", usage=(400, 30)
        ),
        anthropic_text("It is evening in Tokyo.", usage=(600, 12)),
    )
    events = await _chat(server, "what time is it in Tokyo?")

    [executing] = _of(events, "tool_executing")
    [completed] = _of(events, "tool_completed")
    assert executing["data"]["tool"] == "clock" and executing["data"]["tool_call_id"] == "toolu_t1"
    assert executing["data"]["arguments"] == {"timezone": "Asia/Tokyo"}
    assert completed["data"]["status"] == "ok"
    assert completed["data"]["result"]["timezone"] == "Asia/Tokyo"
    assert answer_text(events) == "Let me check.It is evening in Tokyo."
    price = ModelPrice(1.0, 5.0)  # claude-haiku-4-5 in the shipped table
    usage = events[-1]["data"]["usage"]
    assert usage["input_tokens"] == 1000 and usage["output_tokens"] == 42
    assert usage["cost_usd"] == pytest.approx(price.cost(400, 30) + price.cost(600, 12))

    first, second = (received.body for received in provider.received)
    assert first["system"].startswith("You are Netra's assistant")
    assert all(m["role"] != "system" for m in first["messages"])
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"
    assert second["messages"][-1]["content"][0]["tool_use_id"] == "toolu_t1"


async def test_a_server_error_fails_over_to_the_next_model_and_the_run_says_so(
    server_factory: ServerFactory, providers: ProviderFactory
) -> None:
    primary, backup = providers(), providers()
    server = server_factory(
        models={
            "default": "primary:gpt-4o",
            "fallbacks": ["backup:claude-haiku-4-5"],
            "providers": {"primary": _openai(primary), "backup": _anthropic(backup)},
        }
    )
    primary.push(error(500, "the primary is on fire"))
    backup.push(anthropic_text("Hello from the backup.", usage=(100, 10)))
    events = await _chat(server, "hello")

    assert _failovers(events) == [
        {
            "from": "primary:gpt-4o",
            "to": "backup:claude-haiku-4-5",
            "reason": "primary:gpt-4o answered HTTP 500: the primary is on fire",
        }
    ]
    note = next(e for e in _of(events, "agent_thinking") if "failover" in e["data"])
    assert "trying backup:claude-haiku-4-5" in note["data"]["text"]
    assert answer_text(events) == "Hello from the backup."
    assert events[-1]["data"]["outcome"] == "completed"
    assert events[-1]["data"]["usage"]["cost_usd"] == pytest.approx(ModelPrice(1, 5).cost(100, 10))
    assert len(primary.received) == 1 and len(backup.received) == 1


async def test_a_hung_provider_times_out_and_the_next_model_answers(
    server_factory: ServerFactory, providers: ProviderFactory
) -> None:
    slow, backup = providers(), providers()
    server = server_factory(
        models={
            "default": "slow:llama3.1",
            "fallbacks": ["backup:gpt-4o-mini"],
            "providers": {"slow": _openai(slow, timeout_s=0.3), "backup": _openai(backup)},
        }
    )
    slow.push(hang())
    backup.push(openai_text("Answered by the backup."))
    events = await _chat(server, "hello")
    assert _failovers(events) == [
        {"from": "slow:llama3.1", "to": "backup:gpt-4o-mini", "reason": "slow:llama3.1 timed out"}
    ]
    assert answer_text(events) == "Answered by the backup."
    assert events[-1]["data"]["outcome"] == "completed"


async def test_a_provider_failing_after_it_started_answering_fails_the_run(
    server_factory: ServerFactory, providers: ProviderFactory
) -> None:
    stalling, backup = providers(), providers()
    server = server_factory(
        models={
            "default": "stalling:gpt-4o",
            "fallbacks": ["backup:gpt-4o"],
            "providers": {"stalling": _openai(stalling, timeout_s=0.3), "backup": _openai(backup)},
        }
    )
    stalling.push(Reply(events=openai_text("one two three four").events, hang_after=3))
    events = await _chat(server, "count")
    completed = events[-1]["data"]
    assert completed["outcome"] == "failed"
    assert completed["error"]["code"] == "model_unavailable"
    assert "after it had started answering" in completed["error"]["message"]
    assert answer_text(events) == "one two"
    assert _failovers(events) == [] and backup.received == []


async def test_when_every_model_is_unavailable_the_run_fails_listing_each_reason(
    server_factory: ServerFactory, providers: ProviderFactory
) -> None:
    first, second = providers(), providers()
    server = server_factory(
        models={
            "default": "first:gpt-4o",
            "fallbacks": ["second:gpt-4o"],
            "providers": {"first": _openai(first), "second": _openai(second)},
        }
    )
    first.push(error(503, "down"))
    second.push(error(429, "slow down"))
    events = await _chat(server, "hello")
    error_data = events[-1]["data"]["error"]
    assert events[-1]["data"]["outcome"] == "failed"
    assert error_data["code"] == "model_unavailable"
    assert error_data["message"] == (
        "no model could answer: first:gpt-4o answered HTTP 503: down; "
        "second:gpt-4o answered HTTP 429: slow down"
    )


async def test_a_lone_model_that_is_unavailable_fails_the_run_with_its_reason(
    server_factory: ServerFactory, provider: FakeProvider
) -> None:
    server = server_factory(
        models={"default": "only:gpt-4o", "providers": {"only": _openai(provider)}}
    )
    provider.push(error(500, "internal error"))
    events = await _chat(server, "hello")
    assert events[-1]["data"]["outcome"] == "failed"
    assert events[-1]["data"]["error"] == {
        "code": "model_unavailable",
        "message": "only:gpt-4o answered HTTP 500: internal error",
    }
    assert _failovers(events) == []


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (openai_tool_call("calculator", '{"expression": 12*'), "not JSON"),
        (openai_text("hi", finish="melted"), "unknown reason 'melted'"),
        (Reply(events=("data: <html>oops</html>\n\n",)), "not JSON"),
    ],
    ids=["bad-arguments", "unknown-finish", "garbage"],
)
async def test_malformed_provider_output_fails_the_run_with_a_model_behavior_error(
    server_factory: ServerFactory, providers: ProviderFactory, reply: Reply, words: str
) -> None:
    broken, backup = providers(), providers()
    server = server_factory(
        models={
            "default": "broken:gpt-4o-mini",
            "fallbacks": ["backup:gpt-4o-mini"],
            "providers": {"broken": _openai(broken), "backup": _openai(backup)},
        }
    )
    broken.push(reply)
    events = await _chat(server, "what is 12*7?")
    completed = events[-1]["data"]
    assert completed["outcome"] == "failed"
    assert completed["error"]["code"] == "model_behavior"
    assert completed["error"]["message"].startswith("broken:gpt-4o-mini ")
    assert words in completed["error"]["message"]
    assert backup.received == []  # a misbehaving model is not an unavailable one
    assert _of(events, "tool_executing") == []


@pytest.mark.parametrize(
    ("model", "suggestion"),
    [("opnai:gpt-4o-mini", "did you mean 'openai'?"), ("ofline", "did you mean 'offline'?")],
)
async def test_an_agent_naming_an_unknown_model_fails_its_run_with_a_suggestion(
    server: LiveServer, model: str, suggestion: str
) -> None:
    server.netra.agents.register(AgentDefinition(name="typo", description="typo", model=model))
    events = await _chat(server, "hello", agent="typo")
    completed = events[-1]["data"]
    assert completed["outcome"] == "failed"
    assert completed["error"]["code"] == "unknown_model"
    assert suggestion in completed["error"]["message"]


async def test_a_provider_that_keeps_failing_has_its_circuit_opened_and_is_skipped(
    server_factory: ServerFactory, providers: ProviderFactory
) -> None:
    flaky, backup = providers(), providers()
    server = server_factory(
        models={
            "default": "flaky:gpt-4o",
            "fallbacks": ["backup:gpt-4o-mini"],
            "providers": {"flaky": _openai(flaky), "backup": _openai(backup)},
            "circuit_failure_threshold": 2,
            "circuit_reset_s": 3600,
        }
    )
    flaky.push(error(502, "bad gateway"), error(502, "bad gateway"))
    backup.push(openai_text("one"), openai_text("two"), openai_text("three"))
    for answer in ("one", "two"):
        events = await _chat(server, "hello")
        assert answer_text(events) == answer
        assert _failovers(events)[0]["reason"] == "flaky:gpt-4o answered HTTP 502: bad gateway"
    health = server.netra.providers.health()
    assert health[provider_service("flaky")].open_circuits == 1
    assert health[provider_service("backup")].open_circuits == 0

    events = await _chat(server, "hello")
    assert answer_text(events) == "three"
    assert _failovers(events) == [
        {
            "from": "flaky:gpt-4o",
            "to": "backup:gpt-4o-mini",
            "reason": "its provider failed repeatedly; its circuit is open",
        }
    ]
    assert len(flaky.received) == 2  # the open circuit kept the third call away


async def test_an_agent_may_list_its_own_fallbacks(
    server_factory: ServerFactory, providers: ProviderFactory
) -> None:
    down, backup = providers(), providers()
    server = server_factory(
        models={"providers": {"down": _openai(down), "backup": _anthropic(backup)}}
    )
    server.netra.agents.register(
        AgentDefinition(
            name="resilient",
            description="Falls back to Claude.",
            model="down:gpt-4o",
            fallbacks=("backup:claude-haiku-4-5",),
        )
    )
    down.push(error(500, "down"))
    backup.push(anthropic_text("Still here."))
    events = await _chat(server, "hello", agent="resilient")
    assert [f["to"] for f in _failovers(events)] == ["backup:claude-haiku-4-5"]
    assert answer_text(events) == "Still here."


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_provider_echoing_the_api_key_never_leaks_it(
    server_factory: ServerFactory, provider: FakeProvider, canaries: CanaryWatch, kind: str
) -> None:
    """Providers quote the key they refused (``Incorrect API key provided: sk-…``); the run
    fails with the reason, and the session's canary watch sees the key nowhere."""
    settings = {**_openai(provider), "api_key": canaries.model_api_key}
    if kind == "anthropic":
        settings = {**settings, "kind": "anthropic", "base_url": provider.url}
    server = server_factory(
        models={"default": "keyed:gpt-4o", "providers": {"keyed": settings}},
        logging={"level": "DEBUG"},
    )
    provider.push(error(401, f"Incorrect API key provided: {canaries.model_api_key}"))
    events = await _chat(server, "hello")
    assert events[-1]["data"]["outcome"] == "failed"
    assert "401" in events[-1]["data"]["error"]["message"]
    assert canaries.model_api_key in provider.received[-1].headers.get(
        "x-api-key", provider.received[-1].headers.get("authorization", "")
    )
    assert not any(canaries.model_api_key in json.dumps(event) for event in events)
