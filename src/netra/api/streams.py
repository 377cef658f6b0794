"""The event streams over Server-Sent Events: ``GET /events/stream`` (the caller's events, as
a socket gets them) and ``GET /runs/{id}/stream`` (one run's, ending after its
``agent_completed``). The wire format is ``netra.realtime.sse``; docs/protocol.md says it all.

A stream is a connection like a socket: admitted the same way (``AdmissionReads.enter``,
counted against ``websocket.max_connections_per_user``), held by the same manager, fed by
the same ``Connection`` — its cursor, the gaps it fills from the log, its resume — and
closed by the same revocations, token expiry and shutdown. Only its transport differs.

``enter`` and ``attach`` are that way in, in two steps, for the OpenAI-compatible API too
(``netra.api.openai_compat``), which starts a run between them and reads the run's events
from its connection.

Where a client stands: the ``Last-Event-ID`` header (what a reconnecting ``EventSource``
sends), else ``?after_seq=``; the header wins, being the newer of the two.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Query

from netra.api.deps import AppState, PathId, StreamToken
from netra.api.errors import DocumentedRoute, error_responses
from netra.auth.scopes import Scope, require_scope
from netra.auth.tokens import AccessClaims
from netra.context import UserExecutionContext
from netra.db.repositories import EventRepository
from netra.db.runs import RunRepository
from netra.db.sql import Tx
from netra.errors import Unauthenticated, Unavailable
from netra.realtime.connection import CLOSE_NORMAL, CLOSE_POLICY, Connection
from netra.realtime.frames import MAX_SEQ, Connected
from netra.realtime.manager import Admission
from netra.realtime.sse import MEDIA_TYPE, EventStreamResponse, EventStreamTransport
from netra.realtime.transport import Transport

if TYPE_CHECKING:
    from netra.instance import Netra

router = APIRouter(tags=["streams"], route_class=DocumentedRoute)
AfterSeq = Annotated[
    int | None,
    Query(ge=0, le=MAX_SEQ, description="Stream the events after this seq (resume point)."),
]
LastEventId = Annotated[
    int | None,
    Header(
        ge=0,
        le=MAX_SEQ,
        description="The `id` of the last message received: resume after it (wins over "
        "`after_seq`).",
    ),
]


def _stream_answer(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **error_responses(429),
    }


@router.get(
    "/events/stream",
    response_class=EventStreamResponse,
    status_code=200,
    responses=_stream_answer(
        "The caller's events as Server-Sent Events: `connected`, then `resumed` when a "
        "resume point was given, then every event in seq order, live; a `: ping` comment "
        "every heartbeat. See docs/protocol.md."
    ),
)
async def event_stream(
    claims: StreamToken,
    netra: AppState,
    after_seq: AfterSeq = None,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    """The caller's event stream, as a socket gets it, over Server-Sent Events."""
    where = last_event_id if last_event_id is not None else after_seq
    return await _open(netra, claims, resume_from=where, run_id=None)


@router.get(
    "/runs/{run_id}/stream",
    response_class=EventStreamResponse,
    status_code=200,
    responses=_stream_answer(
        "One run's events as Server-Sent Events, from its first (or after the resume "
        "point), in seq order, live; the response ends after the run's `agent_completed`."
    ),
)
async def run_stream(
    run_id: PathId,
    claims: StreamToken,
    netra: AppState,
    after_seq: AfterSeq = None,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    """One run's events over Server-Sent Events, ending after its ``agent_completed``."""
    where = last_event_id if last_event_id is not None else after_seq
    return await _open(netra, claims, resume_from=where or 0, run_id=run_id)


@dataclass(frozen=True, slots=True)
class Entry:
    """A connection opened over HTTP, admitted and not yet attached: counted against its
    user's cap, its user subscribed, its session checked."""

    admission: Admission
    ctx: UserExecutionContext
    read_seq: int | None
    """The user's newest seq, when it was read."""
    claims: AccessClaims


async def enter(netra: Netra, claims: AccessClaims) -> Entry:
    """Admit a connection of a verified credential, as a socket is (``AdmissionReads``):
    ``QuotaExceeded`` past the user's cap, ``Unauthenticated`` when its session ended. The
    caller attaches it (``attach``) or gives it up (``leave``)."""
    admission, ctx, read_seq = await netra.admissions.enter(claims)
    return Entry(admission, ctx, read_seq, claims)


def leave(netra: Netra, entry: Entry) -> None:
    """Give up an admitted connection that was not attached."""
    netra.sockets.release(entry.admission)


def attach(
    netra: Netra,
    entry: Entry,
    transport: Transport,
    *,
    run_id: str | None,
    resume_from: int | None,
) -> Callable[[], Awaitable[None]]:
    """Attach the admitted connection and start it: ``connected`` (the user's stream), then
    the replay after ``resume_from``, then live events. Returns its release, to await once
    the client is gone. Refused (and left) when its session ended or the server is
    stopping since it was admitted."""
    if entry.admission.refused is not None:
        leave(netra, entry)
        code, reason = entry.admission.refused
        if code == CLOSE_POLICY:
            raise Unauthenticated(reason, code="session_revoked")
        raise Unavailable(reason)
    settings = netra.settings
    connection = Connection(
        transport,
        entry.ctx,
        db=netra.db,
        max_pending=settings.websocket.send_queue_max,
        replay_page=settings.events.replay_page,
        run_id=run_id,
    )
    # From here to ``start`` nothing awaits, as for a socket: no event can reach the
    # connection before its greeting, and every event after its cursor reaches it.
    cursor = netra.sockets.attach(entry.admission, connection, entry.read_seq)
    greeting = Connected(user_id=entry.ctx.user_id, last_seq=cursor) if run_id is None else None
    connection.start(cursor, greeting, resume_from=resume_from)
    connection.expire_at(entry.claims.expires_at)

    async def release() -> None:
        netra.sockets.remove(connection)
        await connection.stop()

    return release


async def _open(
    netra: Netra, claims: AccessClaims, *, resume_from: int | None, run_id: str | None
) -> EventStreamResponse:
    """Admit the stream, attach its connection and start it."""
    transport = EventStreamTransport(heartbeat_s=netra.settings.websocket.ping_interval_s)
    entry = await enter(netra, claims)
    try:
        require_scope(entry.ctx, Scope.THREADS_READ)  # an API key's
        remains = True
        if run_id is not None:
            remains = await netra.db.transact(_remains(entry.ctx, run_id, resume_from or 0))
    except BaseException:
        leave(netra, entry)
        raise
    if not remains:  # a finished run, and the client has all of it
        leave(netra, entry)
        transport.close_now(CLOSE_NORMAL, "run ended")
        return EventStreamResponse(transport)
    release = attach(netra, entry, transport, run_id=run_id, resume_from=resume_from)
    return EventStreamResponse(transport, release)


def _remains(ctx: UserExecutionContext, run_id: str, after_seq: int) -> Tx[bool]:
    """Whether the run has events after ``after_seq`` to stream: still to come (it is not
    final), or stored. ``NotFound`` for another user's run, as for a missing one."""
    run = yield from RunRepository(ctx).get(run_id)
    if not run.status.final:
        return True
    # A final run's agent_completed is stored with its final state: all of it is stored.
    return bool((yield from EventRepository(ctx).for_run(run_id, after_seq, limit=1)))
