"""Repositories: the only code that queries user-owned tables.

Every repository here is bound to a ``UserExecutionContext`` and filters every statement by
its ``user_id``; another user's row is indistinguishable from a missing one. Its methods are
transaction functions (``netra.db.sql``): run one with ``DatabaseManager.transact``, or
compose several into one transaction with ``yield from``. Here: the threads and the user's
event log. A thread's messages are ``netra.db.messages``; accounts and sessions, looked up
before there is a context, are in ``netra.db.accounts``; runs in ``netra.db.runs`` (reads)
and ``netra.db.queue`` (every change); the tool-call ledger in ``netra.db.ledger``; the event
log's writes, whose batches span users, in ``netra.db.event_log``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from netra.context import UserExecutionContext
from netra.db.records import LoggedEvent, ThreadRecord, utcnow
from netra.db.search import forget_deleted, forget_old_titles
from netra.db.sql import Row, Statement, Tx, execute, first, rows, scalar
from netra.errors import NotFound
from netra.ids import new_id

THREAD_INSERT = Statement(
    "thread: a new one",
    "INSERT INTO threads (id, user_id, title, agent, created_at, updated_at, active_leaf)"
    " VALUES (:id, :user_id, :title, :agent, :created_at, :created_at, :active_leaf)",
)
THREAD_GET = Statement(
    "thread: one of the user's",
    "SELECT * FROM threads WHERE id = :id AND user_id = :user_id",
)
THREAD_HOLD = Statement(
    "thread: one of the user's, locked until commit (a message joins its branch)",
    "SELECT * FROM threads WHERE id = :id AND user_id = :user_id FOR UPDATE",
)
THREAD_LIST = Statement(
    "threads: the user's, latest activity first",
    "SELECT * FROM threads WHERE user_id = :user_id AND archived = :archived"
    " AND (:any_pin OR pinned = :pinned)"
    " ORDER BY updated_at DESC, id DESC LIMIT :limit",
)
THREAD_LIST_AFTER = Statement(
    "threads: the user's, latest activity first, after a position",
    "SELECT * FROM threads WHERE user_id = :user_id AND archived = :archived"
    " AND (:any_pin OR pinned = :pinned)"
    " AND (updated_at < :updated_at OR (updated_at = :updated_at AND id < :id))"
    " ORDER BY updated_at DESC, id DESC LIMIT :limit",
)
THREAD_CHANGE = Statement(
    "thread: a new title, pinned or not, archived or not (each left as it is when null)",
    "UPDATE threads SET title = COALESCE(:title, title), pinned = COALESCE(:pinned, pinned),"
    " archived = COALESCE(:archived, archived)"
    " WHERE id = :id AND user_id = :user_id RETURNING *",
)
THREAD_LOCK_RUNS = Statement(
    "thread delete: lock its runs in id order first (the event writer's order)",
    "SELECT id FROM runs WHERE user_id = :user_id AND thread_id = :thread_id ORDER BY id"
    " FOR UPDATE",
    sqlite=None,
)
THREAD_DROP_EVENTS = Statement(
    "thread delete: its events leave the user's log",
    "DELETE FROM events WHERE user_id = :user_id AND thread_id = :thread_id",
)
THREAD_DROP = Statement(
    "thread delete: the thread, and with it its messages, runs, tool calls and turns",
    "DELETE FROM threads WHERE id = :id AND user_id = :user_id",
)
THREAD_TOUCH = Statement(
    "thread: its last activity is now, and its branch ends at a new message",
    "UPDATE threads SET updated_at = :updated_at, active_leaf = :active_leaf"
    " WHERE id = :id AND user_id = :user_id",
)
THREAD_ANSWERED = Statement(
    "thread: an answer came; its branch ends there if it ended at the question",
    "UPDATE threads SET updated_at = :updated_at, active_leaf = CASE WHEN active_leaf ="
    " :question_id THEN :answer_id ELSE active_leaf END WHERE id = :id AND user_id = :user_id"
    " RETURNING active_leaf",
)
THREAD_SET_LEAF = Statement(
    "thread: its branch ends at another message",
    "UPDATE threads SET active_leaf = :active_leaf WHERE id = :id AND user_id = :user_id"
    " RETURNING *",
)
FOLLOW_ANSWER = Statement(
    "messages: questions sent while their question waited for its answer now follow it",
    "UPDATE messages SET parent_id = :answer_id WHERE user_id = :user_id"
    " AND parent_id = :question_id AND role = 'user' AND created_at >= :since_at",
)
MESSAGE_NEWEST_LEAF = Statement(
    "messages: the end of the branch through a message (its newest child, and so on)",
    "WITH RECURSIVE down(id, k) AS ("
    " SELECT id, 0 FROM messages WHERE id = :id AND user_id = :user_id AND thread_id = :thread_id"
    " UNION ALL SELECT (SELECT c.id FROM messages AS c WHERE c.parent_id = down.id"
    " ORDER BY c.created_at DESC, c.id DESC LIMIT 1), down.k + 1 FROM down"
    " WHERE down.id IS NOT NULL)"
    " SELECT id FROM down WHERE id IS NOT NULL ORDER BY k DESC LIMIT 1",
)
EVENTS_AFTER = Statement(
    "events: the user's after a seq, in order",
    "SELECT seq, type, run_id, body FROM events WHERE user_id = :user_id AND seq > :after_seq"
    " ORDER BY seq LIMIT :limit",
)
EVENTS_OF_RUN = Statement(
    "events: one run's after a seq, in order (the user's log from the run's floor on)",
    postgres="SELECT seq, type, run_id, body FROM events WHERE user_id = :user_id"
    " AND seq > (SELECT GREATEST(seq_floor, :after_seq) FROM runs"
    " WHERE id = :run_id AND user_id = :user_id) AND run_id = :run_id ORDER BY seq LIMIT :limit",
    sqlite="SELECT seq, type, run_id, body FROM events WHERE user_id = :user_id"
    " AND seq > (SELECT max(seq_floor, :after_seq) FROM runs"
    " WHERE id = :run_id AND user_id = :user_id) AND run_id = :run_id ORDER BY seq LIMIT :limit",
)
EVENTS_OF_THREAD = Statement(
    "events: one thread's after a seq, in order",
    "SELECT seq, body FROM events WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND seq > :after_seq ORDER BY seq LIMIT :limit",
)
LAST_SEQ = Statement(
    "events: the user's last seq",
    "SELECT event_seq FROM users WHERE id = :user_id",
)
LAST_SEQS = Statement(
    "events: the last seq of each of these users",
    "SELECT id, event_seq FROM users WHERE id = ANY(:ids)",
)
FIRST_SEQ = Statement(
    "events: the user's oldest stored seq",
    "SELECT min(seq) AS seq FROM events WHERE user_id = :user_id",
)


def logged_event(row: Row) -> LoggedEvent:
    return LoggedEvent(row["seq"], row["type"], row["run_id"], row["body"])


def thread_record(row: Row) -> ThreadRecord:
    return ThreadRecord(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        agent=row["agent"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        pinned=bool(row["pinned"]),
        archived=bool(row["archived"]),
        active_leaf=row["active_leaf"],
    )


class Scoped:
    """Base of the repositories of user-owned tables: bound to one caller's context."""

    def __init__(self, ctx: UserExecutionContext) -> None:
        self._ctx = ctx

    @property
    def user_id(self) -> str:
        return self._ctx.user_id


