"""Where a connection's frames go: the ``Transport`` protocol, and the WebSocket's.

A ``Connection`` (``netra.realtime.connection``) decides what to send and in which order —
its cursor, the gaps it fills from the log, its backlog — and hands the texts to its
transport, which frames and writes them: a WebSocket (``WebSocketTransport``, here) or a
Server-Sent Events response (``netra.realtime.sse.EventStreamTransport``). A transport
writes at once when it can, from the caller's own call (``write_now``), and says when it
cannot; the connection then waits on it (``write``) from the task that drains its backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
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
