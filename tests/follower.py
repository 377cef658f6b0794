"""A client that follows one user's event stream across sockets and instances, the way the
chat page does: it reads in the background; when its socket closes (a graceful restart,
1012) or just drops (the instance was killed), it attaches to another instance and sends
``resume`` with the last seq it holds.

It keeps the events in the order it accepted them and notes every breach of the delivery
contract (a gap, a duplicate, a failed resume) instead of raising inside the reader, so the
test asserts on them. Live events that arrive on a new socket before its ``resumed`` answer
are set aside: the replay that follows the answer carries them again, in order.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Protocol

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import User, eventually, stored_events


class Endpoint(Protocol):
    @property
    def ws_url(self) -> str: ...


class Follower:
    """One user's stream, as one client sees it."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.events: list[dict[str, Any]] = []
        """Accepted events, in the order accepted."""
        self.frames: list[dict[str, Any]] = []
        """Every frame of every socket, as received."""
        self.breaches: list[str] = []
        """Where the stream broke the delivery contract."""
        self.close_codes: list[int | None] = []
        """How each socket ended: the server's close code, or None when it just dropped."""
        self.start_seq: int | None = None
        self.endpoint: Endpoint | None = None
        self._conn: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        if self.events:
            return int(self.events[-1]["seq"])
        if self.start_seq is None:
            raise RuntimeError("never attached")
        return self.start_seq

    @property
    def attached(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def attach(self, endpoint: Endpoint) -> None:
        """Open a socket on ``endpoint``; after the first one, resume where the stream was."""
        if self.attached:
            raise RuntimeError("still attached: detach first")
        resuming = self.start_seq is not None
        # A later socket names where the stream stands, so its replay precedes live events.
        url = f"{endpoint.ws_url}?after_seq={self.last_seq}" if resuming else endpoint.ws_url
        conn = await connect(url, subprotocols=["bearer", self.token])  # type: ignore[list-item]
        connected: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), 10))
        self.frames.append(connected)
        assert connected["type"] == "connected", connected
        if self.start_seq is None:
            self.start_seq = int(connected["last_seq"])
        self._conn = conn
        self.endpoint = endpoint
        self._reader = asyncio.create_task(self._read(conn, resuming))

    async def detach(self) -> None:
        """Close the socket (the runs go on) and wait for the reader to end."""
        if self._conn is not None:
            await self._conn.close()
        await self.closed()

    async def closed(self, timeout: float = 30.0) -> int | None:
        """Wait until the socket ended; how it ended (close code, None if it dropped)."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_codes[-1] if self.close_codes else None

    async def _read(self, conn: ClientConnection, resuming: bool) -> None:
        code: int | None = None
        try:
            while True:
                frame: dict[str, Any] = json.loads(await conn.recv())
                self.frames.append(frame)
                if frame["type"] == "resumed":
                    if not frame["recovered"]:
                        self.breaches.append(f"resume not recovered: {frame}")
                    resuming = False
                elif "seq" in frame:
                    if resuming:
                        self.breaches.append(f"seq {frame['seq']} came before `resumed`")
                    self._accept(frame)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
        self.close_codes.append(code)

    def _accept(self, event: dict[str, Any]) -> None:
        expected = self.last_seq + 1
        if event["seq"] < expected:
            self.breaches.append(f"duplicate: seq {event['seq']} after {expected - 1}")
            return
        if event["seq"] > expected:
            self.breaches.append(f"gap: seq {event['seq']} after {expected - 1}")
        self.events.append(event)

    async def send(self, frame: dict[str, Any]) -> None:
        if self._conn is None:
            raise RuntimeError("not attached")
        await self._conn.send(json.dumps(frame))

    async def send_message(self, content: str, **fields: Any) -> dict[str, Any]:
        """``send_message`` over the socket; its ``ack`` (or ``error``) frame."""
        client_msg_id = uuid.uuid4().hex
        await self.send(
            {"type": "send_message", "content": content, "client_msg_id": client_msg_id, **fields}
        )

        def answer() -> dict[str, Any] | None:
            return next(
                (
                    f
                    for f in self.frames
                    if f["type"] in ("ack", "error")
                    and f.get("client_msg_id", f.get("ref")) == client_msg_id
                ),
                None,
            )

        await eventually(lambda: answer() is not None, "the send_message was answered")
        found = answer()
        assert found is not None
        return found

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["run_id"] == run_id]

    def has(self, run_id: str, kind: str) -> bool:
        return any(event["type"] == kind for event in self.run_events(run_id))

    async def wait_for(self, run_id: str, kind: str, timeout: float = 30.0) -> None:
        """Until an event ``kind`` of the run arrived (``timeout`` bounds the wait; a bound,
        not a measurement)."""
        await eventually(
            lambda: self.has(run_id, kind), f"{kind} of {run_id} reached the client", timeout
        )

    async def run_to_end(self, run_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The run's events once its ``agent_completed`` arrived."""
        await self.wait_for(run_id, "agent_completed", timeout)
        return self.run_events(run_id)


def visible_answer(run_events: list[dict[str, Any]]) -> str:
    """The answer as the client shows it: deltas appended in order; a resumption keeps only
    its ``text_chars`` first characters (the part of the answer that stays valid)."""
    text = ""
    for event in run_events:
        if event["type"] == "message_delta":
            text += event["data"]["delta"]
        elif event["type"] == "agent_thinking" and "resumed" in event["data"]:
            kept = int(event["data"]["resumed"]["text_chars"])
            assert 0 <= kept <= len(text), (kept, text)
            text = text[:kept]
    return text


def resumptions(run_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``resumed`` notes of a run, in order: ``{reason, attempt, text_chars}``."""
    return [
        event["data"]["resumed"]
        for event in run_events
        if event["type"] == "agent_thinking" and "resumed" in event["data"]
    ]


async def assert_same_stream(follower: Follower, http: httpx.AsyncClient, user: User) -> None:
    """The client holds exactly the user's stored stream: every event, in order, no gap, no
    duplicate (events set aside before a resume answer came again after it)."""
    start = follower.start_seq or 0
    stored = await stored_events(http, user, start)
    assert stored, "the user's stream is empty"
    await eventually(
        lambda: follower.last_seq >= stored[-1]["seq"], "the client caught up with the log"
    )
    assert follower.breaches == [], follower.breaches
    seqs = [event["seq"] for event in stored]
    assert seqs == list(range(start + 1, start + 1 + len(seqs))), seqs
    assert follower.events == stored