class ThreadRepository(Scoped):
    def create(
        self,
        *,
        title: str,
        agent: str,
        at: datetime | None = None,
        first_message: str | None = None,
        thread_id: str | None = None,
    ) -> Tx[ThreadRecord]:
        """A new thread; ``first_message`` is the id of the message about to start it, and
        ``thread_id`` one the caller made (``new_id("th")``) before the transaction."""
        now = at or utcnow()
        record = ThreadRecord(
            thread_id or new_id("th"),
            self.user_id,
            title,
            agent,
            now,
            now,
            active_leaf=first_message,
        )
        yield from execute(
            THREAD_INSERT(
                id=record.id,
                user_id=self.user_id,
                title=title,
                agent=agent,
                created_at=now,
                active_leaf=first_message,
            )
        )
        return record

    def get(self, thread_id: str, *, hold: bool = False) -> Tx[ThreadRecord]:
        """The caller's thread; with ``hold``, locked until commit (on PostgreSQL: SQLite
        has one writer), so that its branch's end read here is still its end."""
        statement = THREAD_HOLD if hold else THREAD_GET
        row = yield from first(statement(id=thread_id, user_id=self.user_id))
        if row is None:
            raise NotFound("thread not found")
        return thread_record(row)

    def list(
        self,
        *,
        limit: int,
        after: tuple[datetime, str] | None = None,
        archived: bool = False,
        pinned: bool | None = None,
    ) -> Tx[list[ThreadRecord]]:
        """The caller's threads, latest activity first: the first ``limit``, or those past
        ``after`` (a thread's ``(updated_at, id)``) in that order; archived ones or the
        others, and with ``pinned`` only those pinned (True) or not (False)."""
        scope = {
            "user_id": self.user_id,
            "archived": archived,
            "any_pin": pinned is None,
            "pinned": bool(pinned),
            "limit": limit,
        }
        if after is None:
            statement = THREAD_LIST(**scope)
        else:
            at, thread_id = after
            statement = THREAD_LIST_AFTER(**scope, updated_at=at, id=thread_id)
        found = yield from rows(statement)
        return [thread_record(row) for row in found]

    def change(
        self,
        thread_id: str,
        *,
        title: str | None = None,
        pinned: bool | None = None,
        archived: bool | None = None,
    ) -> Tx[ThreadRecord]:
        """Rename, pin or unpin, archive or bring back (what is None stays as it is); the
        last activity (``updated_at``) does not change."""
        row = yield from first(
            THREAD_CHANGE(
                id=thread_id, user_id=self.user_id, title=title, pinned=pinned, archived=archived
            )
        )
        if row is None:
            raise NotFound("thread not found")
        if title is not None:
            yield from forget_old_titles()
        return thread_record(row)

    def delete(self, thread_id: str) -> Tx[None]:
        """The thread and everything of it: messages, runs (their tool calls and turns go
        with them) and the events in the user's log. A run of it that still writes finds
        its row gone and is refused (fencing); nothing can take it over."""
        yield from self.get(thread_id)
        yield from execute(THREAD_LOCK_RUNS(user_id=self.user_id, thread_id=thread_id))
        yield from execute(THREAD_DROP_EVENTS(user_id=self.user_id, thread_id=thread_id))
        yield from execute(THREAD_DROP(id=thread_id, user_id=self.user_id))
        yield from forget_deleted()

    def touch(self, thread_id: str, *, leaf: str, at: datetime | None = None) -> Tx[None]:
        """A message joined the thread: its last activity is now, its branch ends there."""
        yield from execute(
            THREAD_TOUCH(
                id=thread_id, user_id=self.user_id, updated_at=at or utcnow(), active_leaf=leaf
            )
        )

    def answered(
        self, thread_id: str, *, question_id: str, answer_id: str, since: datetime
    ) -> Tx[None]:
        """A run's answer to ``question_id`` was stored: the branch that ended at the
        question ends at the answer, and questions sent while it was awaited (since the run
        was queued) follow the answer, not the question."""
        leaf = yield from scalar(
            THREAD_ANSWERED(
                id=thread_id,
                user_id=self.user_id,
                updated_at=utcnow(),
                question_id=question_id,
                answer_id=answer_id,
            )
        )
        if leaf != answer_id:  # something followed the question meanwhile (or a switch)
            yield from execute(
                FOLLOW_ANSWER(
                    user_id=self.user_id,
                    question_id=question_id,
                    answer_id=answer_id,
                    since_at=since,
                )
            )

    def switch(self, thread_id: str, message_id: str) -> Tx[ThreadRecord]:
        """Show and continue the branch through ``message_id``: it ends at the message's
        newest child, that one's newest child, and so on."""
        leaf = yield from scalar(
            MESSAGE_NEWEST_LEAF(id=message_id, user_id=self.user_id, thread_id=thread_id)
        )
        if leaf is None:
            raise NotFound("message not found")
        row = yield from first(
            THREAD_SET_LEAF(id=thread_id, user_id=self.user_id, active_leaf=leaf)
        )
        if row is None:
            raise NotFound("thread not found")
        return thread_record(row)


