"""The heartbeat's side of the runs table: leases renewed near their expiry, in pages."""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlalchemy import select

from netra.context import UserExecutionContext
from netra.db import tables as t
from netra.db.accounts import UserRepository
from netra.db.manager import DatabaseManager
from netra.db.queue import RunQueue
from netra.db.records import utcnow
from netra.db.repositories import ThreadRepository

OWNER = "inst_here"


async def test_only_leases_near_expiry_are_renewed_and_every_held_run_is_reported(
    db: DatabaseManager,
) -> None:
    user = await db.transact(
        UserRepository.create("beat@example.com", "h", roles=["user"], tier="free")
    )
    ctx = UserExecutionContext(user_id=user.id)
    thread = await db.transact(ThreadRepository(ctx).create(title="t", agent="assistant"))
    now = utcnow()

    async def held_by(owner: str, seconds: int) -> str:
        run = await db.transact(
            RunQueue.create(
                ctx,
                thread_id=thread.id,
                agent="assistant",
                model="offline",
                owner=owner,
                lease_until=now + timedelta(seconds=seconds),
            )
        )
        return run.id

    # Three runs held here: two whose leases end soon, one renewed a moment ago.
    expiring = {await held_by(OWNER, seconds): seconds for seconds in (1, 2, 14)}
    elsewhere = await held_by("inst_other", 1)
    until = now + timedelta(seconds=15)
    due = now + timedelta(seconds=7)
    # Pages of one: the soonest first, then the next; the fresh lease is left alone.
    assert await db.transact(RunQueue.renew(OWNER, until, due=due, limit=1)) == 1
    assert await db.transact(RunQueue.renew(OWNER, until, due=due, limit=1)) == 1
    assert await db.transact(RunQueue.renew(OWNER, until, due=due, limit=1)) == 0
    async with db.read() as conn:
        found = await conn.execute(select(t.runs.c.id, t.runs.c.lease_expires_at))
        # SQLite gives UTC without a zone, PostgreSQL with one.
        leases = {run_id: at.replace(tzinfo=UTC) for run_id, at in found}
    for run_id, seconds in expiring.items():
        expected = until if seconds < 7 else now + timedelta(seconds=seconds)
        assert abs((leases[run_id] - expected).total_seconds()) < 0.01, run_id
    assert abs((leases[elsewhere] - (now + timedelta(seconds=1))).total_seconds()) < 0.01

    held = await db.transact(RunQueue.held(OWNER))
    assert {lease.run_id for lease in held} == set(expiring)
    assert all(lease.owner == OWNER and lease.attempt == 0 for lease in held)
