"""AgentRegistry monitoring with many users and agents at once, a fresh agent per run, and
the tool calls of one model turn running concurrently."""

from __future__ import annotations

import asyncio
import threading

import httpx

from netra.agents.assistant import ToolLoopAgent
from netra.agents.base import AgentDefinition
from netra.models.base import ToolCallRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.tools.tool import tool
from tests.conftest import ServerFactory
from tests.support import assert_run_grammar, hold_runs, make_user, open_socket


async def test_five_users_with_two_agents_each_are_monitored_and_cleaned_up(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"})
    instances: list[int] = []

    def counted(definition: AgentDefinition) -> ToolLoopAgent:
        agent = ToolLoopAgent(definition)
        instances.append(id(agent))
        return agent

    for name in ("writer", "reviewer"):
        server.netra.agents.register(AgentDefinition(name=name, description=name), counted)
    # Every run waits in its tool until the test has looked at the registry: the runs are
    # certainly in flight while it looks, however slow the machine.
    gate = threading.Event()
    hold_runs(server, gate)
    async with httpx.AsyncClient(base_url=server.url) as http:
        users = [await make_user(http, f"u{i}") for i in range(5)]
        sockets = [await open_socket(server, user.token) for user in users]
        acks = []
        for socket in sockets:
            for agent in ("writer", "reviewer"):
                acks.append((socket, await socket.send_message("go", agent=agent)))
        try:
            await asyncio.gather(
                *(s.first(lambda f: f["type"] == "tool_executing") for s in sockets)
            )
            busy = server.netra.agents.active()
        finally:
            gate.set()
        assert set(busy) == {user.id for user in users}
        assert all(1 <= count <= 2 for count in busy.values())
        for socket, ack in acks:
            assert_run_grammar(await socket.run_to_end(ack["run_id"]))
            assert {e["run_id"] for e in socket.events() if e.get("run_id")} <= {
                a["run_id"] for s, a in acks if s is socket
            }
        assert server.netra.agents.active() == {}
        assert len(instances) == len(set(instances)) == 10  # a fresh agent for every run
        unknown = await sockets[0].send_message("go", agent="ghost")
        assert unknown["code"] == "not_found" and "ghost" in unknown["message"]
        for socket in sockets:
            await socket.close()


async def test_the_tool_calls_of_one_turn_run_concurrently(server_factory: ServerFactory) -> None:
    server = server_factory(models={"default": "scripted"})
    running: list[int] = []
    peak: list[int] = []

    @tool(description="Wait a little.")
    async def nap(label: str) -> str:
        running.append(1)
        peak.append(len(running))
        await asyncio.sleep(0.3)
        running.pop()
        return label

    server.netra.tools.register("nap", nap)
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.push(
        ScriptedTurn(
            tool_calls=tuple(ToolCallRequest(f"c{i}", "nap", {"label": str(i)}) for i in range(3))
        ),
        ScriptedTurn.text("rested"),
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("nap three times")
        events = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        types = [e["type"] for e in events if e["type"].startswith("tool_")]
        assert types == ["tool_executing"] * 3 + ["tool_completed"] * 3  # all started first
        assert max(peak) == 3
        await socket.close()
