"""Run control against a real server: cancel, timeout, failure, concurrency, multi-step, restart."""

from __future__ import annotations

import asyncio
import itertools
import threading
from pathlib import Path

import httpx

from netra.models.base import ToolCallRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.tools.tool import tool
from tests.conftest import ServerFactory
from tests.support import (
    LiveServer,
    answer_text,
    assert_run_grammar,
    hold_runs,
    make_user,
    open_socket,
)


def scripted(server: LiveServer) -> ScriptedModel:
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    return model


async def test_cancel_stops_a_running_tool_and_ends_cancelled(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"})
    seen: list[str] = []

    @tool(description="Wait for a long time.")
    async def wait(seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "done"

    server.netra.tools.register("wait", wait)
    scripted(server).push(ScriptedTurn.call("wait", {"seconds": 60}))
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("wait please")
        await socket.first(lambda f: f["type"] == "tool_executing")
        await socket.send({"type": "cancel_run", "run_id": ack["run_id"], "ref": "stop"})
        # Found by the fuzzer (test_fuzz_frames): a cancel_run was never answered.
        accepted = await socket.first(lambda f: f["type"] == "cancel_accepted")
        assert accepted == {
            "type": "cancel_accepted",
            "ref": "stop",
            "run_id": ack["run_id"],
            "status": "running",
        }
        events = await socket.run_to_end(ack["run_id"], timeout=5)
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "cancelled"
        done = next(e for e in events if e["type"] == "tool_completed")
        assert done["data"]["status"] == "error"
        assert seen == ["cancelled"]
        run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        assert run["status"] == "cancelled"
        again = await http.post(f"/runs/{ack['run_id']}/cancel", headers=user.auth)
        assert again.status_code == 202 and again.json()["status"] == "cancelled"
        await socket.send({"type": "cancel_run", "run_id": ack["run_id"], "ref": "again"})
        late = await socket.first(lambda f: f.get("ref") == "again")
        assert (late["type"], late["status"]) == ("cancel_accepted", "cancelled")
        await socket.close()


async def test_a_run_over_its_budget_ends_timed_out_and_keeps_its_partial_answer(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"}, limits={"run_timeout_s": 0.5})
    scripted(server).push(ScriptedTurn.text("one two three four five six seven", delay_s=0.2))
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("talk slowly")
        events = await socket.run_to_end(ack["run_id"], timeout=5)
        assert_run_grammar(events)
        completed = events[-1]["data"]
        assert completed["outcome"] == "timed_out"
        assert completed["error"]["code"] == "timed_out"
        partial = answer_text(events)
        assert partial.startswith("one") and "seven" not in partial
        messages = await http.get(f"/threads/{ack['thread_id']}/messages", headers=user.auth)
        assert messages.json()["items"][-1]["content"] == partial
        await socket.close()


async def test_a_failing_model_fails_the_run_and_the_next_run_still_works(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"})
    scripted(server).push(ScriptedTurn(fail="malformed tool call"), ScriptedTurn.text("fine now"))
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        first = await socket.send_message("break")
        events = await socket.run_to_end(first["run_id"])
        assert events[-1]["data"]["outcome"] == "failed"
        assert events[-1]["data"]["error"] == {
            "code": "model_behavior",
            "message": "malformed tool call",
        }
        second = await socket.send_message("again", thread_id=first["thread_id"])
        events = await socket.run_to_end(second["run_id"])
        assert events[-1]["data"]["outcome"] == "completed"
        assert answer_text(events) == "fine now"
        await socket.close()


async def test_multi_step_runs_keep_state_and_order(server_factory: ServerFactory) -> None:
    server = server_factory(models={"default": "scripted"})
    model = scripted(server)
    model.push(
        ScriptedTurn.call("calculator", {"expression": "6*7"}, call_id="c1"),
        ScriptedTurn(
            tool_calls=(
                ToolCallRequest("c2", "clock", {"timezone": "Asia/Tokyo"}),
                ToolCallRequest("c3", "calculator", {"expression": "1/0"}),
                ToolCallRequest("c4", "no_such_tool", {}),
                ToolCallRequest("c5", "calculator", {"wrong": 1}),
            )
        ),
        ScriptedTurn.text("all done"),
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("do several things")
        events = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        results = {
            e["data"]["tool_call_id"]: e["data"] for e in events if e["type"] == "tool_completed"
        }
        assert results["c1"]["result"]["result"] == 42
        assert (
            results["c2"]["status"] == "ok" and results["c2"]["result"]["timezone"] == "Asia/Tokyo"
        )
        assert results["c3"]["error"]["code"] == "tool_error"
        assert results["c4"]["error"]["code"] == "unknown_tool"
        assert results["c5"]["error"]["code"] == "invalid_arguments"
        assert events[-1]["data"]["outcome"] == "completed"
        # The model saw every result, in call order, on its third call.
        third = model.requests[2].messages
        tool_messages = [m for m in third if m.role == "tool"]
        assert [m.tool_call_id for m in tool_messages] == ["c1", "c2", "c3", "c4", "c5"]
        assert '"result": 42' in tool_messages[0].content
        await socket.close()


async def test_the_per_user_limit_queues_the_excess_without_slowing_others(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        models={"default": "scripted"}, tiers={"free": {"max_concurrent_runs_per_user": 1}}
    )
    scripted(server).responder = lambda _request: ScriptedTurn.text("slow answer", delay_s=0.1)
    async with httpx.AsyncClient(base_url=server.url) as http:
        busy, other = await make_user(http, "busy"), await make_user(http, "other")
        socket = await open_socket(server, busy.token)
        acks = [await socket.send_message(f"message {i}") for i in range(3)]
        other_socket = await open_socket(server, other.token)
        other_ack = await other_socket.send_message("me too")
        other_events = await other_socket.run_to_end(other_ack["run_id"])
        assert other_events[-1]["data"]["outcome"] == "completed"
        for ack in acks:
            await socket.run_to_end(ack["run_id"])
        queued = [f for f in socket.frames if f["type"] == "run_queued"]
        assert {f["data"]["run_id"] for f in queued} == {acks[1]["run_id"], acks[2]["run_id"]}
        spans = []
        for ack in acks:
            events = socket.run_events(ack["run_id"])
            spans.append((events[0]["seq"], events[-1]["seq"]))
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end < start, f"runs overlapped: {spans}"
        await socket.close()
        await other_socket.close()


async def test_a_run_with_free_slots_starts_in_its_admission_and_one_that_waits_claims_later(
    server_factory: ServerFactory,
) -> None:
    """A run whose slots are free is stored running by its admission, with its
    ``agent_started``: on the socket its ack comes first, then the admission's events, the
    run's first event among them. A run that must wait (the user's one slot is taken) is
    stored queued, and claimed once the slot frees, as the same attempt number 1."""
    server = server_factory(
        models={"default": "scripted"}, tiers={"free": {"max_concurrent_runs_per_user": 1}}
    )
    gate = threading.Event()
    hold_runs(server, gate)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        first = await socket.send_message("first")
        await socket.first(lambda f: f["type"] == "tool_executing")
        second = await socket.send_message("second", thread_id=first["thread_id"])
        try:
            await socket.first(
                lambda f: f["type"] == "run_queued" and f["data"]["run_id"] == second["run_id"]
            )
            waiting = await http.get(f"/runs/{second['run_id']}", headers=user.auth)
            running = await http.get(f"/runs/{first['run_id']}", headers=user.auth)
        finally:
            gate.set()
        assert waiting.json()["status"] == "queued" and waiting.json()["attempt"] == 0
        assert running.json()["status"] == "running" and running.json()["attempt"] == 1
        for ack in (first, second):
            events = await socket.run_to_end(ack["run_id"])
            assert_run_grammar(events)
            assert events[0]["data"]["attempt"] == 1
            assert events[-1]["data"]["outcome"] == "completed"
        types = [f["type"] for f in socket.frames]
        acked = types.index("ack")
        assert types[acked : acked + 4] == [
            "ack",
            "thread_updated",
            "message_created",
            "agent_started",
        ], types
        # One transaction stored them: their seqs follow one another, the run's first event
        # right after its message.
        frames = socket.frames[acked + 1 : acked + 4]
        assert [f["seq"] for f in frames] == list(range(frames[0]["seq"], frames[0]["seq"] + 3))
        await socket.close()


async def test_a_queued_run_can_be_cancelled_before_it_starts(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        models={"default": "scripted"}, tiers={"free": {"max_concurrent_runs_per_user": 1}}
    )
    scripted(server).responder = lambda _request: ScriptedTurn.text("slow answer", delay_s=0.2)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        running = await socket.send_message("first")
        waiting = await socket.send_message("second")
        cancelled = await http.post(f"/runs/{waiting['run_id']}/cancel", headers=user.auth)
        assert cancelled.status_code == 202
        events = await socket.run_to_end(waiting["run_id"])
        assert [e["type"] for e in events] == ["agent_started", "agent_completed"]
        assert events[-1]["data"]["outcome"] == "cancelled"
        first = await socket.run_to_end(running["run_id"])
        assert first[-1]["data"]["outcome"] == "completed"
        await socket.close()


async def test_a_restart_resumes_running_and_queued_runs(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A stopped server hands its runs back; started again, it continues the running one
    on the same event stream (its cut-off text streamed again) and runs the queued one."""
    data_dir = tmp_path / "shared"
    settings = {
        "models": {"offline_chunk_delay_ms": 40},
        "tiers": {"free": {"max_concurrent_runs_per_user": 1}},
    }
    server = server_factory(data_dir, **settings)
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        running = await socket.send_message("a long answer please")
        waiting = await socket.send_message("and another one")
        await socket.first(lambda f: f["type"] == "message_delta")
    server.server.should_exit = True
    server.thread.join(timeout=30)

    restarted = server_factory(data_dir, **settings)
    async with httpx.AsyncClient(base_url=restarted.url) as http:
        socket = await open_socket(restarted, user.token, after_seq=0)
        continued = await socket.run_to_end(running["run_id"])
        assert_run_grammar(continued)
        assert continued[-1]["data"]["outcome"] == "completed"
        notes = [e["data"]["resumed"] for e in continued if "resumed" in e["data"]]
        assert [note["reason"] for note in notes] == ["handback"], notes
        queued = await socket.run_to_end(waiting["run_id"])
        assert_run_grammar(queued)
        assert queued[-1]["data"]["outcome"] == "completed"
        statuses = [
            (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()["status"]
            for ack in (running, waiting)
        ]
        assert statuses == ["completed", "completed"]
        # What the client shows is what was stored, and what an uninterrupted run says.
        again = await socket.send_message("a long answer please")
        fresh = answer_text(await socket.run_to_end(again["run_id"]))
        messages = (
            await http.get(f"/threads/{running['thread_id']}/messages", headers=user.auth)
        ).json()["items"]
        stored = [m["content"] for m in messages if m["role"] == "assistant"]
        assert stored == [fresh] and answer_text(continued) == fresh
        await socket.close()


async def test_runs_of_one_thread_execute_in_order_and_see_only_what_came_before(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"default": "scripted"})
    model = scripted(server)
    model.push(ScriptedTurn.text("first answer", delay_s=0.1), ScriptedTurn.text("second answer"))
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        first = await socket.send_message("first question")
        second = await socket.send_message("second question", thread_id=first["thread_id"])
        one = await socket.run_to_end(first["run_id"])
        two = await socket.run_to_end(second["run_id"])
        assert one[-1]["seq"] < two[0]["seq"], "runs of one thread overlapped"
        seen = [
            [(m.role, m.content) for m in request.messages if m.role != "system"]
            for request in model.requests
        ]
        assert seen == [
            [("user", "first question")],
            [
                ("user", "first question"),
                ("assistant", "first answer"),
                ("user", "second question"),
            ],
        ]
        await socket.close()
