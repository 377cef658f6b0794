"""The whole chat path against a real server: sign up, chat over the socket, read it back."""

from __future__ import annotations

import httpx

from tests.support import LiveServer, answer_text, assert_run_grammar, make_user, open_socket


async def test_a_new_user_asks_for_arithmetic_and_sees_every_step(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    socket = await open_socket(server, user.token)
    ack = await socket.send_message("what is 12*7?")
    assert ack["type"] == "ack"
    events = await socket.run_to_end(ack["run_id"])

    assert_run_grammar(events)
    types = [e["type"] for e in events]
    assert "agent_thinking" in types and "message_delta" in types
    assert (
        types.index("tool_executing") < types.index("tool_completed") < types.index("message_delta")
    )
    tool_done = next(e for e in events if e["type"] == "tool_completed")
    assert tool_done["data"]["tool"] == "calculator"
    assert tool_done["data"]["status"] == "ok" and tool_done["data"]["result"]["result"] == 84
    assert "84" in answer_text(events)
    completed = events[-1]["data"]
    assert completed["outcome"] == "completed"
    assert completed["usage"]["output_tokens"] > 0
    for event in events:
        assert set(event) == {
            "type",
            "seq",
            "event_id",
            "thread_id",
            "run_id",
            "agent",
            "ts",
            "data",
        }
        assert event["thread_id"] == ack["thread_id"]

    run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
    assert run["status"] == "completed" and run["outcome"] == "completed"
    messages = (await http.get(f"/threads/{ack['thread_id']}/messages", headers=user.auth)).json()
    assert [m["role"] for m in messages["items"]] == ["user", "assistant"]
    assert messages["items"][0]["id"] == ack["message_id"]
    assert "84" in messages["items"][1]["content"]
    stored = (await http.get(f"/runs/{ack['run_id']}/events", headers=user.auth)).json()["items"]
    assert stored == events
    threads = (await http.get("/threads", headers=user.auth)).json()["items"]
    assert [t["id"] for t in threads] == [ack["thread_id"]]
    await socket.close()
