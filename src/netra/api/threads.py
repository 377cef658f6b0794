"""The caller's threads and their messages; sending a message over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netra.api.deps import AppState, CurrentUser, PathId
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.paging import Cursor, PageLimit, cursor_for, page_of, position_of
from netra.api.views import AckView, MessagePage, SearchPage, ThreadPage, ThreadView
from netra.context import UserExecutionContext
from netra.db.repositories import MessageRepository, ThreadRepository, Turns
from netra.db.search import search, terms
from netra.db.sql import Tx
from netra.errors import InvalidRequest
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
    ctx: CurrentUser,
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
async def create_thread(body: NewThread, ctx: CurrentUser, netra: AppState) -> ThreadView:
    netra.agents.check_access(ctx, body.agent)
    thread = await netra.db.transact(
        ThreadRepository(ctx).create(title=body.title, agent=body.agent)
    )
    return ThreadView.model_validate(thread.public())


@router.get("/threads/search", responses=error_responses(422))
async def search_threads(
    ctx: CurrentUser,
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
async def get_thread(thread_id: PathId, ctx: CurrentUser, netra: AppState) -> ThreadView:
    thread = await netra.db.transact(ThreadRepository(ctx).get(thread_id))
    return ThreadView.model_validate(thread.public())


@router.get("/threads/{thread_id}/messages")
async def list_messages(
    thread_id: PathId,
    ctx: CurrentUser,
    netra: AppState,
    *,
    limit: PageLimit = 50,
    before: Cursor = None,
    after: Cursor = None,
) -> MessagePage:
    """A page of the thread's turns — each user message, then its run's answer — oldest
    first: the newest ``limit`` turns, or those before or after a cursor of a page."""
    if before and after:
        raise InvalidRequest("give before or after, not both", code="invalid_cursor")
    older_than = position_of(before) if before else None
    newer_than = position_of(after) if after else None
    turns = await netra.db.transact(
        _messages(ctx, thread_id, limit=limit, before=older_than, after=newer_than)
    )
    questions = [m for m in turns.messages if m.role == "user"]
    first, last = (questions[0], questions[-1]) if questions else (None, None)
    return MessagePage.model_validate(
        {
            "items": [message.public() for message in turns.messages],
            "older_cursor": cursor_for(first.created_at, first.id)
            if turns.older and first
            else None,
            "newer_cursor": cursor_for(last.created_at, last.id) if turns.newer and last else None,
        }
    )


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
    thread_id: PathId, body: ThreadChange, ctx: CurrentUser, netra: AppState
) -> ThreadView:
    """Rename, pin or unpin, archive or bring back the thread; every open tab hears
    ``thread_updated``."""
    thread = await netra.db.transact(
        ThreadRepository(ctx).change(thread_id, **body.model_dump(exclude_unset=True))
    )
    await netra.bridge.emit(ctx, ThreadUpdated(thread.public()), thread_id=thread.id)
    return ThreadView.model_validate(thread.public())


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: PathId, ctx: CurrentUser, netra: AppState) -> Response:
    """Delete the thread: its messages, runs (cancelled first if active) and events. Every
    open tab hears ``thread_deleted``."""
    await netra.runs.delete_thread(ctx, thread_id)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/runs", status_code=202, responses=error_responses(403, 409, 429))
async def create_run(thread_id: PathId, body: NewRun, ctx: CurrentUser, netra: AppState) -> AckView:
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
    before: tuple[datetime, str] | None,
    after: tuple[datetime, str] | None,
) -> Tx[Turns]:
    yield from ThreadRepository(ctx).get(thread_id)  # another user's thread: not found
    return (
        yield from MessageRepository(ctx).turns(thread_id, limit=limit, before=before, after=after)
    )
