"""EventLogWriter on a real SQLite file and on the local PostgreSQL: batches, seqs, the
writes that ride with events, and one failing write failing alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, timedelta

import asyncpg
import pytest

from netra.context import UserExecutionContext
from netra.db.accounts import UserRepository
from netra.db.event_log import Entry, store
from netra.db.manager import DatabaseManager
from netra.db.queue import RunQueue
from netra.db.records import utcnow
from netra.db.repositories import EventRepository, ThreadRepository
from netra.db.sql import Statement, Tx, execute, rows, scalar
from netra.events.bus import InProcessBus
from netra.events.envelope import Event, EventType, encode
from netra.events.writer import EventLogWriter
from netra.settings import DatabaseSettings, EventSettings

SEQ = Statement("test: a user's counter", "SELECT event_seq FROM users WHERE id = :id")
STORED = Statement("test: a user's events", "SELECT count(*) AS n FROM events WHERE user_id = :id")
RENAME = Statement("test: rename", "UPDATE users SET email = :email WHERE id = :id")
FLOORS = Statement(
    "test: a user's runs' floors", "SELECT seq_floor FROM runs WHERE user_id = :user_id"
)


def _entry(user_id: str, text: str, write: object = None, *, run_id: str | None = None) -> Entry:
    event = encode(
        type=EventType.AGENT_THINKING,
        event_id=f"ev_{text}",
        thread_id=None,
        run_id=run_id,
        agent=None,
        data={"text": text},
        at=utcnow(),
    )
    return Entry(user_id, event, run_id, write=write)  # type: ignore[arg-type]


async def test_a_failing_write_fails_its_entry_alone(db: DatabaseManager) -> None:
    user = await db.transact(
        UserRepository.create("a@example.com", "h", roles=["user"], tier="free")
    )
    bus = InProcessBus()
    published: list[Event] = []

    def receive(events: Sequence[Event]) -> None:
        published.extend(events)

    bus.subscribe(user.id, receive)
    writer = EventLogWriter(db, bus, EventSettings())
    await writer.start()

    def renamed() -> Tx[bool]:
        yield from execute(RENAME(id=user.id, email="renamed@example.com"))
        return True

    def broken() -> Tx[bool]:
        yield from execute(RENAME(id=user.id, email="broken@example.com"))
        raise RuntimeError("a bug in a write")

    try:
        waiters = [
            await writer.append(_entry(user.id, "one"), wait=True),
            await writer.append(_entry(user.id, "two", renamed), wait=True),
            await writer.append(_entry(user.id, "three", broken), wait=True),
            await writer.append(_entry(user.id, "four"), wait=True),
        ]
        outcomes = []
        for waiter in waiters:
            assert waiter is not None
            try:
                outcomes.append(await waiter)
            except RuntimeError as exc:
                outcomes.append(exc)
    finally:
        await writer.stop()
    assert isinstance(outcomes[2], RuntimeError)
    stored = [o for o in outcomes if isinstance(o, Event)]
    assert [event.seq for event in stored] == [1, 2, 3]
    assert [event.seq for event in published] == [1, 2, 3]
    assert '"text":"four"' in stored[2].body
    assert await db.transact(scalar(SEQ(id=user.id))) == 3
    assert await db.transact(scalar(STORED(id=user.id))) == 3
    found = await db.transact(UserRepository.by_email("renamed@example.com"))
    assert found is not None  # the write that rode with "two" stands; the broken one does not


async def test_a_runs_events_are_read_from_the_users_log_above_its_floor(
    db: DatabaseManager,
) -> None:
    """A run stores its user's last seq when it is created; its events, and no other, are
    read from there on, however the user's other events interleave with them."""
    user = await db.transact(
        UserRepository.create("floor@example.com", "h", roles=["user"], tier="free")
    )
    ctx = UserExecutionContext(user_id=user.id)
    thread = await db.transact(ThreadRepository(ctx).create(title="t", agent="assistant"))
    writer = EventLogWriter(db, InProcessBus(), EventSettings())
    await writer.start()

    async def stored(entry: Entry) -> int:
        waiter = await writer.append(entry, wait=True)
        assert waiter is not None
        event = await waiter
        assert event is not None
        return event.seq

    try:
        before = [await stored(_entry(user.id, f"before{i}")) for i in range(3)]
        runs = [
            await db.transact(
                RunQueue.create(ctx, thread_id=thread.id, agent="assistant", model="offline")
            )
            for _ in range(2)
        ]
        mine: dict[str, list[int]] = {run.id: [] for run in runs}
        for i in range(6):
            run_id = runs[i % 2].id
            mine[run_id].append(await stored(_entry(user.id, f"run{i}", run_id=run_id)))
            await stored(_entry(user.id, f"other{i}"))
    finally:
        await writer.stop()
    assert before == [1, 2, 3]
    floors = await db.transact(rows(FLOORS(user_id=user.id)))
    assert [row["seq_floor"] for row in floors] == [3, 3]
    events = EventRepository(ctx)
    for run in runs:
        read = await db.transact(events.for_run(run.id, 0, limit=100))
        assert [event.seq for event in read] == mine[run.id]
        assert {event.run_id for event in read} == {run.id}
        later = await db.transact(events.for_run(run.id, mine[run.id][0], limit=1))
        assert [event.seq for event in later] == mine[run.id][1:2]
    stranger = UserExecutionContext(user_id="usr_nobody")
    assert await db.transact(EventRepository(stranger).for_run(runs[0].id, 0, limit=100)) == []


