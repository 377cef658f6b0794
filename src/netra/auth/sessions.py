"""Sessions: sign-in, rotating refresh tokens, logout, revocation, and authenticating a token.

A session is one sign-in. Its access tokens name it (``sid``); every authenticated request and
socket checks it with one indexed lookup joined with the user, so logging out, disabling the
user or reusing a refresh token cuts off its access tokens at once — and the listeners close
its live sockets. Roles and tier come from the stored user, not the token, so an admin's
change applies to the next request.

Refresh tokens are opaque random strings, stored as SHA-256 hashes, used once: each refresh
returns a new pair. Presenting a token that was already used means it leaked (or a client
raced itself): the whole session is revoked.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from netra.auth.permissions import permissions_for
from netra.auth.tokens import IssuedToken, TokenService
from netra.context import UserExecutionContext
from netra.db.accounts import SessionRepository
from netra.db.manager import DatabaseManager
from netra.db.records import UserRecord, utcnow
from netra.errors import Unauthenticated
from netra.settings import AuthSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: IssuedToken
    refresh_token: str
    refresh_expires_in: int
    session_id: str

    def as_dict(self) -> dict[str, str | int]:
        return {
            "access_token": self.access.token,
            "token_type": "bearer",
            "expires_in": self.access.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_expires_in": self.refresh_expires_in,
        }


@dataclass(frozen=True, slots=True)
class Revocation:
    """Sessions were revoked: ``session_id`` None means every session of the user."""

    user_id: str
    session_id: str | None
    reason: str


RevocationListener = Callable[[Revocation], None]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionService:
    def __init__(self, db: DatabaseManager, tokens: TokenService, settings: AuthSettings) -> None:
        self._db = db
        self._tokens = tokens
        self._settings = settings
        self._listeners: list[RevocationListener] = []

    def on_revoke(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def _announce(self, revocation: Revocation) -> None:
        for listener in self._listeners:
            listener(revocation)

    async def open(self, user: UserRecord) -> TokenPair:
        """Sign in: a new session with its first token pair."""
        async with self._db.write() as conn:
            sessions = SessionRepository(conn)
            session_id = await sessions.create(user.id)
            refresh = await self._add_refresh(sessions, user.id, session_id)
        return self._pair(user.id, session_id, user.roles, user.tier, refresh)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is spent and a new pair returned; reuse revokes."""
        async with self._db.write() as conn:
            sessions = SessionRepository(conn)
            record = await sessions.use_refresh(_hash(refresh_token))
            if record is None:
                raise Unauthenticated("invalid refresh token")
            if record.used:
                await sessions.revoke(record.session_id, "refresh_token_reuse")
            else:
                state = await sessions.state(record.session_id)
                if state is None or state.revoked or state.disabled:
                    raise Unauthenticated("session ended", code="session_revoked")
                if record.expires_at <= utcnow():
                    raise Unauthenticated("refresh token expired", code="token_expired")
                refresh = await self._add_refresh(sessions, record.user_id, record.session_id)
                return self._pair(
                    record.user_id, record.session_id, state.roles, state.tier, refresh
                )
        # Reuse: the transaction revoking the session has committed; now cut everything off.
        log.warning("refresh token reused; session %s revoked", record.session_id)
        self._announce(Revocation(record.user_id, record.session_id, "refresh_token_reuse"))
        raise Unauthenticated(
            "refresh token already used; the session is revoked", code="session_revoked"
        )

    async def close(self, ctx: UserExecutionContext) -> None:
        """Log out: the caller's session ends, with its tokens and sockets."""
        if ctx.session_id is None:
            return
        async with self._db.write() as conn:
            await SessionRepository(conn).revoke(ctx.session_id, "logout")
        self._announce(Revocation(ctx.user_id, ctx.session_id, "logout"))

    async def revoke_user(self, user_id: str, reason: str) -> int:
        """End every session of a user (disabled account, role change, admin action)."""
        async with self._db.write() as conn:
            count = await SessionRepository(conn).revoke_all(user_id, reason)
        self._announce(Revocation(user_id, None, reason))
        return count

    async def authenticate(
        self, token: str, *, request_id: str | None = None
    ) -> tuple[UserExecutionContext, float]:
        """The context of a presented access token and when it expires; ``Unauthenticated``
        when the token, its session or its user is no longer good."""
        claims = self._tokens.verify_access(token)
        async with self._db.read() as conn:
            state = await SessionRepository(conn).state(claims.session_id)
        if state is None or state.user_id != claims.user_id:
            raise Unauthenticated("invalid token")
        if state.revoked:
            raise Unauthenticated("session ended", code="session_revoked")
        if state.disabled:
            raise Unauthenticated("account disabled", code="account_disabled")
        ctx = UserExecutionContext(
            user_id=state.user_id,
            roles=state.roles,
            permissions=permissions_for(state.roles),
            tier=state.tier,
            session_id=claims.session_id,
            trail=(f"session:{claims.session_id}",),
        )
        if request_id is not None:
            ctx = ctx.for_request("http", request_id)
        return ctx, claims.expires_at

    async def _add_refresh(self, sessions: SessionRepository, user_id: str, session_id: str) -> str:
        token = secrets.token_urlsafe(32)
        expires_at = utcnow() + timedelta(seconds=self._settings.refresh_token_ttl_s)
        await sessions.add_refresh(
            _hash(token), session_id=session_id, user_id=user_id, expires_at=expires_at
        )
        return token

    def _pair(
        self, user_id: str, session_id: str, roles: tuple[str, ...], tier: str, refresh: str
    ) -> TokenPair:
        access = self._tokens.issue_access(user_id, session_id=session_id, roles=roles, tier=tier)
        return TokenPair(access, refresh, self._settings.refresh_token_ttl_s, session_id)
