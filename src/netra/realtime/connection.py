"""One live socket of one user: an ordered, gapless, duplicate-free stream of that user's events.

Everything the server writes to the socket goes through one queue drained by one sender task,
so frames never interleave. The sender keeps a cursor (the last seq sent): a live event at or
below it is a duplicate and is dropped; one beyond ``cursor + 1`` means the bus skipped
something, and the gap is read from the event log before the event is sent. When the bus
says it may have lost events (``catch_up``), the log is read past the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.repositories import EventRepository
from netra.events.envelope import Event
from netra.ids import new_id

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 1013
"""The client stopped reading and fell too far behind; it should reconnect and resume."""


@dataclass(frozen=True, slots=True)
class _ResumeRequest:
    after_seq: int


@dataclass(frozen=True, slots=True)
class _CatchUp:
    """Read the event log past the cursor: the bus may have lost deliveries."""


_Item = Event | str | _ResumeRequest | _CatchUp


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
        self._pending_events = 0
        self._cursor = 0
        self._catch_up_queued = False
        self._sender: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.sent_events = 0

    @property
    def cursor(self) -> int:
        return self._cursor

    def start(self, cursor: int, greeting: dict[str, Any]) -> None:
        """Start sending: ``greeting`` first, then whatever was queued meanwhile (live events
        may arrive between subscribing and reading the cursor)."""
        self._cursor = cursor
        first = json.dumps(greeting, separators=(",", ":"), ensure_ascii=False)
        self._sender = asyncio.create_task(self._send_loop(first), name=f"ws-send:{self.id}")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    # ---- called from the manager and the receive loop (never block) ----------------------
    def offer(self, events: Sequence[Event]) -> None:
        """Queue live events; a client too far behind is disconnected (it can resume)."""
        if self.close_code is not None:
            return
        if self._pending_events + len(events) > self._max_pending:
            self.close(CLOSE_TOO_SLOW, "client too slow; reconnect and resume")
            return
        self._pending_events += len(events)
        for event in events:
            self._queue.put_nowait(event)

    def send_frame(self, frame: dict[str, Any]) -> None:
        if self.close_code is None:
            self._queue.put_nowait(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))

    def request_resume(self, after_seq: int) -> None:
        if self.close_code is None:
            self._queue.put_nowait(_ResumeRequest(after_seq))

    def catch_up(self) -> None:
        """Send whatever the event log holds past the cursor: the bus may have lost some."""
        if self.close_code is None and not self._catch_up_queued:
            self._catch_up_queued = True
            self._queue.put_nowait(_CatchUp())

    def close(self, code: int, reason: str = "") -> None:
        """Stop sending and close the socket with ``code`` (idempotent)."""
        if self.close_code is not None:
            return
        self.close_code = code
        if self._sender is not None:
            self._sender.cancel()
        self._closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        if self._ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):  # the peer may be gone already
                async with asyncio.timeout(2):
                    await self._ws.close(code, reason)

    # ---- the sender task -----------------------------------------------------------------
    async def _send_loop(self, first: str) -> None:
        try:
            await self._ws.send_text(first)
            while True:
                item = await self._queue.get()
                if isinstance(item, Event):
                    self._pending_events -= 1
                    await self._send_event(item)
                elif isinstance(item, _ResumeRequest):
                    await self._resume(item.after_seq)
                elif isinstance(item, _CatchUp):
                    self._catch_up_queued = False
                    await self._replay()
                else:
                    await self._ws.send_text(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a dead peer ends the sender; the receive loop sees it too
            log.debug("sender of %s stopped: %s", self.id, exc)

    async def _send_event(self, event: Event) -> None:
        if event.seq <= self._cursor:
            return
        if event.seq > self._cursor + 1:
            await self._replay(until=event.seq - 1)
        await self._ws.send_text(event.body)
        self._cursor = event.seq
        self.sent_events += 1

    async def _replay(self, *, until: int | None = None) -> None:
        """Send stored events after the cursor (up to ``until``), page by page."""
        while until is None or self._cursor < until:
            async with self._db.read() as conn:
                rows = await EventRepository(conn, self.ctx).after(
                    self._cursor, limit=self._replay_page
                )
            if not rows:
                return
            for seq, body in rows:
                if until is not None and seq > until:
                    return
                await self._ws.send_text(body)
                self._cursor = seq
                self.sent_events += 1

    async def _resume(self, after_seq: int) -> None:
        async with self._db.read() as conn:
            events = EventRepository(conn, self.ctx)
            last_seq = await events.last_seq()
            first_seq = await events.first_seq()
        oldest_available = first_seq if first_seq is not None else last_seq + 1
        recovered = after_seq <= last_seq and after_seq >= oldest_available - 1
        frame = {
            "type": "resumed",
            "after_seq": after_seq,
            "recovered": recovered,
            "last_seq": last_seq,
        }
        await self._ws.send_text(json.dumps(frame, separators=(",", ":")))
        if not recovered:
            self._cursor = max(self._cursor, last_seq)
            return
        self._cursor = after_seq
        await self._replay()
