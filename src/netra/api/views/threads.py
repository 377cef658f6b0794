"""Threads and their messages: lists, pages, search hits, the message tree, acks."""

from __future__ import annotations

from typing import Literal

from netra.api.views import Timestamp, View


# ---- threads and messages ------------------------------------------------------------------
class ThreadView(View):
    id: str
    title: str
    agent: str
    """The agent that answers the thread's messages."""
    pinned: bool
    """Shown first by the chat page (``GET /threads?pinned=true``)."""
    archived: bool
    """Left out of ``GET /threads`` unless asked for (``archived=true``)."""
    active_leaf: str | None
    """The last message of the branch shown and continued; none before the first message.
    ``GET /threads/{id}/messages`` reads the path to it; a new message follows it."""
    created_at: Timestamp
    updated_at: Timestamp


class ThreadPage(View):
    items: list[ThreadView]
    """Newest activity first."""
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; none after the last page."""


class SearchHitView(View):
    thread_id: str
    title: str
    """The thread's title."""
    message_id: str | None
    """The message that matched; none when the title did."""
    role: Literal["user", "assistant"] | None
    excerpt: str
    """The matching text (a long message: around its first matching word)."""
    at: Timestamp
    """When the message was written, or the thread last changed."""


class SearchPage(View):
    items: list[SearchHitView]
    """Newest first."""
    terms: list[str]
    """The words searched for, as understood (lowercased, letters and digits)."""


class MessageView(View):
    id: str
    thread_id: str
    run_id: str | None
    """An answer: the run that wrote it. A question: as stored, the run it started; in a
    page of a branch, the run whose answer follows it there, or else its newest run (one
    still working, or one that ended without an answer)."""
    role: Literal["user", "assistant"]
    content: str
    parent_id: str | None
    """The message it follows: a question the answer before it, an answer its question;
    none for the thread's first question (and versions of it)."""
    turn: int
    """The turn's number on its branch, from 1; an answer shares its question's."""
    created_at: Timestamp


class BranchMessageView(MessageView):
    """A message of the thread's branch, with its alternatives."""

    siblings: list[str]
    """The ids of the messages in its place, oldest first, itself among them: the versions
    of a question (edits), or the answers to it (regenerations). One id: no alternatives."""


class MessagePage(View):
    items: list[BranchMessageView]
    """The branch ending at the thread's ``active_leaf``, in turn order, oldest first: each
    question, then its answer."""
    older_cursor: str | None
    """Pass as ``before`` for the turns before this page; none at the thread's start."""
    newer_cursor: str | None
    """Pass as ``after`` for the turns after this page; none at the thread's end (as read)."""


class AckView(View):
    """A message was stored and its run queued."""

    client_msg_id: str | None
    message_id: str
    """The question the run answers: the message sent or edited, or the one regenerated."""
    thread_id: str
    run_id: str


class TreeNodeView(View):
    id: str
    parent_id: str | None
    role: Literal["user", "assistant"]
    turn: int
    run_id: str | None
    created_at: Timestamp


class TreePage(View):
    """A page of a thread's messages as a tree: every branch, without the texts."""

    items: list[TreeNodeView]
    """Oldest first."""
    active_leaf: str | None
    """Where the thread's branch ends."""
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; none after the last page."""
