"""How events reach a socket: written at once when nothing waits, through a bounded backlog
when something does, gaps read from the event log, and what a connect costs the database."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from netra.events.envelope import Event, EventType
from tests.conftest import ServerFactory, settings_for_test
from tests.support import (
    CanaryWatch,
    LiveServer,
    User,
    answer_text,
    assert_run_grammar,
    eventually,
    live_server,
    make_user,
    on_server_loop,
    open_socket,
    submit_run,
)

PAD = "x" * 32_000


def _envelope(user_id: str, seq: int) -> Event:
    body = json.dumps(
        {
            "type": "message_delta",
            "seq": seq,
            "event_id": f"ev_{seq}",
            "thread_id": None,
            "run_id": None,
            "agent": None,
            "ts": "2026-01-01T00:00:00.000Z",
            "data": {"message_id": "msg_x", "delta": PAD},
        },
        separators=(",", ":"),
    )
    return Event(user_id, seq, EventType.MESSAGE_DELTA, None, body)


async def _flood(server: LiveServer, user_id: str, after: int, limit: int) -> int:
    """Publish events of ~32 kB to the user, one at a time, as the writer would, until the
    server no longer holds a socket of the user (or ``limit``); how many were published."""
    for count in range(1, limit + 1):
        await server.netra.bus.publish(user_id, [_envelope(user_id, after + count)])
        await asyncio.sleep(0)
        if server.netra.sockets.connections_of(user_id) == 0:
            return count
    return limit


async def test_a_client_that_stops_reading_is_closed_with_1013_instead_of_buffered(
    server_factory: ServerFactory,
) -> None:
    """The client reads nothing: the kernel's buffers fill, then the transport's, then the
    socket's backlog up to ``send_queue_max``, and the socket is closed with 1013. What the
    client finds once it reads again is a gapless prefix of what was published, then the
    close."""
    server = server_factory(websocket={"send_queue_max": 20, "position_check_s": 300.0})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        # The client library buffers one frame, then stops reading the connection.
        socket = await open_socket(server, user.token, max_queue=1)
        after = socket.connected["last_seq"]
        published = await on_server_loop(server, _flood(server, user.id, after, limit=5000))
        assert published < 5000, "the server kept buffering for a client that read nothing"
        assert await socket.close_code(timeout=60) == 1013
        seqs = [frame["seq"] for frame in socket.events()]
        assert seqs == list(range(after + 1, after + 1 + len(seqs)))
        assert len(seqs) < published
        await eventually(lambda: server.netra.sockets.counts() == (0, 0), "socket released")


async def test_events_the_bus_never_brought_are_read_from_the_log_before_a_later_one(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Two instances on one database, each with its own in-process bus: what B stores never
    reaches A's bus. The next event A publishes is past the socket's cursor by more than
    one; the socket reads the gap from the log and sends everything in seq order."""
    shared = tmp_path / "shared"  # one SQLite file (PostgreSQL: one database anyway)
    a = server_factory(
        shared, cluster={"execute_runs": False}, websocket={"position_check_s": 300.0}
    )
    b = server_factory(shared)
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        user = await make_user(http_a)
        socket = await open_socket(a, user.token)
        after = socket.connected["last_seq"]
        ack = await submit_run(http_b, user, "what is 12*7?")  # stored and published by B
        await eventually(
            lambda: _status(http_b, user, ack["run_id"], "completed"), "B's run completed"
        )
        own = await submit_run(http_a, user, "hello")  # its message_created: A's bus
        created = await socket.until(
            lambda f: (
                f["type"] == "message_created" and f["data"]["message"]["id"] == own["message_id"]
            )
        )
        stored = (await http_a.get(f"/events?after_seq={after}", headers=user.auth)).json()
        upto = [e for e in stored["items"] if e["seq"] <= created["seq"]]
        assert socket.events() == upto
        assert [e["seq"] for e in upto] == list(range(after + 1, created["seq"] + 1))
        assert {e["run_id"] for e in upto if e["type"] == "agent_completed"} == {ack["run_id"]}
        await socket.close()


