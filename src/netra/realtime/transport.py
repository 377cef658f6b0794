"""Where a connection's frames go: the ``Transport`` protocol, and the WebSocket's.

A ``Connection`` (``netra.realtime.connection``) decides what to send and in which order —
its cursor, the gaps it fills from the log, its backlog — and hands the texts to its
transport, which frames and writes them: a WebSocket (``WebSocketTransport``, here) or a
Server-Sent Events response (``netra.realtime.sse.EventStreamTransport``). A transport
writes at once when it can, from the caller's own call (``write_now``), and says when it
cannot; the connection then waits on it (``write``) from the task that drains its backlog.

``BufferedTransport`` holds what is written for a reader in this process, which takes it a
batch at a time: an SSE response's body, or the OpenAI-compatible API reading a run's events
(``netra.api.openai_compat``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from starlette.types import Send

from netra.events.envelope import Event
from netra.realtime.frames import Outgoing
from netra.server import DirectSocket, Written


class Transport(Protocol):
    """The sending side of one connection."""

    def event_text(self, event: Event) -> str:
        """What carries ``event`` on the wire (the envelope's text, framed for it)."""
        ...

    def frame_text(self, frame: Outgoing, at: int) -> str:
        """What carries a server frame; ``at`` is the seq the client stands at once it has
        the frame (a WebSocket has no use for it; an SSE message says it as its ``id``)."""
        ...

    def write_now(self, texts: Sequence[str]) -> Written:
        """Write every text at once, without waiting: ``SENT``; or nothing, because the
        peer is behind or the transport only writes from a task (``PAUSED``: use
        ``write``), or because it is gone (``CLOSED``)."""
        ...

    async def write(self, texts: Sequence[str]) -> None:
        """Write, waiting while the peer is behind; ``ConnectionError`` when it is gone."""
        ...

    def close_now(self, code: int, reason: str) -> bool:
        """Close behind what was written, without waiting; False when this transport
        closes only from a task (``close``)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close behind what was written; never raises for a peer that is gone."""
        ...


class WebSocketTransport:
    """A WebSocket: written straight through the server's ``DirectSocket`` where it offers
    one, else through the ASGI ``send`` (one message per frame, from a task)."""

    __slots__ = ("_direct", "_send")

    def __init__(self, send: Send, direct: DirectSocket | None) -> None:
        self._send = send
        self._direct = direct

    def event_text(self, event: Event) -> str:
        return event.body

    def frame_text(self, frame: Outgoing, at: int) -> str:
        return frame.dumps()

    def write_now(self, texts: Sequence[str]) -> Written:
        if self._direct is None:
            return Written.PAUSED
        return self._direct.write_texts(texts)

    async def write(self, texts: Sequence[str]) -> None:
        if self._direct is None:
            for text in texts:
                await self._send({"type": "websocket.send", "text": text})
            return
        while True:
            written = self._direct.write_texts(texts)
            if written is Written.SENT:
                return
            if written is Written.CLOSED:
                raise ConnectionError("socket closed")
            await self._direct.drained()

    def close_now(self, code: int, reason: str) -> bool:
        if self._direct is None:
            return False
        self._direct.close_now(code, reason)
        return True

    async def close(self, code: int, reason: str) -> None:
        if self.close_now(code, reason):
            return
        with contextlib.suppress(Exception):  # the peer may be gone already
            async with asyncio.timeout(2):
                await self._send({"type": "websocket.close", "code": code, "reason": reason})


BUFFERED_MAX = 256
"""Texts waiting for the reader before a ``BufferedTransport`` pauses."""


class BufferedTransport:
    """A connection's sending side read in this process: each event's envelope text (each
    frame's JSON) is kept until the reader takes it (``batches``). Past ``BUFFERED_MAX``
    texts it pauses, and the connection's own bounded backlog takes over."""

    __slots__ = ("_buffer", "_closed", "_drained", "_ready")

    def __init__(self) -> None:
        self._buffer: list[str] = []
        """Texts written and not yet taken by the reader."""
        self._closed = asyncio.Event()
        self._ready = asyncio.Event()
        """Set when the reader has something to do: texts, or the close."""
        self._drained = asyncio.Event()
        """Set when the reader took the buffer."""
        self._drained.set()

    def event_text(self, event: Event) -> str:
        return event.body

    def frame_text(self, frame: Outgoing, at: int) -> str:
        return frame.dumps()

    def write_now(self, texts: Sequence[str]) -> Written:
        if self._closed.is_set():
            return Written.CLOSED
        if len(self._buffer) >= BUFFERED_MAX:
            return Written.PAUSED
        self._buffer.extend(texts)
        self._drained.clear()
        self._ready.set()
        return Written.SENT

    async def write(self, texts: Sequence[str]) -> None:
        while True:
            written = self.write_now(texts)
            if written is Written.SENT:
                return
            if written is Written.CLOSED:
                raise ConnectionError("stream closed")
            await self._drained.wait()

    def close_now(self, code: int, reason: str) -> bool:
        self._closed.set()
        self._ready.set()
        return True

    async def close(self, code: int, reason: str) -> None:
        self.close_now(code, reason)

    async def batches(self, *, idle_s: float | None = None) -> AsyncIterator[list[str]]:
        """What was written, a batch as it comes; an empty batch after each ``idle_s``
        without any (a heartbeat); ends once closed and everything written before the
        close was taken."""
        while True:
            if self._buffer:
                batch, self._buffer = self._buffer, []
                self._drained.set()
                yield batch
            elif self._closed.is_set():
                return
            else:
                self._ready.clear()
                try:
                    async with asyncio.timeout(idle_s):
                        await self._ready.wait()
                except TimeoutError:
                    yield []

    async def closed(self) -> None:
        """Return once the transport is closed."""
        await self._closed.wait()
