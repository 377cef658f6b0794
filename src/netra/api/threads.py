"""The caller's threads and their messages; sending a message over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netra.api.deps import AppState, PathId, RunsWriter, ThreadsReader, ThreadsWriter
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.paging import PAGE_MAX, Cursor, PageLimit, cursor_for, page_of, position_of
from netra.api.views.threads import (
    AckView,
    MessagePage,
    SearchPage,
    ThreadPage,
    ThreadView,
    TreePage,
)
from netra.context import UserExecutionContext
from netra.db.messages import MessageRepository, Turns
from netra.db.records import ThreadRecord
from netra.db.repositories import ThreadRepository
from netra.db.search import search, terms
from netra.db.sql import Row, Tx
from netra.errors import InvalidRequest, NotFound
from netra.events.payloads import ThreadUpdated
from netra.runs.service import DEFAULT_AGENT
from netra.text import Text

router = APIRouter(tags=["threads"], route_class=DocumentedRoute)
_Id = Annotated[Text, Field(min_length=1, max_length=100)]


class NewThread(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"title": "Trip to Lisbon"}]}
    )
    title: Annotated[Text, Field(min_length=1, max_length=200)] = "New chat"
    agent: _Id = DEFAULT_AGENT


class NewRun(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"content": "what is 12*7?", "client_msg_id": "c-1"}]},
    )
    content: Annotated[
        Text,
        Field(
            min_length=1,
            # Refused by RunService (for sockets too): blank, or longer than the caller's
            # limit, which depends on the user (GET /me shows it).
            json_schema_extra={"pattern": r"\S"},
            description="The message: not blank, and at most `limits.max_message_chars` "
            "characters of the caller's tier (`GET /me`), else 422 `message_too_large`.",
        ),
    ]
    agent: _Id | None = None
    client_msg_id: _Id | None = None


@router.get("/threads")
async def list_threads(
    ctx: ThreadsReader,
    netra: AppState,
    *,
    limit: PageLimit = 50,
    cursor: Cursor = None,
    archived: Annotated[bool, Query(description="The archived threads, not the others")] = False,
    pinned: Annotated[
        bool | None, Query(description="Only the pinned threads (true) or the others (false)")
    ] = None,
) -> ThreadPage:
    """The caller's threads, latest activity first; a cursor continues a listing with the
    same ``archived`` and ``pinned``."""
    after = position_of(cursor) if cursor else None
    found = await netra.db.transact(
        ThreadRepository(ctx).list(limit=limit + 1, after=after, archived=archived, pinned=pinned)
    )
    page, next_cursor = page_of(found, limit, lambda thread: (thread.updated_at, thread.id))
    items = [thread.public() for thread in page]
    return ThreadPage.model_validate({"items": items, "next_cursor": next_cursor})


@router.post("/threads", status_code=201, responses=error_responses(403, 404))
async def create_thread(body: NewThread, ctx: ThreadsWriter, netra: AppState) -> ThreadView:
    netra.agents.startable(ctx, body.agent)
    thread = await netra.db.transact(
        ThreadRepository(ctx).create(title=body.title, agent=body.agent)
    )
    return ThreadView.model_validate(thread.public())


@router.get("/threads/search", responses=error_responses(422))
async def search_threads(
    ctx: ThreadsReader,
    netra: AppState,
    q: Annotated[Text, Query(min_length=1, max_length=200, description="Words to find")],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> SearchPage:
    """The caller's threads whose title, and messages whose text, have every word of ``q``
    (each as the start of a word), newest first."""
    words = terms(q)
    if not words:
        raise InvalidRequest("search for at least one word (letters or digits)", code="bad_query")
    hits = await netra.db.transact(
        search(ctx.user_id, words, limit=limit, sqlite=netra.db.is_sqlite)
    )
    items = [
        {
            "thread_id": hit.thread_id,
            "title": hit.title,
            "message_id": hit.message_id,
            "role": hit.role,
            "excerpt": hit.excerpt(words),
            "at": hit.at.isoformat(),
        }
        for hit in hits
    ]
    return SearchPage.model_validate({"items": items, "terms": words})


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: PathId, ctx: ThreadsReader, netra: AppState) -> ThreadView:
    thread = await netra.db.transact(ThreadRepository(ctx).get(thread_id))
    return ThreadView.model_validate(thread.public())


@router.get("/threads/{thread_id}/messages")
async def list_messages(
    thread_id: PathId,
    ctx: ThreadsReader,
    netra: AppState,
    *,
    limit: PageLimit = 50,
    before: Cursor = None,
    after: Cursor = None,
) -> MessagePage:
    """A page of the turns of the thread's branch (the path to its ``active_leaf``) — each
    question, then its answer — oldest first: the newest ``limit`` turns, or those before or
    after a cursor of a page."""
    if before and after:
        raise InvalidRequest("give before or after, not both", code="invalid_cursor")
    older_than = position_of(before)[1] if before else None
    newer_than = position_of(after)[1] if after else None
    turns, siblings = await netra.db.transact(
        _messages(ctx, thread_id, limit=limit, before=older_than, after=newer_than)
    )
    questions = [m for m in turns.messages if m.role == "user"]
    first, last = (questions[0], questions[-1]) if questions else (None, None)
    return MessagePage.model_validate(
        {
            "items": [
                {**message.public(), "siblings": siblings[message.id]} for message in turns.messages
            ],
            "older_cursor": cursor_for(first.created_at, first.id)
            if turns.older and first
            else None,
            "newer_cursor": cursor_for(last.created_at, last.id) if turns.newer and last else None,
        }
    )


@router.get("/threads/{thread_id}/tree")
async def message_tree(
    thread_id: PathId,
    ctx: ThreadsReader,
    netra: AppState,
    *,
    limit: PageLimit = PAGE_MAX,
    cursor: Cursor = None,
) -> TreePage:
    """Every message of the thread, each branch's too, as ids and parents (no texts),
    oldest first: where the branches are, to draw or to switch to."""
    after = position_of(cursor) if cursor else None
    thread, found = await netra.db.transact(_tree(ctx, thread_id, limit=limit + 1, after=after))
    page, next_cursor = page_of(found, limit, lambda node: (node["created_at"], node["id"]))
    items = [{**node, "created_at": node["created_at"].isoformat()} for node in page]
    return TreePage.model_validate(
        {"items": items, "active_leaf": thread.active_leaf, "next_cursor": next_cursor}
    )


class LeafChoice(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"message_id": "msg_…"}]}
    )
    message_id: _Id
    """A message of the thread: its branch is shown and continued from now on."""


@router.put("/threads/{thread_id}/active_leaf", responses=error_responses(404))
async def switch_branch(
    thread_id: PathId, body: LeafChoice, ctx: ThreadsWriter, netra: AppState
) -> ThreadView:
    """Show and continue another branch: the one through ``message_id``, to its newest end
    (the message's newest reply, that one's newest, and so on). Every open tab hears
    ``thread_updated``."""
    thread = await netra.db.transact(ThreadRepository(ctx).switch(thread_id, body.message_id))
    await netra.bridge.emit(ctx, ThreadUpdated(thread.public()), thread_id=thread.id)
    return ThreadView.model_validate(thread.public())


class Regenerate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})
    agent: _Id | None = None
    """Another agent to answer this time (one the caller may use); none: the thread's."""


