"""MessageRepository: a thread's messages, a tree of them — each follows its parent — read
along one branch at a time: a run's conversation, pages of a thread's turns, the siblings of
a message (its other versions), the whole tree, and a fork of a branch into a thread of its
own. Every statement is filtered by the context's ``user_id`` (``Scoped``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from netra.db.records import MessageRecord, ThreadRecord, utcnow
from netra.db.repositories import Scoped, ThreadRepository
from netra.db.sql import Many, Row, Statement, Tx, execute, first, rows, scalar
from netra.errors import NotFound
from netra.ids import new_id

PATH_MAX = 1_000_000
"""Bounds nothing in practice: a path read whole."""
TITLE_MAX = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
MESSAGE_TEXTS = Statement(
    "messages: a run's conversation, the branch ending at its question, back to a bound",
    "WITH RECURSIVE path(id, parent_id, k) AS ("
    " SELECT id, parent_id, 1 FROM messages WHERE id = :id AND user_id = :user_id"
    " UNION ALL SELECT m.id, m.parent_id, path.k + 1"
    " FROM messages AS m JOIN path ON m.id = path.parent_id WHERE path.k < :count)"
    " SELECT m.id, m.parent_id, m.role, m.content, m.run_id, m.turn, m.data"
    " FROM path JOIN messages AS m ON m.id = path.id ORDER BY path.k DESC",
)
"""``MESSAGE_PATH`` for a run's conversation: only what it reads of each message (no
timestamps to parse, no record to build)."""
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

    def texts(self, question_id: str, *, limit: int) -> Tx[Conversation]:
        """A run's conversation: the path to the question it answers, ending with it, as
        cheaply as it reads — at most ``limit`` messages, and how many questions came
        before those read."""
        found = yield from rows(MESSAGE_TEXTS(id=question_id, user_id=self.user_id, count=limit))
        unread = 0
        if found and found[0]["parent_id"] is not None:  # the path goes on before the read
            first = found[0]
            unread = first["turn"] - 1 if first["role"] == "user" else first["turn"]
            while found[0]["role"] != "user":  # an answer whose question was not read
                del found[0]
        return Conversation([_said(row) for row in found], unread)

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

    def fork(self, thread_id: str, at_message_id: str) -> Tx[ThreadRecord]:
        """A new thread holding a copy of the path to ``at_message_id`` (new ids, same
        texts, times and turns; no runs: the copies answer nothing)."""
        threads = ThreadRepository(self._ctx)
        source = yield from threads.get(thread_id)
        at = yield from self.get(thread_id, at_message_id)
        path = yield from self.path(at.id)
        copies = {m.id: new_id("msg") for m in path}
        thread = yield from threads.create(
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


def opening(question: MessageRecord) -> Conversation:
    """The conversation of a thread's first question (no parent): the question alone, known
    without a read."""
    said = Said(question.role, question.content, question.run_id, question.id, question.turn)
    return Conversation([said], 0)


def _said(row: Row) -> Said:
    calls = (row["data"] or {}).get("tool_calls") or []
    lines = [call.get("line") for call in calls if isinstance(call, dict)]
    return Said(
        row["role"],
        row["content"],
        row["run_id"],
        row["id"],
        row["turn"],
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


def fork_title(title: str) -> str:
    suffix = " (fork)"
    return title[: TITLE_MAX - len(suffix)] + suffix
