"""The ``/ws`` endpoint: authenticate, attach the socket to its user, read client frames.

The endpoint is handed the objects it serves sockets with (``WebSocketEndpoint``) where the
application is wired, rather than reading them off the application object: the application
holds this layer's socket manager, so this layer cannot name the application."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlsplit

from pydantic import ValidationError
from starlette.websockets import WebSocket

from netra.auth.sessions import SessionService
from netra.config import UnifiedConfigurationManager
from netra.db.manager import DatabaseManager
from netra.db.records import Decision
from netra.db.repositories import EventRepository
from netra.errors import InvalidRequest, QuotaExceeded, Unauthenticated
from netra.realtime.connection import Connection
from netra.realtime.frames import (
    CLIENT_FRAME,
    MAX_SEQ,
    Ack,
    ApproveTool,
    CancelAccepted,
    CancelRun,
    Connected,
    Ping,
    Pong,
    Resume,
    SendMessage,
    ToolDecision,
    error_frame,
    json_depth,
    ref_of,
    refusal,
)
from netra.realtime.manager import UnifiedWebSocketManager
from netra.realtime.rate import TokenBucket
from netra.runs.service import RunService

log = logging.getLogger(__name__)
CLOSE_POLICY = 1008
"""Bad, expired or revoked credentials, or an Origin not allowed."""
CLOSE_TRY_AGAIN = 1013
"""Too many sockets for this user right now."""
SUBPROTOCOL = "bearer"


def _credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """``(token, subprotocol to select)`` from ``Sec-WebSocket-Protocol: bearer, <token>`` or
    ``Authorization: Bearer <token>``. Tokens in the URL are never read."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) >= 2 and offered[0].lower() == SUBPROTOCOL and offered[1]:
        return offered[1], SUBPROTOCOL
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), None
    return None, None


def _origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None or "*" in allowed or origin in allowed:
        return True  # non-browser clients send no Origin
    host = websocket.headers.get("host", "")
    return urlsplit(origin).netloc == host


def _resume_point(websocket: WebSocket) -> int | None:
    """The client's ``?after_seq=N``: where it stands, so its replay comes before any live
    event. Absent: the client starts from the ``last_seq`` of its ``connected`` frame."""
    raw = websocket.query_params.get("after_seq")
    if raw is None:
        return None
    # Digits only, and few enough to convert cheaply before comparing with the bound.
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_SEQ)) and int(raw) <= MAX_SEQ:
        return int(raw)
    raise InvalidRequest("after_seq must be a non-negative integer", code="invalid_request")


