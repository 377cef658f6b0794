"""Resume: a reconnecting socket gets the rest with no gap and no duplicate; on any one socket
every seq arrives at most once and in increasing order, also around connect and resume."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerFactory
from tests.support import LiveServer, answer_text, assert_run_grammar, make_user, open_socket


async def test_a_socket_dropped_mid_run_resumes_without_gap_or_duplicate(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"offline_chunk_delay_ms": 15})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        first = await open_socket(server, user.token)
        ack = await first.send_message("tell me about yourself")
        await first.first(lambda f: f["type"] == "message_delta")
        seen = first.events()
        await first.close()
        last_seq = seen[-1]["seq"]

        second = await open_socket(server, user.token, after_seq=last_seq)
        resumed = await second.recv()
        assert resumed["type"] == "resumed" and resumed["recovered"] is True
        await second.until(
            lambda f: f["type"] == "agent_completed" and f["run_id"] == ack["run_id"]
        )

        combined = seen + second.events()
        seqs = [e["seq"] for e in combined]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        run_events = [e for e in combined if e["run_id"] == ack["run_id"]]
        assert_run_grammar(run_events)
        stored = (await http.get(f"/events?after_seq={seqs[0] - 1}", headers=user.auth)).json()
        assert stored["items"] == combined
        assert "offline model" in answer_text(run_events)
        run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        assert run["status"] == "completed"
        await second.close()


async def test_resume_from_the_future_is_not_recovered(server_factory: ServerFactory) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        await socket.send({"type": "resume", "after_seq": 10_000})
        resumed = await socket.until(lambda f: f["type"] == "resumed")
        assert resumed["recovered"] is False and resumed["reason"] == "future"
        assert resumed["last_seq"] == socket.connected["last_seq"]
        await socket.close()


async def test_a_socket_opened_mid_run_with_a_resume_point_sends_every_seq_once_in_order(
    server_factory: ServerFactory,
) -> None:
    """Connecting with ``after_seq`` while a run streams: the replay comes first, live events
    follow it, and no seq is sent twice or out of order — the socket knows where the client
    stands before it sends any event."""
    server = server_factory(models={"offline_chunk_delay_ms": 5})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        watcher = await open_socket(server, user.token)
        acks = [await watcher.send_message(f"tell me about yourself {i}") for i in range(3)]
        await watcher.first(lambda f: f["type"] == "message_delta")
        late = await open_socket(server, user.token, after_seq=0)
        resumed = await late.recv()
        assert resumed["type"] == "resumed" and resumed["recovered"] is True
        for ack in acks:
            await late.run_to_end(ack["run_id"])
        seqs = [e["seq"] for e in late.events()]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert (
            late.events()
            == (await http.get("/events", headers=user.auth)).json()["items"][: len(seqs)]
        )
        for socket in (watcher, late):
            await socket.close()


async def test_a_resume_behind_what_the_socket_sent_is_not_replayed_again(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    """A ``resume`` frame can't take a socket back behind events it already sent: the answer
    is ``recovered: false`` (reload over HTTP), and nothing is sent twice."""
    user = await make_user(http)
    socket = await open_socket(server, user.token)
    ack = await socket.send_message("what is 2+2?")
    await socket.run_to_end(ack["run_id"])
    await socket.send({"type": "resume", "after_seq": 0})
    resumed = await socket.until(lambda f: f["type"] == "resumed")
    assert resumed["recovered"] is False and resumed["reason"] == "already_sent"
    await socket.send({"type": "ping"})
    await socket.until(lambda f: f["type"] == "pong")
    seqs = [e["seq"] for e in socket.events()]
    assert seqs == sorted(set(seqs)), seqs
    await socket.close()


async def test_a_bad_resume_point_on_connect_is_refused_with_a_reason(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    for bad in ("-1", "abc", "1" * 40):
        url = f"{server.ws_url}?after_seq={bad}"
        async with connect(url, subprotocols=["bearer", user.token]) as conn:  # type: ignore[list-item]
            error = json.loads(await conn.recv())
            assert error["type"] == "error" and error["code"] == "invalid_request", error
            with pytest.raises(ConnectionClosed) as closed:
                await conn.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_closing_the_socket_does_not_cancel_the_run(server_factory: ServerFactory) -> None:
    server = server_factory(models={"offline_chunk_delay_ms": 10})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("hello there")
        await socket.close()
        again = await open_socket(server, user.token, after_seq=0)
        events = await again.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        await again.close()
