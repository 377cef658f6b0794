"""The one place errors become HTTP responses and WebSocket error frames.

HTTP: ``{"error": {"code", "message", "request_id"}}`` (plus ``details`` for validation).
WS: ``{"type": "error", "code", "message", "ref"}``. Never a stack trace, SQL or secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from netra.errors import InvalidRequest, NetraError, QuotaExceeded, UserError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "quota_exceeded",
}


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def error_frame(exc: Exception, ref: str | None) -> dict[str, Any]:
    if isinstance(exc, QuotaExceeded):
        return {
            "type": "error",
            "code": exc.code,
            "message": exc.message,
            "ref": ref,
            "retry_after": exc.retry_after,
        }
    if isinstance(exc, UserError):
        return {"type": "error", "code": exc.code, "message": exc.message, "ref": ref}
    log.error("unexpected error handling a frame", exc_info=exc)
    return {"type": "error", "code": "internal_error", "message": "internal error", "ref": ref}


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in errors
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(NetraError)
    async def _netra(request: Request, exc: NetraError) -> JSONResponse:
        if not isinstance(exc, UserError):
            log.error("error serving %s", request.url.path, exc_info=exc)
            return error_response(500, "internal_error", "internal error", request_id_of(request))
        headers = None
        if isinstance(exc, QuotaExceeded) and exc.retry_after is not None:
            headers = {"Retry-After": str(exc.retry_after)}
        details = exc.details if isinstance(exc, InvalidRequest) else None
        return error_response(
            exc.status,
            exc.code,
            exc.message,
            request_id_of(request),
            details=details,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            422,
            "invalid_request",
            "the request is not valid",
            request_id_of(request),
            details=_validation_details(exc.errors()),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = str(exc.detail) if exc.status_code < 500 else "internal error"
        # The exception's headers are part of the answer: ``Allow`` on a 405, say.
        return error_response(
            exc.status_code, code, message, request_id_of(request), headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error serving %s", request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "internal error", request_id_of(request))
