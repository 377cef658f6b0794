"""Letting a connection in (a WebSocket or an SSE stream), with what it needs from the
database read together with the connections arriving at the same moment.

``AdmissionReads.enter`` is the one way in: the connection is counted against its user's cap
and its user subscribed (``UnifiedWebSocketManager.admit``), then its session and its
user's newest seq are known or read; the caller attaches it to the manager.

A socket needs its session checked (unless ``SessionService.known`` trusts it) and its
user's newest seq (unless the manager knows it). Each is a statement; a read transaction
around each socket's statements costs more than the statements. So the admissions waiting
at one moment share one read transaction: one statement for all their sessions, one for the
seqs of all their users (up to ``BATCH`` admissions). A crowd reconnecting at once — every
client after a restart or a network blip — costs a read per batch, not one per socket; a
lone socket costs one read, as before.

A seq must be read after its user was subscribed (``UnifiedWebSocketManager.admit``), or an
event published in between would be neither in the read nor delivered: an admission joins
the next read to start, never one already under way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from netra.auth.sessions import SessionService
from netra.auth.tokens import AccessClaims
from netra.context import UserExecutionContext
from netra.db.accounts import SessionRepository, SessionState
from netra.db.manager import DatabaseManager
from netra.db.repositories import EventRepository
from netra.db.sql import Tx
from netra.errors import Unauthenticated
from netra.realtime.manager import Admission, UnifiedWebSocketManager

BATCH = 500
"""Most admissions one read serves (the seqs are one ``IN`` of this many users)."""


@dataclass(eq=False, slots=True)
class _Wanted:
    claims: AccessClaims
    ctx: UserExecutionContext | None
    """Known already; None: read the session."""
    seq: bool
    """Read the user's newest seq."""
    answer: asyncio.Future[tuple[UserExecutionContext, int | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class AdmissionReads:
    """Admits connections; reads sessions and seqs for them, a shared read at a time."""

    def __init__(
        self, db: DatabaseManager, sessions: SessionService, sockets: UnifiedWebSocketManager
    ) -> None:
        self._db = db
        self._sessions = sessions
        self._sockets = sockets
        self._wanted: list[_Wanted] = []
        self._reader: asyncio.Task[None] | None = None
        """Runs while admissions wait; ends when none does."""

    async def enter(
        self, claims: AccessClaims
    ) -> tuple[Admission, UserExecutionContext, int | None]:
        """Admit a connection of a verified token: ``(its admission, its context, the
        user's newest seq when it was read)``. ``QuotaExceeded`` past the user's cap,
        ``Unauthenticated`` when its session ended (the admission released). Reads nothing
        where this instance knows the session and the user's newest seq; else one read,
        after the user was subscribed, shared with the connections arriving meanwhile."""
        admission = self._sockets.admit(claims.user_id, claims.session_id)
        try:
            ctx = self._sessions.known(claims)
            seq = self._sockets.known_seq(admission) is None
            if ctx is not None and not seq:
                return admission, ctx, None
            ctx, read_seq = await self.identify(claims, ctx, seq=seq)
        except BaseException:
            self._sockets.release(admission)
            raise
        return admission, ctx, read_seq

    async def identify(
        self, claims: AccessClaims, ctx: UserExecutionContext | None, *, seq: bool
    ) -> tuple[UserExecutionContext, int | None]:
        """The socket's context (``ctx``, or its session read: ``Unauthenticated`` when it
        ended) and, with ``seq``, its user's newest stored seq."""
        wanted = _Wanted(claims, ctx, seq)
        self._wanted.append(wanted)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="ws-admission-reads")
        return await wanted.answer

    async def _read(self) -> None:
        try:
            while self._wanted:
                batch, self._wanted = self._wanted[:BATCH], self._wanted[BATCH:]
                try:
                    await self._read_batch(batch)
                except Exception as exc:  # the database is away: each admission fails
                    for wanted in batch:
                        if not wanted.answer.done():
                            wanted.answer.set_exception(exc)
        finally:
            self._reader = None

    async def _read_batch(self, batch: list[_Wanted]) -> None:
        generation = self._sessions.generation
        waiting = [wanted for wanted in batch if not wanted.answer.done()]
        unread = [wanted.claims.session_id for wanted in waiting if wanted.ctx is None]
        users = [wanted.claims.user_id for wanted in waiting if wanted.seq]
        states, tops = await self._db.transact(_read(unread, users))
        identified: list[tuple[_Wanted, UserExecutionContext]] = []
        for wanted in batch:
            if wanted.answer.done():  # given up (the client left)
                continue
            ctx = wanted.ctx
            if ctx is None:
                state = states.get(wanted.claims.session_id)
                try:
                    ctx = self._sessions.admit(wanted.claims, state, generation)
                except Unauthenticated as exc:
                    wanted.answer.set_exception(exc)
                    continue
            identified.append((wanted, ctx))
        for wanted, ctx in identified:
            if not wanted.answer.done():
                wanted.answer.set_result((ctx, tops.get(ctx.user_id, 0) if wanted.seq else None))


def _read(
    session_ids: list[str], user_ids: list[str]
) -> Tx[tuple[dict[str, SessionState], dict[str, int]]]:
    states = yield from SessionRepository.states(session_ids)
    tops = (yield from EventRepository.last_seqs(user_ids)) if user_ids else {}
    return states, tops
