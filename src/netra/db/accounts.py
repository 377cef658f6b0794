"""Accounts and sessions: looked up before a ``UserExecutionContext`` exists (sign-up, sign-in,
token refresh, and checking a presented token's session), so not user-scoped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from netra.db import tables as t
from netra.db.records import UserRecord, aware, utcnow
from netra.errors import Conflict
from netra.ids import new_id


def _user(row: Row[Any]) -> UserRecord:
    m = row._mapping
    return UserRecord(
        id=m["id"],
        email=m["email"],
        password_hash=m["password_hash"],
        roles=tuple(m["roles"]),
        tier=m["tier"],
        disabled=bool(m["disabled"]),
        created_at=aware(m["created_at"]) or utcnow(),
    )


class UserRepository:
    """Accounts. Not user-scoped: used by sign-up and sign-in, before a context exists."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def create(
        self, email: str, password_hash: str, *, roles: Sequence[str], tier: str
    ) -> UserRecord:
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
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(t.users).values(
                        id=user.id,
                        email=email,
                        password_hash=password_hash,
                        roles=list(roles),
                        tier=tier,
                        disabled=False,
                        event_seq=0,
                        created_at=user.created_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict("an account with this email already exists") from exc
        return user

    async def by_email(self, email: str) -> UserRecord | None:
        row = (await self._conn.execute(select(t.users).where(t.users.c.email == email))).first()
        return _user(row) if row else None

    async def by_id(self, user_id: str) -> UserRecord | None:
        row = (await self._conn.execute(select(t.users).where(t.users.c.id == user_id))).first()
        return _user(row) if row else None

    async def list(self, *, limit: int = 100, offset: int = 0) -> list[UserRecord]:
        rows = await self._conn.execute(
            select(t.users).order_by(t.users.c.created_at, t.users.c.id).limit(limit).offset(offset)
        )
        return [_user(row) for row in rows]

    async def update(
        self,
        user_id: str,
        *,
        roles: Sequence[str] | None = None,
        tier: str | None = None,
        disabled: bool | None = None,
    ) -> UserRecord | None:
        values: dict[str, Any] = {}
        if roles is not None:
            values["roles"] = list(roles)
        if tier is not None:
            values["tier"] = tier
        if disabled is not None:
            values["disabled"] = disabled
        if values:
            await self._conn.execute(
                update(t.users).where(t.users.c.id == user_id).values(**values)
            )
        return await self.by_id(user_id)


@dataclass(frozen=True, slots=True)
class SessionState:
    """A session as a presented token needs it: is it live, and what may its user do now."""

    user_id: str
    revoked: bool
    disabled: bool
    roles: tuple[str, ...]
    tier: str


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    session_id: str
    user_id: str
    expires_at: datetime
    used: bool


class SessionRepository:
    """Sign-in sessions and their rotating refresh tokens (stored as hashes)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def create(self, user_id: str) -> str:
        session_id = new_id("ses")
        await self._conn.execute(
            insert(t.sessions).values(id=session_id, user_id=user_id, created_at=utcnow())
        )
        return session_id

    async def state(self, session_id: str) -> SessionState | None:
        """The session joined with its user: one indexed lookup per authenticated request."""
        row = (
            await self._conn.execute(
                select(
                    t.sessions.c.user_id,
                    t.sessions.c.revoked_at,
                    t.users.c.disabled,
                    t.users.c.roles,
                    t.users.c.tier,
                )
                .join(t.users, t.users.c.id == t.sessions.c.user_id)
                .where(t.sessions.c.id == session_id)
            )
        ).first()
        if row is None:
            return None
        return SessionState(
            user_id=row.user_id,
            revoked=row.revoked_at is not None,
            disabled=bool(row.disabled),
            roles=tuple(row.roles),
            tier=row.tier,
        )

    async def revoke(self, session_id: str, reason: str) -> bool:
        result = await self._conn.execute(
            update(t.sessions)
            .where(t.sessions.c.id == session_id, t.sessions.c.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
        )
        return result.rowcount == 1

    async def revoke_all(self, user_id: str, reason: str) -> int:
        result = await self._conn.execute(
            update(t.sessions)
            .where(t.sessions.c.user_id == user_id, t.sessions.c.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
        )
        return int(result.rowcount)

    async def add_refresh(
        self, token_hash: str, *, session_id: str, user_id: str, expires_at: datetime
    ) -> None:
        await self._conn.execute(
            insert(t.refresh_tokens).values(
                token_hash=token_hash,
                session_id=session_id,
                user_id=user_id,
                issued_at=utcnow(),
                expires_at=expires_at,
            )
        )

    async def use_refresh(self, token_hash: str) -> RefreshRecord | None:
        """Mark a refresh token used; returns it as it was before (``used`` tells reuse)."""
        row = (
            await self._conn.execute(
                select(t.refresh_tokens).where(t.refresh_tokens.c.token_hash == token_hash)
            )
        ).first()
        if row is None:
            return None
        record = _refresh(row)
        if not record.used:
            result = await self._conn.execute(
                update(t.refresh_tokens)
                .where(
                    t.refresh_tokens.c.token_hash == token_hash,
                    t.refresh_tokens.c.used_at.is_(None),
                )
                .values(used_at=utcnow())
            )
            if result.rowcount != 1:  # lost a race with a concurrent use: that is reuse
                return RefreshRecord(record.session_id, record.user_id, record.expires_at, True)
        return record


def _refresh(row: Row[Any]) -> RefreshRecord:
    m = row._mapping
    return RefreshRecord(
        session_id=m["session_id"],
        user_id=m["user_id"],
        expires_at=aware(m["expires_at"]) or utcnow(),
        used=m["used_at"] is not None,
    )
