"""ApiKeyService: API keys — issued, listed, revoked, and presented in place of an access
token (``Authorization: Bearer nk_…``, or the ``bearer`` subprotocol of ``/ws``).

A key's secret is ``nk_`` and 43 URL-safe characters from ``secrets`` (256 bits): shown once,
when it is made, and stored as its SHA-256 hash, which is how a presented key is found (a
slow, salted hash guards guessable passwords; nothing guesses 256 random bits). Its first
characters (``prefix``) are kept to tell keys apart.

A key signs its program in for good: it has a session of its own, so a presented key builds
the context a token of that session would — the same user, roles, tier and limits as
stored now — narrowed to the key's scopes (``netra.auth.scopes``). Revoking the key ends
the session: the sessions service forgets it and its listeners close its sockets on every
instance with 1008, as for a logout. A disabled account's keys end with its sessions. An
expired key is refused like a revoked one.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from netra.auth.scopes import Scope
from netra.auth.sessions import Revocation, SessionService
from netra.auth.tokens import AccessClaims
from netra.context import UserExecutionContext
from netra.db.api_keys import REVOKED, ApiKeyRepository, PresentedKey
from netra.db.manager import DatabaseManager
from netra.db.records import ApiKeyRecord, utcnow
from netra.db.sql import Tx
from netra.errors import Conflict, InvalidRequest, Unauthenticated

KEY_PREFIX = "nk_"
"""What every key's secret starts with: it tells a key from an access token (a JWT)."""
SHOWN_CHARS = 11
"""Characters of the secret kept and shown as its ``prefix``: ``nk_`` and 8 more."""
MAX_KEYS_PER_USER = 100
"""Keys a user may hold (those not revoked, expired ones included): the bound on the list."""
USE_RECORDED_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key, not at every request."""


def is_api_key(credential: str) -> bool:
    """Whether a presented bearer credential is an API key (else it is an access token)."""
    return credential.startswith(KEY_PREFIX)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key and its secret: the only time the secret is seen."""

    key: ApiKeyRecord
    secret: str


class ApiKeyService:
    def __init__(self, db: DatabaseManager, sessions: SessionService) -> None:
        self._db = db
        self._sessions = sessions

    async def create(
        self,
        user_id: str,
        *,
        name: str,
        scopes: Sequence[Scope],
        expires_at: datetime | None,
    ) -> IssuedKey:
        """A new key of the user's; ``Conflict`` past ``MAX_KEYS_PER_USER``."""
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidRequest(
                "expires_at must be in the future",
                details=[{"field": "body.expires_at", "message": "must be in the future"}],
            )
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = await self._db.transact(
            _create(
                ApiKeyRepository(user_id),
                name=name,
                prefix=secret[:SHOWN_CHARS],
                secret_hash=_hash(secret),
                scopes=sorted(set(scopes)),
                expires_at=expires_at,
            )
        )
        return IssuedKey(key, secret)

    async def list(self, user_id: str) -> list[ApiKeyRecord]:
        """The user's keys not revoked, newest first (at most ``MAX_KEYS_PER_USER``)."""
        return await self._db.transact(ApiKeyRepository(user_id).list())

    async def revoke(self, user_id: str, key_id: str) -> None:
        """Revoke one of the user's keys at once: it is refused from now on, and its
        sockets close (1008) on every instance. ``NotFound`` for a key the user does not
        hold."""
        session_id = await self._db.transact(ApiKeyRepository(user_id).revoke(key_id))
        await self._sessions.announce(Revocation(user_id, session_id, REVOKED))

    async def authenticate(
        self, secret: str, *, request_id: str | None = None
    ) -> UserExecutionContext:
        """The context of a presented key (for one HTTP request: ``request_id``);
        ``Unauthenticated`` when the key is unknown, revoked or expired, or its user is
        disabled."""
        _, ctx = await self._check(secret)
        return ctx if request_id is None else ctx.for_request("http", request_id)

    async def verify(self, secret: str) -> AccessClaims:
        """A presented key as a socket's admission takes a token's claims (expiring when
        the key does); its context is remembered as its session's, as ``authenticate``
        would build it. ``Unauthenticated`` as for ``authenticate``."""
        claims, _ = await self._check(secret)
        return claims

    async def _check(self, secret: str) -> tuple[AccessClaims, UserExecutionContext]:
        generation = self._sessions.generation
        now = utcnow()
        presented = await self._db.transact(_present(_hash(secret), now))
        if presented is None:
            raise Unauthenticated("invalid API key")
        state = presented.state
        if state.revoked:
            raise Unauthenticated("API key revoked", code="api_key_revoked")
        expires_at = presented.expires_at
        if expires_at is not None and expires_at <= now:
            raise Unauthenticated("API key expired", code="api_key_expired")
        claims = AccessClaims(
            state.user_id,
            presented.session_id,
            expires_at.timestamp() if expires_at is not None else None,
            state.roles,
            state.tier,
        )
        return claims, self._sessions.admit(claims, state, generation)


def _create(
    keys: ApiKeyRepository,
    *,
    name: str,
    prefix: str,
    secret_hash: str,
    scopes: Sequence[str],
    expires_at: datetime | None,
) -> Tx[ApiKeyRecord]:
    yield from keys.hold_owner()
    held = yield from keys.list()
    if len(held) >= MAX_KEYS_PER_USER:
        raise Conflict(
            f"at most {MAX_KEYS_PER_USER} API keys per user; revoke one first",
            code="too_many_api_keys",
        )
    return (
        yield from keys.create(
            name=name, prefix=prefix, secret_hash=secret_hash, scopes=scopes, expires_at=expires_at
        )
    )


def _present(secret_hash: str, now: datetime) -> Tx[PresentedKey | None]:
    """The presented key, its use recorded when the last record is older than
    ``USE_RECORDED_EVERY`` (a write a minute per key at most, not one a request)."""
    presented = yield from ApiKeyRepository.presented(secret_hash)
    if presented is None or presented.state.revoked:
        return presented
    if presented.expires_at is not None and presented.expires_at <= now:
        return presented
    last = presented.last_used_at
    if last is None or now - last >= USE_RECORDED_EVERY:
        assert presented.state.key_id is not None
        yield from ApiKeyRepository.used(presented.state.key_id, now)
    return presented
