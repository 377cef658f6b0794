"""HTTP middleware: a request id and an access-log line on every request, and a limit on
request body size.

Both are plain ASGI middleware (no ``BaseHTTPMiddleware``): they add nothing to WebSocket
scopes and do not buffer responses.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netra.api.errors import error_response, speaks_openai
from netra.ids import new_id

access_log = logging.getLogger("netra.access")
_SANE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
DRAIN_FACTOR = 8
"""A refused chunked body is read up to this many times the limit before the reply."""


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` when sane, else makes one; echoes it on the response; and logs
    one line per request at INFO: method, path, status, duration, request id. The path is
    the one sent (still percent-encoded, so one line) and never its query string, which
    may carry a token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SANE.match(incoming) else new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        status = "-"  # no answer: the client went away first

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("raw_path") or scope["path"].encode("utf-8")
            access_log.info(
                "%s %s %s %.1f ms %s",
                scope["method"],
                path.decode("latin-1"),
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413 before the application reads them.

    A declared ``Content-Length`` is checked up front (the server never delivers more than
    it declares); a chunked body is read here, counted, and handed on only when it fits.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._drain(receive, size)
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, size: int) -> None:
        """Read (and drop) the rest of a refused body, so the client, still sending, reads
        the 413 instead of a reset connection; up to a bound, past which it is cut off."""
        more = True
        while more and size <= DRAIN_FACTOR * self.max_bytes:
            message = await receive()
            more = message["type"] == "http.request" and message.get("more_body", False)
            size += len(message.get("body", b""))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = scope.get("state", {}).get("request_id", "")
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_bytes} bytes",
            request_id,
            headers={"Connection": "close"},
            openai=speaks_openai(scope),
        )
        await response(scope, receive, send)
