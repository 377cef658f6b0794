"""Repositories: the only code that queries tables.

Every repository here takes a ``UserExecutionContext`` and filters every statement by its
``user_id``; another user's row is indistinguishable from a missing one. Accounts and sessions,
looked up before there is a context, are in ``netra.db.accounts``; runs (the queue) in
``netra.db.runs``; the tool-call ledger in ``netra.db.ledger``; the event log's writes, whose
batches span users, in ``netra.db.event_log``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netra.context import UserExecutionContext
from netra.db import tables as t
from netra.db.records import (
    MessageRecord,
    ThreadRecord,
    aware,
    utcnow,
)
from netra.errors import NotFound
from netra.ids import new_id


def _thread(row: Row[Any]) -> ThreadRecord:
    m = row._mapping
    return ThreadRecord(
        id=m["id"],
        user_id=m["user_id"],
        title=m["title"],
        agent=m["agent"],
        created_at=aware(m["created_at"]) or utcnow(),
        updated_at=aware(m["updated_at"]) or utcnow(),
    )


def _message(row: Row[Any]) -> MessageRecord:
    m = row._mapping
    return MessageRecord(
        id=m["id"],
        user_id=m["user_id"],
        thread_id=m["thread_id"],
        run_id=m["run_id"],
        role=m["role"],
        content=m["content"],
        data=m["data"],
        client_msg_id=m["client_msg_id"],
        created_at=aware(m["created_at"]) or utcnow(),
    )


class Scoped:
    """Base of the repositories of user-owned tables: bound to one caller's context."""

    def __init__(self, conn: AsyncConnection, ctx: UserExecutionContext) -> None:
        self._conn = conn
        self._ctx = ctx

    @property
    def user_id(self) -> str:
        return self._ctx.user_id


class ThreadRepository(Scoped):
    async def create(self, *, title: str, agent: str) -> ThreadRecord:
        now = utcnow()
        record = ThreadRecord(new_id("th"), self.user_id, title, agent, now, now)
        await self._conn.execute(
            insert(t.threads).values(
                id=record.id,
                user_id=record.user_id,
                title=title,
                agent=agent,
                created_at=now,
                updated_at=now,
            )
        )
        return record

    async def get(self, thread_id: str) -> ThreadRecord:
        row = (
            await self._conn.execute(
                select(t.threads).where(
                    t.threads.c.id == thread_id, t.threads.c.user_id == self.user_id
                )
            )
        ).first()
        if row is None:
            raise NotFound("thread not found")
        return _thread(row)

    async def list(self, *, limit: int = 100) -> list[ThreadRecord]:
        rows = await self._conn.execute(
            select(t.threads)
            .where(t.threads.c.user_id == self.user_id)
            .order_by(t.threads.c.updated_at.desc(), t.threads.c.id.desc())
            .limit(limit)
        )
        return [_thread(row) for row in rows]

    async def touch(self, thread_id: str) -> None:
        await self._conn.execute(
            update(t.threads)
            .where(t.threads.c.id == thread_id, t.threads.c.user_id == self.user_id)
            .values(updated_at=utcnow())
        )


