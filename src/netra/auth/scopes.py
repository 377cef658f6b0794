"""Scopes: what an API key may do. A signed-in session may do all its user may; a key only
what its scopes name, and never what needs a session (managing keys, administration).

- any key: ``GET /me``, ``GET /agents``, ``GET /tools``, ``GET /v1/models``;
- ``threads:read``: every ``GET`` of threads, messages, runs (``/v1/responses/{id}`` too),
  events and ``/me/usage``; connecting to ``/ws``;
- ``threads:write``: creating, changing, deleting and forking a thread, switching its branch;
- ``runs:write``: sending, editing and regenerating a message, cancelling a run, answering
  an approval — over HTTP (``/v1/chat/completions`` and ``/v1/responses`` too) and in the
  socket's frames;
- a signed-in session only: ``/me/api-keys``, ``/auth/logout``, ``/admin/…``.

A key that lacks the scope is refused with ``PermissionDenied`` (``insufficient_scope``):
HTTP 403, or an ``error`` frame on the socket.
"""

from __future__ import annotations

from enum import StrEnum

from netra.context import UserExecutionContext
from netra.errors import PermissionDenied

INSUFFICIENT_SCOPE = "insufficient_scope"


class Scope(StrEnum):
    """What an API key may be given."""

    THREADS_READ = "threads:read"
    """Read the user's threads, messages, runs, events and usage; open ``/ws``."""
    THREADS_WRITE = "threads:write"
    """Create, rename, pin, archive, delete and fork threads; switch a thread's branch."""
    RUNS_WRITE = "runs:write"
    """Send messages (start runs, in a new thread too), edit and regenerate them, cancel
    runs and answer approvals."""


def require_scope(ctx: UserExecutionContext, scope: Scope) -> None:
    """``PermissionDenied`` unless the caller's credential may act in ``scope``."""
    if not ctx.allows(scope):
        raise PermissionDenied(f"this API key lacks the scope {scope}", code=INSUFFICIENT_SCOPE)


def require_session(ctx: UserExecutionContext) -> None:
    """``PermissionDenied`` when the caller's credential is an API key: what no scope
    grants needs a signed-in session."""
    if ctx.scopes is not None:
        raise PermissionDenied(
            "API keys cannot do this (keys and administration need a signed-in session)",
            code=INSUFFICIENT_SCOPE,
        )
