"""Server-Sent Events: ``GET /events/stream`` carries the caller's events as a socket does —
every seq once, in order, resumable with ``Last-Event-ID`` — and ``GET /runs/{id}/stream``
one run's, ending after its ``agent_completed``; on a real server, with a real streaming
client."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ServerFactory
from tests.support import (
    EventStream,
    LiveServer,
    User,
    assert_run_grammar,
    eventually,
    make_user,
    open_stream,
    stored_events,
    submit_run,
)


def _gapless(events: list[dict[str, Any]], after: int) -> None:
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(after + 1, after + 1 + len(seqs))), seqs


def _framed_as_sent(stream: EventStream) -> None:
    """Every event's message names it: ``id`` its seq, ``event`` its type."""
    for message in stream.messages:
        if "seq" in message.data:
            assert message.id == str(message.data["seq"]), message
            assert message.event == message.data["type"], message


async def _run_events(http: httpx.AsyncClient, user: User, run_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/runs/{run_id}/events", headers=user.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _released(server: LiveServer) -> None:
    await eventually(lambda: server.netra.sockets.counts() == (0, 0), "every stream released")


async def test_the_event_stream_carries_exactly_what_the_event_log_stores(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        stream = await open_stream(http, "/events/stream", user)
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-cache"
        assert stream.response.headers["x-accel-buffering"] == "no"
        connected = await stream.next()
        assert connected is not None and connected.event == "connected"
        assert connected.data["user_id"] == user.id
        assert connected.id == str(connected.data["last_seq"])
        ack = await submit_run(http, user, "what is 12*7?")
        await stream.until(lambda d: d["type"] == "agent_completed")
        received = stream.events()
        assert received == await stored_events(http, user, connected.data["last_seq"])
        _gapless(received, connected.data["last_seq"])
        _framed_as_sent(stream)
        assert_run_grammar([e for e in received if e["run_id"] == ack["run_id"]])
        await stream.close()
        await _released(server)


async def test_a_stream_dropped_mid_run_resumes_with_last_event_id_without_gap_or_duplicate(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"offline_chunk_delay_ms": 15})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        first = await open_stream(http, "/events/stream", user)
        connected = await first.next()
        assert connected is not None
        ack = await submit_run(http, user, "tell me about yourself")
        await first.until(lambda d: d["type"] == "message_delta")
        await first.close()  # the client is killed while the run streams
        last_id = first.messages[-1].id
        assert last_id is not None

        second = await open_stream(
            http, "/events/stream", user, last_event_id=int(last_id), after_seq=0
        )
        assert (await second.next()) is not None  # connected
        resumed = await second.next()
        assert resumed is not None and resumed.event == "resumed", resumed
        assert resumed.data["recovered"] is True and resumed.data["after_seq"] == int(last_id)
        await second.until(
            lambda d: d["type"] == "agent_completed" and d["run_id"] == ack["run_id"]
        )
        combined = first.events() + second.events()
        _gapless(combined, connected.data["last_seq"])
        assert combined == await stored_events(http, user, connected.data["last_seq"])
        _framed_as_sent(second)
        await second.close()
        await _released(server)


async def test_a_run_stream_ends_after_agent_completed_live_or_finished(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"offline_chunk_delay_ms": 5})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        other = await submit_run(http, user, "tell me about yourself")
        ack = await submit_run(http, user, "what is 12*7?")
        live = await open_stream(http, f"/runs/{ack['run_id']}/stream", user)
        received = [m.data for m in await live.to_end()]
        stored = await _run_events(http, user, ack["run_id"])
        assert received == stored
        assert_run_grammar(received)
        _framed_as_sent(live)
        assert {e["run_id"] for e in received} == {ack["run_id"]} != {other["run_id"]}

        again = await open_stream(http, f"/runs/{ack['run_id']}/stream", user)
        assert [m.data for m in await again.to_end()] == stored
        middle = stored[2]["seq"]
        rest = await open_stream(http, f"/runs/{ack['run_id']}/stream", user, last_event_id=middle)
        assert [m.data for m in await rest.to_end()] == stored[3:]
        past = await open_stream(
            http, f"/runs/{ack['run_id']}/stream", user, after_seq=stored[-1]["seq"]
        )
        assert await past.to_end() == []
        await _released(server)