class EventRepository(Scoped):
    """Reads of the caller's event log (its writes: ``netra.db.event_log``)."""

    @staticmethod
    def last_seqs(user_ids: Sequence[str]) -> Tx[dict[str, int]]:
        """The last stored seq of each of these users (for the sockets' position checks,
        which cover every user with a socket on this instance)."""
        found = yield from rows(LAST_SEQS(ids=list(user_ids)))
        return {row["id"]: int(row["event_seq"] or 0) for row in found}

    def after(self, after_seq: int, *, limit: int) -> Tx[list[LoggedEvent]]:
        found = yield from rows(
            EVENTS_AFTER(user_id=self.user_id, after_seq=after_seq, limit=limit)
        )
        return [logged_event(row) for row in found]

    def for_run(self, run_id: str, after_seq: int, *, limit: int) -> Tx[list[LoggedEvent]]:
        found = yield from rows(
            EVENTS_OF_RUN(user_id=self.user_id, run_id=run_id, after_seq=after_seq, limit=limit)
        )
        return [logged_event(row) for row in found]

    def for_thread(
        self, thread_id: str, after_seq: int, *, limit: int
    ) -> Tx[list[tuple[int, str]]]:
        found = yield from rows(
            EVENTS_OF_THREAD(
                user_id=self.user_id, thread_id=thread_id, after_seq=after_seq, limit=limit
            )
        )
        return [(row["seq"], row["body"]) for row in found]

    def last_seq(self) -> Tx[int]:
        value = yield from scalar(LAST_SEQ(user_id=self.user_id))
        return int(value or 0)

    def first_seq(self) -> Tx[int | None]:
        value = yield from scalar(FIRST_SEQ(user_id=self.user_id))
        return int(value) if value is not None else None
