"""The errors Netra raises, and who is at fault for each.

    NetraError
    ├── UserError            the caller asked for something invalid  (HTTP 4xx / WS error frame)
    │   ├── InvalidRequest   a body, frame or argument failed validation   (422 / invalid_request)
    │   ├── Unauthenticated  missing, bad, expired or revoked credentials (401)
    │   ├── PermissionDenied authenticated, but not allowed                (403)
    │   ├── NotFound         no such object for this caller                (404)
    │   ├── Conflict         the object exists or is in the wrong state    (409)
    │   └── QuotaExceeded    a limit of the caller's tier was reached      (429)
    ├── Unavailable          the server cannot do it now; try again later  (503 + Retry-After)
    │   ├── Overloaded   the cluster's queue of runs is full
    │   └── StorageUnavailable  the database refuses writes or is unreachable (full disk …)
    ├── ModelBehaviorError   a model answered with something unusable
    ├── ModelUnavailable     a model provider timed out, was unreachable, rate limited, or 5xx
    ├── ModelRequestRejected a model provider refused the request (bad key, bad request)
    ├── ToolError            a tool failed; becomes a tool result, never a 500
    ├── LostClaim            a run's executor was replaced (its lease ran out): write refused
    └── ConfigurationError   settings are missing or unsafe
        └── UnknownModel     a model id names no model or provider Netra knows

Which errors a client is told about, and which of those say when to try again, is written
here once (``ANSWERED``, ``RETRY_LATER``); ``netra.api.errors`` makes HTTP answers of them and
``netra.realtime.frames`` WebSocket error frames.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RunError:
    """What went wrong with a run or a tool call, as clients, models and the tables get it:
    ``{"code", "message"}``."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> RunError:
        """From its stored form (``as_dict``)."""
        return cls(str(stored.get("code", "internal_error")), str(stored.get("message", "")))


class NetraError(Exception):
    """Root of every error Netra raises on purpose."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_run_error(self) -> RunError:
        return RunError(self.code, self.message)


class UserError(NetraError):
    """Raised when a client sends something the server will not do."""

    code = "bad_request"
    status = 400


class InvalidRequest(UserError):
    """Raised when a body, frame or argument fails validation."""

    code = "invalid_request"
    status = 422

    def __init__(
        self, message: str, *, code: str | None = None, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.details = details or []


class Unauthenticated(UserError):
    """Raised when a credential is missing, malformed, expired or revoked."""

    code = "unauthenticated"
    status = 401


class PermissionDenied(UserError):
    """Raised when an authenticated user lacks the permission for an action."""

    code = "permission_denied"
    status = 403


class NotFound(UserError):
    """Raised when an object does not exist *for this caller* (another user's is the same)."""

    code = "not_found"
    status = 404


class Conflict(UserError):
    """Raised when an object already exists or is in a state that forbids the action."""

    code = "conflict"
    status = 409


class QuotaExceeded(UserError):
    """Raised when a limit of the caller's tier is reached; ``retry_after`` in seconds."""

    code = "quota_exceeded"
    status = 429

    def __init__(
        self, message: str, *, retry_after: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(NetraError):
    """Raised when the server cannot do the work right now through no fault of the caller,
    who may try again after ``retry_after`` seconds."""

    code = "unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StorageUnavailable(Unavailable):
    """Raised when the database refuses a transaction for a reason of its own: a full disk,
    an I/O error, a read-only file, a lost connection. Nothing of the transaction was
    stored; ``cause`` says what the database said, for the operator (never for clients)."""

    code = "storage_unavailable"

    def __init__(self, cause: str) -> None:
        super().__init__("the server cannot store data right now; try again shortly", retry_after=5)
        self.cause = cause


class Overloaded(Unavailable):
    """Raised when a new message would pass the server-wide bound on queued runs
    (``limits.max_queued_runs``). Nobody's request was wrong: the cluster has more work
    waiting than it takes on."""

    code = "overloaded"


class ModelBehaviorError(NetraError):
    """Raised when a model returns output Netra cannot use (malformed tool call, bad JSON,
    an unknown finish reason, a stream that is not what its API promises)."""

    code = "model_behavior"


class ModelUnavailable(NetraError):
    """Raised when a model provider cannot answer now: a timeout, a connection error, a rate
    limit (429) or a server error (5xx). Before any output, a run fails over to its next model."""

    code = "model_unavailable"
    status = 503


class ModelRequestRejected(NetraError):
    """Raised when a model provider refuses a request for a reason a retry will not fix: a bad
    or missing API key (401/403), a request it cannot serve (400/413/422)."""

    code = "model_rejected"


class ToolError(NetraError):
    """Raised inside a tool to report a failure the model should see as the tool's result."""

    code = "tool_error"


class ConfigurationError(NetraError):
    """Raised when the settings are invalid or unsafe for the chosen environment."""

    code = "configuration_error"


class UnknownModel(ConfigurationError):
    """Raised when a model id names no built-in model, no configured provider, or a model its
    provider does not serve."""

    code = "unknown_model"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class LostClaim(NetraError):
    """A write by an attempt of a run that is no longer the run's current attempt: another
    instance took the run over (fencing). The stale executor stops; nothing it writes lands."""

    code = "lost_claim"


ANSWERED = (UserError, Unavailable)
"""Errors whose message is for the client (an HTTP error body, a WS error frame); any other
is logged and answered as an internal error."""
RETRY_LATER = (QuotaExceeded, Unavailable)
"""Refusals that say when to try again: ``retry_after`` seconds (the ``Retry-After`` header,
the frame's ``retry_after``)."""
