"""The ``/ws`` endpoint: authenticate, attach the socket to its user, read client frames.

It is a plain ASGI application, served straight from the server's protocol (``netra.app``
routes ``/ws`` to it ahead of FastAPI): a socket lives for hours, and every layer of routing
and middleware it passed through would keep its frames alive for as long.

What a connect costs. The token's signature is checked without I/O (an API key is read, in
one statement: ``ApiKeyService.verify``); its session is trusted without a read when this
instance read it lately (``SessionService.known``), and the user's newest seq is known
without a read when the user already has a connection here
(``UnifiedWebSocketManager.known_seq``). What is not known is read in one read transaction
shared by the connections arriving at that moment (``netra.realtime.admission``). An API key
needs ``threads:read`` to connect and ``runs:write`` for the frames that act on runs
(``netra.auth.scopes``).

The endpoint is handed the objects it serves sockets with (``WebSocketEndpoint``) where the
application is wired, rather than reading them off the application object: the application
holds this layer's socket manager, so this layer cannot name the application."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qsl, urlsplit

from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from netra.auth.api_keys import ApiKeyService, is_api_key
from netra.auth.scopes import Scope as KeyScope
from netra.auth.scopes import require_scope
from netra.auth.sessions import SessionService
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.records import Decision
from netra.errors import InvalidRequest, PermissionDenied, QuotaExceeded, Unauthenticated
from netra.realtime.admission import AdmissionReads
from netra.realtime.connection import CLOSE_POLICY, Connection
from netra.realtime.frames import (
    CLIENT_FRAME,
    MAX_SEQ,
    Ack,
    ApproveTool,
    CancelAccepted,
    CancelRun,
    ClientFrame,
    Connected,
    EditMessage,
    Ping,
    Pong,
    Regenerate,
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
from netra.realtime.transport import WebSocketTransport
from netra.runs.answers import Ack as RunAck
from netra.runs.service import RunService
from netra.server import DIRECT, DirectSocket

log = logging.getLogger(__name__)
CLOSE_TRY_AGAIN = 1013
"""Too many sockets for this user right now."""
SUBPROTOCOL = "bearer"
_WANTED = (b"sec-websocket-protocol", b"authorization", b"origin", b"host")
_RUN_FRAMES = (SendMessage, EditMessage, Regenerate, CancelRun, ApproveTool)
"""The frames that act on runs: an API key needs ``runs:write`` to send them."""


class Handshake:
    """What the endpoint reads of a WebSocket request: four headers and the query string."""

    __slots__ = ("headers", "query")

    def __init__(self, scope: Scope) -> None:
        self.headers: dict[bytes, str] = {}
        """The first value of each header in ``_WANTED``."""
        for name, value in scope["headers"]:
            if name in _WANTED and name not in self.headers:
                self.headers[name] = value.decode("latin-1")
        self.query: bytes = scope.get("query_string", b"")

    def credentials(self) -> tuple[str | None, str | None]:
        """``(token, subprotocol to select)`` from ``Sec-WebSocket-Protocol: bearer, <token>``
        or ``Authorization: Bearer <token>`` (the token an access token or an API key).
        Tokens in the URL are never read."""
        offered = [p.strip() for p in self.headers.get(b"sec-websocket-protocol", "").split(",")]
        if len(offered) >= 2 and offered[0].lower() == SUBPROTOCOL and offered[1]:
            return offered[1], SUBPROTOCOL
        scheme, _, token = self.headers.get(b"authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip(), None
        return None, None

    def origin_allowed(self, allowed: list[str]) -> bool:
        origin = self.headers.get(b"origin")
        if origin is None or "*" in allowed or origin in allowed:
            return True  # non-browser clients send no Origin
        return urlsplit(origin).netloc == self.headers.get(b"host", "")

    def resume_point(self) -> int | None:
        """The client's ``?after_seq=N``: where it stands, so its replay comes before any
        live event. Absent: the client starts from the ``last_seq`` of its ``connected``
        frame. ``InvalidRequest`` for anything but a non-negative integer."""
        values = [v for k, v in parse_qsl(self.query.decode("latin-1"), True) if k == "after_seq"]
        if not values:
            return None
        raw = values[-1]
        # Digits only, and few enough to convert cheaply before comparing with the bound.
        digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_SEQ))
        if digits and int(raw) <= MAX_SEQ:
            return int(raw)
        raise InvalidRequest("after_seq must be a non-negative integer", code="invalid_request")


class WebSocketEndpoint:
    """``/ws`` as an ASGI application: one call per socket, for as long as the socket lives."""

    def __init__(
        self,
        *,
        config: UnifiedConfigurationManager,
        sessions: SessionService,
        api_keys: ApiKeyService,
        db: DatabaseManager,
        sockets: UnifiedWebSocketManager,
        admissions: AdmissionReads,
        runs: RunService,
    ) -> None:
        self._config = config
        """Settings are read from it, not copied when wired, so a reload reaches new sockets."""
        self._sessions = sessions
        self._api_keys = api_keys
        self._db = db
        self._sockets = sockets
        self._admissions = admissions
        self._runs = runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # What the handshake held (headers, token) is dropped once the socket is admitted:
        # this frame stays suspended for the socket's life, so it holds only what serving needs.
        admitted = await self._admit(scope, receive, send)
        if admitted is not None:
            await self._serve(receive, admitted)

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> Connection | None:
        """Accept the socket, check the origin, the token and its session, and attach the
        socket to its user: the socket to serve, or None when it was refused (and closed)."""
        if (await receive())["type"] != "websocket.connect":
            return None
        handshake = Handshake(scope)
        token, subprotocol = handshake.credentials()
        extension = (scope.get("extensions") or {}).get(DIRECT)
        direct: DirectSocket | None = extension["socket"] if extension else None
        try:
            await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})
            return await self._check(handshake, token, send, direct)
        except OSError:  # the client went away during the handshake
            return None

    async def _check(
        self, handshake: Handshake, token: str | None, send: Send, direct: DirectSocket | None
    ) -> Connection | None:
        if not handshake.origin_allowed(self._config.settings.websocket.allowed_origins):
            await _refuse(send, CLOSE_POLICY, "origin not allowed")
            return None
        try:
            if token is None:
                raise Unauthenticated("missing bearer token")
            if is_api_key(token):
                claims = await self._api_keys.verify(token)
            else:
                claims = self._sessions.verify(token)
        except Unauthenticated as exc:
            await _refuse(send, CLOSE_POLICY, exc.message)
            return None
        resume_from: int | None = None
        bad_resume: InvalidRequest | None = None  # told once the session is known good
        try:
            resume_from = handshake.resume_point()
        except InvalidRequest as exc:
            bad_resume = exc
        try:
            admission, ctx, read_seq = await self._admissions.enter(claims)
        except QuotaExceeded as exc:
            await _refuse(send, CLOSE_TRY_AGAIN, exc.message)
            return None
        except Unauthenticated as exc:
            await _refuse(send, CLOSE_POLICY, exc.message)
            return None
        try:
            require_scope(ctx, KeyScope.THREADS_READ)
        except PermissionDenied as exc:
            self._sockets.release(admission)
            await _refuse(send, CLOSE_POLICY, exc.message)
            return None
        if admission.refused is not None:  # its session ended while it was read
            self._sockets.release(admission)
            await _refuse(send, *admission.refused)
            return None
        if bad_resume is not None:
            self._sockets.release(admission)
            await send({"type": "websocket.send", "text": error_frame(bad_resume, None).dumps()})
            await _refuse(send, CLOSE_POLICY, bad_resume.message)
            return None
        settings = self._config.settings
        connection = Connection(
            WebSocketTransport(send, direct),
            ctx,
            db=self._db,
            max_pending=settings.websocket.send_queue_max,
            replay_page=settings.events.replay_page,
        )
        # From here to ``start`` nothing awaits: no event can reach the socket before its
        # greeting, and every event after the cursor reaches it.
        cursor = self._sockets.attach(admission, connection, read_seq)
        connection.start(
            cursor, Connected(user_id=ctx.user_id, last_seq=cursor), resume_from=resume_from
        )
        connection.expire_at(claims.expires_at)
        return connection

    async def _serve(self, receive: Receive, connection: Connection) -> None:
        recheck = None
        if connection.ctx.scopes is not None:  # an API key's
            recheck = asyncio.create_task(self._recheck(connection), name="ws-key-recheck")
        try:
            await self._receive_loop(receive, connection)
        finally:
            if recheck is not None:
                recheck.cancel()
            self._sockets.remove(connection)
            await connection.stop()

    async def _recheck(self, connection: Connection) -> None:
        """An API key's socket outlives any token, so its session is read again every
        ``auth.access_token_ttl_s`` (the bound a token's socket has): were the notice of a
        revocation elsewhere lost on its way here, the socket still closes (1008), and it
        takes on its user's rights as stored."""
        while connection.close_code is None:
            await asyncio.sleep(self._config.settings.auth.access_token_ttl_s)
            try:
                current = await self._sessions.reread(connection.ctx)
            except Exception:  # the database is away: the socket keeps what it had
                log.warning("rereading an API key's session failed", exc_info=True)
                continue
            if current is None:
                connection.close(CLOSE_POLICY, "session ended: revoked")
                return
            connection.ctx = current

    async def _receive_loop(self, receive: Receive, connection: Connection) -> None:
        """Read frames until the peer goes away or the server closes the socket. Every read
        awaits the transport, so a vanished peer ends the loop instead of spinning it."""
        settings = self._config.settings.websocket
        bucket = TokenBucket(settings.frames_per_s, settings.frame_burst)
        refused = 0
        while connection.close_code is None:
            message = await receive()
            if message["type"] != "websocket.receive":
                return  # websocket.disconnect: closed by either side
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
            text = message.get("text")
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
        try:
            await self._dispatch(frame, connection)
        except Exception as exc:  # every failure becomes an error frame; the socket stays open
            reference = frame.ref or (
                frame.client_msg_id if isinstance(frame, SendMessage | EditMessage) else None
            )
            connection.send_frame(error_frame(exc, reference))

    async def _dispatch(self, frame: ClientFrame, connection: Connection) -> None:
        ctx = connection.ctx.for_request("ws")
        if isinstance(frame, _RUN_FRAMES):
            require_scope(ctx, KeyScope.RUNS_WRITE)
        if isinstance(frame, SendMessage | EditMessage | Regenerate):
            await self._start_run(ctx, frame, connection)
        elif isinstance(frame, CancelRun):
            run = await self._runs.cancel(ctx, frame.run_id)
            connection.send_frame(CancelAccepted(ref=frame.ref, run_id=run.id, status=run.status))
        elif isinstance(frame, Resume):
            connection.request_resume(frame.after_seq)
        elif isinstance(frame, Ping):
            connection.send_frame(Pong())
        elif isinstance(frame, ApproveTool):
            answer = await self._runs.decide(
                ctx, frame.run_id, frame.tool_call_id, Decision.of(frame.decision)
            )
            connection.send_frame(ToolDecision.of(answer, frame.ref))

    async def _start_run(
        self,
        ctx: UserExecutionContext,
        frame: SendMessage | EditMessage | Regenerate,
        connection: Connection,
    ) -> None:
        """A message sent, edited or answered again: its ack goes out as soon as it is
        stored, before its run's first events."""

        def acked(ack: RunAck) -> None:
            connection.send_frame(Ack.of(ack, frame.ref))

        if isinstance(frame, SendMessage):
            await self._runs.submit(
                ctx,
                content=frame.content,
                thread_id=frame.thread_id,
                agent=frame.agent,
                client_msg_id=frame.client_msg_id,
                acked=acked,
            )
        elif isinstance(frame, EditMessage):
            await self._runs.edit(
                ctx,
                thread_id=frame.thread_id,
                message_id=frame.message_id,
                content=frame.content,
                agent=frame.agent,
                client_msg_id=frame.client_msg_id,
                acked=acked,
            )
        else:
            await self._runs.regenerate(
                ctx,
                thread_id=frame.thread_id,
                message_id=frame.message_id,
                agent=frame.agent,
                acked=acked,
            )


async def _refuse(send: Send, code: int, reason: str) -> None:
    """Close a socket that was accepted but is not served (its reason says why)."""
    await send({"type": "websocket.close", "code": code, "reason": reason})
