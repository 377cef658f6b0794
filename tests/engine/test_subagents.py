"""Sub-agents against a real server: an agent delegates to another registered agent; the
child run has its own events naming the parent, a child context, and counts against the
same user's quotas."""

from __future__ import annotations

import httpx

from netra.agents.optimizer import TEAM
from netra.models.base import ModelRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.support import answer_text, assert_run_grammar, make_user, open_socket


def _delegating(request: ModelRequest) -> ScriptedTurn:
    last = request.messages[-1]
    if last.role == "tool":
        return ScriptedTurn.text(f"Report: {last.content[:60]}")
    target = "optimizer" if "costs" in last.content else "nobody"
    return ScriptedTurn.call(
        "delegate", {"agent": target, "task": "How can I cut my AI costs?"}, call_id="call_d"
    )


async def test_an_agent_delegates_to_another_and_the_child_counts_as_a_run(
    server_factory: ServerFactory,
) -> None:
    # The parent, the optimizer it delegates to, and the optimizer's team of three.
    server = server_factory(models={"default": "scripted"}, tiers={"free": {"runs_per_minute": 5}})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = _delegating
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("ask the optimizer about my costs")
        parent = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(parent)
        done = next(e for e in parent if e["type"] == "tool_completed")["data"]
        assert done["status"] == "ok" and done["result"]["outcome"] == "completed"
        child_id = done["result"]["run_id"]
        # Nothing to cut: the user's one model call so far (its parent's, on a model without
        # a price) is free, whether or not its record is stored yet when the child reads.
        assert "there is nothing to" in done["result"]["answer"]

        child = socket.run_events(child_id)
        assert_run_grammar(child)
        assert child[0]["data"]["parent_run_id"] == ack["run_id"]
        team = [e["data"]["result"] for e in child if e["type"] == "tool_completed"]
        assert [member["agent"] for member in team] == list(TEAM)
        for member in team:  # the child's own children, one level deeper
            grandchild = socket.run_events(member["run_id"])
            assert grandchild[0]["data"]["parent_run_id"] == child_id
        assert parent[0]["seq"] < child[0]["seq"] < child[-1]["seq"] < parent[-1]["seq"]
        stored = (await http.get(f"/runs/{child_id}", headers=user.auth)).json()
        assert stored["parent_run_id"] == ack["run_id"] and stored["agent"] == "optimizer"
        messages = await http.get(f"/threads/{ack['thread_id']}/messages", headers=user.auth)
        assert [m["run_id"] for m in messages.json()["items"]] == [ack["run_id"]] * 2
        assert answer_text(parent).startswith("Report:")

        refused = await socket.send_message("once more", thread_id=ack["thread_id"])
        assert refused["code"] == "quota_exceeded"  # the parent, its child and the team: five
        await socket.close()


async def test_delegating_to_an_unknown_agent_is_a_tool_error_the_model_reads(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = _delegating
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("ask nobody")
        events = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        done = next(e for e in events if e["type"] == "tool_completed")["data"]
        assert done["error"] == {"code": "tool_error", "message": "unknown agent 'nobody'"}
        assert events[-1]["data"]["outcome"] == "completed"
        await socket.close()