CREATED = Statement(
    "test: when a user's events were stored", "SELECT created_at FROM events WHERE user_id = :id"
)


async def test_an_events_row_says_when_it_was_stored(db: DatabaseManager) -> None:
    """The database stamps each row as its batch is stored (no timestamp formatted per
    event); it reads back as an aware UTC time, through the hot path and SQLAlchemy alike."""
    from sqlalchemy import select

    from netra.db.tables import events

    user = await db.transact(
        UserRepository.create("stamp@example.com", "h", roles=["user"], tier="free")
    )
    writer = EventLogWriter(db, InProcessBus(), EventSettings())
    await writer.start()
    before = utcnow()
    try:
        waiter = await writer.append(_entry(user.id, "stamped"), wait=True)
        assert waiter is not None
        await waiter
    finally:
        await writer.stop()
    after = utcnow()
    [row] = await db.transact(rows(CREATED(id=user.id)))
    stamped = row["created_at"]
    assert stamped.utcoffset() == timedelta(0)
    # SQLite's clock counts milliseconds: its stamp may read up to 1 ms before ``before``
    assert before - timedelta(milliseconds=1) <= stamped <= after
    async with db.read() as conn:
        read = (await conn.execute(select(events.c.created_at))).scalar_one()
    assert read.replace(tzinfo=UTC) == stamped


@pytest.mark.postgres
async def test_a_batch_locks_its_users_counters_in_id_order(migrated_postgres_url: str) -> None:
    """On PostgreSQL a batch of several users locks their counters lowest id first, in the
    one statement that reserves their seqs: two batches of the same users, on any
    instances, never hold one row each and wait for the other's. Seen from a third
    connection while the batch waits: with the higher row held elsewhere it already holds
    the lower; with the lower held elsewhere it holds nothing yet."""
    db = DatabaseManager(migrated_postgres_url, DatabaseSettings(pool_size=2, max_overflow=0))
    plain = migrated_postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    holder = await asyncpg.connect(plain, timeout=3)
    prober = await asyncpg.connect(plain, timeout=3)
    try:
        made = [
            await db.transact(
                UserRepository.create(f"order{i}@example.com", "h", roles=["user"], tier="free")
            )
            for i in range(2)
        ]
        low, high = sorted(user.id for user in made)
        for held, free_expected in ((high, False), (low, True)):
            async with holder.transaction():
                await holder.execute(LOCK_ONE, held)
                batch = asyncio.create_task(
                    db.transact(store([_entry(high, "h"), _entry(low, "l")]))
                )
                while not await holder.fetchval(WAITING):  # the batch waits for the row held
                    assert not batch.done(), batch.result()
                    await asyncio.sleep(0.01)
                other = low if held == high else high
                async with prober.transaction():
                    try:
                        await prober.execute(LOCK_ONE + " NOWAIT", other)
                        free = True
                    except asyncpg.LockNotAvailableError:
                        free = False
                assert free is free_expected, (held == high, free)
            assert await batch == ([1, 1] if held == high else [2, 2])
    finally:
        await holder.close()
        await prober.close()
        await db.close()


LOCK_ONE = "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE"
WAITING = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)
