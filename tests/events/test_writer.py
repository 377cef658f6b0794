"""EventLogWriter on a real SQLite file and on the local PostgreSQL: batches, seqs, the
writes that ride with events, and one failing write failing alone."""

from __future__ import annotations

from collections.abc import Sequence

from netra.db.accounts import UserRepository
from netra.db.event_log import Entry
from netra.db.manager import DatabaseManager
from netra.db.records import utcnow
from netra.db.sql import Statement, Tx, execute, scalar
from netra.events.bus import InProcessBus
from netra.events.envelope import Event, EventType, encode
from netra.events.writer import EventLogWriter
from netra.settings import EventSettings

SEQ = Statement("test: a user's counter", "SELECT event_seq FROM users WHERE id = :id")
STORED = Statement("test: a user's events", "SELECT count(*) AS n FROM events WHERE user_id = :id")
RENAME = Statement("test: rename", "UPDATE users SET email = :email WHERE id = :id")


def _entry(user_id: str, text: str, write: object = None) -> Entry:
    event = encode(
        type=EventType.AGENT_THINKING,
        event_id=f"ev_{text}",
        thread_id=None,
        run_id=None,
        agent=None,
        data={"text": text},
        at=utcnow(),
    )
    return Entry(user_id, event, write=write)  # type: ignore[arg-type]


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
