"""A socket dropped mid-run reconnects with resume and gets the rest: no gap, no duplicate."""

from __future__ import annotations

import httpx

from tests.conftest import ServerFactory
from tests.support import answer_text, assert_run_grammar, make_user, open_socket


async def test_a_socket_dropped_mid_run_resumes_without_gap_or_duplicate(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models={"offline_chunk_delay_ms": 15})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        first = await open_socket(server, user.token)
        ack = await first.send_message("tell me about yourself")
        await first.until(lambda f: f["type"] == "message_delta")
        seen = first.events()
        await first.close()
        last_seq = seen[-1]["seq"]

        second = await open_socket(server, user.token)
        await second.send({"type": "resume", "after_seq": last_seq})
        resumed = await second.until(lambda f: f["type"] == "resumed")
        assert resumed["recovered"] is True
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
        assert resumed["recovered"] is False
        assert resumed["last_seq"] == socket.connected["last_seq"]
        await socket.close()


async def test_closing_the_socket_does_not_cancel_the_run(server_factory: ServerFactory) -> None:
    server = server_factory(models={"offline_chunk_delay_ms": 10})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("hello there")
        await socket.close()
        again = await open_socket(server, user.token)
        await again.send({"type": "resume", "after_seq": 0})
        events = await again.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        await again.close()