_NO_CHOICE = Regenerate()
"""No body: the thread's agent answers again."""


@router.post(
    "/threads/{thread_id}/messages/{message_id}/edit",
    status_code=202,
    responses=error_responses(403, 404, 409, 429),
)
async def edit_message(
    thread_id: PathId, message_id: PathId, body: NewRun, ctx: RunsWriter, netra: AppState
) -> AckView:
    """A new version of a question of the caller's: stored beside it (the thread's branch
    now goes through the new one) and answered by a new run that sees only that branch.
    Admitted like a message sent: the double-texting policy and the quotas apply."""
    ack = await netra.runs.edit(
        ctx,
        thread_id=thread_id,
        message_id=message_id,
        content=body.content,
        agent=body.agent,
        client_msg_id=body.client_msg_id,
    )
    return AckView.model_validate(ack.as_dict())


@router.post(
    "/threads/{thread_id}/messages/{message_id}/regenerate",
    status_code=202,
    responses=error_responses(403, 404, 409, 429),
)
async def regenerate_answer(
    thread_id: PathId,
    message_id: PathId,
    ctx: RunsWriter,
    netra: AppState,
    body: Regenerate = _NO_CHOICE,
) -> AckView:
    """A new answer to a question (``message_id``: the question, or an answer of it): a new
    run, whose answer goes beside the earlier ones; the thread's branch ends at the
    question until it comes."""
    ack = await netra.runs.regenerate(
        ctx, thread_id=thread_id, message_id=message_id, agent=body.agent
    )
    return AckView.model_validate(ack.as_dict())