class MessageRepository(Scoped):
    async def add(
        self,
        *,
        thread_id: str,
        role: str,
        content: str,
        run_id: str | None = None,
        data: dict[str, Any] | None = None,
        client_msg_id: str | None = None,
        message_id: str | None = None,
    ) -> MessageRecord:
        record = MessageRecord(
            id=message_id or new_id("msg"),
            user_id=self.user_id,
            thread_id=thread_id,
            run_id=run_id,
            role=role,
            content=content,
            data=data,
            client_msg_id=client_msg_id,
            created_at=utcnow(),
        )
        await self._conn.execute(
            insert(t.messages).values(
                id=record.id,
                user_id=record.user_id,
                thread_id=thread_id,
                run_id=run_id,
                role=role,
                content=content,
                data=data,
                client_msg_id=client_msg_id,
                created_at=record.created_at,
            )
        )
        return record

    async def by_client_msg_id(self, client_msg_id: str) -> MessageRecord | None:
        row = (
            await self._conn.execute(
                select(t.messages).where(
                    t.messages.c.user_id == self.user_id,
                    t.messages.c.client_msg_id == client_msg_id,
                )
            )
        ).first()
        return _message(row) if row else None

    async def list(self, thread_id: str, *, limit: int = 1000) -> list[MessageRecord]:
        """The thread in turn order: each user message, then the answer of its run."""
        rows = await self._conn.execute(
            select(t.messages)
            .where(t.messages.c.user_id == self.user_id, t.messages.c.thread_id == thread_id)
            .order_by(t.messages.c.created_at, t.messages.c.id)
            .limit(limit)
        )
        return _in_turn_order([_message(row) for row in rows])

    async def search(self, text: str, *, limit: int) -> Sequence[tuple[MessageRecord, str]]:
        """The caller's messages containing ``text`` (any case), newest first, with their
        thread's title."""
        literal = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{literal}%"
        rows = await self._conn.execute(
            select(t.messages, t.threads.c.title)
            .join(t.threads, t.threads.c.id == t.messages.c.thread_id)
            .where(
                t.messages.c.user_id == self.user_id,
                t.threads.c.user_id == self.user_id,
                func.lower(t.messages.c.content).like(pattern, escape="\\"),
            )
            .order_by(t.messages.c.created_at.desc(), t.messages.c.id.desc())
            .limit(limit)
        )
        return [(_message(row), row.title) for row in rows]


def _in_turn_order(messages: list[MessageRecord]) -> list[MessageRecord]:
    # An answer is stored when its run ends, possibly after later questions were sent.
    answers = {m.run_id: m for m in messages if m.role != "user" and m.run_id is not None}
    ordered: list[MessageRecord] = []
    for message in messages:
        if message.role == "user" or message.run_id is None:
            ordered.append(message)
            answer = answers.pop(message.run_id, None) if message.run_id else None
            if answer is not None:
                ordered.append(answer)
    ordered.extend(answers.values())  # answers whose question fell outside the page
    return ordered


class EventRepository(Scoped):
    """Reads of the caller's event log (its writes: ``netra.db.event_log``)."""

    @staticmethod
    async def last_seqs(conn: AsyncConnection, user_ids: Sequence[str]) -> dict[str, int]:
        """The last stored seq of each of these users (for the sockets' position checks,
        which cover every user with a socket on this instance)."""
        rows = await conn.execute(
            select(t.users.c.id, t.users.c.event_seq).where(t.users.c.id.in_(user_ids))
        )
        return {row.id: int(row.event_seq or 0) for row in rows}

    async def after(self, after_seq: int, *, limit: int) -> list[tuple[int, str]]:
        rows = await self._conn.execute(
            select(t.events.c.seq, t.events.c.body)
            .where(t.events.c.user_id == self.user_id, t.events.c.seq > after_seq)
            .order_by(t.events.c.seq)
            .limit(limit)
        )
        return [(row.seq, row.body) for row in rows]

    async def for_run(self, run_id: str, after_seq: int, *, limit: int) -> list[tuple[int, str]]:
        rows = await self._conn.execute(
            select(t.events.c.seq, t.events.c.body)
            .where(
                t.events.c.user_id == self.user_id,
                t.events.c.run_id == run_id,
                t.events.c.seq > after_seq,
            )
            .order_by(t.events.c.seq)
            .limit(limit)
        )
        return [(row.seq, row.body) for row in rows]

    async def last_seq(self) -> int:
        value = await self._conn.scalar(
            select(t.users.c.event_seq).where(t.users.c.id == self.user_id)
        )
        return int(value or 0)

    async def first_seq(self) -> int | None:
        value = await self._conn.scalar(
            select(func.min(t.events.c.seq)).where(t.events.c.user_id == self.user_id)
        )
        return int(value) if value is not None else None
