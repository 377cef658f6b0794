"""The OpenAI-compatible API (``/v1``) through the official ``openai`` SDK on a real server:
every call a real run, streamed or answered whole, seen on the user's socket too; the
Responses API resumable by ``sequence_number``; errors the SDK raises as its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import openai
import pytest

from netra.agents.base import AgentDefinition
from netra.models.base import ModelRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.support import (
    ALL_SCOPES,
    LiveServer,
    User,
    assert_run_grammar,
    make_key,
    make_user,
    open_socket,
    stored_events,
)


@asynccontextmanager
async def _client(
    server: LiveServer, user: User | None, scopes: Sequence[str] = ALL_SCOPES
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The SDK pointed at the server, with a new API key of ``user``'s (None: a forged
    one); it never retries."""
    secret = (await make_key(server, user, scopes))["secret"] if user else "nk_" + "x" * 40
    sdk = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0)
    async with sdk:
        yield sdk


async def test_chat_completions_stream_text_and_tool_steps_and_answer_whole_with_usage(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http, AsyncExitStack() as stack:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        client = await stack.enter_async_context(_client(server, user))

        stream = await client.chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "what is 12*7?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "84" in text
        extensions = [(c.model_extra or {}).get("netra", {}) for c in chunks]
        steps = [netra for netra in extensions if "type" in netra]
        assert [s["type"] for s in steps] == ["tool_executing", "tool_completed"]
        assert steps[0]["tool"] == "calculator" and steps[1]["status"] == "ok"
        run_id = chunks[0].id
        assert {c.id for c in chunks} == {run_id} and run_id.startswith("run_")
        assert chunks[-2].choices[0].finish_reason == "stop"
        usage = chunks[-1].usage
        assert chunks[-1].choices == [] and usage is not None
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0

        # The same run, live on the user's socket and in the event log.
        seen = await socket.run_to_end(run_id)
        assert_run_grammar(seen)
        assert "".join(e["data"]["delta"] for e in seen if e["type"] == "message_delta") == text
        assert [e for e in await stored_events(http, user) if e["run_id"] == run_id] == seen

        whole = await client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "what is 12*7?"}]
        )
        assert whole.object == "chat.completion" and whole.model == "assistant@offline"
        assert whole.choices[0].message.content == text
        assert whole.choices[0].finish_reason == "stop"
        assert whole.usage is not None and whole.usage.completion_tokens > 0
        run = await http.get(f"/runs/{whole.id}", headers=user.auth)
        assert run.json()["status"] == "completed"
        assert run.json()["usage"]["output_tokens"] == whole.usage.completion_tokens
        await socket.run_to_end(whole.id)
        await socket.close()


def _echo(request: ModelRequest) -> ScriptedTurn:
    """Say which turns the run was sent."""
    return ScriptedTurn.text(" | ".join(f"{m.role}:{m.content}" for m in request.messages))


