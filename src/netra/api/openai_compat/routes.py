"""The routes of the OpenAI-compatible API (``/v1``), and ``RunFeed``.

A call that starts a run is admitted as a connection first (``netra.api.streams.enter``:
its credential's session checked, counted with the user's sockets and streams), then the
run is submitted (``RunService.submit``: quotas, the agent's rules), then the connection is
attached to the run (``attach``), exactly as ``GET /runs/{id}/stream`` is: its stored events
from the first, then live ones, ending after ``agent_completed``. Streaming or not, the
answer is made from those events (``mapping``); nothing polls.

The answers' ``id`` is the run's id: ``GET /runs/{id}`` and ``GET /v1/responses/{id}`` read
the same run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from netra.api.deps import AppState, CurrentUser, PathId, StreamToken
from netra.api.errors import OpenAIErrorBody, OpenAIRoute, error_response, error_responses
from netra.api.openai_compat.bodies import (
    ChatCompletion,
    ChatCompletionRequest,
    ModelList,
    ResponseRequest,
    ResponseView,
    conversation,
)
from netra.api.openai_compat.mapping import (
    ChatCompletionStream,
    ResponseStream,
    RunEvent,
    model_name,
)
from netra.api.streams import Entry, attach, enter, leave
from netra.auth.scopes import Scope, require_scope
from netra.auth.tokens import AccessClaims
from netra.context import UserExecutionContext
from netra.db.records import LoggedEvent, RunRecord
from netra.db.repositories import EventRepository
from netra.db.runs import RunRepository
from netra.db.sql import Tx
from netra.errors import NotFound
from netra.realtime.frames import MAX_SEQ
from netra.realtime.sse import MEDIA_TYPE, PING, EventStreamResponse
from netra.realtime.transport import BufferedTransport
from netra.runs.answers import Turn

if TYPE_CHECKING:
    from netra.instance import Netra

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)
DONE = b"data: [DONE]\n\n"
PAGE = 1000
"""Stored events read at a time for ``GET /v1/responses/{id}``."""
NO_RETRY = {"x-should-retry": "false"}
"""OpenAI's SDKs retry a 5xx answer by themselves: a run that failed is not to be run again."""


def _answers(description: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    stream = {"description": description, "content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}
    return {200: stream, **error_responses(*statuses, body=OpenAIErrorBody)}


class RunFeed:
    """One run's events, read from a connection of its user attached to that run: the
    stored ones from its first, then live ones; they end after its ``agent_completed`` (or
    when the connection closes: its session ended, its token expired, the server stops)."""

    def __init__(self, netra: Netra, entry: Entry, run_id: str) -> None:
        self.transport = BufferedTransport()
        self.close = attach(netra, entry, self.transport, run_id=run_id, resume_from=0)
        """Release the connection (await it once done)."""

    async def events(self, *, idle_s: float | None = None) -> AsyncIterator[RunEvent | None]:
        """The run's events in seq order; None after each ``idle_s`` without any."""
        async for texts in self.transport.batches(idle_s=idle_s):
            if not texts:
                yield None
            for text in texts:
                event = RunEvent.parse(text)
                if event is not None:
                    yield event


async def _start(
    netra: Netra, claims: AccessClaims, model: str, history: Sequence[Turn], question: str
) -> tuple[RunRecord, RunFeed]:
    """Admit the call, start its run in a new thread, and attach a feed to the run."""
    entry = await enter(netra, claims)
    try:
        ctx = entry.ctx
        require_scope(ctx, Scope.RUNS_WRITE)
        agent, chosen = _target(netra, ctx, model)
        ack = await netra.runs.submit(
            ctx, content=question, agent=agent, model=chosen, history=history
        )
        run = await netra.db.transact(RunRepository(ctx).get(ack.run_id))
    except BaseException:
        leave(netra, entry)
        raise
    return run, RunFeed(netra, entry, run.id)


def _target(netra: Netra, ctx: UserExecutionContext, model: str) -> tuple[str, str | None]:
    """The agent ``model`` names and the model chosen for it (``agent@model``), if the
    caller may start it and it allows that model; else ``model_not_found``."""
    agent, at, chosen = model.partition("@")
    allowed = netra.config.limits_for(ctx.tier, ctx.limits).allowed_agents
    known = {d.name: d for d in netra.agents.available_to(ctx, allowed=allowed)}
    definition = known.get(agent)
    if definition is None:
        raise NotFound(f"the model {model!r} does not exist", code="model_not_found")
    definition.model_for(chosen if at else None, netra.settings.models.default)
    return agent, chosen if at else None


def _sse(body: dict[str, Any], *, named: bool = False) -> bytes:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    event = f"event: {body['type']}\n" if named else ""
    return f"{event}data: {data}\n\n".encode()


def _created(run: RunRecord) -> int:
    return int(run.created_at.timestamp())


@router.get("/models")
async def list_models(ctx: CurrentUser, netra: AppState) -> ModelList:
    """The agents the caller may start, as OpenAI models (``id``: the agent's name)."""
    allowed = netra.config.limits_for(ctx.tier, ctx.limits).allowed_agents
    agents = netra.agents.available_to(ctx, allowed=allowed)
    return ModelList.model_validate(
        {
            "object": "list",
            "data": [
                {"id": d.name, "object": "model", "created": 0, "owned_by": "netra"} for d in agents
            ],
        }
    )


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=_answers(
        "With `stream: true`: `data: {chat.completion.chunk}` messages, then "
        "`data: [DONE]`. See docs/protocol.md.",
        403,
        404,
        429,
        503,
    ),
)
async def chat_completions(
    body: ChatCompletionRequest, claims: StreamToken, netra: AppState
) -> Response:
    """A run in a new thread whose history is the earlier messages, answering the last:
    its answer as a ``chat.completion`` once it ends, or streamed as chunks."""
    history, question = conversation(body.messages, "messages")
    run, feed = await _start(netra, claims, body.model, history, question)
    chat = ChatCompletionStream(
        run.id, model_name(run.agent, run.model), _created(run), run.thread_id
    )
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    if body.stream:
        ping_s = netra.settings.websocket.ping_interval_s

        async def chunks() -> AsyncIterator[bytes]:
            yield _sse(chat.opening())
            async for event in feed.events(idle_s=ping_s):
                if event is None:
                    yield PING
                    continue
                for chunk in chat.chunks(event, include_usage=include_usage):
                    yield _sse(chunk)
            if chat.ending is None:
                yield _sse({"error": chat.error_body()})
            yield DONE

        return EventStreamResponse(feed.transport, feed.close, body=chunks())
    try:
        async for event in feed.events():
            if event is not None:
                chat.chunks(event, include_usage=False)
    finally:
        await feed.close()
    if chat.finish_reason is None:  # failed, or the connection ended first (server stopping)
        error = chat.error_body()
        return error_response(
            500, error["code"], error["message"], "", headers=NO_RETRY, openai=True
        )
    return JSONResponse(ChatCompletion.model_validate(chat.completion()).model_dump(mode="json"))


@router.post(
    "/responses",
    response_model=ResponseView,
    responses=_answers(
        "With `stream: true`: Responses events (`response.created`, "
        "`response.output_text.delta` … `response.completed`), each with its "
        "`sequence_number`. See docs/protocol.md.",
        403,
        404,
        429,
        503,
    ),
)
async def create_response(body: ResponseRequest, claims: StreamToken, netra: AppState) -> Response:
    """A run answering ``input`` (the question, or a conversation ending with it): the
    ``response`` once it ends, or its events streamed."""
    history: list[Turn] = []
    if isinstance(body.input, str):
        question = body.input
    else:
        history, question = conversation(body.input, "input")
    run, feed = await _start(netra, claims, body.model, history, question)
    if body.stream:
        return _stream_response(netra, run, feed, starting_after=None)
    events = ResponseStream(run.id, model_name(run.agent, run.model), _created(run), run.thread_id)
    try:
        async for event in feed.events():
            if event is not None:
                events.events(event)
    finally:
        await feed.close()
    return _response_answer(events)


StartingAfter = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_SEQ,
        description="With `stream=true`: send the events whose `sequence_number` is greater.",
    ),
]


