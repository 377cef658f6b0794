"""Repositories: the only code that queries user-owned tables.

Every repository here is bound to a ``UserExecutionContext`` and filters every statement by
its ``user_id``; another user's row is indistinguishable from a missing one. Its methods are
transaction functions (``netra.db.sql``): run one with ``DatabaseManager.transact``, or
compose several into one transaction with ``yield from``. Accounts and sessions, looked up
before there is a context, are in ``netra.db.accounts``; runs in ``netra.db.runs`` (reads)
and ``netra.db.queue`` (every change); the tool-call ledger in ``netra.db.ledger``; the event
log's writes, whose batches span users, in ``netra.db.event_log``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from netra.context import UserExecutionContext
from netra.db.records import MessageRecord, ThreadRecord, utcnow
from netra.db.search import forget_deleted, forget_old_titles
from netra.db.sql import Row, Statement, Tx, execute, first, rows, scalar
from netra.errors import NotFound
from netra.ids import new_id

THREAD_INSERT = Statement(
    "thread: a new one",
    "INSERT INTO threads (id, user_id, title, agent, created_at, updated_at)"
    " VALUES (:id, :user_id, :title, :agent, :created_at, :created_at)",
)
THREAD_GET = Statement(
    "thread: one of the user's",
    "SELECT * FROM threads WHERE id = :id AND user_id = :user_id",
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
    "thread: its last activity is now",
    "UPDATE threads SET updated_at = :updated_at WHERE id = :id AND user_id = :user_id",
)
MESSAGE_INSERT = Statement(
    "message: a new one",
    "INSERT INTO messages (id, user_id, thread_id, run_id, role, content, data, client_msg_id,"
    " created_at) VALUES (:id, :user_id, :thread_id, :run_id, :role, :content, :data,"
    " :client_msg_id, :created_at)",
)
MESSAGE_BY_CLIENT_ID = Statement(
    "message: the user's with this client_msg_id (a retried send)",
    "SELECT * FROM messages WHERE user_id = :user_id AND client_msg_id = :client_msg_id",
)
QUESTIONS_NEWEST = Statement(
    "messages: a thread's newest user messages (a page of turns)",
    "SELECT * FROM messages WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND role = 'user' ORDER BY created_at DESC, id DESC LIMIT :limit",
)
QUESTIONS_BEFORE = Statement(
    "messages: a thread's user messages before a position, newest first",
    "SELECT * FROM messages WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND role = 'user'"
    " AND (created_at < :created_at OR (created_at = :created_at AND id < :id))"
    " ORDER BY created_at DESC, id DESC LIMIT :limit",
)
QUESTIONS_AFTER = Statement(
    "messages: a thread's user messages after a position, oldest first",
    "SELECT * FROM messages WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND role = 'user'"
    " AND (created_at > :created_at OR (created_at = :created_at AND id > :id))"
    " ORDER BY created_at, id LIMIT :limit",
)
ANSWERS = Statement(
    "messages: the answers of these runs",
    "SELECT * FROM messages WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND role <> 'user' AND run_id = ANY(:run_ids)",
)
MESSAGE_TEXTS = Statement(
    "messages: a thread's newest texts, oldest first (a run's conversation)",
    "SELECT run_id, role, content, created_at, id FROM (SELECT run_id, role, content,"
    " created_at, id FROM messages WHERE user_id = :user_id AND thread_id = :thread_id"
    " ORDER BY created_at DESC, id DESC LIMIT :limit) AS newest ORDER BY created_at, id",
)
QUESTIONS_BEFORE_COUNT = Statement(
    "messages: how many questions of a thread come before a message",
    "SELECT count(*) AS n FROM messages WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND role = 'user'"
    " AND (created_at < :created_at OR (created_at = :created_at AND id < :id))",
)
MESSAGE_SEARCH = Statement(
    "messages: the user's containing a text (any case), newest first, with the thread title",
    "SELECT m.*, t.title FROM messages m JOIN threads t ON t.id = m.thread_id"
    " WHERE m.user_id = :user_id AND t.user_id = :user_id"
    " AND lower(m.content) LIKE :pattern ESCAPE '\\'"
    " ORDER BY m.created_at DESC, m.id DESC LIMIT :limit",
)
EVENTS_AFTER = Statement(
    "events: the user's after a seq, in order",
    "SELECT seq, body FROM events WHERE user_id = :user_id AND seq > :after_seq"
    " ORDER BY seq LIMIT :limit",
)
EVENTS_OF_RUN = Statement(
    "events: one run's after a seq, in order",
    "SELECT seq, body FROM events WHERE user_id = :user_id AND run_id = :run_id"
    " AND seq > :after_seq ORDER BY seq LIMIT :limit",
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
    )


def message_record(row: Row) -> MessageRecord:
    return MessageRecord(
        id=row["id"],
        user_id=row["user_id"],
        thread_id=row["thread_id"],
        run_id=row["run_id"],
        role=row["role"],
        content=row["content"],
        data=row["data"],
        client_msg_id=row["client_msg_id"],
        created_at=row["created_at"],
    )


class Scoped:
    """Base of the repositories of user-owned tables: bound to one caller's context."""

    def __init__(self, ctx: UserExecutionContext) -> None:
        self._ctx = ctx

    @property
    def user_id(self) -> str:
        return self._ctx.user_id