class WebSocketEndpoint:
    """``/ws``: one call of ``serve`` per socket, for as long as the socket lives."""

    def __init__(
        self,
        *,
        config: UnifiedConfigurationManager,
        sessions: SessionService,
        db: DatabaseManager,
        sockets: UnifiedWebSocketManager,
        runs: RunService,
    ) -> None:
        self._config = config
        """Settings are read from it, not copied when wired, so a reload reaches new sockets."""
        self._sessions = sessions
        self._db = db
        self._sockets = sockets
        self._runs = runs

    async def serve(self, websocket: WebSocket) -> None:
        settings = self._config.settings.websocket
        token, subprotocol = _credentials(websocket)
        await websocket.accept(subprotocol=subprotocol)
        if not _origin_allowed(websocket, settings.allowed_origins):
            await websocket.close(CLOSE_POLICY, "origin not allowed")
            return
        try:
            if token is None:
                raise Unauthenticated("missing bearer token")
            ctx, expires_at = await self._sessions.authenticate(token)
        except Unauthenticated as exc:
            await websocket.close(CLOSE_POLICY, exc.message)
            return
        try:
            resume_from = _resume_point(websocket)
        except InvalidRequest as exc:
            await websocket.send_text(error_frame(exc, None).dumps())
            await websocket.close(CLOSE_POLICY, exc.message)
            return
        connection = Connection(
            websocket,
            ctx,
            db=self._db,
            max_pending=settings.send_queue_max,
            replay_page=self._config.settings.events.replay_page,
        )
        try:
            self._sockets.add(connection)
        except QuotaExceeded as exc:
            await websocket.close(CLOSE_TRY_AGAIN, exc.message)
            return
        expiry: asyncio.TimerHandle | None = None
        try:
            # Subscribed first, cursor second: nothing published in between is missed.
            last_seq = await self._db.transact(EventRepository(ctx).last_seq())
            connection.start(
                cursor=last_seq,
                greeting=Connected(user_id=ctx.user_id, last_seq=last_seq),
                resume_from=resume_from,
            )
            # The socket lives no longer than its token: the client reconnects with a fresh one.
            expiry = asyncio.get_running_loop().call_later(
                max(0.0, expires_at - time.time()), connection.close, CLOSE_POLICY, "token expired"
            )
            await self._receive_loop(websocket, connection)
        finally:
            if expiry is not None:
                expiry.cancel()
            self._sockets.remove(connection)
            await connection.stop()

    async def _receive_loop(self, websocket: WebSocket, connection: Connection) -> None:
        """Read frames until the peer goes away or the server closes the socket. Every read
        awaits the transport, so a vanished peer ends the loop instead of spinning it."""
        settings = self._config.settings.websocket
        bucket = TokenBucket(settings.frames_per_s, settings.frame_burst)
        refused = 0
        while connection.close_code is None:
            try:
                message = await websocket.receive()
            except RuntimeError:  # the socket is no longer connected (closed by either side)
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if not bucket.take():
                # A client that keeps sending past its limit is cut off rather than answered.
                refused += 1
                if refused > settings.frame_burst:
                    connection.close(CLOSE_POLICY, "too many frames", flush=True)
                    return
                problem = QuotaExceeded(
                    f"at most {settings.frames_per_s:g} frames per second; slow down",
                    retry_after=bucket.retry_after(),
                    code="rate_limited",
                )
                connection.send_frame(error_frame(problem, None))
                continue
            refused = 0
            if text is None:  # a binary frame
                connection.send_frame(
                    error_frame(
                        InvalidRequest("frames must be JSON text", code="invalid_frame"), None
                    )
                )
                continue
            await self._handle(text, connection)

    async def _handle(self, text: str, connection: Connection) -> None:
        limit = self._config.settings.websocket.max_json_depth
        too_deep = InvalidRequest(f"frame nests deeper than {limit} levels", code="invalid_frame")
        try:
            raw = json.loads(text)
        except ValueError:  # not JSON, or an integer past what the parser converts
            connection.send_frame(
                error_frame(InvalidRequest("frame is not valid JSON", code="invalid_frame"), None)
            )
            return
        except RecursionError:  # nested past what the parser itself takes
            connection.send_frame(error_frame(too_deep, None))
            return
        if json_depth(raw) > limit:
            connection.send_frame(error_frame(too_deep, None))
            return
        try:
            frame = CLIENT_FRAME.validate_python(raw)
        except ValidationError as exc:
            connection.send_frame(error_frame(refusal(raw, exc), ref_of(raw)))
            return
        ctx = connection.ctx.for_request("ws")
        try:
            if isinstance(frame, SendMessage):
                ack = await self._runs.submit(
                    ctx,
                    content=frame.content,
                    thread_id=frame.thread_id,
                    agent=frame.agent,
                    client_msg_id=frame.client_msg_id,
                )
                connection.send_frame(Ack.of(ack))
            elif isinstance(frame, CancelRun):
                run = await self._runs.cancel(ctx, frame.run_id)
                connection.send_frame(
                    CancelAccepted(ref=frame.ref, run_id=run.id, status=run.status)
                )
            elif isinstance(frame, Resume):
                connection.request_resume(frame.after_seq)
            elif isinstance(frame, Ping):
                connection.send_frame(Pong())
            elif isinstance(frame, ApproveTool):
                answer = await self._runs.decide(
                    ctx, frame.run_id, frame.tool_call_id, Decision.of(frame.decision)
                )
                connection.send_frame(ToolDecision.of(answer, frame.ref))
        except Exception as exc:  # every failure becomes an error frame; the socket stays open
            reference = frame.ref or (
                frame.client_msg_id if isinstance(frame, SendMessage) else None
            )
            connection.send_frame(error_frame(exc, reference))
