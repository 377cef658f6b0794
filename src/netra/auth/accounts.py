"""Accounts: sign-up, sign-in (throttled), and server-side contexts for users."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from netra.auth.passwords import PasswordHasher
from netra.auth.permissions import ROLE_PERMISSIONS, permissions_for
from netra.auth.sessions import SessionService, TokenPair
from netra.auth.throttle import LoginThrottle
from netra.context import UserExecutionContext
from netra.db.accounts import UserRepository
from netra.db.manager import DatabaseManager
from netra.db.records import UserRecord
from netra.db.sql import Tx
from netra.errors import InvalidRequest, NotFound, PermissionDenied, Unauthenticated

DEFAULT_ROLES = ("user",)
DEFAULT_TIER = "free"


def normalize_email(email: str) -> str:
    return email.strip().lower()


class AccountService:
    def __init__(
        self,
        db: DatabaseManager,
        hasher: PasswordHasher,
        sessions: SessionService,
        throttle: LoginThrottle,
    ) -> None:
        self._db = db
        self._hasher = hasher
        self._sessions = sessions
        self._throttle = throttle

    async def register(self, email: str, password: str, *, allowed: bool) -> UserRecord:
        if not allowed:
            raise PermissionDenied("registration is closed on this server")
        password_hash = await self._hasher.hash(password)
        return await self._db.transact(
            UserRepository.create(
                normalize_email(email), password_hash, roles=DEFAULT_ROLES, tier=DEFAULT_TIER
            )
        )

    async def login(self, email: str, password: str, *, address: str) -> TokenPair:
        """A new session for valid credentials; the same error, in the same time, for an
        unknown email, a wrong password and a disabled account."""
        email = normalize_email(email)
        self._throttle.check(email, address)
        user = await self._db.transact(UserRepository.by_email(email))
        ok = await self._hasher.verify(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            self._throttle.failure(email, address)
            raise Unauthenticated("wrong email or password", code="invalid_credentials")
        self._throttle.success(email, address)
        return await self._sessions.open(user)

    async def user(self, ctx: UserExecutionContext) -> UserRecord:
        user = await self._db.transact(UserRepository.by_id(ctx.user_id))
        if user is None or user.disabled:
            raise Unauthenticated("account not found or disabled")
        return user

    async def context_for(self, user_id: str) -> UserExecutionContext | None:
        """A context built server-side from the stored account (for recovery and workers)."""
        user = await self._db.transact(UserRepository.by_id(user_id))
        if user is None:
            return None
        return UserExecutionContext(
            user_id=user.id,
            roles=user.roles,
            permissions=permissions_for(user.roles),
            tier=user.tier,
            limits=user.limits,
            org=user.org,
            trail=("server:account",),
        )

    # ---- administration ------------------------------------------------------------------
    async def list_users(self, *, limit: int, offset: int) -> list[UserRecord]:
        return await self._db.transact(UserRepository.list(limit=limit, offset=offset))

    async def get_user(self, user_id: str) -> UserRecord:
        user = await self._db.transact(UserRepository.by_id(user_id))
        if user is None:
            raise NotFound("user not found")
        return user

    async def set_limits(self, user_id: str, changes: Mapping[str, Any]) -> UserRecord:
        """Set the user's own overrides of the limits in ``changes`` (None: remove one), in
        the account, so every instance applies them: from the next request over HTTP, and
        to the sockets it holds once it hears of the change (this one's at once)."""
        user = await self._db.transact(UserRepository.change_limits(user_id, changes))
        if user is None:
            raise NotFound("user not found")
        await self._sessions.account_changed(user_id)
        return user

    async def update_user(
        self,
        user_id: str,
        *,
        roles: Sequence[str] | None,
        tier: str | None,
        disabled: bool | None,
        known_tiers: Sequence[str],
    ) -> UserRecord:
        """Change a user's roles, tier or disabled flag. Disabling ends every session; any
        other change makes every instance read the user's sessions again before trusting
        them for a socket."""
        if roles is not None and (not roles or any(r not in ROLE_PERMISSIONS for r in roles)):
            known = ", ".join(sorted(ROLE_PERMISSIONS))
            raise InvalidRequest(f"roles must be a non-empty list of: {known}")
        if tier is not None and tier not in known_tiers:
            raise InvalidRequest(f"unknown tier {tier!r} (known: {', '.join(known_tiers)})")
        user = await self._db.transact(
            UserRepository.update(user_id, roles=roles, tier=tier, disabled=disabled)
        )
        if user is None:
            raise NotFound("user not found")
        if disabled:
            await self._sessions.revoke_user(user_id, "account_disabled")
        elif roles is not None or tier is not None or disabled is not None:
            await self._sessions.account_changed(user_id)
        return user


async def grant_admin(db: DatabaseManager, email: str) -> UserRecord:
    """Make an existing account an admin (``netra users grant-admin``): the database alone,
    so the command starts without the rest of the server."""
    return await db.transact(_grant_admin(normalize_email(email)))


def _grant_admin(email: str) -> Tx[UserRecord]:
    user = yield from UserRepository.by_email(email)
    if user is None:
        raise NotFound(f"no account with email {email!r}")
    roles = tuple(dict.fromkeys((*user.roles, "admin")))
    updated = yield from UserRepository.update(user.id, roles=roles)
    assert updated is not None
    return updated