async def test_earlier_messages_are_a_new_threads_history_and_agent_at_model_picks_the_model(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    server.netra.agents.register(
        AgentDefinition(name="echo", description="Echoes.", model="offline", models=("scripted",))
    )
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = _echo
    async with httpx.AsyncClient(base_url=server.url) as http, AsyncExitStack() as stack:
        user = await make_user(http)
        client = await stack.enter_async_context(_client(server, user))
        answer = await client.chat.completions.create(
            model="echo@scripted",
            messages=[
                {"role": "system", "content": "ignored: the agent has its own"},
                {"role": "user", "content": "my name is Ada"},
                {"role": "assistant", "content": "hello Ada"},
                {"role": "user", "content": [{"type": "text", "text": "what is my name?"}]},
            ],
        )
        assert answer.model == "echo@scripted"
        said = answer.choices[0].message.content or ""
        assert "user:my name is Ada | assistant:hello Ada | user:what is my name?" in said
        thread_id = answer.model_extra["netra"]["thread_id"]
        messages = await http.get(f"/threads/{thread_id}/messages", headers=user.auth)
        stored = [(m["role"], m["content"]) for m in messages.json()["items"]]
        assert stored == [
            ("user", "my name is Ada"),
            ("assistant", "hello Ada"),
            ("user", "what is my name?"),
            ("assistant", said),
        ]
        with pytest.raises(openai.NotFoundError) as refused:
            await client.chat.completions.create(
                model="echo@openai:gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
        assert refused.value.code == "model_not_found"


async def test_the_responses_api_streams_answers_and_resumes_a_dropped_stream_exactly(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"offline_chunk_delay_ms": 5})
    async with httpx.AsyncClient(base_url=server.url) as http, AsyncExitStack() as stack:
        user = await make_user(http)
        client = await stack.enter_async_context(_client(server, user))

        whole = await client.responses.create(model="assistant", input="what is 12*7?")
        assert whole.status == "completed" and "84" in whole.output_text
        assert whole.usage is not None and whole.usage.output_tokens > 0
        again = await client.responses.retrieve(whole.id)
        assert again.output_text == whole.output_text and again.status == "completed"

        stream = await client.responses.create(
            model="assistant", input="tell me about yourself", stream=True
        )
        first: list[Any] = []
        async for event in stream:
            first.append(event)
            if sum(e.type == "response.output_text.delta" for e in first) == 3:
                break
        await stream.close()  # the client drops the stream mid-answer
        assert first[0].type == "response.created"
        response_id = first[0].response.id
        last = first[-1].sequence_number

        rest = [
            event
            async for event in await client.responses.retrieve(
                response_id, stream=True, starting_after=last
            )
        ]
        events = first + rest
        numbers = [e.sequence_number for e in events]
        assert numbers == sorted(set(numbers)), numbers
        assert rest[0].sequence_number > last and events[-1].type == "response.completed"
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        final = events[-1].response
        assert text == final.output_text and text.startswith("You wrote")
        assert [e.type for e in events].count("response.output_item.added") == 1

        # Resumed from its start, the stream is the same events, number for number.
        replay = [e async for e in await client.responses.retrieve(response_id, stream=True)]
        assert [(e.type, e.sequence_number) for e in replay] == [
            (e.type, e.sequence_number) for e in events
        ]


async def test_errors_are_openais_and_the_sdk_raises_its_own_exceptions(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(tiers={"free": {"runs_per_minute": 1}})
    async with httpx.AsyncClient(base_url=server.url) as http, AsyncExitStack() as stack:
        user = await make_user(http)
        client = await stack.enter_async_context(_client(server, user))
        models = await client.models.list()
        assert [m.id for m in models.data] == ["assistant", "optimizer"]

        ask = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
        await client.chat.completions.create(**ask)
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(**ask)
        assert int(limited.value.response.headers["retry-after"]) >= 1
        assert limited.value.code == "quota_exceeded"

        with pytest.raises(openai.NotFoundError) as unknown:
            await client.chat.completions.create(**{**ask, "model": "spend-data"})
        assert unknown.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(
                model="assistant", messages=[{"role": "assistant", "content": "no question"}]
            )
        assert bad.value.body == {
            "message": "the last of messages must be a user message with text",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request",
        }
        stranger = await stack.enter_async_context(_client(server, None))
        with pytest.raises(openai.AuthenticationError):
            await stranger.models.list()
        reader = await stack.enter_async_context(_client(server, user, ("threads:read",)))
        with pytest.raises(openai.PermissionDeniedError) as scoped:
            await reader.responses.create(model="assistant", input="hi")
        assert scoped.value.code == "insufficient_scope"

        # Netra's own routes keep Netra's error body.
        missing = await http.get("/threads/th_nope", headers=user.auth)
        assert set(missing.json()["error"]) == {"code", "message", "request_id"}
        invalid = await http.post("/v1/responses", json={"model": ""}, headers=user.auth)
        assert invalid.status_code == 400
        assert set(invalid.json()["error"]) == {"message", "type", "param", "code"}
