"""DatabaseManager on a real SQLite file and on the local PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from netra.context import UserExecutionContext
from netra.db import ddl
from netra.db import tables as t
from netra.db.accounts import UserRepository
from netra.db.manager import DatabaseManager
from netra.db.messages import MessageRepository
from netra.db.migration import alembic_config
from netra.db.records import utcnow
from netra.db.repositories import EventRepository, ThreadRepository
from netra.db.revisions import head_revision
from netra.db.schema import render
from netra.db.search import SEARCH_INDEXES
from netra.db.url import database_url
from netra.errors import ConfigurationError, NotFound
from netra.settings import DatabaseSettings
from tests.support import run_netra, run_python


async def _user(db: DatabaseManager, email: str) -> str:
    user = await db.transact(UserRepository.create(email, "hash", roles=["user"], tier="free"))
    return user.id


async def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    db = DatabaseManager(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", DatabaseSettings())
    async with db.read() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
    await db.close()


@pytest.mark.postgres
async def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "netra.db"
    db = DatabaseManager(f"sqlite+aiosqlite:///{path}", DatabaseSettings())
    await db.upgrade()
    await db.close()
    files = [path, *path.parent.glob("netra.db-*")]
    assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}


async def test_postgres_uses_a_real_pool_sized_from_settings(postgres_url: str) -> None:
    db = DatabaseManager(postgres_url, DatabaseSettings(pool_size=3, max_overflow=2))
    async with db.read() as conn:
        assert await conn.scalar(text("SELECT 1")) == 1
    pool = db.engine.pool
    assert pool.size() == 3  # type: ignore[attr-defined]
    assert pool._max_overflow == 2  # type: ignore[attr-defined]
    await db.close()


def _thread_row(thread_id: str, user_id: str) -> dict[str, object]:
    now = utcnow()
    return {
        "id": thread_id,
        "user_id": user_id,
        "title": "x",
        "agent": "a",
        "created_at": now,
        "updated_at": now,
    }


async def _insert_then_violate_a_foreign_key(db: DatabaseManager, user_id: str) -> None:
    async with db.write() as conn:
        await conn.execute(insert(t.threads).values(_thread_row("th_1", user_id)))
        await conn.execute(insert(t.threads).values(_thread_row("th_2", "usr_missing")))


async def _insert_then_fail(db: DatabaseManager, user_id: str) -> None:
    async with db.write() as conn:
        await conn.execute(insert(t.threads).values(_thread_row("th_3", user_id)))
        raise RuntimeError("application error")


async def test_commit_on_success_and_rollback_on_any_error(db: DatabaseManager) -> None:
    user_id = await _user(db, "a@example.com")
    with pytest.raises(IntegrityError):
        await _insert_then_violate_a_foreign_key(db, user_id)
    with pytest.raises(RuntimeError):
        await _insert_then_fail(db, user_id)
    async with db.read() as conn:
        assert (await conn.scalar(select(func.count()).select_from(t.threads))) == 0
    ctx = UserExecutionContext(user_id=user_id)
    await db.transact(ThreadRepository(ctx).create(title="kept", agent="assistant"))
    assert [th.title for th in await db.transact(ThreadRepository(ctx).list(limit=10))] == ["kept"]


async def test_twenty_tasks_of_fifty_inserts_store_exactly_a_thousand_rows(
    db: DatabaseManager,
) -> None:
    user_id = await _user(db, "many@example.com")
    ctx = UserExecutionContext(user_id=user_id)

    async def insert_fifty() -> None:
        for _ in range(50):
            await db.transact(ThreadRepository(ctx).create(title="t", agent="assistant"))

    await asyncio.gather(*(insert_fifty() for _ in range(20)))
    async with db.read() as conn:
        assert (await conn.scalar(select(func.count()).select_from(t.threads))) == 1000


async def test_repositories_hide_other_users_rows(db: DatabaseManager) -> None:
    alice = UserExecutionContext(user_id=await _user(db, "alice@example.com"))
    bob = UserExecutionContext(user_id=await _user(db, "bob@example.com"))
    thread = await db.transact(ThreadRepository(alice).create(title="private", agent="assistant"))
    assert await db.transact(ThreadRepository(bob).list(limit=10)) == []
    with pytest.raises(NotFound):
        await db.transact(ThreadRepository(bob).get(thread.id))
    assert (await db.transact(ThreadRepository(alice).get(thread.id))).title == "private"


async def test_health_is_reported_and_turns_unhealthy_after_close(url: str) -> None:
    manager = DatabaseManager(url, DatabaseSettings())
    healthy = await manager.health()
    assert healthy.healthy and healthy.reason is None
    await manager.close()
    closed = await manager.health()
    assert not closed.healthy and closed.reason == "database manager closed"


async def test_migrations_are_idempotent_and_reach_head(url: str) -> None:
    """The migrations from the first on (an empty database asked for the head is built at
    the head at once: see the next test), run twice."""
    db = DatabaseManager(url, DatabaseSettings())
    await db.upgrade("0001")
    await db.upgrade()
    await db.upgrade()
    async with db.read() as conn:
        version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        stored = await conn.run_sync(lambda sync: sorted(inspect(sync).get_table_names()))
    stored = [name for name in stored if not is_search_table(name)]
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert version == head
    expected = [
        "api_keys",
        "events",
        "instances",
        "messages",
        "model_calls",
        "org_spend_days",
        "orgs",
        "refresh_tokens",
        "runs",
        "sessions",
        "spend_days",
        "summaries",
        "threads",
        "tool_calls",
        "turns",
        "users",
    ]
    assert sorted(t.metadata.tables) == expected
    assert stored == sorted([*expected, "alembic_version"])
    await db.close()


def is_search_table(name: str | None) -> bool:
    """SQLite's full-text indexes and their shadow tables, and PostgreSQL's GIN indexes:
    made by migration 0006, not declared in tables.py (SQLAlchemy cannot)."""
    return any(name == index or (name or "").startswith(f"{index}_") for index in SEARCH_INDEXES)


async def test_the_migrations_build_exactly_the_declared_schema(url: str) -> None:
    """Columns, types, nullability and indexes the migrations create match ``tables.py``."""
    db = DatabaseManager(url, DatabaseSettings())
    await db.upgrade("0001")
    await db.upgrade()
    async with db.read() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(
                    sync, opts={"include_name": lambda name, kind, _: not is_search_table(name)}
                ),
                t.metadata,
            )
        )
    assert diff == []
    await db.close()


async def test_an_empty_database_is_built_at_head_as_the_migrations_build_it(url: str) -> None:
    """A first start builds the head's schema in one step, without Alembic; the result is
    the migrations' to the last column default, index, constraint, trigger and search index:
    the database is built that way, described, emptied, migrated from the first revision,
    and described again."""
    db = DatabaseManager(url, DatabaseSettings())
    assert await db.upgrade() == (None, head_revision())
    async with db.read() as conn:
        built = await conn.run_sync(_schema)
    await db.close()
    db = DatabaseManager(url, DatabaseSettings())
    if db.is_sqlite:
        await asyncio.to_thread(os.remove, db.url.database or "")
    else:
        async with db.write() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await db.upgrade("0001")
    await db.upgrade()
    async with db.read() as conn:
        migrated = await conn.run_sync(_schema)
    await db.close()
    assert built["version"] == migrated["version"] == [(head_revision(),)]
    for part in migrated:
        assert built[part] == migrated[part], part


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_head_ddl_is_what_sqlalchemy_renders_from_the_tables(backend: str) -> None:
    """``netra.db.ddl`` (what a first start runs, without SQLAlchemy) is the tables'
    present: after a change to ``netra.db.tables``, ``python -m netra.db.schema``."""
    written = ddl.SQLITE if backend == "sqlite" else ddl.POSTGRES
    assert written == render(backend), "run: python -m netra.db.schema"


_SQLITE_SCHEMA = {
    "columns": 'SELECT m.name, p.name, upper(p.type), p."notnull", p.dflt_value, p.pk'
    " FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'",
    "indexes": 'SELECT m.name, l."unique", l.origin, l.partial,'
    " (SELECT group_concat(i.name) FROM pragma_index_info(l.name) i),"
    " CASE WHEN l.name LIKE 'sqlite_autoindex_%' THEN '' ELSE l.name END"
    " FROM sqlite_master m JOIN pragma_index_list(m.name) l WHERE m.type = 'table'",
    "foreign_keys": 'SELECT m.name, f."from", f."table", f."to", f.on_update, f.on_delete'
    " FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
    "objects": "SELECT type, name, tbl_name, CASE WHEN type IN ('trigger', 'view') OR sql LIKE"
    " 'CREATE VIRTUAL%' THEN sql ELSE '' END FROM sqlite_master",
    "version": "SELECT version_num FROM alembic_version",
}
_POSTGRES_SCHEMA = {
    "columns": "SELECT table_name, column_name, data_type, character_maximum_length,"
    " is_nullable, column_default FROM information_schema.columns"
    " WHERE table_schema = 'public'",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "constraints": "SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)"
    " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
    "version": "SELECT version_num FROM alembic_version",
}


def _schema(conn: Connection) -> dict[str, list[tuple[object, ...]]]:
    """What the database's schema holds, part by part, each part sorted (column order and
    SQLite's names for its automatic indexes aside)."""
    queries = _SQLITE_SCHEMA if conn.dialect.name == "sqlite" else _POSTGRES_SCHEMA
    return {
        part: sorted(
            (
                tuple(" ".join(v.split()) if isinstance(v, str) else v for v in row)
                for row in conn.exec_driver_sql(sql)
            ),
            key=repr,
        )
        for part, sql in queries.items()
    }


