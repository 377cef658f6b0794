"""DatabaseManager: transactions, health and migrations.

Everything a server does runs *transaction functions* (``netra.db.sql``) through
``transact``: whole transactions, one hop each, on SQLite's own thread (``netra.db.sqlite``,
group-committed) or on asyncpg directly (``netra.db.postgres``, one pool). SQLAlchemy,
and its async engine (``read``/``write``), are loaded only when asked for: by migrations
(an empty database is built with it too), and by tests that look at the tables directly; a
server whose database is current never imports it (``netra.db.url`` reads the URL).

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout; one
writer at a time inside the process (``write()`` and the SQLite thread's groups share one
lock, and both ``BEGIN IMMEDIATE``), any number of readers. PostgreSQL runs on asyncpg with
real connection pools sized from settings.

Migrations are Alembic's (``netra.db.migration``), loaded only when the schema is behind:
a database already at the newest revision costs one read at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from netra.db.revisions import head_revision
from netra.db.schema import MIGRATION_LOCK, build_at_head
from netra.db.sql import Listener, Statement, Tx, first
from netra.db.sqlite import SqliteExecutor
from netra.db.sqlite import configure as configure_sqlite
from netra.db.url import DatabaseURL, database_url
from netra.errors import ConfigurationError, StorageUnavailable
from netra.settings import DatabaseSettings

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from netra.db.postgres import PostgresExecutor

log = logging.getLogger(__name__)
RETRY_MAX_S = 2.0
T = TypeVar("T")
VERSIONED = Statement(
    "revision: whether the database has a schema revision",
    "SELECT to_regclass('alembic_version') IS NOT NULL AS versioned",
    sqlite="SELECT count(*) AS versioned FROM sqlite_master"
    " WHERE type = 'table' AND name = 'alembic_version'",
)
"""Alembic keeps a database's revision in ``alembic_version``."""
REVISION = Statement("revision: the schema's", "SELECT version_num FROM alembic_version")
PING = Statement("health: the database answers", "SELECT 1 AS one")


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    healthy: bool
    backend: str
    reason: str | None = None