async def test_a_stream_resumed_past_what_the_log_holds_says_recovered_false(
    server_factory: ServerFactory,
) -> None:
    """The events of a deleted thread leave the log: a resume point before them is older
    than what is stored, and the stream says so before carrying on after the newest."""
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        gone = await submit_run(http, user, "what is 1+1?")
        kept = await submit_run(http, user, "what is 2+2?")
        for ack in (gone, kept):
            await eventually(lambda ack=ack: _ended(http, user, ack["run_id"]), "the run ended")
        deleted = await http.delete(f"/threads/{gone['thread_id']}", headers=user.auth)
        assert deleted.status_code == 204
        last_seq = (await http.get("/events", headers=user.auth)).json()["last_seq"]
        stream = await open_stream(http, "/events/stream", user, after_seq=0)
        await stream.next()  # connected
        resumed = await stream.next()
        assert resumed is not None and resumed.event == "resumed"
        assert resumed.data["recovered"] is False and resumed.data["reason"] == "expired"
        # It goes on after the newest event (stored by the deletion, or after it).
        assert resumed.id == str(resumed.data["last_seq"])
        assert resumed.data["last_seq"] >= last_seq
        await submit_run(http, user, "what is 3+3?")
        created = await stream.until(lambda d: "seq" in d)
        assert created.data["seq"] == resumed.data["last_seq"] + 1
        await stream.close()


async def _ended(http: httpx.AsyncClient, user: User, run_id: str) -> bool:
    run = (await http.get(f"/runs/{run_id}", headers=user.auth)).json()
    return run["status"] in ("completed", "failed", "cancelled", "timed_out", "interrupted")


async def test_an_idle_stream_sends_a_ping_every_heartbeat(server_factory: ServerFactory) -> None:
    server = server_factory(websocket={"ping_interval_s": 0.2})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        stream = await open_stream(http, "/events/stream", user)
        lines = stream.response.aiter_lines()
        greeting = [await anext(lines) for _ in range(4)]
        assert greeting[:2] == ["id: 0", "event: connected"] and greeting[3] == ""
        assert [await anext(lines) for _ in range(4)] == [": ping", "", ": ping", ""]
        await stream.close()
        await _released(server)


async def test_a_stream_ends_when_its_session_is_revoked_and_only_that_one(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        signed_in = await http.post(
            "/auth/login", json={"email": user.email, "password": user.password}
        )
        elsewhere = User(user.email, user.password, signed_in.json()["access_token"], user.id, http)
        ack = await submit_run(http, user, "tell me about yourself")
        doomed = await open_stream(http, "/events/stream", user)
        doomed_run = await open_stream(http, f"/runs/{ack['run_id']}/stream", user)
        kept = await open_stream(http, "/events/stream", elsewhere)
        await doomed.next()
        assert (await http.post("/auth/logout", headers=user.auth)).status_code == 204
        await doomed.to_end()
        await doomed_run.to_end()
        refused = await http.get("/events/stream", headers=user.auth)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "session_revoked"
        later = await submit_run(http, elsewhere, "what is 2+2?")
        await kept.until(
            lambda d: d["type"] == "agent_completed" and d["run_id"] == later["run_id"]
        )
        assert not kept.ended
        await kept.close()
        await _released(server)


async def test_streams_refuse_strangers_bad_resume_points_and_other_users_runs(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    owner, stranger = await make_user(http, "owner"), await make_user(http, "stranger")
    ack = await submit_run(http, owner, "what is 12*7?")
    for path in ("/events/stream", f"/runs/{ack['run_id']}/stream"):
        anonymous = await http.get(path)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthenticated"
        for bad in ({"Last-Event-ID": "abc"}, {"Last-Event-ID": "-1"}):
            refused = await http.get(path, headers={**owner.auth, **bad})
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == "invalid_request"
        for bad_seq in ("x", "-5", "1" * 40):
            refused = await http.get(path, params={"after_seq": bad_seq}, headers=owner.auth)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == "invalid_request"
    theirs = await http.get(f"/runs/{ack['run_id']}/stream", headers=stranger.auth)
    missing = await http.get("/runs/run_nobodys/stream", headers=stranger.auth)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    assert theirs.json()["error"]["message"] == missing.json()["error"]["message"]
    await _released(server)
