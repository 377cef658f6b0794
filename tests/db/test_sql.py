"""Transaction functions (``netra.db.sql``) on a real SQLite file and on the local
PostgreSQL: whole transactions, the same values both ways, a failure undoing only its own
transaction, SQLite's group commit, and the database failing as ``StorageUnavailable``."""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import JSON, Boolean, select

from netra.context import UserExecutionContext
from netra.db import accounts, api_keys, event_log, queue, repositories, runs, schema
from netra.db import tables as t
from netra.db.accounts import UserRepository
from netra.db.event_log import SEQ_RESERVE
from netra.db.manager import DatabaseManager
from netra.db.queue import HELD, RUN_FENCE
from netra.db.repositories import ThreadRepository
from netra.db.runs import ACTIVE
from netra.db.sql import (
    BOOL_NAMES,
    JSON_NAMES,
    IntegrityViolation,
    Statement,
    Tx,
    execute,
    first,
    rows,
    savepoint,
    scalar,
)
from netra.errors import StorageUnavailable
from netra.settings import DatabaseSettings

MESSAGE_INSERT = Statement(
    "test: a message",
    "INSERT INTO messages (id, user_id, thread_id, role, content, data, created_at)"
    " VALUES (:id, :user_id, :thread_id, 'user', :content, :data, :created_at)",
)
MESSAGE_GET = Statement("test: a message", "SELECT * FROM messages WHERE id = :id")
MESSAGES_IN = Statement(
    "test: messages among ids", "SELECT id FROM messages WHERE id = ANY(:ids) ORDER BY id"
)
MESSAGE_COUNT = Statement("test: messages", "SELECT count(*) AS n FROM messages")
QUERY_ONLY = Statement("test: refuse writes", "PRAGMA query_only = 1", postgres="SELECT 1")
NONSENSE = Statement("test: a bug", "SELECT no_such_column FROM messages")


async def _thread(db: DatabaseManager) -> tuple[str, str]:
    user = await db.transact(
        UserRepository.create("a@example.com", "hash", roles=["user"], tier="free")
    )
    ctx = UserExecutionContext(user_id=user.id)
    thread = await db.transact(ThreadRepository(ctx).create(title="t", agent="assistant"))
    return user.id, thread.id


def _message(user_id: str, thread_id: str, id: str, data: object = None) -> Tx[None]:
    yield from execute(
        MESSAGE_INSERT(
            id=id,
            user_id=user_id,
            thread_id=thread_id,
            content=f"content of {id}",
            data=data,
            created_at=datetime(2026, 12, 5, 10, 30, 15, 123456, tzinfo=UTC),
        )
    )


async def test_values_are_the_same_both_ways_on_both_databases(db: DatabaseManager) -> None:
    user_id, thread_id = await _thread(db)
    data = {"text": "ünïcode", "list": [1, 2.5, None, True], "nested": {"k": "v"}}

    def write_then_read() -> Tx[dict[str, object] | None]:
        yield from _message(user_id, thread_id, "m1", data)
        yield from _message(user_id, thread_id, "m2", "a JSON string")
        yield from _message(user_id, thread_id, "m3")
        found = yield from rows(MESSAGES_IN(ids=["m1", "m3", "absent"]))
        assert [row["id"] for row in found] == ["m1", "m3"]
        return (yield from first(MESSAGE_GET(id="m1")))

    row = await db.transact(write_then_read())
    assert row is not None
    assert row["data"] == data
    assert row["created_at"] == datetime(2026, 12, 5, 10, 30, 15, 123456, tzinfo=UTC)
    assert (await db.transact(first(MESSAGE_GET(id="m2"))) or {})["data"] == "a JSON string"
    assert (await db.transact(first(MESSAGE_GET(id="m3"))) or {})["data"] is None
    # The cold paths (SQLAlchemy) read the same rows the same way.
    async with db.read() as conn:
        stored = (await conn.execute(select(t.messages).where(t.messages.c.id == "m1"))).one()
    assert stored.data == data
    assert stored.created_at.replace(tzinfo=UTC) == row["created_at"]


def test_statements_spell_out_the_status_sets_as_the_code_has_them() -> None:
    """Status sets are literals in the SQL (the planner uses them): held to the code's."""
    sets = {frozenset(ACTIVE), frozenset(HELD)}
    statements = [
        value
        for module in (queue, runs)
        for value in vars(module).values()
        if isinstance(value, Statement)
    ]
    spelled = [
        (statement.name, frozenset(re.findall(r"'(\w+)'", found)))
        for statement in statements
        for found in re.findall(r"status IN \(([^)]*)\)", statement.postgres)
    ]
    assert len(spelled) >= 10
    assert [(name, found) for name, found in spelled if found not in sets] == []


def test_a_read_that_takes_a_lock_runs_inside_its_transaction() -> None:
    """On PostgreSQL a function's first plain read runs before ``BEGIN``: a read taking a
    row lock (any strength) or an advisory lock must not count as one, or its lock would
    end with the statement."""
    locking = [
        value
        for module in (event_log, queue, runs, schema, accounts, api_keys, repositories)
        for value in vars(module).values()
        if isinstance(value, Statement)
        and value.postgres is not None
        and re.search(r"FOR (NO KEY )?UPDATE|FOR (KEY )?SHARE|advisory", value.postgres)
    ]
    assert {s.name for s in locking} >= {SEQ_RESERVE.name, schema.LOCK.name, RUN_FENCE.name}
    assert [s.name for s in locking if s.plain_read] == []


