"""API keys: a user's keys, and a presented key looked up by the hash of its secret.

Each key has a session of its own (``netra.db.accounts``): revoking the key ends that
session, so everything that ends a session's access — the check of every request, the
sockets closed on every instance — ends the key's too; a key whose session ended is gone
from its owner's list. Transaction functions (``netra.db.sql``), like the rest of the
storage path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from netra.db.accounts import SessionRepository, SessionState, session_state
from netra.db.records import ApiKeyRecord, utcnow
from netra.db.sql import Row, Statement, Tx, execute, first, rows
from netra.errors import NotFound
from netra.ids import new_id

API_KEY_INSERT = Statement(
    "api key: a new one, with its session",
    "INSERT INTO api_keys (id, user_id, session_id, name, prefix, secret_hash, scopes,"
    " created_at, expires_at)"
    " VALUES (:id, :user_id, :session_id, :name, :prefix, :secret_hash, :scopes,"
    " :created_at, :expires_at)",
)
API_KEY_OWNER_HOLD = Statement(
    "api keys: their owner, locked until commit (keys added one at a time hold the bound)",
    "SELECT id FROM users WHERE id = :id FOR UPDATE",
)
API_KEYS_OF = Statement(
    "api keys: a user's, not revoked, newest first",
    "SELECT k.* FROM api_keys k JOIN sessions s ON s.id = k.session_id"
    " WHERE k.user_id = :user_id AND s.revoked_at IS NULL"
    " ORDER BY k.created_at DESC, k.id DESC",
)
API_KEY_OF = Statement(
    "api key: one of a user's, not revoked",
    "SELECT k.* FROM api_keys k JOIN sessions s ON s.id = k.session_id"
    " WHERE k.id = :id AND k.user_id = :user_id AND s.revoked_at IS NULL",
)
API_KEY_BY_HASH = Statement(
    "api key: by its secret's hash, with its session and its user's standing (a key's check)",
    "SELECT k.id AS key_id, k.session_id, k.expires_at, k.last_used_at, k.scopes,"
    " s.user_id, s.revoked_at, u.disabled, u.roles, u.tier, u.limits, u.org_id, u.org_role"
    " FROM api_keys k JOIN sessions s ON s.id = k.session_id JOIN users u ON u.id = s.user_id"
    " WHERE k.secret_hash = :secret_hash",
)
API_KEY_USED = Statement(
    "api key: when it was last used", "UPDATE api_keys SET last_used_at = :used_at WHERE id = :id"
)
REVOKED = "api_key_revoked"
"""The reason a revoked key's session ended."""


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A key as a presented secret's check needs it: its session, its expiry, its use."""

    session_id: str
    expires_at: datetime | None
    last_used_at: datetime | None
    state: SessionState
    """Its session, its user's standing and the key's scopes."""


def _key(row: Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
    )


class ApiKeyRepository:
    """The API keys of one user (``owner``: the signed-in user, or the one an administrator
    names); another user's key is indistinguishable from a missing one."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def hold_owner(self) -> Tx[None]:
        """Lock the owner until commit, so keys are added one at a time (and counted right);
        ``NotFound`` for an owner that does not exist."""
        if (yield from first(API_KEY_OWNER_HOLD(id=self.owner))) is None:
            raise NotFound("user not found")

    def create(
        self,
        *,
        name: str,
        prefix: str,
        secret_hash: str,
        scopes: Sequence[str],
        expires_at: datetime | None,
    ) -> Tx[ApiKeyRecord]:
        session_id = yield from SessionRepository.create(self.owner)
        key = ApiKeyRecord(
            id=new_id("key"),
            user_id=self.owner,
            name=name,
            prefix=prefix,
            scopes=tuple(scopes),
            created_at=utcnow(),
            expires_at=expires_at,
            last_used_at=None,
        )
        yield from execute(
            API_KEY_INSERT(
                id=key.id,
                user_id=self.owner,
                session_id=session_id,
                name=name,
                prefix=prefix,
                secret_hash=secret_hash,
                scopes=list(scopes),
                created_at=key.created_at,
                expires_at=expires_at,
            )
        )
        return key

    def list(self) -> Tx[list[ApiKeyRecord]]:
        """The owner's keys that were not revoked (expired ones too), newest first."""
        found = yield from rows(API_KEYS_OF(user_id=self.owner))
        return [_key(row) for row in found]

    def revoke(self, key_id: str) -> Tx[str]:
        """End the key's session; returns that session's id. ``NotFound`` for a key the
        owner does not hold (or revoked already)."""
        row = yield from first(API_KEY_OF(id=key_id, user_id=self.owner))
        if row is None:
            raise NotFound("API key not found")
        yield from SessionRepository.revoke(row["session_id"], REVOKED)
        session_id: str = row["session_id"]
        return session_id

    @staticmethod
    def presented(secret_hash: str) -> Tx[PresentedKey | None]:
        """The key whose secret hashes to ``secret_hash`` (one indexed statement), before a
        context exists; None: no such key."""
        row = yield from first(API_KEY_BY_HASH(secret_hash=secret_hash))
        if row is None:
            return None
        return PresentedKey(
            session_id=row["session_id"],
            expires_at=row["expires_at"],
            last_used_at=row["last_used_at"],
            state=session_state(row),
        )

    @staticmethod
    def used(key_id: str, at: datetime) -> Tx[None]:
        yield from execute(API_KEY_USED(id=key_id, used_at=at))
