"""Server-Sent Events: a connection's transport over an HTTP response (``text/event-stream``).

Every message is one event or one server frame, as the socket sends them, in three lines
and a blank one::

    id: 1042
    event: tool_completed
    data: {"type":"tool_completed","seq":1042,…}

``data`` is the envelope's (or the frame's) JSON text on one line, byte for byte what a
socket receives; ``event`` is its ``type``; ``id`` is the seq the client stands at once it
has the message — an event's own seq, and for a ``connected`` or ``resumed`` frame the seq
the events after it start from — so a client that reconnects with ``Last-Event-ID`` resumes
exactly there. While nothing else is sent, a comment line (``: ping``) goes out every
heartbeat, so that proxies keep the response open.

``EventStreamTransport`` is the ``Transport``: a ``BufferedTransport``
(``netra.realtime.transport``), a small buffer the response's body takes from. A client that
reads slower than events come leaves the body waiting on the network; past ``BUFFERED_MAX``
texts the transport pauses and the connection's own bounded backlog takes over, as for a
socket. ``EventStreamResponse`` is the
response (Starlette's ``StreamingResponse``): it ends when the connection closes — its run
ended, its session was revoked, its token expired, the server stops, or the client fell too
far behind — or when the client goes away; either way the connection is then released.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from netra.events.envelope import Event
from netra.realtime.frames import Outgoing
from netra.realtime.transport import BufferedTransport

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""No cache may keep the stream, and no proxy (nginx) may buffer it."""
PING = b": ping\n\n"
FLUSH_S = 2.0
"""How long a response closed by the server may take to send what was written before it:
past it the client is not reading, and the response is cut off."""


class EventStreamTransport(BufferedTransport):
    """The sending side of one SSE response."""

    __slots__ = ("_heartbeat_s",)

    def __init__(self, *, heartbeat_s: float) -> None:
        super().__init__()
        self._heartbeat_s = heartbeat_s

    def event_text(self, event: Event) -> str:
        return f"id: {event.seq}\nevent: {event.type}\ndata: {event.body}\n\n"

    def frame_text(self, frame: Outgoing, at: int) -> str:
        return f"id: {at}\nevent: {frame.type}\ndata: {frame.dumps()}\n\n"

    async def body(self) -> AsyncIterator[bytes]:
        """What was written, as it comes; a ping after each heartbeat without any; ends
        once closed and everything written before the close was taken."""
        async for texts in self.batches(idle_s=self._heartbeat_s):
            yield "".join(texts).encode() if texts else PING


class EventStreamResponse(StreamingResponse):
    """An SSE response over an ``EventStreamTransport`` — or over a ``BufferedTransport``
    whose texts ``body`` turns into messages of its own (the OpenAI-compatible API's);
    ``release`` runs when it ends, however it ends (the connection leaves its manager, its
    task stops)."""

    media_type = MEDIA_TYPE

    def __init__(
        self,
        transport: BufferedTransport,
        release: Callable[[], Awaitable[None]] | None = None,
        *,
        body: AsyncIterator[bytes] | None = None,
    ) -> None:
        if body is None:  # the connection's own messages
            if not isinstance(transport, EventStreamTransport):
                raise TypeError("a response over a plain buffer needs its body")
            body = transport.body()
        super().__init__(body, headers=HEADERS, media_type=MEDIA_TYPE)
        self._transport = transport
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        # Starlette ends the body when the client disconnects; the watch ends it when the
        # server closed the transport and the body is stuck behind a client not reading.
        streaming = loop.create_task(super().__call__(scope, receive, send))
        closed = loop.create_task(self._transport.closed())
        try:
            await asyncio.wait((streaming, closed), return_when=asyncio.FIRST_COMPLETED)
            if not streaming.done():
                await asyncio.wait((streaming,), timeout=FLUSH_S)
            if streaming.done():
                streaming.result()  # what the response raised, raised here
        finally:
            for task in (streaming, closed):
                task.cancel()
            await asyncio.gather(streaming, closed, return_exceptions=True)
            if self._release is not None:
                await self._release()
