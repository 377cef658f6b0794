"""Runs and the event log over HTTP (the reload path). An event is stored as its envelope's
JSON text, which its view parses and checks in one step (``model_validate_json``): a page of
1,000 events costs no more than it did as untyped dicts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from netra.api.deps import AppState, PathId, RunsWriter, ThreadsReader
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.paging import Cursor, PageLimit, page_of, position_of
from netra.api.views.runs import (
    EventPage,
    EventView,
    RunPage,
    RunView,
    StreamPage,
    ToolDecisionView,
)
from netra.context import UserExecutionContext
from netra.db.records import Decision, LoggedEvent, RunRecord
from netra.db.repositories import EventRepository, ThreadRepository
from netra.db.runs import RunRepository
from netra.db.sql import Tx

router = APIRouter(tags=["runs"], route_class=DocumentedRoute)
AfterSeq = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/runs/{run_id}")
async def get_run(run_id: PathId, ctx: ThreadsReader, netra: AppState) -> RunView:
    run = await netra.db.transact(RunRepository(ctx).get(run_id))
    return RunView.model_validate(run.public())


@router.post("/runs/{run_id}/cancel", status_code=202)
async def cancel_run(run_id: PathId, ctx: RunsWriter, netra: AppState) -> RunView:
    run = await netra.runs.cancel(ctx, run_id)
    return RunView.model_validate(run.public())


class ToolDecision(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"decision": "approve"}]}
    )
    decision: Literal["approve", "deny"]


@router.post("/runs/{run_id}/tool_calls/{tool_call_id}/decision", responses=error_responses(409))
async def decide_tool_call(
    run_id: PathId, tool_call_id: PathId, body: ToolDecision, ctx: RunsWriter, netra: AppState
) -> ToolDecisionView:
    """Approve or deny a tool call that waits for approval (the first answer stands)."""
    answer = await netra.runs.decide(ctx, run_id, tool_call_id, Decision.of(body.decision))
    return ToolDecisionView.model_validate(answer.as_dict())


@router.get("/runs/{run_id}/events")
async def run_events(
    run_id: PathId,
    ctx: ThreadsReader,
    netra: AppState,
    after_seq: AfterSeq = 0,
    limit: Limit = 1000,
) -> EventPage:
    found = await netra.db.query(_run_events(ctx, run_id, after_seq, limit))
    return EventPage(items=[EventView.model_validate_json(event.body) for event in found])


@router.get("/threads/{thread_id}/runs")
async def thread_runs(
    thread_id: PathId,
    ctx: ThreadsReader,
    netra: AppState,
    *,
    limit: PageLimit = 50,
    cursor: Cursor = None,
) -> RunPage:
    """The thread's runs, newest first, a page at a time."""
    before = position_of(cursor) if cursor else None
    found = await netra.db.transact(_thread_runs(ctx, thread_id, limit + 1, before))
    page, next_cursor = page_of(found, limit, lambda run: (run.created_at, run.id))
    items = [run.public() for run in page]
    return RunPage.model_validate({"items": items, "next_cursor": next_cursor})


@router.get("/threads/{thread_id}/events")
async def thread_events(
    thread_id: PathId,
    ctx: ThreadsReader,
    netra: AppState,
    after_seq: AfterSeq = 0,
    limit: Limit = 1000,
) -> EventPage:
    """The thread's events after ``after_seq``, in seq order (continue from the last one's
    seq)."""
    rows = await netra.db.query(_thread_events(ctx, thread_id, after_seq, limit))
    return EventPage(items=[EventView.model_validate_json(body) for _, body in rows])


@router.get("/events")
async def user_events(
    ctx: ThreadsReader, netra: AppState, after_seq: AfterSeq = 0, limit: Limit = 500
) -> StreamPage:
    found, last_seq = await netra.db.query(_stream(ctx, after_seq, limit))
    items = [EventView.model_validate_json(event.body) for event in found]
    return StreamPage(items=items, last_seq=last_seq)


def _run_events(
    ctx: UserExecutionContext, run_id: str, after_seq: int, limit: int
) -> Tx[list[LoggedEvent]]:
    yield from RunRepository(ctx).get(run_id)  # another user's run: not found
    return (yield from EventRepository(ctx).for_run(run_id, after_seq, limit=limit))


def _thread_runs(
    ctx: UserExecutionContext, thread_id: str, limit: int, before: tuple[datetime, str] | None
) -> Tx[list[RunRecord]]:
    yield from ThreadRepository(ctx).get(thread_id)  # another user's thread: not found
    return (yield from RunRepository(ctx).of_thread(thread_id, limit=limit, before=before))


def _thread_events(
    ctx: UserExecutionContext, thread_id: str, after_seq: int, limit: int
) -> Tx[list[tuple[int, str]]]:
    yield from ThreadRepository(ctx).get(thread_id)  # another user's thread: not found
    return (yield from EventRepository(ctx).for_thread(thread_id, after_seq, limit=limit))


def _stream(
    ctx: UserExecutionContext, after_seq: int, limit: int
) -> Tx[tuple[list[LoggedEvent], int]]:
    events = EventRepository(ctx)
    found = yield from events.after(after_seq, limit=limit)
    return found, (yield from events.last_seq())
