"""UnifiedWebSocketManager: every live socket, by user; events go to that user's sockets only.

A "socket" here is any ``Connection``: a WebSocket, or a Server-Sent Events stream
(``netra.api.streams``), held, fed, capped, checked and closed the same way.

It subscribes to a user's events on the bus while it holds at least one socket of that user
(or admits one), and hands each batch to every such socket: the stored envelope's bytes, the
same for all, written by each socket at once when nothing waits on it
(``netra.realtime.connection``). When the bus may have lost some, each socket catches up from
the event log.

Where a new socket starts. The manager keeps, per user it holds, the newest seq it knows: read
from the event log by an admission that subscribed first, then raised by every delivery and
position check. A socket of a user already held starts there without reading the log (the
``connected`` frame's ``last_seq``): every later event reaches it, from the bus or, where the
bus lost one, from the log. After the bus says it may have lost events the next admission
reads the log again (``netra.realtime.admission``).

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
from dataclasses import dataclass, field

from netra.db.manager import DatabaseManager
from netra.db.repositories import EventRepository
from netra.errors import QuotaExceeded
from netra.events.bus import EventBus
from netra.events.envelope import Event
from netra.realtime.connection import Connection

log = logging.getLogger(__name__)
USERS_PER_CHECK_QUERY = 500


@dataclass(eq=False, slots=True)
class Admission:
    """A socket on its way in: counted against its user's cap, and its user subscribed,
    before its cursor is read. Closing the user or the session meanwhile refuses it."""

    user_id: str
    session_id: str | None
    refused: tuple[int, str] | None = None
    """The close code and reason of a socket closed before it was attached (its session
    ended meanwhile, or the server is stopping)."""


@dataclass(eq=False, slots=True)
class _User:
    """One user held here: its sockets, the ones being admitted, and its newest known seq."""

    unsubscribe: Callable[[], None]
    sockets: list[Connection] = field(default_factory=list)
    admissions: list[Admission] = field(default_factory=list)
    last_seq: int = 0
    """The newest seq known here: read by an admission after subscribing, raised by every
    delivery and position check."""
    known: bool = False
    """``last_seq`` can start a socket: read since the subscription, not doubted since."""


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
        self._users: dict[str, _User] = {}
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
        held = dict(self._users)
        users = list(held)
        tops: dict[str, int] = {}
        for start in range(0, len(users), USERS_PER_CHECK_QUERY):
            chunk = users[start : start + USERS_PER_CHECK_QUERY]
            tops.update(await self._db.transact(EventRepository.last_seqs(chunk)))
        for user_id, top in tops.items():
            user = held[user_id]  # subscribed before the read: its top can start sockets
            user.last_seq = max(user.last_seq, top)
        behind = 0
        for user_id, mark in self._marks.items():
            now = self._users.get(user_id)
            for connection in tuple(now.sockets) if now is not None else ():
                if connection.cursor < mark:
                    connection.catch_up()
                    behind += 1
        self._marks = tops
        self.caught_up += behind
        return behind

    # ---- a socket's life -----------------------------------------------------------------
    def admit(self, user_id: str, session_id: str | None) -> Admission:
        """Count a socket against its user's cap (``QuotaExceeded`` past it) and subscribe
        to the user's events, before the socket's cursor is read."""
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User(self._subscribe(user_id))
        elif len(user.sockets) + len(user.admissions) >= self._max_per_user:
            raise QuotaExceeded(f"at most {self._max_per_user} open sockets per user")
        admission = Admission(user_id, session_id)
        user.admissions.append(admission)
        return admission

    def known_seq(self, admission: Admission) -> int | None:
        """The newest seq a socket of this user can start from without reading the log;
        None when it must read it."""
        user = self._users[admission.user_id]
        return user.last_seq if user.known else None

    def attach(self, admission: Admission, connection: Connection, read_seq: int | None) -> int:
        """Hold the admitted socket; returns the seq it starts after: ``read_seq`` (the log,
        read after ``admit``) or ``known_seq``, raised to what was delivered since. Start the
        connection before anything else runs: events are handed to it from now on."""
        user = self._users[admission.user_id]
        user.admissions.remove(admission)
        if read_seq is not None:
            user.last_seq = max(user.last_seq, read_seq)
            user.known = True
        user.sockets.append(connection)
        return user.last_seq

    def release(self, admission: Admission) -> None:
        """Give up an admission that was not attached."""
        user = self._users.get(admission.user_id)
        if user is not None and admission in user.admissions:
            user.admissions.remove(admission)
            self._forget_if_idle(admission.user_id, user)

    def remove(self, connection: Connection) -> None:
        user = self._users.get(connection.user_id)
        if user is not None and connection in user.sockets:
            user.sockets.remove(connection)
            self._forget_if_idle(connection.user_id, user)

    def _forget_if_idle(self, user_id: str, user: _User) -> None:
        if not user.sockets and not user.admissions:
            del self._users[user_id]
            self._marks.pop(user_id, None)
            user.unsubscribe()

    def _subscribe(self, user_id: str) -> Callable[[], None]:
        return self._bus.subscribe(
            user_id,
            lambda events: self._deliver(user_id, events),
            resync=lambda: self._catch_up(user_id),
        )

    # ---- from the bus --------------------------------------------------------------------
    def _deliver(self, user_id: str, events: Sequence[Event]) -> None:
        user = self._users.get(user_id)
        if user is None or not events:
            return
        user.last_seq = max(user.last_seq, events[-1].seq)
        for connection in tuple(user.sockets):
            connection.offer(events)

    def _catch_up(self, user_id: str) -> None:
        user = self._users.get(user_id)
        if user is None:
            return
        user.known = False  # deliveries were lost: the next socket reads the log
        for connection in tuple(user.sockets):
            connection.catch_up()

    # ---- what is held, and closing -------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """``(sockets, users)`` held right now."""
        return sum(len(user.sockets) for user in self._users.values()), len(self._users)

    def connections_of(self, user_id: str) -> int:
        user = self._users.get(user_id)
        return len(user.sockets) if user is not None else 0

    def sockets_of(self, user_id: str) -> tuple[Connection, ...]:
        user = self._users.get(user_id)
        return tuple(user.sockets) if user is not None else ()

    def stats(self) -> dict[str, int]:
        sockets, users = self.counts()
        return {"users": users, "sockets": sockets}

    def close_user(self, user_id: str, code: int, reason: str = "") -> int:
        """Close every socket of one user (logout, disabled account); returns how many."""
        user = self._users.get(user_id)
        if user is None:
            return 0
        for admission in user.admissions:
            admission.refused = (code, reason)
        held = tuple(user.sockets)
        for connection in held:
            connection.close(code, reason)
        return len(held)

    def close_session(self, session_id: str, code: int, reason: str = "") -> int:
        """Close every socket opened with one session's tokens (logout, token reuse)."""
        closed = 0
        for user in tuple(self._users.values()):
            for admission in user.admissions:
                if admission.session_id == session_id:
                    admission.refused = (code, reason)
            for connection in tuple(user.sockets):
                if connection.ctx.session_id == session_id:
                    connection.close(code, reason)
                    closed += 1
        return closed

    async def close_all(self, code: int, reason: str = "") -> None:
        for user_id in list(self._users):
            self.close_user(user_id, code, reason)
        await asyncio.sleep(0)
