"""Runs and the event log over HTTP (the reload path)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from netra.api.deps import AppState, CurrentUser, PathId
from netra.api.errors import DocumentedRoute, error_responses
from netra.db.records import Decision
from netra.db.repositories import EventRepository
from netra.db.runs import RunRepository

router = APIRouter(tags=["runs"], route_class=DocumentedRoute)
AfterSeq = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/runs/{run_id}")
async def get_run(run_id: PathId, ctx: CurrentUser, netra: AppState) -> dict[str, Any]:
    async with netra.db.read() as conn:
        run = await RunRepository(conn, ctx).get(run_id)
    return run.public()


@router.post("/runs/{run_id}/cancel", status_code=202)
async def cancel_run(run_id: PathId, ctx: CurrentUser, netra: AppState) -> dict[str, Any]:
    run = await netra.runs.cancel(ctx, run_id)
    return run.public()


class ToolDecision(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"decision": "approve"}]}
    )
    decision: Literal["approve", "deny"]


@router.post("/runs/{run_id}/tool_calls/{tool_call_id}/decision", responses=error_responses(409))
async def decide_tool_call(
    run_id: PathId, tool_call_id: PathId, body: ToolDecision, ctx: CurrentUser, netra: AppState
) -> dict[str, Any]:
    """Approve or deny a tool call that waits for approval (the first answer stands)."""
    answer = await netra.runs.decide(ctx, run_id, tool_call_id, Decision.of(body.decision))
    return answer.as_dict()


@router.get("/runs/{run_id}/events")
async def run_events(
    run_id: PathId,
    ctx: CurrentUser,
    netra: AppState,
    after_seq: AfterSeq = 0,
    limit: Limit = 1000,
) -> dict[str, Any]:
    async with netra.db.read() as conn:
        await RunRepository(conn, ctx).get(run_id)
        rows = await EventRepository(conn, ctx).for_run(run_id, after_seq, limit=limit)
    return {"items": [json.loads(body) for _, body in rows]}


@router.get("/events")
async def user_events(
    ctx: CurrentUser, netra: AppState, after_seq: AfterSeq = 0, limit: Limit = 500
) -> dict[str, Any]:
    async with netra.db.read() as conn:
        events = EventRepository(conn, ctx)
        rows = await events.after(after_seq, limit=limit)
        last_seq = await events.last_seq()
    return {"items": [json.loads(body) for _, body in rows], "last_seq": last_seq}
