"""Run control against a real server: the double-texting policies of an agent (a new message
on a thread whose run is still active), the per-run token budget and the step limit."""

from __future__ import annotations

from typing import Literal

import httpx
import pytest

from netra.agents.base import AgentDefinition
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.tools.tool import tool
from tests.conftest import ServerFactory
from tests.support import LiveServer, answer_text, assert_run_grammar, make_user, open_socket


def _slow_agent(server: LiveServer, policy: Literal["enqueue", "reject", "interrupt"]) -> None:
    server.netra.agents.register(
        AgentDefinition(name="talker", description="Talks slowly.", double_texting=policy)
    )
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = lambda _request: ScriptedTurn.text("a b c d e f g h", delay_s=0.15)


@pytest.mark.parametrize("policy", ["enqueue", "reject", "interrupt"])
async def test_a_second_message_while_a_run_is_active(
    server_factory: ServerFactory, policy: Literal["enqueue", "reject", "interrupt"]
) -> None:
    server = server_factory(models={"default": "scripted"})
    _slow_agent(server, policy)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        first = await socket.send_message("tell me a story", agent="talker")
        await socket.first(lambda f: f["type"] == "message_delta")
        second = await socket.send_message("actually, stop", thread_id=first["thread_id"])
        messages = await http.get(f"/threads/{first['thread_id']}/messages", headers=user.auth)
        said = [m["content"] for m in messages.json()["items"] if m["role"] == "user"]
        if policy == "reject":
            assert second["type"] == "error" and second["code"] == "thread_busy"
            assert said == ["tell me a story"]  # nothing stored for the refused message
            events = await socket.run_to_end(first["run_id"])
            assert events[-1]["data"]["outcome"] == "completed"
            await socket.close()
            return
        assert second["type"] == "ack" and said == ["tell me a story", "actually, stop"]
        earlier = await socket.run_to_end(first["run_id"])
        later = await socket.run_to_end(second["run_id"])
        assert_run_grammar(earlier)
        assert_run_grammar(later)
        assert later[-1]["data"]["outcome"] == "completed"
        assert earlier[-1]["seq"] < later[0]["seq"]  # one run of a thread at a time
        if policy == "enqueue":
            assert earlier[-1]["data"]["outcome"] == "completed"
            assert answer_text(earlier) == "a b c d e f g h"
        else:
            assert earlier[-1]["data"]["outcome"] == "cancelled"
            assert earlier[-1]["data"]["error"]["code"] == "superseded"
        await socket.close()


async def test_a_run_over_its_token_budget_fails_with_the_reason(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"}, limits={"run_token_budget": 200})
    calls: list[int] = []

    @tool(description="Look something up.")
    def lookup(query: str) -> str:
        calls.append(1)
        return "x" * 200

    server.netra.tools.register("lookup", lookup)
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = lambda _request: ScriptedTurn.call("lookup", {"query": "more"})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("dig deep")
        events = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        completed = events[-1]["data"]
        assert completed["outcome"] == "failed" and completed["error"]["code"] == "token_budget"
        spent = completed["usage"]["input_tokens"] + completed["usage"]["output_tokens"]
        assert spent > 200
        assert 1 <= len(calls) < 16  # stopped by the budget, long before the step limit
        await socket.close()


async def test_a_tool_loop_stops_at_the_step_limit_even_with_repeated_call_ids(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"}, limits={"max_steps": 3})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    # The same call id every turn, as some models do: the ledger still keeps them apart.
    model.responder = lambda _request: ScriptedTurn.call("calculator", {"expression": "1+1"})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("loop forever")
        events = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        assert events[-1]["data"]["error"]["code"] == "step_limit"
        ids = [e["data"]["tool_call_id"] for e in events if e["type"] == "tool_executing"]
        assert len(ids) == len(set(ids)) == 3
        calls = (await http.get(f"/runs/{ack['run_id']}/events", headers=user.auth)).json()
        assert len([e for e in calls["items"] if e["type"] == "tool_completed"]) == 3
        await socket.close()
