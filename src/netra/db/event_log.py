"""The event log's writes: per-user seq ranges and the rows, inside the writer's transaction.

A batch of the writer (``netra.events.writer``) holds the events of many users, so these
statements take no ``UserExecutionContext``; they are the only writes of the ``events``
table and of the ``users.event_seq`` counter. One user's reads of the log are
``netra.db.repositories.EventRepository``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netra.db import tables as t


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as the log stores it; ``body`` is the envelope exactly as sockets get it."""

    user_id: str
    seq: int
    event_id: str
    type: str
    thread_id: str | None
    run_id: str | None
    body: str


class EventLog:
    """The event log's writes within one transaction (``conn``)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def reserve(self, counts: Mapping[str, int]) -> dict[str, int]:
        """The first of ``count`` new seqs for each user: one ``UPDATE users SET event_seq =
        event_seq + count … RETURNING`` per user, whose row lock, held until the transaction
        commits, keeps each user's seqs gapless and in order across instances."""
        first: dict[str, int] = {}
        for user_id, count in counts.items():
            last = await self._conn.scalar(
                update(t.users)
                .where(t.users.c.id == user_id)
                .values(event_seq=t.users.c.event_seq + count)
                .returning(t.users.c.event_seq)
            )
            if last is None:
                raise LookupError(f"events for unknown user {user_id}")
            first[user_id] = int(last) - count + 1
        return first

    async def append(self, rows: Sequence[EventRow], *, at: datetime) -> None:
        """Store the rows, stamped ``at``, in one statement (nothing for none)."""
        if not rows:
            return
        await self._conn.execute(
            insert(t.events),
            [
                {
                    "user_id": row.user_id,
                    "seq": row.seq,
                    "event_id": row.event_id,
                    "type": row.type,
                    "thread_id": row.thread_id,
                    "run_id": row.run_id,
                    "body": row.body,
                    "created_at": at,
                }
                for row in rows
            ],
        )
