"""Test support: a real uvicorn server in a thread, and real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from inspect import isawaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from netra.agents.base import AgentDefinition
from netra.app import create_app
from netra.config import UnifiedConfigurationManager
from netra.db.sql import Statement, execute
from netra.instance import Netra
from netra.models.base import ModelRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.server import DIRECT, DirectSocket, Written, uvicorn_config
from netra.tools.tool import SideEffects, tool

T = TypeVar("T")
RUN_EVENTS = {
    "agent_started",
    "agent_thinking",
    "message_delta",
    "tool_executing",
    "tool_completed",
    "agent_completed",
    "approval_required",
}


@dataclass
class LiveServer:
    """A Netra server on 127.0.0.1 in a background thread."""

    url: str
    ws_url: str
    netra: Netra
    server: uvicorn.Server
    thread: threading.Thread
    watch: CanaryWatch | None = None

    async def call(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``work()`` on the server's own event loop, where its objects live."""
        loop = self.server.servers[0].get_loop()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work(), loop))


class CanaryWatch:
    """Unique secret values planted in every test server's configuration, and the places
    they must never appear: log records, HTTP and WebSocket payloads sent to clients, and
    the text stored in the database. Hits are collected; the session fails on any."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex
        self.jwt_secret = f"canary-jwt-secret-{tag}"
        self.db_password = f"canary-db-password-{tag}"
        self.model_api_key = f"canary-model-key-{tag}"
        self.mcp_header = f"canary-mcp-header-{tag}"
        self.values = [self.jwt_secret, self.db_password, self.model_api_key, self.mcp_header]
        self.hits: list[str] = []
        self.scanned = {"log records": 0, "payloads": 0, "database rows": 0}

    def plant(self, secret: str) -> None:
        """Watch a secret a server handed out once (an API key's): from now on it must
        appear nowhere either."""
        self.values.append(secret)

    def check(self, where: str, data: str | bytes) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        for value in self.values:
            if value in text:
                self.hits.append(f"{where}: {text[:300]!r}")

    def log_handler(self) -> logging.Handler:
        watch = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                watch.scanned["log records"] += 1
                text = record.getMessage()
                if record.exc_info:
                    text += logging.Formatter().formatException(record.exc_info)
                watch.check(f"log record of {record.name}", text)

        return Handler(logging.DEBUG)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The application, with everything it sends to clients checked."""

        async def watched(scope: Scope, receive: Receive, send: Send) -> None:
            async def checked_send(message: Message) -> None:
                self.scanned["payloads"] += 1
                where = f"{message['type']} on {scope.get('path')}"
                for key in ("body", "text", "bytes", "reason"):
                    if message.get(key):
                        self.check(where, message[key])
                for name, value in message.get("headers", ()):
                    self.check(f"{where} header {name!r}", value)
                await send(message)

            extensions = scope.get("extensions") or {}
            if DIRECT in extensions:  # frames written past ``send`` are checked too
                socket = CheckedSocket(self, extensions[DIRECT]["socket"], str(scope.get("path")))
                scope = {**scope, "extensions": {**extensions, DIRECT: {"socket": socket}}}
            await app(scope, receive, checked_send)

        return watched

    def scan_database(self, url: str) -> None:
        """Every text value of every row of every table at ``url``."""

        async def scan() -> None:
            engine = create_async_engine(url)
            try:
                async with engine.connect() as conn:
                    tables = sa.MetaData()
                    await conn.run_sync(tables.reflect)
                    for table in tables.sorted_tables:
                        for row in await conn.execute(sa.select(table)):
                            self.scanned["database rows"] += 1
                            self.check(f"database table {table.name}", repr(tuple(row)))
            finally:
                await engine.dispose()

        run_on_own_loop(scan)


class CheckedSocket:
    """A ``DirectSocket`` whose every frame and close reason the canary watch reads first."""

    def __init__(self, watch: CanaryWatch, socket: DirectSocket, path: str) -> None:
        self._watch = watch
        self._socket = socket
        self._where = f"websocket frame on {path}"

    def write_texts(self, texts: Sequence[str]) -> Written:
        for text in texts:
            self._watch.scanned["payloads"] += 1
            self._watch.check(self._where, text)
        return self._socket.write_texts(texts)

    async def drained(self) -> None:
        await self._socket.drained()

    def close_now(self, code: int, reason: str) -> None:
        self._watch.check(f"{self._where} (close reason)", reason)
        self._socket.close_now(code, reason)


def run_on_own_loop(work: Callable[[], Coroutine[Any, Any, T]], timeout: float = 60) -> T:
    """``work()`` on a fresh event loop in a thread of its own (the caller may be inside a
    running loop, or need one that outlives a test's); its result, or what it raised."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(work()))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="own-loop")
    worker.start()
    worker.join(timeout=timeout)
    if failure:
        raise failure[0]
    if not outcome:
        raise TimeoutError(f"no answer within {timeout} s")
    return outcome[0]


@contextmanager
def live_server(
    config: UnifiedConfigurationManager,
    watch: CanaryWatch | None = None,
    *,
    websockets: str | None = None,
) -> Iterator[LiveServer]:
    """``websockets`` names another of uvicorn's WebSocket protocols than Netra's own."""
    app = create_app(config=config)
    served = watch.wrap(app) if watch is not None else app
    options = uvicorn_config(served, config.settings, port=0)
    if websockets is not None:
        options.ws = websockets
    server = uvicorn.Server(options)
    thread = threading.Thread(target=server.run, name="netra-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server failed to start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(
            f"http://127.0.0.1:{port}",
            f"ws://127.0.0.1:{port}/ws",
            app.state.netra,
            server,
            thread,
            watch,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if watch is not None:
            watch.scan_database(config.settings.database_url)


async def on_server_loop(server: LiveServer, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on the server's own event loop (its thread) and wait for its result:
    for a test that hands the server's objects something, as its own code would."""
    loop = server.server.servers[0].get_loop()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))


