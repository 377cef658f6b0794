"""Sessions: sign-in, rotating refresh tokens, logout, revocation, and authenticating a token.

A session is one sign-in, or one API key (``netra.auth.api_keys``: a key's session never
gets tokens, and is narrowed to the key's scopes). Its access tokens name it (``sid``);
every authenticated request checks it with one indexed lookup joined with the user, so
logging out, disabling the user, reusing a refresh token or revoking a key cuts off its
access at once — and the listeners close its live sockets. Roles and tier come from the
stored user, not the token, so an admin's change applies to the next request.

Sockets may skip the lookup: a session read (or opened) by this instance within
``auth.session_cache_s`` is trusted without reading it again (``known``), so a client
reconnecting, or opening a second tab, costs no database read. Whatever ends a session or
changes an account here drops what is known of it before anything else happens (and a read
that raced with the change is not remembered), so on this instance a revoked session or a
disabled account never authenticates another socket. Other instances hear of it through
the listeners (which tell them over the bus) and otherwise after ``auth.session_cache_s`` at
the latest.

Refresh tokens are opaque random strings, stored as SHA-256 hashes, used once: each refresh
returns a new pair. Presenting a token that was already used means it leaked (or a client
raced itself): the whole session is revoked.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from netra.auth.permissions import permissions_for
from netra.auth.tokens import AccessClaims, IssuedToken, TokenService
from netra.context import UserExecutionContext
from netra.db.accounts import RefreshRecord, SessionRepository, SessionState
from netra.db.manager import DatabaseManager
from netra.db.records import UserRecord, utcnow
from netra.db.sql import Tx
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


RevocationListener = Callable[[Revocation], Awaitable[None]]
"""Told after sessions were revoked here (and forgotten by this service)."""
AccountListener = Callable[[str], Awaitable[None]]
"""Told after a user's roles or tier changed here (and the user's sessions were forgotten)."""
KNOWN_MAX = 100_000
"""Sessions remembered at most; past it the oldest are read again when next used."""


@dataclass(frozen=True, slots=True)
class _Known:
    ctx: UserExecutionContext
    at: float
    """When the session was read (the service's clock)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionService:
    def __init__(
        self,
        db: DatabaseManager,
        tokens: TokenService,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._settings = settings
        self._clock = clock
        self._revocation_listeners: list[RevocationListener] = []
        self._account_listeners: list[AccountListener] = []
        self._known: dict[str, _Known] = {}
        """Sessions read here lately, by id, oldest first."""
        self._generation = 0
        """Counts what was forgotten: a read that began before a change is not remembered."""

    def on_revoke(self, listener: RevocationListener) -> None:
        self._revocation_listeners.append(listener)

    def on_account_change(self, listener: AccountListener) -> None:
        self._account_listeners.append(listener)

    async def announce(self, revocation: Revocation) -> None:
        """Sessions were revoked in the database: forget them here, then tell the listeners
        (which close their sockets, here and on every instance)."""
        self.forget(revocation.user_id, revocation.session_id)
        for listener in self._revocation_listeners:
            await listener(revocation)

    async def account_changed(self, user_id: str) -> None:
        """A user's roles or tier changed: its sessions are read again before they are
        trusted, here and (through the listeners) elsewhere."""
        self.forget(user_id)
        for listener in self._account_listeners:
            await listener(user_id)

    def forget(self, user_id: str, session_id: str | None = None) -> None:
        """Drop what is known of one session (``session_id``) or of every session of a
        user; a read in flight is not remembered either."""
        self._generation += 1
        if session_id is not None:
            self._known.pop(session_id, None)
            return
        for known_id in [sid for sid, known in self._known.items() if known.ctx.user_id == user_id]:
            del self._known[known_id]

    async def open(self, user: UserRecord) -> TokenPair:
        """Sign in: a new session with its first token pair."""
        generation = self._generation
        session_id, refresh = await self._db.transact(self._open(user.id))
        state = SessionState(
            user.id,
            revoked=False,
            disabled=False,
            roles=user.roles,
            tier=user.tier,
            limits=user.limits,
            org=user.org,
        )
        self._remember(session_id, _context(session_id, state), generation)
        return self._pair(user.id, session_id, user.roles, user.tier, refresh)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is spent and a new pair returned; reuse revokes."""
        generation = self._generation
        record, state, refresh = await self._db.transact(self._rotate(_hash(refresh_token)))
        if state is not None and refresh is not None:
            self._remember(record.session_id, _context(record.session_id, state), generation)
            return self._pair(record.user_id, record.session_id, state.roles, state.tier, refresh)
        # Reuse: the transaction revoking the session has committed; now cut everything off.
        log.warning("refresh token reused; session %s revoked", record.session_id)
        await self.announce(Revocation(record.user_id, record.session_id, "refresh_token_reuse"))
        raise Unauthenticated(
            "refresh token already used; the session is revoked", code="session_revoked"
        )

    async def close(self, ctx: UserExecutionContext) -> None:
        """Log out: the caller's session ends, with its tokens and sockets."""
        if ctx.session_id is None:
            return
        await self._db.transact(SessionRepository.revoke(ctx.session_id, "logout"))
        await self.announce(Revocation(ctx.user_id, ctx.session_id, "logout"))

    async def revoke_user(self, user_id: str, reason: str) -> int:
        """End every session of a user (disabled account, role change, admin action)."""
        count = await self._db.transact(SessionRepository.revoke_all(user_id, reason))
        await self.announce(Revocation(user_id, None, reason))
        return count

    async def authenticate(
        self, token: str, *, request_id: str | None = None
    ) -> tuple[UserExecutionContext, float | None]:
        """The context of a presented access token and when it expires; ``Unauthenticated``
        when the token, its session or its user is no longer good. Always reads the
        session (an HTTP request: roles and tier as stored now)."""
        claims = self.verify(token)
        ctx = await self.load(claims)
        if request_id is not None:
            ctx = ctx.for_request("http", request_id)
        return ctx, claims.expires_at

    def verify(self, token: str) -> AccessClaims:
        """The token's signature and claims, without I/O; ``Unauthenticated`` for any fault.
        Its session is checked by ``known`` or ``load``."""
        return self._tokens.verify_access(token)

    def known(self, claims: AccessClaims) -> UserExecutionContext | None:
        """The context of a verified token's session when this instance read it within
        ``auth.session_cache_s`` and nothing changed it since; None: ``load`` it."""
        known = self._known.get(claims.session_id)
        if known is None or known.ctx.user_id != claims.user_id:
            return None
        if self._clock() - known.at >= self._settings.session_cache_s:
            del self._known[claims.session_id]
            return None
        return known.ctx

    async def load(self, claims: AccessClaims) -> UserExecutionContext:
        """Read a verified token's session (one indexed statement): its context, as
        ``admit`` gives it."""
        generation = self._generation
        state = await self._db.transact(SessionRepository.state(claims.session_id))
        return self.admit(claims, state, generation)

    def admit(
        self, claims: AccessClaims, state: SessionState | None, generation: int
    ) -> UserExecutionContext:
        """The context of a verified token whose session was read as ``state``, the read
        having begun at ``generation`` (a read that raced with a change is not remembered
        for ``known``); ``Unauthenticated`` when the session ended or the account is
        disabled."""
        if state is None or state.user_id != claims.user_id:
            raise Unauthenticated("invalid token")
        if state.revoked:
            raise Unauthenticated("session ended", code="session_revoked")
        if state.disabled:
            raise Unauthenticated("account disabled", code="account_disabled")
        ctx = _context(claims.session_id, state)
        self._remember(claims.session_id, ctx, generation)
        return ctx

    async def reread(self, ctx: UserExecutionContext) -> UserExecutionContext | None:
        """``ctx`` with its user's rights as stored now (roles, tier, limit overrides): for
        a socket that outlives an account change. None: its session ended meanwhile."""
        if ctx.session_id is None:
            return None
        state = await self._db.transact(SessionRepository.state(ctx.session_id))
        if state is None or state.revoked or state.disabled or state.user_id != ctx.user_id:
            return None
        return replace(
            ctx,
            roles=state.roles,
            permissions=permissions_for(state.roles),
            tier=state.tier,
            limits=state.limits,
            org=state.org,
        )

    @property
    def generation(self) -> int:
        """Counts what was forgotten: a session read before it changed is not remembered."""
        return self._generation

    def _open(self, user_id: str) -> Tx[tuple[str, str]]:
        """A new session and its first refresh token: ``(session id, refresh token)``."""
        session_id = yield from SessionRepository.create(user_id)
        refresh = yield from self._add_refresh(user_id, session_id)
        return session_id, refresh

    def _rotate(self, token_hash: str) -> Tx[tuple[RefreshRecord, SessionState | None, str | None]]:
        """Spend a refresh token: ``(record, session, new refresh token)``; a reused one
        revokes its session and comes back without either (the revocation commits, and
        the caller then cuts everything off)."""
        record = yield from SessionRepository.use_refresh(token_hash)
        if record is None:
            raise Unauthenticated("invalid refresh token")
        if record.used:
            yield from SessionRepository.revoke(record.session_id, "refresh_token_reuse")
            return record, None, None
        state = yield from SessionRepository.state(record.session_id)
        if state is None or state.revoked or state.disabled:
            raise Unauthenticated("session ended", code="session_revoked")
        if record.expires_at <= utcnow():
            raise Unauthenticated("refresh token expired", code="token_expired")
        refresh = yield from self._add_refresh(record.user_id, record.session_id)
        return record, state, refresh

    def _remember(self, session_id: str, ctx: UserExecutionContext, generation: int) -> None:
        """Remember a session read while nothing was forgotten (``generation`` unchanged)."""
        if generation != self._generation or self._settings.session_cache_s <= 0:
            return
        self._known.pop(session_id, None)
        if len(self._known) >= KNOWN_MAX:
            del self._known[next(iter(self._known))]
        self._known[session_id] = _Known(ctx, self._clock())

    def _add_refresh(self, user_id: str, session_id: str) -> Tx[str]:
        token = secrets.token_urlsafe(32)
        expires_at = utcnow() + timedelta(seconds=self._settings.refresh_token_ttl_s)
        yield from SessionRepository.add_refresh(
            _hash(token), session_id=session_id, user_id=user_id, expires_at=expires_at
        )
        return token

    def _pair(
        self, user_id: str, session_id: str, roles: tuple[str, ...], tier: str, refresh: str
    ) -> TokenPair:
        access = self._tokens.issue_access(user_id, session_id=session_id, roles=roles, tier=tier)
        return TokenPair(access, refresh, self._settings.refresh_token_ttl_s, session_id)


def _context(session_id: str, state: SessionState) -> UserExecutionContext:
    """A session's context: an API key's is narrowed to its scopes, and its trail starts
    with the key."""
    credential = f"api_key:{state.key_id}" if state.key_id else f"session:{session_id}"
    return UserExecutionContext(
        user_id=state.user_id,
        roles=state.roles,
        permissions=permissions_for(state.roles),
        tier=state.tier,
        limits=state.limits,
        org=state.org,
        session_id=session_id,
        scopes=state.scopes,
        trail=(credential,),
    )
