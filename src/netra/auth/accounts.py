"""Accounts: sign-up, sign-in, and server-side contexts for users."""

from __future__ import annotations

from netra.auth.passwords import PasswordHasher
from netra.auth.permissions import permissions_for
from netra.auth.tokens import IssuedToken, TokenService
from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.records import UserRecord
from netra.db.repositories import UserRepository
from netra.errors import PermissionDenied, Unauthenticated

DEFAULT_ROLES = ("user",)
DEFAULT_TIER = "free"


def normalize_email(email: str) -> str:
    return email.strip().lower()


class AccountService:
    def __init__(self, db: DatabaseManager, hasher: PasswordHasher, tokens: TokenService) -> None:
        self._db = db
        self._hasher = hasher
        self._tokens = tokens

    async def register(self, email: str, password: str, *, allowed: bool) -> UserRecord:
        if not allowed:
            raise PermissionDenied("registration is closed on this server")
        password_hash = await self._hasher.hash(password)
        async with self._db.write() as conn:
            return await UserRepository(conn).create(
                normalize_email(email), password_hash, roles=DEFAULT_ROLES, tier=DEFAULT_TIER
            )

    async def login(self, email: str, password: str) -> IssuedToken:
        """A token for valid credentials; the same error, in the same time, for an unknown
        email and a wrong password."""
        async with self._db.read() as conn:
            user = await UserRepository(conn).by_email(normalize_email(email))
        ok = await self._hasher.verify(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            raise Unauthenticated("wrong email or password", code="invalid_credentials")
        return self._tokens.issue_access(user.id, roles=user.roles, tier=user.tier)

    async def user(self, ctx: UserExecutionContext) -> UserRecord:
        async with self._db.read() as conn:
            user = await UserRepository(conn).by_id(ctx.user_id)
        if user is None or user.disabled:
            raise Unauthenticated("account not found or disabled")
        return user

    async def context_for(self, user_id: str) -> UserExecutionContext | None:
        """A context built server-side from the stored account (for recovery and workers)."""
        async with self._db.read() as conn:
            user = await UserRepository(conn).by_id(user_id)
        if user is None:
            return None
        return UserExecutionContext(
            user_id=user.id,
            roles=user.roles,
            permissions=permissions_for(user.roles),
            tier=user.tier,
        )