async def test_upgrading_a_populated_database_keeps_its_rows(url: str) -> None:
    """Rows written by the first schema survive every migration; a thread of it becomes one
    branch that reads as it did (an answer stored after the next question still comes
    between them); a run's recorded usage becomes its one model call."""
    db = DatabaseManager(url, DatabaseSettings())
    await db.upgrade("0001")
    user_id = await _user(db, "old@example.com")
    ctx = UserExecutionContext(user_id=user_id)
    rows = [  # (message, run, role, second): the answer to q1 was stored after q2
        ("msg_q1", "run_1", "user", 1),
        ("msg_q2", "run_2", "user", 2),
        ("msg_a1", "run_1", "assistant", 3),
        ("msg_a2", "run_2", "assistant", 4),
        ("msg_q3", "run_3", "user", 5),
    ]
    async with db.write() as conn:
        await conn.execute(
            text(
                "INSERT INTO threads (id, user_id, title, agent, created_at, updated_at)"
                " VALUES ('th_old', :u, 'old', 'assistant', :at, :at)"
            ),
            {"u": user_id, "at": datetime(2026, 1, 1, tzinfo=UTC)},
        )
        for run_id in ("run_1", "run_2", "run_3"):
            await conn.execute(
                text(
                    "INSERT INTO runs (id, user_id, thread_id, agent, model, status, attempt,"
                    " message_id, created_at) VALUES (:r, :u, 'th_old', 'assistant', 'offline',"
                    " 'completed', 1, :m, :at)"
                ),
                {"r": run_id, "u": user_id, "m": f"msg_for_{run_id}", "at": datetime.now(UTC)},
            )
        for message_id, run_id, role, second in rows:
            await conn.execute(
                text(
                    "INSERT INTO messages (id, user_id, thread_id, run_id, role, content,"
                    " created_at) VALUES (:id, :u, 'th_old', :r, :role, :content, :at)"
                ),
                {
                    "id": message_id,
                    "content": message_id,
                    "u": user_id,
                    "r": run_id,
                    "role": role,
                    "at": datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC),
                },
            )
        for seq, run_id in enumerate((None, "run_1", "run_2", "run_1"), start=1):
            await conn.execute(
                text(
                    "INSERT INTO events (user_id, seq, event_id, type, thread_id, run_id, body,"
                    " created_at) VALUES (:u, :seq, :id, 'agent_thinking', 'th_old', :r, '{}',"
                    " :at)"
                ),
                {"u": user_id, "seq": seq, "id": f"ev_{seq}", "r": run_id, "at": datetime.now(UTC)},
            )
        await conn.execute(text("UPDATE users SET event_seq = 4 WHERE id = :u"), {"u": user_id})
    await db.upgrade("0010")  # runs kept their usage on their rows then
    async with db.write() as conn:
        await conn.execute(
            text(
                "UPDATE runs SET input_tokens = 100, output_tokens = 50, cost_usd = 0.01"
                " WHERE id = 'run_2'"
            )
        )
    await db.upgrade("0015")  # organisations' calls were summed from the calls then
    org_calls = [
        ("call_a", "org_1", 1, 0.5),
        ("call_b", "org_1", 1, 0.25),
        ("call_c", "org_1", 2, 1.0),
    ]
    async with db.write() as conn:
        await conn.execute(
            text("INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'acme', :at)"),
            {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        )
        for call_id, org_id, day, cost in org_calls:
            await conn.execute(
                text(
                    "INSERT INTO model_calls (id, user_id, run_id, attempt, agent, model,"
                    " input_tokens, output_tokens, cached_input_tokens, cost_usd, created_at,"
                    " org_id) VALUES (:id, :u, 'run_3', 1, 'assistant', 'offline', 1, 1, 0,"
                    " :cost, :at, :org)"
                ),
                {
                    "id": call_id,
                    "u": user_id,
                    "cost": cost,
                    "at": datetime(2026, 1, day, 12, tzinfo=UTC),
                    "org": org_id,
                },
            )
    await db.upgrade()
    async with db.read() as conn:
        org_days = await conn.execute(select(t.org_spend_days).order_by("starts_at"))
        assert [(d.org_id, d.starts_at.replace(tzinfo=UTC), d.cost_usd) for d in org_days] == [
            ("org_1", datetime(2026, 1, 1, tzinfo=UTC), 0.75),
            ("org_1", datetime(2026, 1, 2, tzinfo=UTC), 1.0),
        ], "an organisation's calls made before are summed into its days"
        row = (await conn.execute(select(t.runs).where(t.runs.c.id == "run_1"))).one()
        assert (row.input_tokens, row.output_tokens, row.cost_usd) == (0, 0, 0)
        assert row.question_id == "msg_q1"
        calls = (
            await conn.execute(select(t.model_calls).where(t.model_calls.c.org_id.is_(None)))
        ).all()
        assert [(c.run_id, c.input_tokens, c.output_tokens, c.cost_usd) for c in calls] == [
            ("run_2", 100, 50, 0.01)
        ], "a run that used a model before calls were recorded counts as one call"
        days = (await conn.execute(select(t.spend_days))).all()
        midnight = calls[0].created_at.replace(hour=0, minute=0, second=0, microsecond=0)
        assert [(d.user_id, d.input_tokens, d.output_tokens, d.cost_usd) for d in days] == [
            (user_id, 100, 50, 0.01)
        ], "the calls made before are summed into their days"
        assert days[0].starts_at.replace(tzinfo=UTC) == midnight.replace(tzinfo=UTC)
        floors = {r.id: r.seq_floor for r in await conn.execute(select(t.runs))}
        assert floors == {"run_1": 1, "run_2": 2, "run_3": 0}, "below each run's first event"
    events = EventRepository(ctx)
    assert [e.seq for e in await db.transact(events.for_run("run_1", 0, limit=10))] == [2, 4]
    assert [e.seq for e in await db.transact(events.for_run("run_1", 2, limit=10))] == [4]
    assert await db.transact(events.for_run("run_3", 0, limit=10)) == []
    threads = ThreadRepository(ctx)
    [thread] = await db.transact(threads.list(limit=10))
    assert (thread.title, thread.active_leaf) == ("old", "msg_q3")
    path = await db.transact(MessageRepository(ctx).path("msg_q3"))
    assert [(m.id, m.parent_id, m.turn) for m in path] == [
        ("msg_q1", None, 1),
        ("msg_a1", "msg_q1", 1),
        ("msg_q2", "msg_a1", 2),
        ("msg_a2", "msg_q2", 2),
        ("msg_q3", "msg_a2", 3),
    ]
    await db.close()


def test_the_head_revision_is_read_from_the_script_names() -> None:
    """What lets a current database skip Alembic: each script's name starts with its
    revision, revising the script before it, so the newest name is the head."""
    scripts = ScriptDirectory.from_config(alembic_config())
    chain = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    names = sorted(p.name for p in (Path(scripts.dir) / "versions").glob("*.py"))
    assert [name.partition("_")[0] for name in names] == chain
    assert head_revision() == scripts.get_current_head() == chain[-1]


UPGRADE = """
import asyncio, sys
from netra.db.manager import DatabaseManager
from netra.settings import DatabaseSettings

async def upgrade():
    db = DatabaseManager(sys.argv[1], DatabaseSettings())
    try:
        return await db.upgrade()
    finally:
        await db.close()

print(*asyncio.run(upgrade()), "alembic" in sys.modules)
"""


def test_a_database_at_head_starts_without_loading_alembic(url: str, tmp_path: Path) -> None:
    """The first start builds the schema at the head; the next ones read the revision and
    change nothing. Neither imports Alembic, its environment or the scripts."""
    first = run_python("-c", UPGRADE, url, env={}, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["None", head_revision(), "False"]
    again = run_python("-c", UPGRADE, url, env={}, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [head_revision(), head_revision(), "False"]


async def test_a_database_behind_head_is_upgraded_by_alembic(url: str) -> None:
    db = DatabaseManager(url, DatabaseSettings())
    assert await db.revision() is None
    assert await db.upgrade("0004") == (None, "0004")
    assert await db.upgrade("0004") == ("0004", "0004")
    assert await db.upgrade() == ("0004", head_revision())
    assert await db.revision() == head_revision()
    await db.close()


def test_netra_db_upgrade_migrates_an_empty_database(url: str, tmp_path: Path) -> None:
    done = run_netra(
        "db", "upgrade", env={"NETRA_DATABASE__URL": url, "NETRA_SERVER__DATA_DIR": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert f"migrated from empty to {head}" in done.stdout
    again = run_netra(
        "db", "upgrade", env={"NETRA_DATABASE__URL": url, "NETRA_SERVER__DATA_DIR": str(tmp_path)}
    )
    assert again.returncode == 0 and f"is up to date (revision {head})" in again.stdout


def test_urls_are_masked_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="netra.db.manager"):
        manager = DatabaseManager(
            "postgresql+asyncpg://netra:hunter2secret@127.0.0.1:1/netra", DatabaseSettings()
        )
    assert "hunter2secret" not in caplog.text and "***" in caplog.text
    assert "hunter2secret" not in manager.masked_url


@pytest.mark.postgres
def test_replicas_started_together_on_an_empty_database_all_migrate(
    postgres_url: str, tmp_path: Path
) -> None:
    """Migrations are serialized across processes: one migrates, the others wait, see the
    schema at head and go on."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    replicas = [
        subprocess.Popen(
            [sys.executable, "-m", "netra", "db", "upgrade"],
            env={
                **clean,
                "NETRA_DATABASE__URL": postgres_url,
                "NETRA_SERVER__DATA_DIR": str(tmp_path / f"replica-{n}"),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    results = [(replica.wait(timeout=60), *replica.communicate()) for replica in replicas]
    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    assert all(err == "" or "Traceback" not in err for _, _, err in results), results


async def test_a_long_thread_gives_a_run_its_newest_messages_in_turn_order(
    db: DatabaseManager,
) -> None:
    """A run's conversation is the end of its branch: a thread past the read's limit once
    gave the oldest messages, and a run never saw the question it answered."""
    ctx = UserExecutionContext(user_id=await _user(db, "long@example.com"))
    thread = await db.transact(ThreadRepository(ctx).create(title="long", agent="assistant"))
    messages = MessageRepository(ctx)
    parent_id = None
    for turn in range(5):
        for role in ("user", "assistant"):
            message = await db.transact(
                messages.add(
                    thread_id=thread.id, role=role, content=f"{role} {turn}", parent_id=parent_id
                )
            )
            assert message.turn == turn + 1
            parent_id = message.id
    question = await db.transact(
        messages.add(thread_id=thread.id, role="user", content="user 5", parent_id=parent_id)
    )
    newest, unread = await db.transact(messages.texts(question.id, limit=5))
    assert unread == 3, "the questions of turns 0, 1 and 2 were not read"
    assert [(m.role, m.content) for m in newest] == [
        ("user", "user 3"),
        ("assistant", "assistant 3"),
        ("user", "user 4"),
        ("assistant", "assistant 4"),
        ("user", "user 5"),
    ]
    everything, unread = await db.transact(messages.texts(question.id, limit=1000))
    assert unread == 0
    assert [m.content for m in everything][:2] == ["user 0", "assistant 0"]
    assert len(everything) == 11


@pytest.mark.parametrize(
    "written",
    [
        "sqlite:///netra.db",
        "sqlite:////var/lib/netra/netra.db",
        "sqlite+aiosqlite:///relative/dir/n%20a.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://netra:s%40cret:x@db.internal:5433/netra?sslmode=require",
        "postgres://netra@127.0.0.1/netra",
        "postgresql+asyncpg://netra:pw@[::1]:5432/netra",
        "postgresql:///netra?host=/var/run/postgresql",
    ],
)
def test_a_database_url_is_read_as_sqlalchemy_reads_it(written: str) -> None:
    """Netra reads ``database.url`` itself (a server does not load SQLAlchemy), by
    SQLAlchemy's rule: the same backend, database and password, the same URL once the
    driver is Netra's, and the password never shown."""
    ours = database_url(written)
    theirs = make_url(written).set(drivername=ours.scheme)  # Netra's driver, as before
    assert ours.backend == theirs.get_backend_name()
    assert ours.database == theirs.database
    assert ours.password == theirs.password
    assert make_url(str(ours)) == theirs
    assert make_url(ours.masked()).password in (None, "***")
    if ours.backend == "postgresql":
        assert make_url(ours.dsn()) == theirs.set(drivername="postgresql")


@pytest.mark.parametrize("written", ["netra.db", "://x", "postgresql://h:port/db", "mysql://h/db"])
def test_a_url_that_is_none_or_names_another_driver_is_refused(written: str) -> None:
    with pytest.raises(ConfigurationError):
        database_url(written)
