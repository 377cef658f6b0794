"""Accounts and sessions: looked up before a ``UserExecutionContext`` exists (sign-up, sign-in,
token refresh, and checking a presented token's session), so not user-scoped. Transaction
functions (``netra.db.sql``), like the rest of the storage path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from netra.context import Membership
from netra.db.records import UserRecord, utcnow
from netra.db.sql import IntegrityViolation, Row, Statement, Tx, execute, first, rowcount, rows
from netra.errors import Conflict
from netra.ids import new_id

USER_INSERT = Statement(
    "user: a new account",
    "INSERT INTO users (id, email, password_hash, roles, tier, disabled, event_seq, created_at)"
    " VALUES (:id, :email, :password_hash, :roles, :tier, :disabled, 0, :created_at)",
)
USER_BY_EMAIL = Statement("user: by email", "SELECT * FROM users WHERE email = :email")
USER_BY_ID = Statement("user: by id", "SELECT * FROM users WHERE id = :id")
USER_LIST = Statement(
    "users: oldest first, a page",
    "SELECT * FROM users ORDER BY created_at, id LIMIT :limit OFFSET :offset",
)
USER_SET_ROLES = Statement("user: new roles", "UPDATE users SET roles = :roles WHERE id = :id")
USER_SET_TIER = Statement("user: a new tier", "UPDATE users SET tier = :tier WHERE id = :id")
USER_HOLD = Statement(
    "user: by id, locked until commit", "SELECT * FROM users WHERE id = :id FOR UPDATE"
)
USER_SET_LIMITS = Statement(
    "user: its own limit overrides", "UPDATE users SET limits = :limits WHERE id = :id"
)
USER_SET_DISABLED = Statement(
    "user: disabled or enabled", "UPDATE users SET disabled = :disabled WHERE id = :id"
)
SESSION_INSERT = Statement(
    "session: a new sign-in",
    "INSERT INTO sessions (id, user_id, created_at) VALUES (:id, :user_id, :created_at)",
)
SESSION_STATES = Statement(
    "sessions: each with its user's standing, and its API key's scopes (a token's check)",
    "SELECT s.id, s.user_id, s.revoked_at, u.disabled, u.roles, u.tier, u.limits, u.org_id,"
    " u.org_role, k.id AS key_id, k.scopes FROM sessions s JOIN users u ON u.id = s.user_id"
    " LEFT JOIN api_keys k ON k.session_id = s.id WHERE s.id = ANY(:ids)",
)
SESSION_REVOKE = Statement(
    "session: ended",
    "UPDATE sessions SET revoked_at = :revoked_at, revoked_reason = :reason"
    " WHERE id = :id AND revoked_at IS NULL",
)
SESSION_REVOKE_ALL = Statement(
    "sessions: every one of a user's ended",
    "UPDATE sessions SET revoked_at = :revoked_at, revoked_reason = :reason"
    " WHERE user_id = :user_id AND revoked_at IS NULL",
)
REFRESH_INSERT = Statement(
    "refresh token: a new one of a session",
    "INSERT INTO refresh_tokens (token_hash, session_id, user_id, issued_at, expires_at)"
    " VALUES (:token_hash, :session_id, :user_id, :issued_at, :expires_at)",
)
REFRESH_GET = Statement(
    "refresh token: by its hash", "SELECT * FROM refresh_tokens WHERE token_hash = :token_hash"
)
REFRESH_USE = Statement(
    "refresh token: spent, if it was not",
    "UPDATE refresh_tokens SET used_at = :used_at WHERE token_hash = :token_hash"
    " AND used_at IS NULL",
)


def _user(row: Row) -> UserRecord:
    return UserRecord(
        id=row["id"],
        email=row["email"],
        password_hash=row["password_hash"],
        roles=tuple(row["roles"]),
        tier=row["tier"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        limits=dict(row["limits"] or {}),
        org=Membership.of(row["org_id"], row["org_role"]),
    )


class UserRepository:
    """Accounts. Not user-scoped: used by sign-up and sign-in, before a context exists."""

    @staticmethod
    def create(
        email: str, password_hash: str, *, roles: Sequence[str], tier: str
    ) -> Tx[UserRecord]:
        user = UserRecord(
            id=new_id("usr"),
            email=email,
            password_hash=password_hash,
            roles=tuple(roles),
            tier=tier,
            disabled=False,
            created_at=utcnow(),
        )
        try:
            yield from execute(
                USER_INSERT(
                    id=user.id,
                    email=email,
                    password_hash=password_hash,
                    roles=list(roles),
                    tier=tier,
                    disabled=False,
                    created_at=user.created_at,
                )
            )
        except IntegrityViolation as exc:
            raise Conflict("an account with this email already exists") from exc
        return user

    @staticmethod
    def by_email(email: str) -> Tx[UserRecord | None]:
        row = yield from first(USER_BY_EMAIL(email=email))
        return _user(row) if row else None

    @staticmethod
    def by_id(user_id: str) -> Tx[UserRecord | None]:
        row = yield from first(USER_BY_ID(id=user_id))
        return _user(row) if row else None

    @staticmethod
    def list(*, limit: int = 100, offset: int = 0) -> Tx[list[UserRecord]]:
        found = yield from rows(USER_LIST(limit=limit, offset=offset))
        return [_user(row) for row in found]

    @staticmethod
    def update(
        user_id: str,
        *,
        roles: Sequence[str] | None = None,
        tier: str | None = None,
        disabled: bool | None = None,
    ) -> Tx[UserRecord | None]:
        """Change what is given; the account as it is then (None: no such account)."""
        if roles is not None:
            yield from execute(USER_SET_ROLES(id=user_id, roles=list(roles)))
        if tier is not None:
            yield from execute(USER_SET_TIER(id=user_id, tier=tier))
        if disabled is not None:
            yield from execute(USER_SET_DISABLED(id=user_id, disabled=disabled))
        return (yield from UserRepository.by_id(user_id))

    @staticmethod
    def change_limits(user_id: str, changes: Mapping[str, Any]) -> Tx[UserRecord | None]:
        """Set the user's own overrides of ``changes`` (a value of None removes one); the
        account as it is then (None: no such account)."""
        row = yield from first(USER_HOLD(id=user_id))
        if row is None:
            return None
        user = _user(row)
        limits = {**user.limits, **changes}
        limits = {name: value for name, value in limits.items() if value is not None}
        yield from execute(USER_SET_LIMITS(id=user_id, limits=limits))
        return replace(user, limits=limits)


@dataclass(frozen=True, slots=True)
class SessionState:
    """A session as a presented token needs it: is it live, and what may its user do now."""

    user_id: str
    revoked: bool
    disabled: bool
    roles: tuple[str, ...]
    tier: str
    limits: Mapping[str, Any]
    """The user's own limit overrides."""
    org: Membership | None = None
    key_id: str | None = None
    """The API key whose session this is; None: a sign-in."""
    scopes: frozenset[str] | None = None
    """What the API key may do; None: a sign-in, which may do all its user may."""