@router.get(
    "/responses/{response_id}",
    response_model=ResponseView,
    responses=_answers(
        "With `stream=true`: the response's events, as `POST /v1/responses` streams them, "
        "after `starting_after`.",
        403,
        429,
    ),
)
async def get_response(
    response_id: PathId,
    claims: StreamToken,
    netra: AppState,
    stream: bool = False,
    starting_after: StartingAfter = None,
) -> Response:
    """A run as a ``response``, as it stands; or (``stream=true``) its events again, from
    ``starting_after`` on, then live until it ends — on any instance."""
    if not stream:
        ctx, _ = await netra.admissions.identify(claims, None, seq=False)
        require_scope(ctx, Scope.THREADS_READ)
        run, logged = await netra.db.transact(_stored(ctx, response_id))
        events = _responses_of(run)
        for row in logged:
            event = RunEvent.parse(row.body)
            if event is not None:
                events.events(event)
        return _response_answer(events)
    entry = await enter(netra, claims)
    try:
        require_scope(entry.ctx, Scope.THREADS_READ)
        run = await netra.db.transact(RunRepository(entry.ctx).get(response_id))
    except BaseException:
        leave(netra, entry)
        raise
    return _stream_response(netra, run, RunFeed(netra, entry, run.id), starting_after)


def _responses_of(run: RunRecord) -> ResponseStream:
    return ResponseStream(run.id, model_name(run.agent, run.model), _created(run), run.thread_id)


def _response_answer(events: ResponseStream) -> Response:
    view = ResponseView.model_validate(events.response())
    return JSONResponse(view.model_dump(mode="json"))


def _stream_response(
    netra: Netra, run: RunRecord, feed: RunFeed, starting_after: int | None
) -> EventStreamResponse:
    """The run's Responses events numbered above ``starting_after`` (all: None). The feed
    starts at the run's first event whatever the point, so every number is made as it was
    the first time, and the events up to the point are made and dropped."""
    events = _responses_of(run)
    after = -1 if starting_after is None else starting_after
    ping_s = netra.settings.websocket.ping_interval_s

    async def body() -> AsyncIterator[bytes]:
        number, created = events.created()
        if number > after:
            yield _sse(created, named=True)
        async for event in feed.events(idle_s=ping_s):
            if event is None:
                yield PING
                continue
            for number, made in events.events(event):
                if number > after:
                    yield _sse(made, named=True)

    return EventStreamResponse(feed.transport, feed.close, body=body())


def _stored(ctx: UserExecutionContext, run_id: str) -> Tx[tuple[RunRecord, list[LoggedEvent]]]:
    """The caller's run (else ``NotFound``) and its stored events, all of them."""
    run = yield from RunRepository(ctx).get(run_id)
    events = EventRepository(ctx)
    logged: list[LoggedEvent] = []
    while True:
        after = logged[-1].seq if logged else 0
        page = yield from events.for_run(run_id, after, limit=PAGE)
        logged += page
        if len(page) < PAGE:
            return run, logged