def test_the_json_and_boolean_names_are_the_tables_columns() -> None:
    """``netra.db.sql`` spells out the names of the JSON and boolean columns (a server does
    not load SQLAlchemy): they are the tables' own."""
    columns = [column for table in t.metadata.tables.values() for column in table.columns]
    assert {c.name for c in columns if isinstance(c.type, JSON)} == JSON_NAMES
    assert {c.name for c in columns if isinstance(c.type, Boolean)} == BOOL_NAMES


def test_every_name_holds_one_kind_of_value() -> None:
    """The values rule: a name is JSON, a timestamp (``_at``) or neither in every table."""
    kinds: dict[str, set[str]] = {}
    for table in t.metadata.tables.values():
        for column in table.columns:
            kind = "json" if column.name in JSON_NAMES else type(column.type).__name__
            kinds.setdefault(column.name, set()).add(kind)
            assert column.name.endswith("_at") == (kind == "DateTime"), column
    assert {name: found for name, found in kinds.items() if len(found) > 1} == {}


async def test_a_failing_function_undoes_only_its_own_writes(db: DatabaseManager) -> None:
    user_id, thread_id = await _thread(db)

    def fails_after_writing(index: int) -> Tx[None]:
        yield from _message(user_id, thread_id, f"bad{index}")
        raise RuntimeError("the function's own error")

    outcomes = await asyncio.gather(
        *(db.transact(_message(user_id, thread_id, f"ok{i}")) for i in range(5)),
        *(db.transact(fails_after_writing(i)) for i in range(3)),
        db.transact(scalar(NONSENSE())),
        return_exceptions=True,
    )
    assert outcomes[:5] == [None] * 5
    assert all(isinstance(o, RuntimeError) for o in outcomes[5:8]), outcomes
    assert isinstance(outcomes[8], Exception) and not isinstance(outcomes[8], StorageUnavailable)
    assert await db.transact(scalar(MESSAGE_COUNT())) == 5


async def test_a_broken_constraint_is_thrown_at_its_statement(db: DatabaseManager) -> None:
    user_id, thread_id = await _thread(db)
    await db.transact(_message(user_id, thread_id, "m1"))

    def insert_twice() -> Tx[str]:
        try:
            yield from savepoint(_message(user_id, thread_id, "m1"))
        except IntegrityViolation:
            yield from _message(user_id, thread_id, "m2")  # the transaction goes on
            return "went on"
        return "no violation"

    assert await db.transact(insert_twice()) == "went on"
    with pytest.raises(IntegrityViolation):
        await db.transact(_message(user_id, thread_id, "m1"))
    assert await db.transact(scalar(MESSAGE_COUNT())) == 2


async def test_sqlite_commits_what_was_queued_together_in_one_group(tmp_path: Path) -> None:
    db = DatabaseManager(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", DatabaseSettings())
    await db.upgrade()
    try:
        user_id, thread_id = await _thread(db)
        seen: list[str] = []
        lock = threading.Lock()

        def count(name: str) -> None:
            with lock:
                seen.append(name)

        stop = db.listen(count)
        await asyncio.gather(
            *(db.transact(_message(user_id, thread_id, f"m{i}")) for i in range(50))
        )
        stop()
        assert seen.count("BEGIN IMMEDIATE") == 1
        assert seen.count("COMMIT") == 1
        assert seen.count("test: a message") == 50
        assert await db.transact(scalar(MESSAGE_COUNT())) == 50
    finally:
        await db.close()


async def test_sqlite_refusing_writes_fails_the_group_as_storage(tmp_path: Path) -> None:
    """A database that refuses writes (here: ``query_only``; the full-disk test mounts a real
    full disk) fails the group with ``StorageUnavailable``, stores nothing of it, and makes
    the manager unhealthy."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    db = DatabaseManager(url, DatabaseSettings())
    await db.upgrade()
    try:
        user_id, thread_id = await _thread(db)
        await db.transact(execute(QUERY_ONLY()))
        with pytest.raises(StorageUnavailable) as refused:
            await db.transact(_message(user_id, thread_id, "m1"))
        assert "readonly" in refused.value.cause
        assert db.storage_failure is not None
        assert not (await db.health()).healthy
    finally:
        await db.close()
    db = DatabaseManager(url, DatabaseSettings())
    try:
        assert await db.transact(scalar(MESSAGE_COUNT())) == 0
        await db.transact(_message(user_id, thread_id, "m2"))
        assert await db.transact(scalar(MESSAGE_COUNT())) == 1
    finally:
        await db.close()


async def test_sqlite_reads_beside_the_writer_what_was_committed(tmp_path: Path) -> None:
    """``query`` runs on a connection of its own: a read never waits for the one writer (a
    long thread's conversation holds up nobody's writes), sees what was committed when it
    began, and cannot write."""
    db = DatabaseManager(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", DatabaseSettings())
    await db.upgrade()
    try:
        user_id, thread_id = await _thread(db)
        await db.transact(_message(user_id, thread_id, "m1"))
        held, release = threading.Event(), threading.Event()

        def holding() -> Tx[str]:
            yield from _message(user_id, thread_id, "m2")
            held.set()
            release.wait(10)  # on the writer's thread: it does nothing else meanwhile
            return "committed"

        writing = asyncio.create_task(db.transact(holding()))
        try:
            await asyncio.to_thread(held.wait, 10)
            async with asyncio.timeout(10):
                assert await db.query(scalar(MESSAGE_COUNT())) == 1, "m2 is not committed"
        finally:
            release.set()
        assert await writing == "committed"
        assert await db.query(scalar(MESSAGE_COUNT())) == 2
        with pytest.raises(StorageUnavailable):
            await db.query(_message(user_id, thread_id, "m3"))
        assert db.storage_failure is None, "a write sent to the reader is a bug, not the disk"
        assert await db.transact(scalar(MESSAGE_COUNT())) == 2
    finally:
        await db.close()
