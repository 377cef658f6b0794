"""Bad input gets a clear error and loses nothing; the socket stays usable."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import ServerFactory
from tests.support import LiveServer, eventually, make_user, open_socket


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c3JfeCJ9.",
    ],
)
async def test_a_bad_token_closes_the_socket_with_1008(server: LiveServer, token: str) -> None:
    async with connect(server.ws_url, subprotocols=["bearer", token]) as conn:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            await conn.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_no_token_closes_with_1008(server: LiveServer) -> None:
    async with connect(server.ws_url) as conn:
        with pytest.raises(ConnectionClosed) as closed:
            await conn.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_authorization_header_is_accepted(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    async with connect(server.ws_url, additional_headers=user.auth) as conn:
        assert '"connected"' in str(await conn.recv())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_frame"),
        ('"a string"', "unknown_frame"),
        ('{"type": "launch_missiles"}', "unknown_frame"),
        ('{"type": "send_message"}', "invalid_frame"),
        ('{"type": "send_message", "content": ""}', "invalid_frame"),
        ('{"type": "resume", "after_seq": -1}', "invalid_frame"),
        ('{"type": "cancel_run", "run_id": "run_nope"}', "not_found"),
        ('{"type": "ping", "extra": 1}', "invalid_frame"),
        ('{"type": "resume", "after_seq": 1' + "0" * 5_000 + "}", "invalid_frame"),
        ('{"type": "ping", "ref": "\\ud800"}', "invalid_frame"),
        ('{"type": "send_message", "content": "a\\udfff", "client_msg_id": "c"}', "invalid_frame"),
        ('{"type": "send_message", "content": "a\\u0000", "client_msg_id": "c"}', "invalid_frame"),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_still_works(
    server: LiveServer, http: httpx.AsyncClient, frame: str, code: str
) -> None:
    user = await make_user(http)
    socket = await open_socket(server, user.token)
    await socket.conn.send(frame)
    error = await socket.recv()
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    await socket.send({"type": "ping"})
    assert (await socket.recv())["type"] == "pong"
    ack = await socket.send_message("what is 1+1?")
    assert ack["type"] == "ack"
    await socket.close()


async def test_an_oversized_frame_closes_with_1009(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    socket = await open_socket(server, user.token)
    await socket.send({"type": "send_message", "content": "x" * 200_000})
    with pytest.raises(ConnectionClosed) as closed:
        await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert "exceeds limit" in closed.value.rcvd.reason


async def test_the_1009_reaches_a_client_that_is_still_sending(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    """Found by the fuzzer (tests/realtime/test_fuzz_frames.py): the server closed the TCP
    connection with the refused frame's bytes still unread, the kernel reset it, and a client
    still sending lost the close frame (1006) about half the time. Several sockets in a row,
    so that the race, if it came back, would not go unnoticed."""
    user = await make_user(http)
    for _ in range(8):
        socket = await open_socket(server, user.token)
        await socket.conn.send("x" * 200_000)
        with contextlib.suppress(ConnectionClosed):  # the close may be here already
            await socket.send({"type": "ping"})
        assert await socket.close_code() == 1009
    await eventually(lambda: server.netra.sockets.counts() == (0, 0), "sockets released")


async def test_a_text_frame_that_is_not_utf8_closes_with_1007_and_logs_no_error(
    server: LiveServer, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the fuzzer: uvicorn logged the client's invalid UTF-8 at ERROR with a
    traceback, and closed without saying why."""
    user = await make_user(http)
    socket = await open_socket(server, user.token)
    await socket.conn.send(b'{"type": "ping", "ref": "\xff"}', text=True)
    with pytest.raises(ConnectionClosed) as closed:
        await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1007
    assert closed.value.rcvd.reason == "text frames must be valid UTF-8"
    await eventually(lambda: server.netra.sockets.counts() == (0, 0), "socket released")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _handshake_answer(server: LiveServer, path: str, **headers: str) -> bytes:
    """The first bytes the server answers a raw WebSocket upgrade request with (empty if it
    closed without a word); fails if it answers nothing at all within the bound."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.readuntil(b"\r\n")
    except TimeoutError:
        pytest.fail(f"no answer to a handshake on {path[:40]}")
    finally:
        writer.close()


async def test_a_huge_token_on_the_handshake_is_answered_431(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    """A 100 KB token, where each kind of client puts one, gets an answer, not silence:
    431 for a header line over 8 KiB, 414 for such a URL (tokens are never read from it)."""
    huge = "a" * 100_000
    status = await _handshake_answer(server, "/ws", Authorization=f"Bearer {huge}")
    assert status.startswith(b"HTTP/1.1 431 "), status
    protocols = await _handshake_answer(
        server, "/ws", **{"Sec-WebSocket-Protocol": f"bearer, {huge}"}
    )
    assert protocols.startswith(b"HTTP/1.1 431 "), protocols
    query = await _handshake_answer(server, f"/ws?access_token={huge}")
    assert query.startswith(b"HTTP/1.1 414 "), query
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws_url, subprotocols=["bearer", huge]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 431
    # The server goes on serving sockets.
    user = await make_user(http)
    socket = await open_socket(server, user.token)
    await socket.send({"type": "ping"})
    assert (await socket.recv())["type"] == "pong"
    await socket.close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/me", None),
        ("GET", "/threads", None),
        ("POST", "/threads", {}),
        ("GET", "/runs/run_x", None),
        ("GET", "/events", None),
    ],
)
async def test_missing_or_bad_credentials_are_401_with_the_error_shape(
    http: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}):
        response = await http.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["code"] == "unauthenticated"
        assert error["request_id"] == response.headers["x-request-id"]


async def test_invalid_bodies_are_422_and_store_nothing(http: httpx.AsyncClient) -> None:
    user = await make_user(http)
    # JSON escapes: the server decodes them into a NUL and a lone surrogate.
    for title in ("", r"nul \u0000 inside", r"lone \ud800 surrogate"):
        response = await http.post(
            "/threads",
            content=f'{{"title": "{title}"}}',
            headers={**user.auth, "content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        assert response.json()["error"]["details"]
    assert (await http.get("/threads", headers=user.auth)).json()["items"] == []
    thread = (await http.post("/threads", json={}, headers=user.auth)).json()
    nul = await http.post(
        f"/threads/{thread['id']}/runs", json={"content": "a\x00b"}, headers=user.auth
    )
    assert nul.status_code == 422 and nul.json()["error"]["code"] == "invalid_request"
    messages = await http.get(f"/threads/{thread['id']}/messages", headers=user.auth)
    assert messages.json()["items"] == []
    bad = await http.post("/auth/register", json={"email": "nope", "password": "short"})
    assert bad.status_code == 422
    duplicate = await http.post("/auth/register", json={"email": user.email, "password": "x" * 10})
    assert duplicate.status_code == 409
    wrong = await http.post("/auth/login", json={"email": user.email, "password": "wrong-password"})
    unknown = await http.post("/auth/login", json={"email": "no@one.org", "password": "whatever1"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_a_retried_send_stores_one_message(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    socket = await open_socket(server, user.token)
    first = await socket.send_message("what is 3*3?", client_msg_id="same-id")
    second = await socket.send_message("what is 3*3?", client_msg_id="same-id")
    assert first == second
    await socket.run_to_end(first["run_id"])
    messages = (await http.get(f"/threads/{first['thread_id']}/messages", headers=user.auth)).json()
    assert [m["role"] for m in messages["items"]] == ["user", "assistant"]
    await socket.close()


async def test_a_socket_over_the_per_user_cap_closes_with_1013(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(websocket={"max_connections_per_user": 2})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        kept = [await open_socket(server, user.token) for _ in range(2)]
        async with connect(server.ws_url, subprotocols=["bearer", user.token]) as conn:  # type: ignore[list-item]
            with pytest.raises(ConnectionClosed) as closed:
                await conn.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        await kept[0].close()
        again = await open_socket(server, user.token)  # a freed place can be taken again
        for socket in (kept[1], again):
            await socket.close()


async def test_aborted_connections_never_stall_the_server(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    """A client that vanishes mid-run without a close frame (a closed laptop lid) only
    detaches: the server notices, frees the socket and keeps answering everyone."""
    user = await make_user(http)
    for _ in range(12):
        socket = await open_socket(server, user.token)
        await socket.send_message("tell me about yourself")
        socket.conn.transport.abort()  # the TCP connection ends with no close frame
        await eventually(lambda: server.netra.sockets.counts() == (0, 0), "socket released")
        health = await http.get("/health", timeout=5)
        assert health.status_code == 200
    again = await open_socket(server, user.token)
    await again.send({"type": "ping"})
    assert (await again.until(lambda f: f["type"] == "pong"))["type"] == "pong"
    await again.close()


async def test_a_client_past_its_frame_budget_reads_why_before_the_close(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(websocket={"frames_per_s": 1, "frame_burst": 3})
    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        for _ in range(50):
            await socket.send({"type": "ping"})
        assert await socket.close_code() == 1008
        # The frames queued before the close were delivered, the last saying why.
        limited = [f for f in socket.frames if f.get("code") == "rate_limited"]
        assert len(limited) >= 3, socket.frames
        assert socket.frames[-1]["code"] == "rate_limited", socket.frames
        assert all(f["retry_after"] >= 1 for f in limited)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/health", {"GET"}),
        ("PUT", "/auth/login", {"POST"}),
        ("POST", "/threads/th_any", {"GET"}),
    ],
)
async def test_a_wrong_method_is_405_naming_the_allowed_ones(
    http: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405, response.text
    assert {m.strip() for m in response.headers.get("allow", "").split(",")} == allowed
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert error["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/threads/%00"),
        ("GET", "/threads/th%00x/messages"),
        ("POST", "/threads/%01/runs"),
        ("GET", "/runs/%00"),
        ("GET", "/runs/r%00/events"),
        ("POST", "/runs/%00/cancel"),
        ("GET", "/threads/%ED%A0%80"),
        ("GET", "/threads/" + "x" * 300),
    ],
)
async def test_an_id_in_the_path_that_no_id_can_be_is_422(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    """Ids are short ASCII words: anything else (a NUL, which PostgreSQL refuses in text, a
    byte that is not UTF-8, a page of text) is refused before it reaches the database."""
    user = await make_user(http)
    body = {"content": "hi"} if path.endswith("/runs") else None
    response = await http.request(method, path, json=body, headers=user.auth)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