class ThreadRepository(Scoped):
    def create(self, *, title: str, agent: str, at: datetime | None = None) -> Tx[ThreadRecord]:
        now = at or utcnow()
        record = ThreadRecord(new_id("th"), self.user_id, title, agent, now, now)
        yield from execute(
            THREAD_INSERT(
                id=record.id, user_id=self.user_id, title=title, agent=agent, created_at=now
            )
        )
        return record

    def get(self, thread_id: str) -> Tx[ThreadRecord]:
        row = yield from first(THREAD_GET(id=thread_id, user_id=self.user_id))
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

    def touch(self, thread_id: str, *, at: datetime | None = None) -> Tx[None]:
        yield from execute(
            THREAD_TOUCH(id=thread_id, user_id=self.user_id, updated_at=at or utcnow())
        )


class MessageRepository(Scoped):
    def add(
        self,
        *,
        thread_id: str,
        role: str,
        content: str,
        run_id: str | None = None,
        data: dict[str, Any] | None = None,
        client_msg_id: str | None = None,
        message_id: str | None = None,
        at: datetime | None = None,
    ) -> Tx[MessageRecord]:
        record = MessageRecord(
            id=message_id or new_id("msg"),
            user_id=self.user_id,
            thread_id=thread_id,
            run_id=run_id,
            role=role,
            content=content,
            data=data,
            client_msg_id=client_msg_id,
            created_at=at or utcnow(),
        )
        yield from execute(
            MESSAGE_INSERT(
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

    def by_client_msg_id(self, client_msg_id: str) -> Tx[MessageRecord | None]:
        row = yield from first(
            MESSAGE_BY_CLIENT_ID(user_id=self.user_id, client_msg_id=client_msg_id)
        )
        return message_record(row) if row else None

    def texts(self, thread_id: str, *, limit: int = 1000) -> Tx[Conversation]:
        """What was said in the thread, in turn order, as cheaply as it reads: a run's
        conversation. A thread longer than ``limit`` gives its newest ``limit`` messages,
        the ones a new question follows, and counts the questions before them."""
        found = yield from rows(
            MESSAGE_TEXTS(user_id=self.user_id, thread_id=thread_id, limit=limit)
        )
        unread = 0
        if len(found) == limit:
            oldest = found[0]
            unread = yield from scalar(
                QUESTIONS_BEFORE_COUNT(
                    user_id=self.user_id,
                    thread_id=thread_id,
                    created_at=oldest["created_at"],
                    id=oldest["id"],
                )
            )
        said = [Said(row["role"], row["content"], row["run_id"]) for row in found]
        return Conversation(_in_turn_order(said), int(unread or 0))

    def turns(
        self,
        thread_id: str,
        *,
        limit: int,
        before: tuple[datetime, str] | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> Tx[Turns]:
        """A page of the thread's turns (a user message, then the answer of its run), in
        turn order: the newest ``limit``, or those just ``before`` a user message's
        ``(created_at, id)`` or just ``after`` it; with whether turns come before and after
        the page."""
        scope = {"user_id": self.user_id, "thread_id": thread_id, "limit": limit + 1}
        if after is not None:
            statement = QUESTIONS_AFTER(**scope, created_at=after[0], id=after[1])
        elif before is not None:
            statement = QUESTIONS_BEFORE(**scope, created_at=before[0], id=before[1])
        else:
            statement = QUESTIONS_NEWEST(**scope)
        found = [message_record(row) for row in (yield from rows(statement))]
        more = len(found) > limit
        questions = sorted(found[:limit], key=lambda m: (m.created_at, m.id))
        run_ids = [m.run_id for m in questions if m.run_id is not None]
        answers: list[MessageRecord] = []
        if run_ids:
            answered = yield from rows(
                ANSWERS(user_id=self.user_id, thread_id=thread_id, run_ids=run_ids)
            )
            answers = [message_record(row) for row in answered]
        return Turns(
            _in_turn_order(questions + answers),
            older=more if after is None else True,
            newer=more if after is not None else before is not None,
        )

    def search(self, text: str, *, limit: int) -> Tx[Sequence[tuple[MessageRecord, str]]]:
        """The caller's messages containing ``text`` (any case), newest first, with their
        thread's title."""
        literal = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        found = yield from rows(
            MESSAGE_SEARCH(user_id=self.user_id, pattern=f"%{literal}%", limit=limit)
        )
        return [(message_record(row), row["title"]) for row in found]


class Turns(NamedTuple):
    """A page of a thread's turns."""

    messages: list[MessageRecord]
    older: bool
    """Turns come before the page."""
    newer: bool
    """Turns come after the page (as read)."""


class Conversation(NamedTuple):
    """The newest part of a thread, as a run reads it."""

    said: list[Said]
    unread: int
    """Questions of the thread before those read (each the start of a turn)."""


class Said(NamedTuple):
    """One message of a thread as a conversation holds it."""

    role: str
    content: str
    run_id: str | None


class _Turn(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def run_id(self) -> str | None: ...


_T = TypeVar("_T", bound=_Turn)


def _in_turn_order(messages: list[_T]) -> list[_T]:
    # An answer is stored when its run ends, possibly after later questions were sent.
    answers = {m.run_id: m for m in messages if m.role != "user" and m.run_id is not None}
    ordered: list[_T] = []
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
    def last_seqs(user_ids: Sequence[str]) -> Tx[dict[str, int]]:
        """The last stored seq of each of these users (for the sockets' position checks,
        which cover every user with a socket on this instance)."""
        found = yield from rows(LAST_SEQS(ids=list(user_ids)))
        return {row["id"]: int(row["event_seq"] or 0) for row in found}

    def after(self, after_seq: int, *, limit: int) -> Tx[list[tuple[int, str]]]:
        found = yield from rows(
            EVENTS_AFTER(user_id=self.user_id, after_seq=after_seq, limit=limit)
        )
        return [(row["seq"], row["body"]) for row in found]

    def for_run(self, run_id: str, after_seq: int, *, limit: int) -> Tx[list[tuple[int, str]]]:
        found = yield from rows(
            EVENTS_OF_RUN(user_id=self.user_id, run_id=run_id, after_seq=after_seq, limit=limit)
        )
        return [(row["seq"], row["body"]) for row in found]

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
