"""UnifiedWebSocketManager: every live socket, by user; events go to that user's sockets only.

It subscribes to a user's events on the bus while it holds at least one socket of that user,
and hands each batch to every such socket (each event serialised once, the same bytes for all).
When the bus may have lost some of them, each socket catches up from the event log.

Position checks: an event can be stored and never published — its publisher died between the
two (kill -9), or a Redis message was dropped without the bus noticing. Every
``websocket.position_check_s`` the manager reads the last stored seq of each user it holds
sockets for (one query per 500 users); a socket that has still not sent what was stored at
the previous check catches up from the log. So a live client misses nothing for longer than
two check intervals, and an event merely in flight (stored, being published) costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from netra.db.manager import DatabaseManager
from netra.db.repositories import EventRepository
from netra.errors import QuotaExceeded
from netra.events.bus import EventBus
from netra.events.envelope import Event
from netra.realtime.connection import Connection

log = logging.getLogger(__name__)
USERS_PER_CHECK_QUERY = 500


class UnifiedWebSocketManager:
    def __init__(
        self,
        bus: EventBus,
        db: DatabaseManager,
        *,
        max_connections_per_user: int,
        position_check_s: float,
    ) -> None:
        self._bus = bus
        self._db = db
        self._max_per_user = max_connections_per_user
        self._position_check_s = position_check_s
        self._connections: dict[str, set[Connection]] = {}
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._marks: dict[str, int] = {}
        """Each held user's last stored seq at the previous position check."""
        self._checker: asyncio.Task[None] | None = None
        self.caught_up = 0
        """Sockets sent to the event log by a position check (the bus missed events)."""

    async def start(self) -> None:
        self._checker = asyncio.create_task(self._check_positions(), name="ws-position-check")

    async def stop(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None

    async def _check_positions(self) -> None:
        while True:
            await asyncio.sleep(self._position_check_s)
            try:
                await self.check_positions()
            except Exception:  # the database may be away for a while: check again later
                log.warning("socket position check failed", exc_info=True)

    async def check_positions(self) -> int:
        """One position check; returns how many sockets were sent to catch up."""
        users = list(self._connections)
        tops: dict[str, int] = {}
        for start in range(0, len(users), USERS_PER_CHECK_QUERY):
            chunk = users[start : start + USERS_PER_CHECK_QUERY]
            tops.update(await self._db.transact(EventRepository.last_seqs(chunk)))
        behind = 0
        for user_id, mark in self._marks.items():
            for connection in tuple(self._connections.get(user_id, ())):
                if connection.cursor < mark:
                    connection.catch_up()
                    behind += 1
        self._marks = tops
        self.caught_up += behind
        return behind

    def add(self, connection: Connection) -> None:
        """Track a socket; the first one of a user subscribes to that user's events."""
        user_id = connection.user_id
        held = self._connections.setdefault(user_id, set())
        if len(held) >= self._max_per_user:
            if not held:
                del self._connections[user_id]
            raise QuotaExceeded(f"at most {self._max_per_user} open sockets per user")
        held.add(connection)
        if user_id not in self._unsubscribe:
            self._unsubscribe[user_id] = self._bus.subscribe(
                user_id,
                lambda events: self._deliver(user_id, events),
                resync=lambda: self._catch_up(user_id),
            )

    def remove(self, connection: Connection) -> None:
        held = self._connections.get(connection.user_id)
        if held is None:
            return
        held.discard(connection)
        if not held:
            del self._connections[connection.user_id]
            self._marks.pop(connection.user_id, None)
            unsubscribe = self._unsubscribe.pop(connection.user_id, None)
            if unsubscribe is not None:
                unsubscribe()

    def counts(self) -> tuple[int, int]:
        """``(sockets, users)`` held right now."""
        return sum(len(held) for held in self._connections.values()), len(self._connections)

    def _deliver(self, user_id: str, events: Sequence[Event]) -> None:
        for connection in tuple(self._connections.get(user_id, ())):
            connection.offer(events)

    def _catch_up(self, user_id: str) -> None:
        for connection in tuple(self._connections.get(user_id, ())):
            connection.catch_up()

    def connections_of(self, user_id: str) -> int:
        return len(self._connections.get(user_id, ()))

    def stats(self) -> dict[str, int]:
        return {
            "users": len(self._connections),
            "sockets": sum(len(held) for held in self._connections.values()),
        }

    def close_user(self, user_id: str, code: int, reason: str = "") -> int:
        """Close every socket of one user (logout, disabled account); returns how many."""
        held = tuple(self._connections.get(user_id, ()))
        for connection in held:
            connection.close(code, reason)
        return len(held)

    def close_session(self, session_id: str, code: int, reason: str = "") -> int:
        """Close every socket opened with one session's tokens (logout, token reuse)."""
        closed = 0
        for held in tuple(self._connections.values()):
            for connection in tuple(held):
                if connection.ctx.session_id == session_id:
                    connection.close(code, reason)
                    closed += 1
        return closed

    async def close_all(self, code: int, reason: str = "") -> None:
        for user_id in list(self._connections):
            self.close_user(user_id, code, reason)
        await asyncio.sleep(0)
