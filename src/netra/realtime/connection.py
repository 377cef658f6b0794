"""One live socket of one user: an ordered, gapless, duplicate-free stream of that user's events.

Frames reach the client in the order they were handed to the connection. A socket with
nothing waiting writes what it is handed at once, from the caller's own call: the bus hands a
user's events to each of that user's sockets, and each writes them in one system call, with
no task, queue or await per socket (``netra.server.DirectSocket``). Only when something has
to wait — the event log read that fills a gap, a resume or catch-up, a client that reads
slower than the server writes (the transport pauses) — do frames wait in a backlog, which one
task drains in order and ends with. The backlog is bounded (``max_pending``): a client that
stops reading is disconnected with 1013 instead of growing memory.

The connection keeps a cursor (the last seq the client stands at): a live event at or below
it is a duplicate and is dropped; one beyond ``cursor + 1`` means the bus skipped something,
and the gap is read from the event log before the event is sent. When the bus says it may
have lost events (``catch_up``), the log is read past the cursor.

Per socket every seq is sent at most once and in increasing order, always. A client that
names its resume point when it connects gets its replay before any live event; a ``resume``
frame that would go back behind what this socket already sent is answered
``recovered: false`` (reload over HTTP) rather than repeating events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import Send

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.repositories import EventRepository
from netra.db.sql import Tx
from netra.events.envelope import Event
from netra.realtime.frames import Outgoing, Resumed, ResumeFailure
from netra.server import DirectSocket, Written

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
    """A user's socket: its cursor, and the backlog (with the task draining it) while one
    exists."""

    __slots__ = (
        "_backlog",
        "_catch_up_queued",
        "_cursor",
        "_db",
        "_direct",
        "_flushing",
        "_max_pending",
        "_replay_page",
        "_send",
        "_sent_max",
        "_task",
        "close_code",
        "ctx",
        "sent_events",
        "user_id",
    )

    def __init__(
        self,
        send: Send,
        direct: DirectSocket | None,
        ctx: UserExecutionContext,
        *,
        db: DatabaseManager,
        max_pending: int,
        replay_page: int,
    ) -> None:
        self.ctx = ctx
        self.user_id = ctx.user_id
        self._send = send
        """The ASGI ``send``: used only where the server offers no ``DirectSocket``."""
        self._direct = direct
        self._db = db
        self._max_pending = max_pending
        self._replay_page = replay_page
        self._cursor = 0
        self._sent_max = 0
        """The highest seq this socket has sent: no later frame may go back behind it."""
        self._backlog: deque[_Item] | None = None
        """What waits to be sent, in order, while the task drains it; None when nothing
        waits (and no task runs)."""
        self._task: asyncio.Task[None] | None = None
        self._catch_up_queued = False
        self._flushing = False
        self.close_code: int | None = None
        self.sent_events = 0

    @property
    def cursor(self) -> int:
        return self._cursor

    def start(self, cursor: int, greeting: Outgoing, *, resume_from: int | None) -> None:
        """Start sending, right after the manager attached the socket (nothing is handed
        over before): ``greeting`` first; then, when the client named where it stands
        (``resume_from``), the replay after it, before any live event."""
        self._cursor = cursor
        self._emit(greeting.dumps())
        if resume_from is not None:
            self._put(_ResumeRequest(resume_from))

    async def stop(self) -> None:
        """End the backlog's task; one that is flushing frames before a close gets a short
        while."""
        task = self._task
        if task is None:
            return
        if self._flushing:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), FLUSH_S)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # ---- called from the manager and the receive loop (never block) ----------------------
    def offer(self, events: Sequence[Event]) -> None:
        """Send live events (one user's, in seq order): at once when nothing waits and they
        follow the cursor, else through the backlog."""
        if self.close_code is not None:
            return
        if self._backlog is None:
            texts: list[str] = []
            top = self._cursor
            for event in events:
                if event.seq > top + 1:  # a gap: the log is read first, in the task
                    break
                if event.seq == top + 1:
                    texts.append(event.body)
                    top = event.seq
            else:
                if not texts or self._write_now(texts, top):
                    return
        for event in events:  # everything goes through the backlog, in order
            if not self._put(event):
                return

    def send_frame(self, frame: Outgoing) -> None:
        self._emit(frame.dumps())

    def request_resume(self, after_seq: int) -> None:
        self._put(_ResumeRequest(after_seq))

    def catch_up(self) -> None:
        """Send whatever the event log holds past the cursor: the bus may have lost some."""
        if not self._catch_up_queued and self._put(_CatchUp()):
            self._catch_up_queued = True

    def close(self, code: int, reason: str = "", *, flush: bool = False) -> None:
        """Close the socket with ``code`` (idempotent). With ``flush`` the frames already
        waiting are sent first (an explanation the client should read); otherwise sending
        stops at once."""
        if self.close_code is not None:
            return
        self.close_code = code
        if flush and self._backlog is not None:
            self._flushing = True
            self._backlog.append(_Close(code, reason))
            return
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            self._task = None
        if self._direct is not None:
            self._backlog = None
            self._direct.close_now(code, reason)
        else:  # plain ASGI: a close is a coroutine, which a task makes
            self._backlog = deque((_Close(code, reason),))
            self._task = asyncio.get_running_loop().create_task(self._drain())

    # ---- writing -------------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        """One frame: at once when nothing waits, else behind what does."""
        if self.close_code is not None:
            return
        if self._backlog is not None or not self._write_now((text,), self._cursor):
            self._put(text)

    def _write_now(self, texts: Sequence[str], top: int) -> bool:
        """Write without waiting; True when written (the cursor moves to ``top``), False when
        the caller must queue instead (a socket found gone is closed)."""
        if self._direct is None:
            return False
        written = self._direct.write_texts(texts)
        if written is Written.SENT:
            if top > self._cursor:
                self.sent_events += len(texts)
                self._cursor = self._sent_max = top
            return True
        if written is Written.CLOSED:
            self.close(CLOSE_INTERNAL, "socket closed")
        return False

    def _put(self, item: _Item) -> bool:
        """Queue one item, starting the task that drains the backlog; past the bound the
        client is too far behind and is disconnected."""
        if self.close_code is not None:
            return False
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
            self._task = asyncio.get_running_loop().create_task(self._drain())
        elif len(backlog) >= self._max_pending:
            self.close(CLOSE_TOO_SLOW, "client too slow; reconnect and resume")
            return False
        backlog.append(item)
        return True

    async def _write(self, texts: Sequence[str]) -> None:
        """Write, waiting while the client is behind; ``ConnectionError`` when it is gone."""
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

    # ---- the backlog's task --------------------------------------------------------------
    async def _drain(self) -> None:
        """Send the backlog in order, then end: the socket is idle again."""
        backlog = self._backlog
        assert backlog is not None
        try:
            while backlog and self._backlog is backlog:  # a close without flush ends it
                item = backlog.popleft()
                if isinstance(item, Event):
                    await self._send_events(item, backlog)
                elif isinstance(item, str):
                    await self._write((item,))
                elif isinstance(item, _ResumeRequest):
                    await self._resume(item.after_seq)
                elif isinstance(item, _CatchUp):
                    self._catch_up_queued = False
                    await self._replay()
                else:
                    await self._finish(item)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A dead peer (or a frame that cannot be sent) ends the sending; without it the
            # socket is useless, so it is closed rather than left open and counted.
            log.debug("sending to a socket of %s stopped: %s", self.user_id, exc)
            self._task = None
            self.close(CLOSE_INTERNAL, "internal error")
            return
        if self._backlog is backlog:
            self._backlog = None
            self._task = None

    async def _finish(self, close: _Close) -> None:
        self._backlog = None
        if self._direct is not None:
            self._direct.close_now(close.code, close.reason)
            return
        with contextlib.suppress(Exception):  # the peer may be gone already
            async with asyncio.timeout(2):
                await self._send(
                    {"type": "websocket.close", "code": close.code, "reason": close.reason}
                )

    async def _send_events(self, first: Event, backlog: deque[_Item]) -> None:
        """``first`` and the events right behind it in the backlog, in one write: duplicates
        dropped, a gap filled from the log first."""
        texts: list[str] = []
        top = self._cursor
        event: Event | None = first
        while event is not None:
            if event.seq > top + 1:
                if texts:
                    await self._sent(texts, top)
                    texts = []
                await self._replay(until=event.seq - 1)
                top = self._cursor
            if event.seq > top:  # sent even where the log had nothing to fill the gap with
                texts.append(event.body)
                top = event.seq
            following = backlog[0] if backlog else None
            event = following if isinstance(following, Event) else None
            if event is not None:
                backlog.popleft()
        if texts:
            await self._sent(texts, top)

    async def _sent(self, texts: Sequence[str], top: int) -> None:
        await self._write(texts)
        self.sent_events += len(texts)
        self._cursor = self._sent_max = top

    async def _replay(self, *, until: int | None = None) -> None:
        """Send stored events after the cursor (up to ``until``), a page per write."""
        while until is None or self._cursor < until:
            rows = await self._db.transact(
                EventRepository(self.ctx).after(self._cursor, limit=self._replay_page)
            )
            if until is not None:
                rows = [(seq, body) for seq, body in rows if seq <= until]
            if not rows:
                return
            await self._sent([body for _, body in rows], rows[-1][0])

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
        await self._write((frame.dumps(),))
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
