"""One live socket of one user: an ordered, gapless, duplicate-free stream of that user's events.

Everything the server writes to the socket goes through one bounded queue drained by one
sender task, so frames never interleave and a client that stops reading is disconnected
instead of growing memory. The sender keeps a cursor (the last seq the client stands at): a
live event at or below it is a duplicate and is dropped; one beyond ``cursor + 1`` means the
bus skipped something, and the gap is read from the event log before the event is sent. When
the bus says it may have lost events (``catch_up``), the log is read past the cursor.

Per socket every seq is sent at most once and in increasing order, always. A client that
names its resume point when it connects gets its replay before any live event; a ``resume``
frame that would go back behind what this socket already sent is answered
``recovered: false`` (reload over HTTP) rather than repeating events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketState

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.repositories import EventRepository
from netra.db.sql import Tx
from netra.events.envelope import Event
from netra.ids import new_id
from netra.realtime.frames import Connected, Outgoing, Resumed, ResumeFailure

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 1013
"""The client stopped reading and fell too far behind; it should reconnect and resume."""
CLOSE_INTERNAL = 1011
"""A frame could not be sent; the client should reconnect and resume."""
FLUSH_S = 2.0
"""How long a closing socket may take to send the frames queued before its close."""


@dataclass(frozen=True, slots=True)
class _ResumeRequest:
    after_seq: int


@dataclass(frozen=True, slots=True)
class _CatchUp:
    """Read the event log past the cursor: the bus may have lost deliveries."""


@dataclass(frozen=True, slots=True)
class _Close:
    """Close the socket once every frame queued before this one was sent."""

    code: int
    reason: str


_Item = Event | str | _ResumeRequest | _CatchUp | _Close


class Connection:
    """A user's socket and its sender task."""

    def __init__(
        self,
        websocket: WebSocket,
        ctx: UserExecutionContext,
        *,
        db: DatabaseManager,
        max_pending: int,
        replay_page: int,
    ) -> None:
        self.id = new_id("conn")
        self.ctx = ctx
        self.user_id = ctx.user_id
        self._ws = websocket
        self._db = db
        self._max_pending = max_pending
        self._replay_page = replay_page
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._cursor = 0
        self._sent_max = 0
        """The highest seq this socket has sent: no later frame may go back behind it."""
        self._catch_up_queued = False
        self._sender: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._flushing = False
        self.close_code: int | None = None
        self.sent_events = 0

    @property
    def cursor(self) -> int:
        return self._cursor

    def start(self, cursor: int, greeting: Connected, *, resume_from: int | None) -> None:
        """Start sending: ``greeting`` first; then, when the client named where it stands
        (``resume_from``), the replay after it; then whatever was queued meanwhile (live
        events may arrive between subscribing and reading the cursor)."""
        self._cursor = cursor
        first = greeting.dumps()
        self._sender = asyncio.create_task(
            self._send_loop(first, resume_from), name=f"ws-send:{self.id}"
        )

    async def stop(self) -> None:
        """End the sender; one that is flushing frames before a close gets a short while."""
        if self._sender is not None:
            if self._flushing:
                with contextlib.suppress(Exception, TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._sender), FLUSH_S)
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    # ---- called from the manager and the receive loop (never block) ----------------------
    def offer(self, events: Sequence[Event]) -> None:
        """Queue live events; a client too far behind is disconnected (it can resume)."""
        for event in events:
            if not self._put(event):
                return

    def send_frame(self, frame: Outgoing) -> None:
        self._put(frame.dumps())

    def request_resume(self, after_seq: int) -> None:
        self._put(_ResumeRequest(after_seq))

    def catch_up(self) -> None:
        """Send whatever the event log holds past the cursor: the bus may have lost some."""
        if not self._catch_up_queued and self._put(_CatchUp()):
            self._catch_up_queued = True

    def _put(self, item: _Item) -> bool:
        """Queue one item; past the bound the client is too far behind and is disconnected."""
        if self.close_code is not None:
            return False
        if self._queue.qsize() >= self._max_pending:
            self.close(CLOSE_TOO_SLOW, "client too slow; reconnect and resume")
            return False
        self._queue.put_nowait(item)
        return True

    def close(self, code: int, reason: str = "", *, flush: bool = False) -> None:
        """Close the socket with ``code`` (idempotent). With ``flush`` the frames already
        queued are sent first (an explanation the client should read); otherwise sending
        stops at once."""
        if self.close_code is not None:
            return
        self.close_code = code
        if flush and self._sender is not None and not self._sender.done():
            self._flushing = True
            self._queue.put_nowait(_Close(code, reason))
            return
        if self._sender is not None and self._sender is not asyncio.current_task():
            self._sender.cancel()
        self._closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        if self._ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):  # the peer may be gone already
                async with asyncio.timeout(2):
                    await self._ws.close(code, reason)

    # ---- the sender task -----------------------------------------------------------------
    async def _send_loop(self, first: str, resume_from: int | None) -> None:
        try:
            await self._ws.send_text(first)
            if resume_from is not None:
                await self._resume(resume_from)
            while True:
                item = await self._queue.get()
                if isinstance(item, Event):
                    await self._send_event(item)
                elif isinstance(item, _ResumeRequest):
                    await self._resume(item.after_seq)
                elif isinstance(item, _CatchUp):
                    self._catch_up_queued = False
                    await self._replay()
                elif isinstance(item, _Close):
                    await self._close(item.code, item.reason)
                    return
                else:
                    await self._ws.send_text(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A dead peer (or a frame that cannot be sent) ends the sender; without a sender
            # the socket is useless, so it is closed rather than left open and counted.
            log.debug("sender of %s stopped: %s", self.id, exc)
            self.close(CLOSE_INTERNAL, "internal error")

    async def _send_event(self, event: Event) -> None:
        if event.seq <= self._cursor:
            return
        if event.seq > self._cursor + 1:
            await self._replay(until=event.seq - 1)
        await self._send_stored(event.seq, event.body)

    async def _send_stored(self, seq: int, body: str) -> None:
        await self._ws.send_text(body)
        self._cursor = self._sent_max = seq
        self.sent_events += 1

    async def _replay(self, *, until: int | None = None) -> None:
        """Send stored events after the cursor (up to ``until``), page by page."""
        while until is None or self._cursor < until:
            rows = await self._db.transact(
                EventRepository(self.ctx).after(self._cursor, limit=self._replay_page)
            )
            if not rows:
                return
            for seq, body in rows:
                if until is not None and seq > until:
                    return
                await self._send_stored(seq, body)

    async def _resume(self, after_seq: int) -> None:
        """Answer a resume point with ``resumed``, then replay every stored event after it,
        unless that would repeat what this socket already sent or the log no longer holds
        it: then ``recovered`` is false with the reason, and the client reloads over HTTP."""
        last_seq, first_seq = await self._db.transact(_bounds(self.ctx))
        oldest_available = first_seq if first_seq is not None else last_seq + 1
        reason = self._failure(after_seq, last_seq, oldest_available)
        frame = (
            Resumed(after_seq=after_seq, last_seq=last_seq, recovered=True)
            if reason is None
            else Resumed(after_seq=after_seq, last_seq=last_seq, recovered=False, reason=reason)
        )
        await self._ws.send_text(frame.dumps())
        if reason is not None:
            # The client reloads over HTTP, which holds everything up to last_seq.
            self._cursor = max(self._cursor, last_seq)
            return
        self._cursor = after_seq
        await self._replay()

    def _failure(
        self, after_seq: int, last_seq: int, oldest_available: int
    ) -> ResumeFailure | None:
        """Why this socket cannot resume from ``after_seq``; None when it can."""
        if after_seq > last_seq:
            return "future"
        if after_seq < self._sent_max:
            return "already_sent"
        if after_seq < oldest_available - 1:
            return "expired"
        return None


def _bounds(ctx: UserExecutionContext) -> Tx[tuple[int, int | None]]:
    """The user's last seq, and the oldest the log still holds."""
    events = EventRepository(ctx)
    last_seq = yield from events.last_seq()
    return last_seq, (yield from events.first_seq())