@dataclass
class User:
    email: str
    password: str
    token: str
    id: str
    http: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(http: httpx.AsyncClient, label: str = "user") -> User:
    email = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery"
    response = await http.post("/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    response = await http.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    return User(email, password, token, response_user_id(token), http)


def run_netra(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``netra`` command in a child process, with ``env`` over a NETRA_-free environment."""
    return run_python("-m", "netra", *args, env=env, cwd=cwd)


def run_python(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """This Python in a child process, with ``env`` over a NETRA_-free environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    return subprocess.run(
        [sys.executable, *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def grant_admin(server: LiveServer, email: str) -> None:
    """Make a user an administrator the way an operator does: with the CLI."""
    done = run_netra(
        "users",
        "grant-admin",
        email,
        env={"NETRA_DATABASE__URL": server.netra.settings.database_url},
    )
    assert done.returncode == 0, done.stderr
    if server.watch is not None:
        server.watch.check("netra users grant-admin output", done.stdout + done.stderr)


ALL_SCOPES = ("threads:read", "threads:write", "runs:write")


async def make_key(
    server: LiveServer,
    user: User,
    scopes: Sequence[str] = ALL_SCOPES,
    *,
    name: str = "test key",
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """A new API key of ``user``'s (``POST /me/api-keys``): the answer, with its ``secret``,
    which the canary watch then looks for everywhere (it is never to be shown again)."""
    body: dict[str, Any] = {"name": name, "scopes": list(scopes)}
    if expires_at is not None:
        body["expires_at"] = expires_at.isoformat()
    response = await user.http.post("/me/api-keys", json=body, headers=user.auth)
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    if server.watch is not None:
        server.watch.plant(key["secret"])
    return key


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def expire_key(server: LiveServer, key_id: str) -> None:
    """Make a key's expiry an hour past, as the passing of time would (a key cannot be made
    already expired, and a test does not wait hours)."""
    expire = Statement(
        "test: an API key's expiry passed",
        "UPDATE api_keys SET expires_at = :expires_at WHERE id = :id",
    )
    past = datetime.now(UTC) - timedelta(hours=1)
    await server.call(lambda: server.netra.db.transact(execute(expire(id=key_id, expires_at=past))))


def response_user_id(token: str) -> str:
    import jwt

    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


@dataclass
class Socket:
    """A WebSocket client that keeps every frame it received."""

    conn: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    connected: dict[str, Any] = field(default_factory=dict)

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        frame: dict[str, Any] = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(frame))

    async def until(self, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
        """Receive until a frame matches ``predicate``; returns that frame."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if predicate(frame):
                    return frame

    async def first(self, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
        """The first frame, already received or still to come, that matches ``predicate``."""
        for frame in self.frames:
            if predicate(frame):
                return frame
        return await self.until(predicate, timeout)

    async def send_message(self, content: str, **fields: Any) -> dict[str, Any]:
        client_msg_id = fields.pop("client_msg_id", uuid.uuid4().hex)
        await self.send(
            {"type": "send_message", "content": content, "client_msg_id": client_msg_id, **fields}
        )
        return await self.until(
            lambda f: (
                f["type"] in ("ack", "error")
                and f.get("client_msg_id", f.get("ref")) == client_msg_id
            )
        )

    async def run_to_end(self, run_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The run's events once its ``agent_completed`` is here (it may be already: waiting
        for another run can read past this one's end)."""
        await self.first(
            lambda f: f["type"] == "agent_completed" and f["run_id"] == run_id, timeout
        )
        return self.run_events(run_id)

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("run_id") == run_id and f["type"] in RUN_EVENTS]

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f]

    async def close(self) -> None:
        await self.conn.close()

    async def close_code(self, timeout: float = 10.0) -> int:
        """Read (and keep) frames until the server closes the socket; its close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.recv(timeout)
        except ConnectionClosed as closed:
            if closed.rcvd is None:
                raise AssertionError("the socket closed without a close frame") from closed
            return closed.rcvd.code


async def open_socket(
    server: LiveServer, token: str, *, after_seq: int | None = None, **kwargs: Any
) -> Socket:
    """A socket of ``token``'s user, past its ``connected`` frame. With ``after_seq`` the
    client names where it stands: the server's ``resumed`` and replay come before any live
    event."""
    url = server.ws_url if after_seq is None else f"{server.ws_url}?after_seq={after_seq}"
    conn = await connect(url, subprotocols=["bearer", token], **kwargs)  # type: ignore[list-item]
    socket = Socket(conn)
    socket.connected = await socket.recv()
    assert socket.connected["type"] == "connected", socket.connected
    return socket


def answer_text(events: list[dict[str, Any]]) -> str:
    """The answer a client shows: the run's deltas, cut back to ``text_chars`` wherever the
    run resumed (a turn cut off mid-stream is streamed again)."""
    text = ""
    for event in events:
        if event["type"] == "message_delta":
            text += event["data"]["delta"]
        elif event["type"] == "agent_thinking" and "resumed" in event["data"]:
            text = text[: event["data"]["resumed"]["text_chars"]]
    return text


def assert_run_grammar(events: list[dict[str, Any]]) -> None:
    """agent_started first, agent_completed last and once, tool calls paired, seq increasing."""
    types = [e["type"] for e in events]
    assert types[0] == "agent_started", [(e["type"], e["seq"]) for e in events]
    assert types[-1] == "agent_completed", types
    assert types.count("agent_started") == 1 and types.count("agent_completed") == 1, types
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps), stamps
    executing = [e["data"]["tool_call_id"] for e in events if e["type"] == "tool_executing"]
    completed = [e["data"]["tool_call_id"] for e in events if e["type"] == "tool_completed"]
    assert sorted(executing) == sorted(completed), (executing, completed)
    for call_id in executing:
        start = next(
            i
            for i, e in enumerate(events)
            if e["type"] == "tool_executing" and e["data"]["tool_call_id"] == call_id
        )
        end = next(
            i
            for i, e in enumerate(events)
            if e["type"] == "tool_completed" and e["data"]["tool_call_id"] == call_id
        )
        assert start < end


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 15.0
) -> None:
    """Wait until ``condition`` holds (work that happens in the background); fail naming
    ``what`` if it never does. A bound on waiting, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"never happened within {timeout} s: {what}")
        await asyncio.sleep(0.01)


async def submit_run(
    http: httpx.AsyncClient, user: User, content: str, *, agent: str | None = None
) -> dict[str, Any]:
    """A new thread and a message on it over HTTP (to whichever server ``http`` reaches),
    for ``agent`` (default: the thread's); the ``202`` ack: ``{client_msg_id, message_id,
    thread_id, run_id}``."""
    thread = await http.post("/threads", json={}, headers=user.auth)
    assert thread.status_code == 201, thread.text
    body = {"content": content} if agent is None else {"content": content, "agent": agent}
    ack = await http.post(f"/threads/{thread.json()['id']}/runs", json=body, headers=user.auth)
    assert ack.status_code == 202, ack.text
    accepted: dict[str, Any] = ack.json()
    return accepted


async def stored_events(
    http: httpx.AsyncClient, user: User, after_seq: int = 0
) -> list[dict[str, Any]]:
    """Every event of the user's stream after ``after_seq``, from the event log."""
    items: list[dict[str, Any]] = []
    while True:
        response = await http.get(f"/events?after_seq={after_seq}&limit=500", headers=user.auth)
        assert response.status_code == 200, response.text
        page: list[dict[str, Any]] = response.json()["items"]
        if not page:
            return items
        items += page
        after_seq = page[-1]["seq"]


async def assistant_messages(
    http: httpx.AsyncClient, user: User, thread_id: str, run_id: str
) -> list[str]:
    """The assistant messages a run stored in its thread (one once it answered)."""
    response = await http.get(f"/threads/{thread_id}/messages", headers=user.auth)
    assert response.status_code == 200, response.text
    return [
        m["content"]
        for m in response.json()["items"]
        if m["role"] == "assistant" and m["run_id"] == run_id
    ]


def hold_runs(
    server: LiveServer,
    gate: threading.Event,
    *,
    holds: Callable[[ModelRequest], bool] = lambda request: True,
) -> None:
    """Every run on ``server`` (whose request ``holds``) calls the ``hold`` tool, which
    returns once ``gate`` is set, then answers: runs stay executing, holding their users'
    slots, until the test lets go. Other runs answer at once."""

    @tool(description="Wait until the test lets go.")
    async def hold() -> str:
        # The gate is set from the test's thread, so no asyncio.Event of the server's loop
        # can carry it, and a worker thread blocked on it would starve the loop's pool.
        while not gate.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return "released"

    server.netra.tools.register("hold", hold)
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = lambda request: (
        ScriptedTurn.text("done waiting")
        if any(m.role == "tool" for m in request.messages)
        else ScriptedTurn.call("hold", {})
        if holds(request)
        else ScriptedTurn.text("done at once")
    )


def _mailer(request: ModelRequest) -> ScriptedTurn:
    """Ask for an email to be sent (a call that needs approval); then report the result."""
    if request.messages[-1].role == "tool":
        return ScriptedTurn.text("sent")
    return ScriptedTurn.call("send_email", {"to": "boss@example.com"}, call_id="call_mail")


def add_mailer(server: LiveServer) -> LiveServer:
    """Give ``server`` a ``mailer`` agent that asks, through the scripted model, for a
    ``send_email`` call that needs the user's approval (then answers ``sent``)."""

    @tool(description="Send an email.", side_effects=SideEffects.UNSAFE, requires_approval=True)
    def send_email(to: str) -> str:
        return f"sent to {to}"

    server.netra.tools.register("send_email", send_email)
    server.netra.agents.register(
        AgentDefinition(name="mailer", description="Sends email.", model="scripted")
    )
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = _mailer
    return server


@dataclass
class SseMessage:
    """One Server-Sent Events message: its fields, and ``data`` parsed as JSON."""

    id: str | None
    event: str | None
    data: dict[str, Any]


@dataclass
class EventStream:
    """An SSE client on a real streaming HTTP response: keeps every message it received
    and counts the comment lines (pings)."""

    response: httpx.Response
    messages: list[SseMessage] = field(default_factory=list)
    pings: int = 0
    ended: bool = False
    _lines: Any = None

    async def next(self, timeout: float = 10.0) -> SseMessage | None:
        """The next message (comments counted on the way); None once the response ended."""
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                try:
                    line = await anext(self._lines)
                except StopAsyncIteration:
                    self.ended = True
                    return None
                if line.startswith(":"):
                    self.pings += 1
                elif line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                elif fields:
                    message = SseMessage(
                        fields.get("id"), fields.get("event"), json.loads(fields["data"])
                    )
                    self.messages.append(message)
                    return message

    async def until(self, predicate: Any, timeout: float = 15.0) -> SseMessage:
        """Receive until a message's data matches ``predicate``; that message."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if message is None:
                    raise AssertionError("the stream ended first")
                if predicate(message.data):
                    return message

    async def to_end(self, timeout: float = 20.0) -> list[SseMessage]:
        """Every message until the server ends the response."""
        async with asyncio.timeout(timeout):
            while await self.next(timeout) is not None:
                pass
        return self.messages

    def events(self) -> list[dict[str, Any]]:
        """The event envelopes received, in order."""
        return [m.data for m in self.messages if "seq" in m.data]

    async def close(self) -> None:
        """Drop the connection, as a client killed mid-stream does."""
        await self.response.aclose()


async def open_stream(
    http: httpx.AsyncClient,
    path: str,
    user: User,
    *,
    last_event_id: int | None = None,
    after_seq: int | None = None,
) -> EventStream:
    """``GET path`` as an SSE client of ``user``: the response open, its body not read."""
    headers = dict(user.auth)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    params = {"after_seq": after_seq} if after_seq is not None else None
    # No read timeout: a stream is quiet between events (the reader bounds its own waits).
    timeout = httpx.Timeout(10.0, read=None)
    request = http.build_request("GET", path, headers=headers, params=params, timeout=timeout)
    response = await http.send(request, stream=True)
    assert response.status_code == 200, (await response.aread()).decode()
    return EventStream(response)
