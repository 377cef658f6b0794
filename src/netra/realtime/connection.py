"""One live connection of one user — a WebSocket or a Server-Sent Events stream: an ordered,
gapless, duplicate-free stream of that user's events.

The connection decides what is sent and in which order; its ``Transport``
(``netra.realtime.transport``) frames and writes it. Frames reach the client in the order
they were handed to the connection. A connection with nothing waiting writes what it is
handed at once, from the caller's own call: the bus hands a user's events to each of that
user's connections, and a WebSocket writes them in one system call, with no task, queue or
await per socket (``netra.server.DirectSocket``). Only when something has to wait — the
event log read that fills a gap, a resume or catch-up, a client that reads slower than the
server writes (the transport pauses) — do frames wait in a backlog, which one task drains in
order and ends with. The backlog is bounded (``max_pending``): a client that stops reading
is disconnected with 1013 instead of growing memory.

The connection keeps a cursor (the last seq the client stands at): a live event at or below
it is a duplicate and is dropped; one beyond ``cursor + 1`` means the bus skipped something,
and the gap is read from the event log before the event is sent. When the bus says it may
have lost events (``catch_up``), the log is read past the cursor.

Per connection every seq is sent at most once and in increasing order, always. A client
that names its resume point when it connects gets its replay before any live event; a
``resume`` frame that would go back behind what this socket already sent is answered
``recovered: false`` (reload over HTTP) rather than repeating events.

A connection lives no longer than the token it was opened with (``expire_at``).

A connection may carry one run's events only (``run_id``: ``GET /runs/{id}/stream``). Its
cursor still walks the user's whole stream — every seq, the run's or not, moves it, so gaps
and duplicates are told apart exactly as for the user's stream — but only the run's events
are written, the log is read for the run's events only, and the connection closes (1000)
once the run's ``agent_completed`` is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.records import LoggedEvent
from netra.db.repositories import EventRepository
from netra.db.sql import Tx
from netra.events.envelope import Event, EventType
from netra.realtime.frames import Outgoing, Resumed, ResumeFailure
from netra.realtime.transport import Transport
from netra.server import Written

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
"""A run's stream ended: its run's ``agent_completed`` was sent."""
CLOSE_POLICY = 1008
"""Bad, expired or revoked credentials, or an Origin not allowed."""
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
    """A user's connection: its cursor, and the backlog (with the task draining it) while
    one exists."""

    __slots__ = (
        "_backlog",
        "_catch_up_queued",
        "_cursor",
        "_db",
        "_expiry",
        "_flushing",
        "_max_pending",
        "_replay_page",
        "_run_id",
        "_sent_max",
        "_task",
        "_transport",
        "close_code",
        "ctx",
        "sent_events",
        "user_id",
    )

    def __init__(
        self,
        transport: Transport,
        ctx: UserExecutionContext,
        *,
        db: DatabaseManager,
        max_pending: int,
        replay_page: int,
        run_id: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.user_id = ctx.user_id
        self._transport = transport
        self._run_id = run_id
        """The one run whose events this connection carries; None: all of the user's."""
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
        self._expiry: asyncio.TimerHandle | None = None
        self.close_code: int | None = None
        self.sent_events = 0

    @property
    def cursor(self) -> int:
        return self._cursor

    def start(self, cursor: int, greeting: Outgoing | None, *, resume_from: int | None) -> None:
        """Start sending, right after the manager attached the connection (nothing is
        handed over before): ``greeting`` first (if any); then, when the client named where
        it stands (``resume_from``), the replay after it, before any live event."""
        self._cursor = cursor
        if greeting is not None:
            at = cursor if resume_from is None else resume_from
            self._emit(self._transport.frame_text(greeting, at))
        if resume_from is not None:
            self._put(_ResumeRequest(resume_from))

    def expire_at(self, when: float | None) -> None:
        """Close at ``when`` (epoch seconds), when the token (or API key) the connection was
        opened with expires: the client reconnects with a fresh one. None: never."""
        if when is None:
            return
        self._expiry = asyncio.get_running_loop().call_later(
            max(0.0, when - time.time()), self.close, CLOSE_POLICY, "token expired"
        )

    async def stop(self) -> None:
        """End the backlog's task (and the expiry's timer); one that is flushing frames
        before a close gets a short while."""
        if self._expiry is not None:
            self._expiry.cancel()
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
            last = False
            for event in events:
                if event.seq > top + 1:  # a gap: the log is read first, in the task
                    break
                if event.seq == top + 1:
                    last = self._carry(event, texts) or last
                    top = event.seq
            else:
                if not texts:  # duplicates, or none of this connection's run
                    self._cursor = top
                    return
                if self._write_now(texts, top):
                    if last:
                        self._end()
                    return
        for event in events:  # everything goes through the backlog, in order
            if not self._put(event):
                return

    def send_frame(self, frame: Outgoing) -> None:
        self._emit(self._transport.frame_text(frame, self._cursor))

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
        if self._transport.close_now(code, reason):
            self._backlog = None
        else:  # a transport that closes only from a task (plain ASGI)
            self._backlog = deque((_Close(code, reason),))
            self._task = asyncio.get_running_loop().create_task(self._drain())

    # ---- writing -------------------------------------------------------------------------
    def _carry(self, event: Event, texts: list[str]) -> bool:
        """Add ``event``'s text when this connection carries it; True when it is the last
        one it carries (its run's ``agent_completed``)."""
        if self._run_id is None:
            texts.append(self._transport.event_text(event))
            return False
        if event.run_id != self._run_id:
            return False
        texts.append(self._transport.event_text(event))
        return event.type is EventType.AGENT_COMPLETED

    def _end(self) -> None:
        """The run's stream is complete: close once what was handed over is sent."""
        self.close(CLOSE_NORMAL, "run ended", flush=True)

    def _emit(self, text: str) -> None:
        """One frame: at once when nothing waits, else behind what does."""
        if self.close_code is not None:
            return
        if self._backlog is not None or not self._write_now((text,), self._cursor):
            self._put(text)

    def _write_now(self, texts: Sequence[str], top: int) -> bool:
        """Write without waiting; True when written (the cursor moves to ``top``), False when
        the caller must queue instead (a transport found gone is closed)."""
        written = self._transport.write_now(texts)
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
                    await self._transport.write((item,))
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
        await self._transport.close(close.code, close.reason)

    async def _send_events(self, first: Event, backlog: deque[_Item]) -> None:
        """``first`` and the events right behind it in the backlog, in one write: duplicates
        dropped, a gap filled from the log first."""
        texts: list[str] = []
        top = self._cursor
        last = False
        event: Event | None = first
        while event is not None:
            if event.seq > top + 1:
                if top > self._cursor:
                    await self._sent(texts, top, last=last)
                    texts, last = [], False
                    if self.close_code is not None:
                        return
                await self._replay(until=event.seq - 1)
                top = self._cursor
            if event.seq > top:  # sent even where the log had nothing to fill the gap with
                last = self._carry(event, texts) or last
                top = event.seq
            following = backlog[0] if backlog else None
            event = following if isinstance(following, Event) else None
            if event is not None:
                backlog.popleft()
        if top > self._cursor:
            await self._sent(texts, top, last=last)

    async def _sent(self, texts: Sequence[str], top: int, *, last: bool = False) -> None:
        """Write ``texts``; the cursor moves to ``top`` (past events not carried too)."""
        if texts:
            await self._transport.write(texts)
            self.sent_events += len(texts)
            self._sent_max = top
        self._cursor = top
        if last:
            self._end()

    async def _replay(self, *, until: int | None = None) -> None:
        """Send stored events after the cursor (up to ``until``), a page per write; then the
        cursor stands at ``until``: everything up to it was read. Read beside the writer
        (``query``): sockets catching up at once never hold up the runs' writes."""
        events = EventRepository(self.ctx)
        if until is None and self._run_id is not None:
            # A run's events are a few of the user's: read up to the user's newest seq,
            # so the cursor passes the others' too.
            until = await self._db.query(events.last_seq())
        while until is None or self._cursor < until:
            after = self._cursor
            rows = await self._db.query(
                events.after(after, limit=self._replay_page)
                if self._run_id is None
                else events.for_run(self._run_id, after, limit=self._replay_page)
            )
            complete = len(rows) < self._replay_page  # the log holds nothing after these
            if until is not None:
                rows = [row for row in rows if row.seq <= until]
            if rows:
                texts: list[str] = []
                last = False
                for row in rows:
                    last = self._carry(self._event(row), texts) or last
                await self._sent(texts, rows[-1].seq, last=last)
                if self.close_code is not None:
                    return
            if complete or not rows:
                if until is not None:
                    self._cursor = max(self._cursor, until)
                return

    def _event(self, row: LoggedEvent) -> Event:
        return Event(self.user_id, row.seq, EventType(row.type), row.run_id, row.body)

    async def _resume(self, after_seq: int) -> None:
        """Answer a resume point with ``resumed``, then replay every stored event after it,
        unless that would repeat what this socket already sent or the log no longer holds
        it: then ``recovered`` is false with the reason, and the client reloads over HTTP."""
        if self._run_id is not None:  # a run's stream: its events after the point, nothing else
            self._cursor = after_seq
            await self._replay()
            return
        last_seq, first_seq = await self._db.query(_bounds(self.ctx))
        oldest_available = first_seq if first_seq is not None else last_seq + 1
        reason = self._failure(after_seq, last_seq, oldest_available)
        frame = (
            Resumed(after_seq=after_seq, last_seq=last_seq, recovered=True)
            if reason is None
            else Resumed(after_seq=after_seq, last_seq=last_seq, recovered=False, reason=reason)
        )
        # The client reloads over HTTP, which holds everything up to last_seq.
        at = after_seq if reason is None else max(self._cursor, last_seq)
        await self._transport.write((self._transport.frame_text(frame, at),))
        self._cursor = at
        if reason is None:
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