class Fork(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"at_message_id": "msg_…"}]}
    )
    at_message_id: _Id
    """The last message to copy: the new thread holds the path to it."""


@router.post("/threads/{thread_id}/fork", status_code=201, responses=error_responses(404))
async def fork_thread(
    thread_id: PathId, body: Fork, ctx: ThreadsWriter, netra: AppState
) -> ThreadView:
    """A new thread holding a copy of the path to ``at_message_id`` (texts and turns; no
    runs), to go on from there on its own. Every open tab hears ``thread_updated``."""
    thread = await netra.db.transact(MessageRepository(ctx).fork(thread_id, body.at_message_id))
    await netra.bridge.emit(ctx, ThreadUpdated(thread.public()), thread_id=thread.id)
    return ThreadView.model_validate(thread.public())


class ThreadChange(BaseModel):
    """What to change: any of the three, at least one (an omitted one stays as it is)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"title": "Trip to Porto"}, {"pinned": True}],
            "minProperties": 1,
        },
    )
    # Omitted, not null: the defaults are never validated, a null sent is refused.
    title: Annotated[Text, Field(min_length=1, max_length=200)] = None  # type: ignore[assignment]
    pinned: bool = None  # type: ignore[assignment]
    archived: bool = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _something(self) -> ThreadChange:
        if not self.model_fields_set:
            raise ValueError("change at least one of title, pinned, archived")
        return self


@router.patch("/threads/{thread_id}")
async def update_thread(
    thread_id: PathId, body: ThreadChange, ctx: ThreadsWriter, netra: AppState
) -> ThreadView:
    """Rename, pin or unpin, archive or bring back the thread; every open tab hears
    ``thread_updated``."""
    thread = await netra.db.transact(
        ThreadRepository(ctx).change(thread_id, **body.model_dump(exclude_unset=True))
    )
    await netra.bridge.emit(ctx, ThreadUpdated(thread.public()), thread_id=thread.id)
    return ThreadView.model_validate(thread.public())


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: PathId, ctx: ThreadsWriter, netra: AppState) -> Response:
    """Delete the thread: its messages, runs (cancelled first if active) and events. Every
    open tab hears ``thread_deleted``."""
    await netra.runs.delete_thread(ctx, thread_id)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/runs", status_code=202, responses=error_responses(403, 409, 429))
async def create_run(thread_id: PathId, body: NewRun, ctx: RunsWriter, netra: AppState) -> AckView:
    ack = await netra.runs.submit(
        ctx,
        content=body.content,
        thread_id=thread_id,
        agent=body.agent,
        client_msg_id=body.client_msg_id,
    )
    return AckView.model_validate(ack.as_dict())


def _messages(
    ctx: UserExecutionContext,
    thread_id: str,
    *,
    limit: int,
    before: str | None,
    after: str | None,
) -> Tx[tuple[Turns, dict[str, list[str]]]]:
    thread = yield from ThreadRepository(ctx).get(thread_id)  # another user's: not found
    messages = MessageRepository(ctx)
    try:
        turns = yield from messages.turns(thread, limit=limit, before=before, after=after)
    except NotFound:  # the cursor's message: gone with its thread, or never given
        raise InvalidRequest("cursor is not one this server gave", code="invalid_cursor") from None
    return turns, (yield from messages.siblings(thread_id, turns.messages))


def _tree(
    ctx: UserExecutionContext, thread_id: str, *, limit: int, after: tuple[datetime, str] | None
) -> Tx[tuple[ThreadRecord, list[Row]]]:
    thread = yield from ThreadRepository(ctx).get(thread_id)
    return thread, (yield from MessageRepository(ctx).tree(thread_id, limit=limit, after=after))
