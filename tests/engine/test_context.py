"""A long thread against a small context window, on a real server: every model call's prompt
fits the window, ends with the run's own question, and holds the newest turns that fit."""

from __future__ import annotations

import itertools
import json
import re

import httpx
from sqlalchemy import text

from netra.models.base import ChatMessage, ModelRequest, ToolCallRequest, estimate_tokens
from netra.models.context import message_tokens, tool_tokens
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.models.summary import is_summary_request, offline_summary
from tests.conftest import ServerFactory
from tests.support import make_user, open_socket

WINDOW = 2_000
BUDGET = WINDOW - WINDOW // 4  # the reserve for the answer is capped at a quarter
HISTORY = 200
"""Messages a run reads (``models.history_messages``): about 50 turns, more than the window
holds and fewer than the thread (``TURNS``, four messages each): some turns are read and
left out, the older ones are not read at all."""
TURNS = 80
QUESTION = re.compile(r"what is (\d+)\*7\?")


def prompt_tokens(request: ModelRequest) -> int:
    return sum(map(message_tokens, request.messages)) + sum(map(tool_tokens, request.tools))


def calculating(request: ModelRequest) -> ScriptedTurn:
    """Asks the calculator about the last question, then answers with its result; checks
    every prompt on the way."""
    messages = request.messages
    assert prompt_tokens(request) <= BUDGET, "the prompt is over the budget"
    questions = [m for m in messages if m.role == "user"]
    last = messages[-1]
    if last.role == "user":
        match = QUESTION.fullmatch(last.content)
        assert match is not None, last.content
        call = ToolCallRequest(
            f"call_{match.group(1)}", "calculator", {"expression": f"{match.group(1)}*7"}
        )
        return ScriptedTurn(tool_calls=(call,))
    assert last.role == "tool", "a step after the tools ends with their results"
    asked = questions[-1]
    assert messages[messages.index(asked) + 1].tool_calls, "the question, then its call"
    return ScriptedTurn.text(f"It is {json.loads(last.content)['result']}.")


def earlier_questions(request: ModelRequest) -> list[str]:
    return [m.content for m in request.messages if m.role == "user"][:-1]


async def test_the_newest_turns_that_fit_are_sent_and_the_question_always_is(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        models={
            "default": "scripted",
            "context_windows": [{"model": "scripted", "tokens": WINDOW}],
            "summarize": False,  # what does not fit is left out (summaries: below)
            "history_messages": HISTORY,
        },
        # TURNS runs in a row, as fast as they go
        tiers={"free": {"runs_per_minute": 0, "tokens_per_day": 0}},
        websocket={"frames_per_s": 10_000},
    )
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = calculating
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http, "long")
        socket = await open_socket(server, user.token)
        thread_id = None
        for n in range(1, TURNS + 1):
            fields = {"thread_id": thread_id} if thread_id else {}
            ack = await socket.send_message(f"what is {n}*7?", **fields)
            assert ack["type"] == "ack", (n, ack)
            thread_id = ack["thread_id"]
            events = await socket.run_to_end(ack["run_id"])
            socket.frames.clear()
        completed = events[-1]
        assert completed["type"] == "agent_completed"
        assert completed["data"]["outcome"] == "completed"
        answer = await http.get(
            f"/threads/{thread_id}/messages", params={"limit": 1}, headers=user.auth
        )
        assert [m["content"] for m in answer.json()["items"]] == [
            f"what is {TURNS}*7?",
            f"It is {TURNS * 7}.",
        ]

        notes = [e["data"]["context"] for e in events if e["type"] == "agent_thinking"]
        assert len(notes) == 2, "each model call says what it was sent"
        first = notes[0]
        assert first["window"] == WINDOW and first["summarized"] == 0
        assert first["turns"] + first["dropped"] == TURNS - 1
        assert first["dropped"] > 0 and first["turns"] > 0
        assert first["tokens"] <= BUDGET

        last_call = model.requests[-2]  # the last question's first call
        assert last_call.messages[-1] == ChatMessage("user", f"what is {TURNS}*7?")
        sent = earlier_questions(last_call)
        assert len(sent) == first["turns"]
        assert sent == [f"what is {n}*7?" for n in range(TURNS - len(sent), TURNS)], (
            "the newest turns, without a hole"
        )
        await socket.close()


SUMMARISED_TURNS = 150
KEEP_GAP = 5
"""Turns at least between two runs that summarise: after one, the turns kept fill half the
room, and the next runs are sent the summary and the turns since until the room is full."""