async def _status(http: httpx.AsyncClient, user: User, run_id: str, status: str) -> bool:
    run = (await http.get(f"/runs/{run_id}", headers=user.auth)).json()
    return bool(run["status"] == status)


@pytest.fixture
def plain_server(tmp_path: Path, canaries: CanaryWatch) -> Any:
    """A server on uvicorn's own sans-I/O protocol: no ``DirectSocket``, only ASGI ``send``."""
    settings = settings_for_test(tmp_path / "plain", None, canaries)
    config = UnifiedConfigurationManager(
        IsolatedEnvironment.isolated(), overrides=settings.model_dump(exclude_unset=True)
    )
    with live_server(config, canaries, websockets="websockets-sansio") as server:
        yield server


async def test_a_server_without_direct_sockets_streams_and_resumes_the_same(
    plain_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=plain_server.url) as http:
        user = await make_user(http)
        socket = await open_socket(plain_server, user.token)
        ack = await socket.send_message("what is 12*7?")
        events = await socket.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        assert "84" in answer_text(events)
        late = await open_socket(plain_server, user.token, after_seq=0)
        assert (await late.recv())["type"] == "resumed"
        await late.first(lambda f: f["type"] == "agent_completed")
        stored = (await http.get("/events", headers=user.auth)).json()["items"]
        assert late.events() == stored
        assert socket.events() == stored[-len(socket.events()) :]
        assert (await http.post("/auth/logout", headers=user.auth)).status_code == 204
        assert await socket.close_code() == 1008
        assert await late.close_code() == 1008


CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def _counting(server: LiveServer) -> tuple[list[str], Callable[[], None]]:
    """Every statement the server runs from now on: the cold paths' SQL (SQLAlchemy) and
    the names of the hot path's statements; ``BEGIN`` and the like left out. Returns the
    list and the function that stops counting."""
    statements: list[str] = []
    lock = threading.Lock()

    def note(statement: str) -> None:
        if not statement.lstrip().upper().startswith(CONTROL):
            with lock:
                statements.append(" ".join(statement.split()))

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        note(statement)

    engine = server.netra.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    stop_hot = server.netra.db.listen(note)

    def stop() -> None:
        event.remove(engine, "before_cursor_execute", count)
        stop_hot()

    return statements, stop


QUIET = {
    "cluster": {"lease_s": 600.0, "heartbeat_s": 300.0},
    "websocket": {"position_check_s": 300.0},
}
"""No heartbeat or position check inside a counted window."""


async def test_a_socket_whose_session_and_user_are_known_here_connects_without_a_read(
    server_factory: ServerFactory,
) -> None:
    """Signing in tells this instance the session; the user's first socket reads only the
    newest seq, and the next sockets read nothing: their ``connected.last_seq`` is what the
    instance has delivered since."""
    server = server_factory(**QUIET)
    statements, stop = _counting(server)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            user = await make_user(http)
            statements.clear()
            first = await open_socket(server, user.token)
            assert len(statements) == 1, statements
            assert "last seq" in statements[0]
            statements.clear()
            second = await open_socket(server, user.token)
            assert statements == []
            assert second.connected["last_seq"] == first.connected["last_seq"]
            ack = await first.send_message("what is 12*7?")
            await first.run_to_end(ack["run_id"])
            await second.first(lambda f: f["type"] == "agent_completed")
            stored = (await http.get("/events", headers=user.auth)).json()
            statements.clear()
            third = await open_socket(server, user.token)
            assert statements == []
            assert third.connected["last_seq"] == stored["last_seq"] == second.events()[-1]["seq"]
            for socket in (first, second, third):
                await socket.close()
    finally:
        stop()


async def test_without_the_session_cache_every_socket_reads_its_session(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(auth={"session_cache_s": 0}, **QUIET)
    statements, stop = _counting(server)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            user = await make_user(http)
            statements.clear()
            first = await open_socket(server, user.token)
            assert len(statements) == 2, statements  # the session, the newest seq
            statements.clear()
            second = await open_socket(server, user.token)
            assert len(statements) == 1, statements  # the session
            assert "sessions" in statements[0]
            await first.close()
            await second.close()
    finally:
        stop()
