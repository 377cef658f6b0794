"""The one place errors become HTTP responses, and where the OpenAPI schema learns which
errors each route answers.

``{"error": {"code", "message", "request_id"}}`` (plus ``details`` for validation); never a
stack trace, SQL or secret. Under ``/v1/`` (the OpenAI-compatible API) the same errors take
OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, and a request that fails
validation is ``400`` (OpenAI's status for it) instead of ``422``, so OpenAI's SDKs raise
their own exceptions for them (``AuthenticationError``, ``RateLimitError`` …). A
``QuotaExceeded`` or ``Unavailable`` (overloaded, storage away) refusal also says when to
retry, in the ``Retry-After`` header. Any error but a
``UserError`` or ``Unavailable`` is an internal error to the client. The rules are
``netra.errors.ANSWERED`` and ``RETRY_LATER``, which the WebSocket error frames
(``netra.realtime.frames.error_frame``) follow too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from netra.api.deps import REFUSALS
from netra.errors import ANSWERED, RETRY_LATER, InvalidRequest, NetraError

log = logging.getLogger(__name__)
JSON = "application/json"

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


class ErrorDetail(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)
    field: str
    """Where the problem is: ``body.email``, ``query.limit``."""
    message: str


class ErrorInfo(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)
    code: str
    """Machine-readable: ``not_found``, ``token_expired``, ``thread_busy`` …"""
    message: str
    """For people; never a stack trace."""
    request_id: str
    """The ``X-Request-ID`` of the answer (the server's log lines carry it)."""
    details: list[ErrorDetail] = Field(default_factory=list)
    """The fields that failed validation (422 only; absent otherwise)."""


class ErrorBody(BaseModel):
    """The body of every error answer, whatever the route (but ``/v1/``'s)."""

    error: ErrorInfo


OPENAI_PREFIX = "/v1/"
"""The OpenAI-compatible API's routes, whose errors speak OpenAI's dialect."""
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


class OpenAIErrorInfo(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)
    message: str
    """For people; never a stack trace."""
    type: str
    """``invalid_request_error`` (400, 404, 409, 413), ``authentication_error`` (401),
    ``permission_error`` (403), ``rate_limit_error`` (429) or ``server_error`` (5xx)."""
    param: str | None
    """The request field at fault, when one is (``messages``, ``model``)."""
    code: str | None
    """Machine-readable: Netra's code (``insufficient_scope``, ``quota_exceeded``,
    ``model_not_found`` …)."""


class OpenAIErrorBody(BaseModel):
    """The body of every error answer under ``/v1/``: OpenAI's."""

    error: OpenAIErrorInfo


def speaks_openai(scope: Scope) -> bool:
    """Whether a request is the OpenAI-compatible API's, whose errors take OpenAI's shape."""
    path: str = scope.get("path", "")
    return path.startswith(str(scope.get("root_path", "")) + OPENAI_PREFIX)


_DOCUMENTED: dict[int, str] = {
    400: "The body or a parameter is not valid (`invalid_request`; `param` names the "
    "field), or the request cannot be served as asked.",
    401: "Missing, malformed, expired or revoked credentials: `unauthenticated`, "
    "`token_expired`, `session_revoked`, `account_disabled`, `invalid_credentials`, "
    "`api_key_revoked`, `api_key_expired`.",
    403: "Authenticated, but not allowed: `permission_denied`; an API key without the scope "
    "the route needs (or on a route for signed-in sessions only): `insufficient_scope`.",
    404: "No such object for the caller (another user's answers the same): `not_found`.",
    409: "The object exists already or is in the wrong state: `conflict`, `thread_busy`.",
    413: "The body is larger than `server.max_body_bytes`: `payload_too_large`.",
    422: "The body or a parameter is not valid: `invalid_request` with `details`.",
    429: "A limit was reached; `Retry-After` says when to try again: `quota_exceeded`.",
    503: "The server cannot take it now (`overloaded`); `Retry-After` says when to try again.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def error_responses(
    *statuses: int, body: type[BaseModel] = ErrorBody
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of these error statuses, each with the error body."""
    return {
        status: {
            "model": body,
            "description": _DOCUMENTED[status],
            **({"headers": _RETRY_AFTER} if status in (429, 503) else {}),
        }
        for status in sorted(statuses)
    }


def _tree(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for child in dependant.dependencies:
        yield from _tree(child)


def _answers(dependant: Dependant) -> set[int]:
    """The errors a route gives before its own code runs, read from its dependencies."""
    statuses: set[int] = set()
    for node in _tree(dependant):
        if node.call is not None:
            statuses.update(REFUSALS.get(node.call, ()))
        if node.path_params:
            statuses.add(404)  # a path names an object: the caller may have none by that id
        if node.body_params:
            statuses.update((413, 422))
        if node.path_params or node.query_params:
            statuses.add(422)  # FastAPI validates every parameter, and says so by default
    return statuses


class DocumentedRoute(APIRoute):
    """A route whose OpenAPI operation lists every error it can answer: those its
    dependencies give (401 for ``CurrentUser``, 403 for a scope, a session or an admin),
    404 when its path names an object, 413 and 422 when it takes a body, 422 for
    parameters; plus the ones its own code raises, which it declares with
    ``responses=error_responses(...)``."""

    error_body: ClassVar[type[BaseModel]] = ErrorBody
    invalid: ClassVar[int] = 422
    """The status of a request that fails validation."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # The answers are added once FastAPI has read the signature (``self.dependant``),
        # each body's field shared by every route (``_body_field``): FastAPI would read the
        # signature twice and build a field — a pydantic adapter — per answer of every
        # route, and the routes are built twice (a router's, then the application's): a
        # fifth of a start.
        declared = kwargs.pop("responses", None) or {}
        super().__init__(path, endpoint, **kwargs)
        answers = {self.invalid if s == 422 else s for s in _answers(self.dependant)}
        responses = {**error_responses(*answers, body=self.error_body), **declared}
        answer_class = kwargs.get("response_class")
        if isinstance(answer_class, type) and getattr(answer_class, "media_type", None) != JSON:
            responses = {status: self._json_error(answer) for status, answer in responses.items()}
        self.responses = responses
        self.response_fields = {
            status: _body_field(answer["model"])
            for status, answer in responses.items()
            if answer.get("model") is not None
        }

    def _json_error(self, answer: dict[str, Any]) -> dict[str, Any]:
        """An error answer of a route whose success is no JSON (an event stream), which
        FastAPI would document under the success's media type: its body is JSON all the
        same."""
        if answer.get("model") is not self.error_body:
            return answer
        return _json_body(answer, self.error_body)


class OpenAIRoute(DocumentedRoute):
    """A route of the OpenAI-compatible API: its errors documented with OpenAI's body, and
    a request that fails validation answered ``400``."""

    error_body = OpenAIErrorBody
    invalid = 400

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Told of no 422, FastAPI would document one of its own, with its own body.
        other = {"model": OpenAIErrorBody, "description": "Any other error, in this body."}
        responses = {**(kwargs.pop("responses", None) or {}), "default": other}
        super().__init__(path, endpoint, responses=responses, **kwargs)


@cache
def _body_field(model: type[BaseModel]) -> ModelField:
    """The field FastAPI documents an answer's body with, one per body model."""
    return create_model_field(name=f"Response_{model.__name__}", type_=model, mode="serialization")


def _json_body(answer: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    body = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    rest = {key: value for key, value in answer.items() if key != "model"}
    return {**rest, "content": {JSON: body}}


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
    openai: bool = False,
) -> JSONResponse:
    """The error answer; with ``openai``, in OpenAI's shape (``speaks_openai``), where a
    failed validation is 400 and ``param`` names its first field."""
    if openai:
        status = 400 if status == 422 else status
        param = details[0]["field"].rpartition(".")[2] if details else None
        if details:
            message += ": " + "; ".join(f"{d['field']}: {d['message']}" for d in details)
        kind = "server_error" if status >= 500 else _OPENAI_TYPES.get(status)
        info = {
            "message": message,
            "type": kind or "invalid_request_error",
            "param": param,
            "code": code,
        }
        return JSONResponse({"error": info}, status_code=status, headers=headers)
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in errors
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(NetraError)
    async def _netra(request: Request, exc: NetraError) -> JSONResponse:
        openai = speaks_openai(request.scope)
        if not isinstance(exc, ANSWERED):
            log.error("error serving %s", request.url.path, exc_info=exc)
            return error_response(
                500, "internal_error", "internal error", request_id_of(request), openai=openai
            )
        headers = None
        if isinstance(exc, RETRY_LATER) and exc.retry_after is not None:
            headers = {"Retry-After": str(exc.retry_after)}
        details = exc.details if isinstance(exc, InvalidRequest) else None
        return error_response(
            exc.status,
            exc.code,
            exc.message,
            request_id_of(request),
            details=details,
            headers=headers,
            openai=openai,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            422,
            "invalid_request",
            "the request is not valid",
            request_id_of(request),
            details=_validation_details(exc.errors()),
            openai=speaks_openai(request.scope),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = str(exc.detail) if exc.status_code < 500 else "internal error"
        # The exception's headers are part of the answer: ``Allow`` on a 405, say.
        return error_response(
            exc.status_code,
            code,
            message,
            request_id_of(request),
            headers=exc.headers,
            openai=speaks_openai(request.scope),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error serving %s", request.url.path, exc_info=exc)
        return error_response(
            500,
            "internal_error",
            "internal error",
            request_id_of(request),
            openai=speaks_openai(request.scope),
        )