class DatabaseManager:
    """Owns the way to one database: ``transact`` for transaction functions, and
    SQLAlchemy's engine for migrations and tests (``read``/``write``), made on first use."""

    def __init__(self, url: str, settings: DatabaseSettings) -> None:
        parsed = database_url(url)
        self.backend = parsed.backend
        self.url: DatabaseURL = parsed
        self._closed_reason: str | None = None
        self.storage_failure: str | None = None
        """Why the last write failed, until a write succeeds again (``/ready`` reports it)."""
        self._settings = settings
        self._engine: AsyncEngine | None = None
        if self.backend == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                _prepare_sqlite_file(Path(database))
        self._write_lock: asyncio.Lock | None = None
        self._executor: SqliteExecutor | PostgresExecutor
        self._reader: SqliteExecutor | None = None
        """SQLite's connection for long reads beside the writer (not for an in-memory
        database: another connection would open another database)."""
        if self.backend == "sqlite":
            self._write_lock = asyncio.Lock()
            database = parsed.database or ""
            self._executor = SqliteExecutor(
                database,
                busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                write_lock=self._write_lock,
            )
            if database and database != ":memory:":
                self._reader = SqliteExecutor(
                    database,
                    busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                    write_lock=None,
                    readonly=True,
                )
        else:
            from netra.db.postgres import PostgresExecutor  # asyncpg: only when configured

            self._executor = PostgresExecutor(parsed.dsn(), settings)
        log.info("database %s", self.masked_url)

    @property
    def engine(self) -> AsyncEngine:
        """SQLAlchemy's async engine (migrations, tests), made on first use: importing
        ``sqlalchemy.ext.asyncio`` loads the ORM, which a serving process never needs."""
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    def _make_engine(self) -> AsyncEngine:
        from sqlalchemy.ext.asyncio import create_async_engine

        settings = self._settings
        kwargs: dict[str, Any] = {"echo": settings.echo}
        if self.backend == "sqlite":
            kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
        else:
            kwargs.update(
                pool_size=settings.pool_size,
                max_overflow=settings.max_overflow,
                pool_timeout=settings.pool_timeout_s,
                pool_pre_ping=True,
                # A transaction of Netra's never waits on anything but the database: one
                # idle inside it belongs to a frozen process, whose row locks must not
                # stall every other instance (a takeover waits on them otherwise).
                connect_args={
                    "server_settings": {
                        "idle_in_transaction_session_timeout": str(
                            int(settings.idle_in_transaction_timeout_s * 1000)
                        )
                    }
                },
            )
        engine = create_async_engine(str(self.url), **kwargs)
        if self.backend == "sqlite":
            _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine

    @property
    def masked_url(self) -> str:
        return self.url.masked()

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction; rolled back at the end. The database failing (not the
        statement) raises ``StorageUnavailable``."""
        try:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
        except _storage_failures() as exc:
            raise StorageUnavailable(_cause(exc)) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: commits when the block succeeds, rolls back on any error.
        The database failing (a full disk, a lost connection …) raises
        ``StorageUnavailable`` — nothing was stored — and is remembered until a write
        succeeds again."""
        lock = self._write_lock if self._write_lock is not None else nullcontext()
        try:
            async with lock, self.engine.connect() as raw:
                conn = await raw.execution_options(netra_write=True)
                async with conn.begin():
                    yield conn
        except _storage_failures() as exc:
            cause = _cause(exc)
            self._failed(cause)
            raise StorageUnavailable(cause) from exc
        if self.storage_failure is not None:
            self._recovered()

    async def transact(self, tx: Tx[T]) -> T:
        """Run a transaction function (``netra.db.sql``): committed when it returns, rolled
        back when it raises. The database failing raises ``StorageUnavailable``, remembered
        like a failed ``write()``."""
        try:
            value: T = await self._executor.run(tx)
        except StorageUnavailable as exc:
            self._failed(exc.cause)
            raise
        if self.storage_failure is not None:
            self._recovered()
        return value

    async def query(self, tx: Tx[T]) -> T:
        """Run a transaction function that only reads, and may read much (a long thread's
        conversation): on SQLite on a connection of its own, beside the one writer, on
        what was committed when it begins; on PostgreSQL as ``transact``."""
        if self._reader is None:
            return await self.transact(tx)
        value: T = await self._reader.run(tx)
        return value

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` the name of every statement the hot path runs, from now until the
        returned function is called (tests count what a run costs)."""
        executors = [self._executor, *([self._reader] if self._reader is not None else [])]
        for executor in executors:
            executor.listeners.append(listener)

        def stop() -> None:
            for executor in executors:
                executor.listeners.remove(listener)

        return stop

    def _failed(self, cause: str) -> None:
        if self.storage_failure is None:
            log.error("database writes failing: %s", cause)
        self.storage_failure = cause

    def _recovered(self) -> None:
        log.warning("database writes succeed again")
        self.storage_failure = None

    @staticmethod
    def retry_delay(attempt: int) -> float:
        """Seconds to wait before trying a failed write again (``attempt`` counts from 1)."""
        return min(RETRY_MAX_S, 0.05 * (1 << min(attempt, 8)))

    async def health(self) -> DatabaseHealth:
        if self._closed_reason is not None:
            return DatabaseHealth(False, self.backend, self._closed_reason)
        if self.storage_failure is not None:
            return DatabaseHealth(False, self.backend, f"writes failing: {self.storage_failure}")
        try:
            async with asyncio.timeout(5):
                await self._executor.run(first(PING()))
        except Exception as exc:  # health reports every failure as a reason, never raises
            return DatabaseHealth(False, self.backend, f"{type(exc).__name__}: {exc}")
        return DatabaseHealth(True, self.backend)

    async def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Apply Alembic migrations up to ``revision`` (identical on SQLite and PostgreSQL).

        Any number of processes may do this at once: on PostgreSQL a transaction-scoped
        advisory lock lets one migrate while the others wait, then find the schema at
        ``revision`` and change nothing; on SQLite the write transaction does the same.
        Returns the revisions before and after (``None``: an empty database).

        A database already at ``revision`` is recognised with one read, before any lock:
        Alembic, its environment and the migration scripts are not even imported. An empty
        database asked for the head is built at the head in one step
        (``netra.db.schema``), without them too."""
        target = head_revision() if revision == "head" else revision
        try:
            current = await self.revision()
        except StorageUnavailable as exc:
            if self.is_sqlite and "not a database" in exc.cause:
                raise self._not_sqlite() from None
            raise
        if current == target:
            return current, current
        if current is None and target == head_revision():
            built = await self.transact(build_at_head(self.backend))
            if built is not None:
                return None, built
        from sqlalchemy import text  # migrating: SQLAlchemy and Alembic are needed now
        from sqlalchemy.exc import DBAPIError

        try:
            async with self.write() as conn:
                if not self.is_sqlite:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                from netra.db.migration import upgrade_to

                return await conn.run_sync(upgrade_to, revision)
        except DBAPIError as exc:
            if self.is_sqlite and "not a database" in str(exc.orig):
                raise self._not_sqlite() from None
            raise

    def _not_sqlite(self) -> ConfigurationError:
        return ConfigurationError(
            f"{self.url.database} is not a SQLite database (corrupt, truncated or another "
            "file): restore it from a backup, or move it away to start empty"
        )

    async def revision(self) -> str | None:
        """The schema's Alembic revision, read from ``alembic_version``; ``None`` for a
        database that has none (empty)."""
        found: str | None = await self._executor.run(_revision())
        return found

    async def close(self) -> None:
        self._closed_reason = "database manager closed"
        await self._executor.close()
        if self._reader is not None:
            await self._reader.close()
        if self._engine is not None:
            await self._engine.dispose()


def _revision() -> Tx[str | None]:
    versioned = yield from first(VERSIONED())
    if versioned is None or not versioned["versioned"]:
        return None
    found = yield from first(REVISION())
    return None if found is None else str(found["version_num"])


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    from sqlalchemy import event

    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN can be IMMEDIATE for writers.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        configure_sqlite(cursor, busy_timeout_ms)
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("netra_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _storage_failures() -> tuple[type[BaseException], ...]:
    """What the database (not the statement) failed with, through SQLAlchemy: full disk,
    I/O error, read-only file, lock timeout, lost or refused connection, exhausted pool.
    (Evaluated when something was raised: SQLAlchemy is loaded by then.)"""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return (OperationalError, InterfaceError, PoolTimeout, OSError)


def _cause(exc: BaseException) -> str:
    """What the database said, in one line (the driver's message, without the SQL)."""
    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text_ = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text_[0] if text_ else 'no message'}"


def _prepare_sqlite_file(path: Path) -> None:
    """The database's folder and file, the file readable by the server's user only
    (password hashes and chats; SQLite gives its -wal and -shm files the same mode)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(
            f"cannot create the SQLite database {path}: {reason}; give the server's user a "
            "writable server.data_dir (--data-dir) or set database.url"
        ) from None
