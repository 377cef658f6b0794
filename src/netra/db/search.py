"""Full-text search over one user's messages and thread titles, the same on both backends.

A text is its *words*: the runs of letters and digits, lowercased (``12*7=84`` is ``12``,
``7``, ``84``; ``don't`` is ``don`` and ``t``). A search is one to ``MAX_TERMS`` words; a
row matches when every one of them begins a word of its text (``lisb`` finds "Lisbon").
Hits come newest first. SQLite answers from its FTS5 indexes (``message_search``,
``thread_search``, tokenizer ``unicode61``, accents kept), PostgreSQL from GIN indexes over
``to_tsvector('simple', …)`` of the same words (migration 0006); both see the same words,
so both find the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from netra.db.sql import Statement, Tx, execute, rows

SEARCH_INDEXES = ("message_search", "thread_search")
"""SQLite's search indexes: each a virtual table with shadow tables named after it."""
MAX_TERMS = 8
MAX_TERM_CHARS = 64
EXCERPT_CHARS = 160
_WORD = re.compile(r"[^\W_]+")

MESSAGE_SEARCH = Statement(
    "search: the user's messages having every term, newest first, with their thread",
    sqlite="SELECT m.id, m.thread_id, m.role, m.content, m.created_at, t.title"
    " FROM message_search s JOIN messages m ON m.rowid = s.rowid"
    " JOIN threads t ON t.id = m.thread_id"
    " WHERE message_search MATCH :query AND m.user_id = :user_id"
    " ORDER BY m.created_at DESC, m.id DESC LIMIT :limit",
    postgres="SELECT m.id, m.thread_id, m.role, m.content, m.created_at, t.title"
    " FROM messages m JOIN threads t ON t.id = m.thread_id"
    " WHERE m.user_id = :user_id"
    " AND to_tsvector('simple', regexp_replace(m.content, '(\\W|_)+', ' ', 'g'))"
    " @@ to_tsquery('simple', :query)"
    " ORDER BY m.created_at DESC, m.id DESC LIMIT :limit",
)
TITLE_SEARCH = Statement(
    "search: the user's threads whose title has every term, newest first",
    sqlite="SELECT t.id AS thread_id, t.title, t.updated_at AS created_at"
    " FROM thread_search s JOIN threads t ON t.rowid = s.rowid"
    " WHERE thread_search MATCH :query AND t.user_id = :user_id"
    " ORDER BY t.updated_at DESC, t.id DESC LIMIT :limit",
    postgres="SELECT t.id AS thread_id, t.title, t.updated_at AS created_at FROM threads t"
    " WHERE t.user_id = :user_id"
    " AND to_tsvector('simple', regexp_replace(t.title, '(\\W|_)+', ' ', 'g'))"
    " @@ to_tsquery('simple', :query)"
    " ORDER BY t.updated_at DESC, t.id DESC LIMIT :limit",
)


MESSAGES_FORGET = Statement(
    "search: the messages' index keeps nothing of deleted rows",
    sqlite="INSERT INTO message_search (message_search) VALUES ('optimize')",
    postgres=None,
)
TITLES_FORGET = Statement(
    "search: the titles' index keeps nothing of deleted rows",
    sqlite="INSERT INTO thread_search (thread_search) VALUES ('optimize')",
    postgres=None,
)


def forget_deleted() -> Tx[None]:
    """Make the indexes drop what deleted rows left in them. SQLite's FTS5 index marks a
    deleted row's words as gone but keeps their bytes until its segments merge; a deleted
    thread must leave nothing, so its deletion merges them all (the cost grows with the
    index: a deletion is rare and the embedded database small). PostgreSQL's GIN index
    holds nothing a query can read after a commit: nothing to do there."""
    yield from execute(MESSAGES_FORGET())
    yield from forget_old_titles()


def forget_old_titles() -> Tx[None]:
    """The same for the titles' index alone, after a rename (one row per thread: cheap)."""
    yield from execute(TITLES_FORGET())


@dataclass(frozen=True, slots=True)
class Hit:
    """A thread whose title matched (``message_id`` None), or one of its messages."""

    thread_id: str
    title: str
    message_id: str | None
    role: str | None
    text: str
    """The matching message's text, or the title."""
    at: datetime
    """When the message was written, or the thread last changed."""

    def excerpt(self, words: Sequence[str], width: int = EXCERPT_CHARS) -> str:
        """Up to ``width`` characters of ``text`` around the first word found in it."""
        if len(self.text) <= width:
            return self.text
        lowered = self.text.lower()
        found = [at for word in words if (at := lowered.find(word)) >= 0]
        start = max(0, min(found, default=0) - width // 4)
        start = min(start, len(self.text) - width)
        cut = self.text[start : start + width]
        return f"{'…' if start else ''}{cut}{'…' if start + width < len(self.text) else ''}"


def terms(text: str) -> list[str]:
    """The words of a search (at most ``MAX_TERMS``, each cut to ``MAX_TERM_CHARS``)."""
    found = dict.fromkeys(word[:MAX_TERM_CHARS] for word in _WORD.findall(text.lower()))
    return list(found)[:MAX_TERMS]


def search(user_id: str, words: Sequence[str], *, limit: int, sqlite: bool) -> Tx[list[Hit]]:
    """The user's titles and messages having every word of ``words`` (from ``terms``),
    newest first, at most ``limit``."""
    if not words:
        return []
    if sqlite:  # the column, the user's id as a phrase, and each word as a prefix
        quoted = " AND ".join(f'"{word}"*' for word in words)
        owner = f'user_id : "{user_id}"'
        messages_query = f"content : ({quoted}) AND {owner}"
        titles_query = f"title : ({quoted}) AND {owner}"
    else:
        messages_query = titles_query = " & ".join(f"{word}:*" for word in words)
    titles = yield from rows(TITLE_SEARCH(query=titles_query, user_id=user_id, limit=limit))
    messages = yield from rows(MESSAGE_SEARCH(query=messages_query, user_id=user_id, limit=limit))
    hits = [
        Hit(row["thread_id"], row["title"], None, None, row["title"], row["created_at"])
        for row in titles
    ] + [
        Hit(
            row["thread_id"],
            row["title"],
            row["id"],
            row["role"],
            row["content"],
            row["created_at"],
        )
        for row in messages
    ]
    hits.sort(key=lambda hit: hit.at, reverse=True)
    return hits[:limit]
