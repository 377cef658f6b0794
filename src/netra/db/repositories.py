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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from netra.context import UserExecutionContext
from netra.db.records import MessageRecord, ThreadRecord, utcnow
from netra.db.search import forget_deleted, forget_old_titles
from netra.db.sql import Many, Row, Statement, Tx, execute, first, rows, scalar
from netra.errors import NotFound
from netra.ids import new_id

PATH_MAX = 1_000_000
"""Bounds nothing in practice: a path read whole."""
TITLE_MAX = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
MESSAGE_INSERT = Statement(
    "message: a new one, in the turn after its parent's (a question) or in it (an answer)",
    "INSERT INTO messages (id, user_id, thread_id, run_id, role, content, data, client_msg_id,"
    " created_at, parent_id, turn) VALUES (:id, :user_id, :thread_id, :run_id, :role,"
    " :content, :data, :client_msg_id, :created_at, :parent_id, COALESCE((SELECT turn FROM"
    " messages WHERE id = :follows), 0) + :step) RETURNING turn",
)
MESSAGE_GET = Statement(
    "message: one of a thread of the user's",
    "SELECT * FROM messages WHERE id = :id AND user_id = :user_id AND thread_id = :thread_id",
)
MESSAGE_PATH = Statement(
    "messages: the branch ending at a message, back to a bound (a run's conversation, a page)",
    "WITH RECURSIVE path(id, parent_id, k, n) AS ("
    " SELECT id, parent_id, 1, CASE WHEN role = 'user' THEN 1 ELSE 0 END FROM messages"
    " WHERE id = :id AND user_id = :user_id AND turn >= :turn"
    " UNION ALL SELECT m.id, m.parent_id, path.k + 1,"
    " path.n + CASE WHEN m.role = 'user' THEN 1 ELSE 0 END"
    " FROM messages AS m JOIN path ON m.id = path.parent_id"
    " WHERE path.k < :count AND path.n < :questions AND m.turn >= :turn)"
    " SELECT messages.* FROM path JOIN messages ON messages.id = path.id ORDER BY path.k DESC",
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
MESSAGE_SIBLINGS = Statement(
    "messages: the children of these messages (and the thread's first ones), oldest first",
    "SELECT id, parent_id, role FROM messages WHERE user_id = :user_id"
    " AND thread_id = :thread_id AND (parent_id = ANY(:parent_ids)"
    " OR (:roots AND parent_id IS NULL)) ORDER BY created_at, id",
)
MESSAGE_TREE = Statement(
    "messages: a thread's, oldest first, after a position (its tree)",
    "SELECT id, parent_id, role, turn, run_id, created_at FROM messages"
    " WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND (created_at > :created_at OR (created_at = :created_at AND id > :id))"
    " ORDER BY created_at, id LIMIT :limit",
)
MESSAGE_COPY = Statement(
    "message: a copy in a forked thread",
    "INSERT INTO messages (id, user_id, thread_id, role, content, data, created_at, parent_id,"
    " turn) VALUES (:id, :user_id, :thread_id, :role, :content, :data, :created_at,"
    " :parent_id, :turn)",
)
NEWEST_RUNS = Statement(
    "runs: those answering these questions, oldest first",
    "SELECT id, question_id FROM runs WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND question_id = ANY(:question_ids) ORDER BY created_at, id",
)
MESSAGE_BY_CLIENT_ID = Statement(
    "message: the user's with this client_msg_id (a retried send)",
    "SELECT * FROM messages WHERE user_id = :user_id AND client_msg_id = :client_msg_id",
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
        active_leaf=row["active_leaf"],
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
        parent_id=row["parent_id"],
        turn=row["turn"],
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
    ) -> Tx[ThreadRecord]:
        """A new thread; ``first_message`` is the id of the message about to start it."""
        now = at or utcnow()
        record = ThreadRecord(
            new_id("th"), self.user_id, title, agent, now, now, active_leaf=first_message
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

    def fork(self, thread_id: str, at_message_id: str) -> Tx[ThreadRecord]:
        """A new thread holding a copy of the path to ``at_message_id`` (new ids, same
        texts, times and turns; no runs: the copies answer nothing)."""
        source = yield from self.get(thread_id)
        messages = MessageRepository(self._ctx)
        at = yield from messages.get(thread_id, at_message_id)
        path = yield from messages.path(at.id)
        copies = {m.id: new_id("msg") for m in path}
        thread = yield from self.create(
            title=fork_title(source.title), agent=source.agent, first_message=copies[at.id]
        )
        yield from execute(
            Many(
                MESSAGE_COPY,
                [
                    {
                        "id": copies[m.id],
                        "user_id": self.user_id,
                        "thread_id": thread.id,
                        "role": m.role,
                        "content": m.content,
                        "data": m.data,
                        "created_at": m.created_at,
                        "parent_id": copies.get(m.parent_id) if m.parent_id else None,
                        "turn": m.turn,
                    }
                    for m in path
                ],
            )
        )
        return thread


def fork_title(title: str) -> str:
    suffix = " (fork)"
    return title[: TITLE_MAX - len(suffix)] + suffix


class MessageRepository(Scoped):
    def add(
        self,
        *,
        thread_id: str,
        role: str,
        content: str,
        parent_id: str | None,
        run_id: str | None = None,
        data: dict[str, Any] | None = None,
        client_msg_id: str | None = None,
        message_id: str | None = None,
        at: datetime | None = None,
    ) -> Tx[MessageRecord]:
        """A message following ``parent_id``: a question opens the turn after its
        parent's, an answer is in its question's."""
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
            parent_id=parent_id,
        )
        turn = yield from scalar(
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
                parent_id=parent_id,
                follows=parent_id,  # the same, typed apart (PostgreSQL: text, not varchar)
                step=1 if role == "user" else 0,
            )
        )
        return replace(record, turn=int(turn))

    def get(self, thread_id: str, message_id: str) -> Tx[MessageRecord]:
        row = yield from first(
            MESSAGE_GET(id=message_id, user_id=self.user_id, thread_id=thread_id)
        )
        if row is None:
            raise NotFound("message not found")
        return message_record(row)

    def by_client_msg_id(self, client_msg_id: str) -> Tx[MessageRecord | None]:
        row = yield from first(
            MESSAGE_BY_CLIENT_ID(user_id=self.user_id, client_msg_id=client_msg_id)
        )
        return message_record(row) if row else None

    def path(
        self,
        message_id: str,
        *,
        count: int = PATH_MAX,
        questions: int = PATH_MAX,
        from_turn: int = 0,
    ) -> Tx[list[MessageRecord]]:
        """The path to a message, oldest first, ending with it: its last ``count``
        messages, or from its ``questions``-th question from the end, and nothing of a turn
        before ``from_turn``."""
        found = yield from rows(
            MESSAGE_PATH(
                id=message_id,
                user_id=self.user_id,
                count=count,
                questions=questions,
                turn=from_turn,
            )
        )
        return [message_record(row) for row in found]

    def texts(self, question_id: str, *, limit: int = 1000) -> Tx[Conversation]:
        """A run's conversation: the path to the question it answers, ending with it, as
        cheaply as it reads — at most ``limit`` messages, and how many questions came
        before those read."""
        found = yield from self.path(question_id, count=limit)
        unread = 0
        if found and found[0].parent_id is not None:  # the path goes on before the read
            unread = found[0].turn - 1 if found[0].role == "user" else found[0].turn
            while found[0].role != "user":  # an answer whose question was not read
                del found[0]
        return Conversation([_said(m) for m in found], unread)

    def turns(
        self,
        thread: ThreadRecord,
        *,
        limit: int,
        before: str | None = None,
        after: str | None = None,
    ) -> Tx[Turns]:
        """A page of the turns of the thread's branch (a question, then its answer), oldest
        first: the newest ``limit``, or those just ``before`` a question of the branch or
        just ``after`` it; with whether turns come before and after the page."""
        if thread.active_leaf is None:
            return Turns([], older=False, newer=False)
        if before is not None:
            cursor = yield from self.get(thread.id, before)
            if cursor.parent_id is None:
                return Turns([], older=False, newer=True)
            found = yield from self.path(cursor.parent_id, questions=limit + 1)
            more = _cut_oldest_turn(found, limit)
            page, older, newer = found, more, True
        elif after is not None:
            cursor = yield from self.get(thread.id, after)
            found = yield from self.path(thread.active_leaf, from_turn=cursor.turn + 1)
            page, more = _first_turns(found, limit)
            older, newer = True, more
        else:
            found = yield from self.path(thread.active_leaf, questions=limit + 1)
            more = _cut_oldest_turn(found, limit)
            page, older, newer = found, more, False
        return Turns((yield from self._answering(thread.id, page)), older=older, newer=newer)

    def _answering(self, thread_id: str, page: list[MessageRecord]) -> Tx[list[MessageRecord]]:
        """The page with each question's ``run_id`` the run whose answer follows it here,
        or, with none, its newest run (one still working, or one that ended with no
        answer)."""
        followed = {m.parent_id: m.run_id for m in page if m.role != "user"}
        waiting = [m.id for m in page if m.role == "user" and m.id not in followed]
        newest: dict[str, str] = {}
        if waiting:
            found = yield from rows(
                NEWEST_RUNS(user_id=self.user_id, thread_id=thread_id, question_ids=waiting)
            )
            newest = {row["question_id"]: row["id"] for row in found}
        return [
            replace(m, run_id=followed.get(m.id) or newest.get(m.id) or m.run_id)
            if m.role == "user"
            else m
            for m in page
        ]

    def siblings(self, thread_id: str, page: Sequence[MessageRecord]) -> Tx[dict[str, list[str]]]:
        """For each message of the page, the ids of the messages in its place — its own
        and its alternatives (edits of a question, regenerations of an answer) — oldest
        first."""
        if not page:
            return {}
        found = yield from rows(
            MESSAGE_SIBLINGS(
                user_id=self.user_id,
                thread_id=thread_id,
                parent_ids=[m.parent_id for m in page if m.parent_id is not None],
                roots=any(m.parent_id is None for m in page),
            )
        )
        places: dict[tuple[str | None, str], list[str]] = {}
        for row in found:
            places.setdefault((row["parent_id"], row["role"]), []).append(row["id"])
        return {m.id: places.get((m.parent_id, m.role), [m.id]) for m in page}

    def tree(
        self, thread_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> Tx[list[Row]]:
        """A page of the thread's messages as its tree holds them (id, parent, role, turn,
        run), oldest first."""
        at, last_id = after or (EPOCH, "")
        return (
            yield from rows(
                MESSAGE_TREE(
                    user_id=self.user_id,
                    thread_id=thread_id,
                    created_at=at,
                    id=last_id,
                    limit=limit,
                )
            )
        )


def _said(message: MessageRecord) -> Said:
    calls = (message.data or {}).get("tool_calls") or []
    lines = [call.get("line") for call in calls if isinstance(call, dict)]
    return Said(
        message.role,
        message.content,
        message.run_id,
        message.id,
        message.turn,
        tuple(line for line in lines if isinstance(line, str)),
    )


def _cut_oldest_turn(found: list[MessageRecord], limit: int) -> bool:
    """Drop the oldest turn of a path read with one question more than ``limit``: True when
    it had that many (more turns come before the page)."""
    if sum(m.role == "user" for m in found) <= limit:
        return False
    oldest = found[0].turn
    del found[: next(i for i, m in enumerate(found) if m.turn != oldest)]
    return True


def _first_turns(found: list[MessageRecord], limit: int) -> tuple[list[MessageRecord], bool]:
    """The first ``limit`` turns of a path, and whether more follow."""
    turns = sorted({m.turn for m in found})
    if len(turns) <= limit:
        return found, False
    last = turns[limit - 1]
    return [m for m in found if m.turn <= last], True


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
    id: str
    turn: int
    tools: tuple[str, ...] = ()
    """An answer's tool calls, a line each (``ToolOutcome.brief``)."""


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
