"""UserExecutionContext: the immutable identity every user-scoped operation carries.

A context is built only from a verified access token (``netra.auth.tokens``) or by an
explicit server-side call (``UserExecutionContext.system_for``); never from client fields.
Repositories refuse to touch user-owned rows without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from netra.errors import InvalidRequest
from netra.ids import new_id

MAX_DEPTH = 10
_RESERVED_IDS = frozenset({"", "system", "registry", "none", "null", "undefined", "*"})


def _check_id(name: str, value: str | None, *, required: bool) -> None:
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required")
        return
    if not isinstance(value, str) or value.strip().lower() in _RESERVED_IDS:
        raise InvalidRequest(f"{name} must be a non-empty, non-reserved string")


@dataclass(frozen=True, slots=True)
class UserExecutionContext:
    """Who is acting, on what, and with which rights. Frozen: derive, never mutate."""

    user_id: str
    """The authenticated user; every user-owned row read or written is filtered by it."""
    roles: tuple[str, ...] = ("user",)
    """Roles granted by the token."""
    permissions: frozenset[str] = frozenset()
    """Permissions derived from the roles."""
    tier: str = "free"
    """Quota tier of the user."""
    session_id: str | None = None
    """Sign-in session the credential belongs to (None for server-side contexts)."""
    request_id: str = field(default_factory=lambda: new_id("req"))
    """Id of the request or frame that created this context."""
    correlation_id: str | None = None
    """Id shared by everything one client action caused (defaults to the first request id)."""
    thread_id: str | None = None
    """Thread being worked on, when there is one."""
    run_id: str | None = None
    """Run being executed, when there is one."""
    parent_run_id: str | None = None
    """Run that started this one, for sub-agent runs."""
    depth: int = 0
    """How many parent contexts this one descends from."""
    metadata: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Read-only extra data (client info); never secrets."""

    def __post_init__(self) -> None:
        _check_id("user_id", self.user_id, required=True)
        _check_id("thread_id", self.thread_id, required=False)
        _check_id("run_id", self.run_id, required=False)
        if self.depth > MAX_DEPTH:
            raise InvalidRequest(f"context depth {self.depth} exceeds the limit of {MAX_DEPTH}")
        if self.correlation_id is None:
            object.__setattr__(self, "correlation_id", self.request_id)

    def with_run(self, *, thread_id: str, run_id: str) -> UserExecutionContext:
        """The same identity, now working on one run."""
        return replace(self, thread_id=thread_id, run_id=run_id)

    def child(self, *, run_id: str, thread_id: str | None = None) -> UserExecutionContext:
        """A context for a sub-agent run: same user and rights, one level deeper."""
        return replace(
            self,
            request_id=new_id("req"),
            run_id=run_id,
            thread_id=thread_id or self.thread_id,
            parent_run_id=self.run_id,
            depth=self.depth + 1,
        )

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for logs and audit: ids and rights only, never secrets."""
        return {
            "user_id": self.user_id,
            "roles": list(self.roles),
            "permissions": sorted(self.permissions),
            "tier": self.tier,
            "session_id": self.session_id,
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "depth": self.depth,
        }
