"""UserExecutionContext: the immutable identity every user-scoped operation carries.

A context is built only from a verified credential — an access token
(``SessionService.authenticate``) or an API key (``ApiKeyService.authenticate``), which
narrows it to the key's ``scopes`` — or from the stored account by the server itself
(``AccountService.context_for``, for recovery); never from client fields.
Repositories refuse to touch user-owned rows without one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from netra.errors import InvalidRequest
from netra.ids import new_id

MAX_DEPTH = 10
MAX_METADATA_BYTES = 4096
_RESERVED_IDS = frozenset({"", "system", "registry", "none", "null", "undefined", "*"})


def _check_id(name: str, value: str | None, *, required: bool) -> None:
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required")
        return
    if not isinstance(value, str) or value.strip().lower() in _RESERVED_IDS:
        raise InvalidRequest(f"{name} must be a non-empty, non-reserved string")


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's place in an organisation."""

    org_id: str
    role: str
    """``member`` or ``admin`` (an org admin sees the organisation's usage figures)."""

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def of(cls, org_id: str | None, role: str | None) -> Membership | None:
        """From a user's stored columns; none without an organisation."""
        return cls(org_id, role or "member") if org_id else None


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
    limits: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The user's own limit overrides, stored with the account: over the tier's
    (``UnifiedConfigurationManager.limits_for``)."""
    org: Membership | None = None
    """The organisation the user belongs to, if any."""
    session_id: str | None = None
    """Sign-in session the credential belongs to (an API key has a session of its own);
    None for server-side contexts."""
    scopes: frozenset[str] | None = None
    """What the credential may do when it is an API key (``netra.auth.scopes``); None: a
    signed-in session or the server itself, which may do all the user may."""
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
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Read-only extra data (client info), JSON-safe; never secrets. Stored as a deep copy,
    so later changes to the dict passed in do not reach the context."""
    trail: tuple[str, ...] = ()
    """Audit trail, oldest first: the credential, request, runs and sub-runs this context
    passed through (``session:…``, ``http:req_…``, ``ws:req_…``, ``run:…``, ``child:…``)."""

    def __post_init__(self) -> None:
        self._check()
        object.__setattr__(self, "metadata", _frozen_metadata(self.metadata))
        if not isinstance(self.limits, MappingProxyType):
            object.__setattr__(self, "limits", MappingProxyType(copy.deepcopy(dict(self.limits))))

    def _check(self) -> None:
        _check_id("user_id", self.user_id, required=True)
        _check_id("thread_id", self.thread_id, required=False)
        _check_id("run_id", self.run_id, required=False)
        if self.depth > MAX_DEPTH:
            raise InvalidRequest(f"context depth {self.depth} exceeds the limit of {MAX_DEPTH}")
        if self.correlation_id is None:
            object.__setattr__(self, "correlation_id", self.request_id)

    def _derive(self, **changes: Any) -> UserExecutionContext:
        """This context with ``changes``, checked again; its metadata and limits, frozen
        copies made with it, are shared rather than copied and checked once more (a context
        is derived for every frame and every run)."""
        derived: UserExecutionContext = object.__new__(UserExecutionContext)
        for name in _FIELDS:
            value = changes[name] if name in changes else getattr(self, name)
            object.__setattr__(derived, name, value)
        derived._check()
        return derived

    def for_request(self, via: str, request_id: str | None = None) -> UserExecutionContext:
        """The same identity acting for a new client action (an HTTP request, a frame)."""
        request_id = request_id or new_id("req")
        return self._derive(
            request_id=request_id,
            correlation_id=request_id,
            trail=(*self.trail, f"{via}:{request_id}"),
        )

    def with_run(self, *, thread_id: str, run_id: str) -> UserExecutionContext:
        """The same identity, now working on one run."""
        return self._derive(
            thread_id=thread_id, run_id=run_id, trail=(*self.trail, f"run:{run_id}")
        )

    def child(self, *, run_id: str, thread_id: str | None = None) -> UserExecutionContext:
        """A context for a sub-agent run: same user and rights, one level deeper."""
        return self._derive(
            request_id=new_id("req"),
            run_id=run_id,
            thread_id=thread_id or self.thread_id,
            parent_run_id=self.run_id,
            depth=self.depth + 1,
            trail=(*self.trail, f"child:{run_id}"),
        )

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def allows(self, scope: str) -> bool:
        """Whether the credential may act in ``scope`` (every scope, unless it is a key)."""
        return self.scopes is None or scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for logs and audit: ids and rights only, never secrets."""
        return {
            "user_id": self.user_id,
            "roles": list(self.roles),
            "permissions": sorted(self.permissions),
            "tier": self.tier,
            "limits": dict(self.limits),
            "org_id": self.org.org_id if self.org else None,
            "session_id": self.session_id,
            "scopes": sorted(self.scopes) if self.scopes is not None else None,
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "depth": self.depth,
            "trail": list(self.trail),
            "metadata": copy.deepcopy(dict(self.metadata)),
        }


_FIELDS = tuple(f.name for f in fields(UserExecutionContext))
RESERVED_METADATA_KEYS = frozenset(_FIELDS)
"""Metadata may not shadow identity: ``metadata["user_id"]`` and the like are refused."""


def _frozen_metadata(metadata: Mapping[str, Any]) -> MappingProxyType[str, Any]:
    if not isinstance(metadata, Mapping):
        raise InvalidRequest("metadata must be a mapping")
    for key in metadata:
        if not isinstance(key, str):
            raise InvalidRequest("metadata keys must be strings")
        if key in RESERVED_METADATA_KEYS:
            raise InvalidRequest(f"metadata key {key!r} is reserved")
    try:
        size = len(json.dumps(dict(metadata), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"metadata must be JSON-safe: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return MappingProxyType(copy.deepcopy(dict(metadata)))
