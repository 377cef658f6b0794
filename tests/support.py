"""Test support: a real uvicorn server in a thread, and real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from netra.app import Netra, create_app
from netra.config import UnifiedConfigurationManager
from netra.server import uvicorn_config

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


@contextmanager
def live_server(config: UnifiedConfigurationManager) -> Iterator[LiveServer]:
    app = create_app(config=config)
    server = uvicorn.Server(uvicorn_config(app, config.settings, port=0))
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
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)


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
        await self.until(
            lambda f: f["type"] == "agent_completed" and f["run_id"] == run_id, timeout
        )
        return self.run_events(run_id)

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("run_id") == run_id and f["type"] in RUN_EVENTS]

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f]

    async def close(self) -> None:
        await self.conn.close()


async def open_socket(server: LiveServer, token: str, **kwargs: Any) -> Socket:
    conn = await connect(server.ws_url, subprotocols=["bearer", token], **kwargs)  # type: ignore[list-item]
    socket = Socket(conn)
    socket.connected = await socket.recv()
    assert socket.connected["type"] == "connected", socket.connected
    return socket


def answer_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["delta"] for e in events if e["type"] == "message_delta")


def assert_run_grammar(events: list[dict[str, Any]]) -> None:
    """agent_started first, agent_completed last and once, tool calls paired, seq increasing."""
    types = [e["type"] for e in events]
    assert types[0] == "agent_started", types
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