def session_state(row: Row) -> SessionState:
    """A session's state from a row holding its user's standing (and its key's scopes)."""
    scopes = row["scopes"]
    return SessionState(
        user_id=row["user_id"],
        revoked=row["revoked_at"] is not None,
        disabled=bool(row["disabled"]),
        roles=tuple(row["roles"]),
        tier=row["tier"],
        limits=row["limits"] or {},
        org=Membership.of(row["org_id"], row["org_role"]),
        key_id=row["key_id"],
        scopes=frozenset(scopes) if scopes is not None else None,
    )


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    session_id: str
    user_id: str
    expires_at: datetime
    used: bool


class SessionRepository:
    """Sign-in sessions and their rotating refresh tokens (stored as hashes)."""

    @staticmethod
    def create(user_id: str) -> Tx[str]:
        session_id = new_id("ses")
        yield from execute(SESSION_INSERT(id=session_id, user_id=user_id, created_at=utcnow()))
        return session_id

    @staticmethod
    def states(session_ids: Sequence[str]) -> Tx[dict[str, SessionState]]:
        """Each session joined with its user, in one indexed statement (a token's check;
        many sockets' at once); a session that does not exist is absent."""
        if not session_ids:
            return {}
        found = yield from rows(SESSION_STATES(ids=list(session_ids)))
        return {row["id"]: session_state(row) for row in found}

    @staticmethod
    def state(session_id: str) -> Tx[SessionState | None]:
        found = yield from SessionRepository.states([session_id])
        return found.get(session_id)

    @staticmethod
    def revoke(session_id: str, reason: str) -> Tx[bool]:
        changed = yield from rowcount(
            SESSION_REVOKE(id=session_id, reason=reason, revoked_at=utcnow())
        )
        return changed == 1

    @staticmethod
    def revoke_all(user_id: str, reason: str) -> Tx[int]:
        return (
            yield from rowcount(
                SESSION_REVOKE_ALL(user_id=user_id, reason=reason, revoked_at=utcnow())
            )
        )

    @staticmethod
    def add_refresh(
        token_hash: str, *, session_id: str, user_id: str, expires_at: datetime
    ) -> Tx[None]:
        yield from execute(
            REFRESH_INSERT(
                token_hash=token_hash,
                session_id=session_id,
                user_id=user_id,
                issued_at=utcnow(),
                expires_at=expires_at,
            )
        )

    @staticmethod
    def use_refresh(token_hash: str) -> Tx[RefreshRecord | None]:
        """Mark a refresh token used; returns it as it was before (``used`` tells reuse)."""
        row = yield from first(REFRESH_GET(token_hash=token_hash))
        if row is None:
            return None
        record = RefreshRecord(
            session_id=row["session_id"],
            user_id=row["user_id"],
            expires_at=row["expires_at"],
            used=row["used_at"] is not None,
        )
        if not record.used:
            spent = yield from rowcount(REFRESH_USE(token_hash=token_hash, used_at=utcnow()))
            if spent != 1:  # lost a race with a concurrent use: that is reuse
                return RefreshRecord(record.session_id, record.user_id, record.expires_at, True)
        return record
