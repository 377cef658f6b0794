"""UnifiedWebSocketManager: every live socket, by user; events go to that user's sockets only.

It subscribes to a user's events on the bus while it holds at least one socket of that user,
and hands each batch to every such socket (each event serialised once, the same bytes for all).
When the bus may have lost some of them, each socket catches up from the event log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from netra.errors import QuotaExceeded
from netra.events.bus import EventBus
from netra.events.envelope import Event
from netra.realtime.connection import Connection


class UnifiedWebSocketManager:
    def __init__(self, bus: EventBus, *, max_connections_per_user: int) -> None:
        self._bus = bus
        self._max_per_user = max_connections_per_user
        self._connections: dict[str, set[Connection]] = {}
        self._unsubscribe: dict[str, Callable[[], None]] = {}

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