async def test_turns_that_do_not_fit_are_summarised_now_and_then_and_the_run_pays(
    server_factory: ServerFactory,
) -> None:
    """With summaries on, what does not fit is folded into the thread's stored summary: a
    call of the run's model, sent the summary so far and the turns to add, that fits the
    window too. The newest turns still come as they are, nothing is left out, a summary is
    made only now and then (the turns kept after one fill half the room), and each call's
    usage is the run's."""
    server = server_factory(
        models={
            "default": "scripted",
            "context_windows": [{"model": "scripted", "tokens": WINDOW}],
        },
        tiers={"free": {"runs_per_minute": 0, "tokens_per_day": 0}},
        websocket={"frames_per_s": 10_000},
    )
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)

    def answering(request: ModelRequest) -> ScriptedTurn:
        assert prompt_tokens(request) <= BUDGET, "the prompt is over the budget"
        if is_summary_request(request):
            return ScriptedTurn.text(offline_summary(request))
        return calculating(request)

    model.responder = answering
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http, "summed")
        socket = await open_socket(server, user.token)
        thread_id = None
        summarising: list[int] = []
        for n in range(1, SUMMARISED_TURNS + 1):
            before = len(model.requests)
            fields = {"thread_id": thread_id} if thread_id else {}
            ack = await socket.send_message(f"what is {n}*7?", **fields)
            thread_id = ack["thread_id"]
            events = await socket.run_to_end(ack["run_id"])
            socket.frames.clear()
            calls = model.requests[before:]
            summaries = [r for r in calls if is_summary_request(r)]
            if summaries:
                summarising.append(n)
            usage = events[-1]["data"]["usage"]
            assert usage["input_tokens"] == sum(
                sum(estimate_tokens(m.content) for m in r.messages) for r in calls
            ), "every call of the run is metered to it, summaries too"
            notes = [
                e["data"]["context"]
                for e in events
                if e["type"] == "agent_thinking" and "context" in e["data"]
            ]
            assert notes[0]["dropped"] == 0, (n, notes[0])
            assert notes[0]["summarized"] + notes[0]["turns"] == n - 1, (n, notes[0])
        assert summarising, "a summary was made"
        gaps = [b - a for a, b in itertools.pairwise(summarising)]
        assert min(gaps, default=KEEP_GAP) >= KEEP_GAP, (
            f"runs that summarised: {summarising}; a summary is reused by the next runs"
        )
        last = model.requests[-2]  # the last question's first call
        assert last.messages[-1] == ChatMessage("user", f"what is {SUMMARISED_TURNS}*7?")
        heading = [
            m
            for m in last.messages
            if m.role == "system" and m.content.startswith("Summary of the conversation")
        ]
        assert len(heading) == 1
        assert "«what is 1*7?»" in heading[0].content, "the summary reaches back to turn 1"
        answer = await http.get(
            f"/threads/{thread_id}/messages", params={"limit": 1}, headers=user.auth
        )
        last_answer = answer.json()["items"][-1]["content"]
        assert last_answer == f"It is {SUMMARISED_TURNS * 7}."

        async def summaries_stored() -> int:
            async with server.netra.db.read() as conn:
                return int(await conn.scalar(text("SELECT count(*) FROM summaries")) or 0)

        assert await server.call(summaries_stored) == len(summarising)
        deleted = await http.delete(f"/threads/{thread_id}", headers=user.auth)
        assert deleted.status_code == 204
        assert await server.call(summaries_stored) == 0, "the summaries go with their thread"
        await socket.close()


async def test_earlier_answers_come_with_their_tool_calls_in_brief(
    server_factory: ServerFactory,
) -> None:
    """An earlier turn is sent as its question and answer, the answer with the tool calls
    that made it in one line each — arguments and result cut short — not the whole
    exchange."""
    server = server_factory(models={"default": "scripted"})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = calculating
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http, "briefed")
        socket = await open_socket(server, user.token)
        first = await socket.send_message("what is 3*7?")
        await socket.run_to_end(first["run_id"])
        second = await socket.send_message("what is 4*7?", thread_id=first["thread_id"])
        await socket.run_to_end(second["run_id"])
        asked = model.requests[-2]  # the second question's first call
        earlier = [m for m in asked.messages if m.role == "assistant"]
        assert len(earlier) == 1
        brief, answer = earlier[0].content.split("\n", 1)
        assert brief.startswith('[tools used: calculator {"expression": "3*7"} → ')
        assert "21" in brief and brief.endswith("]")
        assert answer == "It is 21."
        assert not earlier[0].tool_calls, "in brief: no call to answer"
        await socket.close()
