"""What a socket trusts without reading the session: only what this instance read lately,
never what it revoked or changed since, and nothing another instance revoked for longer than
``auth.session_cache_s`` (the window when the notice of it is lost).

Two ``SessionService`` objects on one SQLite file are two instances; a clock of the test's
own stands for the time between them, so the window is checked exactly, without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from netra.auth.sessions import SessionService, TokenPair
from netra.auth.tokens import TokenService
from netra.db.accounts import UserRepository
from netra.db.manager import DatabaseManager
from netra.db.records import UserRecord
from netra.errors import Unauthenticated
from netra.settings import AuthSettings, DatabaseSettings

WINDOW_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(f"sqlite+aiosqlite:///{tmp_path / 'netra.db'}", DatabaseSettings())
    await manager.upgrade()
    yield manager
    await manager.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def instance(db: DatabaseManager, clock: Clock) -> SessionService:
    settings = AuthSettings(session_cache_s=WINDOW_S)
    return SessionService(db, TokenService(settings, "s" * 48), settings, clock=clock)


async def signed_in(db: DatabaseManager, sessions: SessionService) -> tuple[UserRecord, TokenPair]:
    user = await db.transact(
        UserRepository.create("someone@example.com", "hash", roles=["user"], tier="free")
    )
    return user, await sessions.open(user)


async def load(db: DatabaseManager, sessions: SessionService, token: str) -> None:
    await sessions.load(sessions.verify(token))


async def test_a_session_is_trusted_where_it_was_read_and_only_within_the_window(
    db: DatabaseManager, clock: Clock
) -> None:
    here, there = instance(db, clock), instance(db, clock)
    _, pair = await signed_in(db, there)
    claims = here.verify(pair.access.token)
    assert there.known(there.verify(pair.access.token)) is not None  # signed in there
    assert here.known(claims) is None  # never read here
    await load(db, here, pair.access.token)
    ctx = here.known(claims)
    assert ctx is not None and ctx.session_id == pair.session_id
    clock.now += WINDOW_S - 0.01
    assert here.known(claims) is ctx
    clock.now += 0.02
    assert here.known(claims) is None


async def test_a_revocation_elsewhere_whose_notice_is_lost_is_trusted_at_most_the_window(
    db: DatabaseManager, clock: Clock
) -> None:
    here, there = instance(db, clock), instance(db, clock)
    _, pair = await signed_in(db, there)
    claims = here.verify(pair.access.token)
    await load(db, here, pair.access.token)
    ctx = here.known(claims)
    assert ctx is not None
    await there.close(ctx)  # logged out there; nothing tells this instance
    assert here.known(claims) is ctx
    clock.now += WINDOW_S
    assert here.known(claims) is None
    with pytest.raises(Unauthenticated) as refused:
        await load(db, here, pair.access.token)
    assert refused.value.code == "session_revoked"


async def test_what_ends_a_session_here_is_never_trusted_again(
    db: DatabaseManager, clock: Clock
) -> None:
    here = instance(db, clock)
    user, pair = await signed_in(db, here)
    claims = here.verify(pair.access.token)
    ctx = here.known(claims)
    assert ctx is not None  # signing in made it known
    await here.close(ctx)
    assert here.known(claims) is None
    with pytest.raises(Unauthenticated):
        await load(db, here, pair.access.token)

    again = await here.open(user)
    assert here.known(here.verify(again.access.token)) is not None
    await here.revoke_user(user.id, "account_disabled")
    assert here.known(here.verify(again.access.token)) is None

    third = await here.open(user)
    assert here.known(here.verify(third.access.token)) is not None
    await here.account_changed(user.id)  # roles or tier: read again before trusted
    assert here.known(here.verify(third.access.token)) is None
    await load(db, here, third.access.token)
    assert here.known(here.verify(third.access.token)) is not None


async def test_a_read_that_raced_with_a_revocation_is_not_remembered(
    db: DatabaseManager, clock: Clock
) -> None:
    here = instance(db, clock)
    user, pair = await signed_in(db, here)
    here.forget(user.id)
    claims = here.verify(pair.access.token)
    reading = asyncio.create_task(here.load(claims))
    await asyncio.sleep(0)  # the read is under way: its statement awaits the database
    here.forget(user.id, pair.session_id)  # a revocation lands meanwhile
    ctx = await reading
    assert ctx.session_id == pair.session_id  # what the read saw, returned to its caller
    assert here.known(claims) is None  # but not trusted by the next socket


async def test_a_zero_window_trusts_nothing(db: DatabaseManager, clock: Clock) -> None:
    settings = AuthSettings(session_cache_s=0)
    here = SessionService(db, TokenService(settings, "s" * 48), settings, clock=clock)
    _, pair = await signed_in(db, here)
    claims = here.verify(pair.access.token)
    assert here.known(claims) is None
    await load(db, here, pair.access.token)
    assert here.known(claims) is None
