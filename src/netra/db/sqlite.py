"""SqliteExecutor: transaction functions (``netra.db.sql``) on SQLite's own thread.

SQLite has one writer, so the hot path has one: a thread holding one stdlib ``sqlite3``
connection runs every transaction function, whole, and the event loop waits for none of its
statements (nor for a checkpoint's ``fsync``). Whatever is submitted while the thread works
forms the next *group*: one ``BEGIN IMMEDIATE … COMMIT`` in which each function runs in a
savepoint of its own (a group of one needs none), so one that raises undoes only its own
writes, and the group costs one commit and one hop however many functions it holds. There
is no timer: a lone transaction starts at once, and under load groups grow by themselves.

The group holds the database manager's write lock, which the cold paths' SQLAlchemy writes
(accounts, sessions …) take too: the two never wait on each other inside SQLite.

A *reader* (``readonly``) is the same machinery on a connection of its own that can only
read: its groups begin deferred, take no lock, and see what was committed when they begin.
Long reads go there (a long thread's conversation), so they never hold up the one writer.

The database failing — a full disk, an I/O error, a read-only or vanished file, a lock held
past the busy timeout — fails the whole group with ``StorageUnavailable``; nothing of it is
stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Protocol

from netra.db.sql import (
    Call,
    IntegrityViolation,
    Listener,
    Many,
    Result,
    Step,
    Tx,
    sqlite_params,
    sqlite_rows,
)
from netra.errors import StorageUnavailable

log = logging.getLogger(__name__)
GROUP_MAX = 512
"""Most transaction functions committed together."""
_STORAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)
"""Primary result codes that say the database, not the statement, failed."""
WAL_CHECKPOINT_PAGES = 10_000
"""Pages the write-ahead log grows to (~40 MB) before a commit copies them into the
database. Events of many users dirty pages all over the log's index, and a page written
again before the checkpoint is copied once: at SQLite's default (1,000 pages) checkpoints,
each with its ``fsync``, came every few commits under load (20 -> 12 us per stored event in
a microbenchmark of 1,000 users' events)."""


class Executes(Protocol):
    """A connection or cursor of the stdlib driver, or of SQLAlchemy's adapter of it."""

    def execute(self, sql: str, /) -> object: ...


def configure(conn: Executes, busy_timeout_ms: int) -> None:
    """Set up a new connection as every Netra connection is: write-ahead log, foreign keys,
    the busy timeout, the checkpoint's size."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")


Outcome = tuple[bool, Any]
"""``(True, value)`` or ``(False, exception)`` for each function of a group."""


class _StorageFailed(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def storage_cause(exc: sqlite3.Error) -> str | None:
    """What the database said when the database itself failed; None when the statement did."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _STORAGE_CODES:
        return None
    return f"{type(exc).__name__}: {str(exc).strip() or 'no message'}"


class SqliteExecutor:
    """Owns SQLite's thread and its connection; ``run`` is the way in."""

    def __init__(
        self,
        path: str,
        *,
        busy_timeout_ms: int,
        write_lock: asyncio.Lock | None,
        readonly: bool = False,
    ) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = write_lock
        """None for a reader: it writes nothing, so it waits for no writer."""
        self._readonly = readonly
        self._pending: list[tuple[Tx[Any], asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._inbox: queue.SimpleQueue[tuple[list[Tx[Any]], Callable[[Any], None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.listeners: list[Listener] = []

    async def run(self, tx: Tx[Any]) -> Any:
        """Run one transaction function, in the next group."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((tx, future))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._drain(), name="sqlite-groups")
        return await future

    async def close(self) -> None:
        """Finish what is queued, then stop the thread and close its connection."""
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        if self._thread is not None:
            self._inbox.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # ---- the loop's side -----------------------------------------------------------------
    async def _drain(self) -> None:
        while self._pending:
            group = self._pending[:GROUP_MAX]
            del self._pending[:GROUP_MAX]
            try:
                async with self._lock or contextlib.nullcontext():
                    outcomes = await self._hand_over([tx for tx, _ in group])
            except BaseException as exc:  # cancelled (the loop is closing): nobody is waiting
                for _, future in group:
                    if not future.done():
                        future.set_exception(StorageUnavailable(f"not run: {exc!r}"))
                raise
            for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                if future.done():  # its caller was cancelled meanwhile
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def _hand_over(self, group: list[Tx[Any]]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Outcome]] = loop.create_future()

        def finished(outcomes: list[Outcome]) -> None:
            loop.call_soon_threadsafe(_resolve, done, outcomes)

        if self._thread is None:
            name = "sqlite-reader" if self._readonly else "sqlite"
            self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
            self._thread.start()
        self._inbox.put((group, finished))
        return await done

    # ---- the thread's side ---------------------------------------------------------------
    def _serve(self) -> None:
        try:
            while (item := self._inbox.get()) is not None:
                group, finished = item
                try:
                    outcomes = self._group(group)
                except BaseException as exc:  # never leave the loop waiting
                    self._abandon()
                    outcomes = [(False, exc) for _ in group]
                finished(outcomes)
        finally:
            if self._conn is not None:
                self._conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=512,
            )
            configure(conn, self._busy_timeout_ms)
            if self._readonly:
                conn.execute("PRAGMA query_only=1")
            self._conn = conn
        return self._conn

    def _group(self, group: list[Tx[Any]]) -> list[Outcome]:
        try:
            conn = self._connection()
            self._checked(conn, "BEGIN" if self._readonly else "BEGIN IMMEDIATE")
            alone = len(group) == 1
            outcomes = [self._one(conn, tx, alone=alone) for tx in group]
            if conn.in_transaction:  # not when a group of one rolled itself back
                self._checked(conn, "COMMIT")
        except _StorageFailed as failure:
            self._abandon()
            return [(False, StorageUnavailable(failure.cause)) for _ in group]
        except sqlite3.Error as exc:  # cannot even open the file
            return [(False, StorageUnavailable(f"{type(exc).__name__}: {exc}")) for _ in group]
        return outcomes

    def _abandon(self) -> None:
        """Roll back whatever the group left open."""
        if self._conn is not None and self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("rollback after a failed group failed too", exc_info=True)

    def _one(self, conn: sqlite3.Connection, tx: Tx[Any], *, alone: bool) -> Outcome:
        """Run one function of the group, in a savepoint of its own unless it is ``alone``
        (its transaction is then its own)."""
        if not alone:
            self._checked(conn, "SAVEPOINT tx")
        try:
            value = self._drive(conn, tx)
        except _StorageFailed:
            raise
        except Exception as exc:
            if alone:
                self._checked(conn, "ROLLBACK")
            else:
                self._checked(conn, "ROLLBACK TO tx")
                self._checked(conn, "RELEASE tx")
            return False, exc
        if not alone:
            self._checked(conn, "RELEASE tx")
        return True, value

    def _drive(self, conn: sqlite3.Connection, tx: Tx[Any]) -> Any:
        try:
            step = next(tx)
            while True:
                try:
                    result = self._execute(conn, step)
                except sqlite3.IntegrityError as exc:
                    step = tx.throw(IntegrityViolation(str(exc)))
                    continue
                except sqlite3.Error as exc:
                    cause = storage_cause(exc)
                    if cause is not None:
                        tx.close()
                        raise _StorageFailed(cause) from exc
                    step = tx.throw(exc)
                    continue
                step = tx.send(result)
        except StopIteration as stop:
            return stop.value

    def _checked(self, conn: sqlite3.Connection, sql: str) -> None:
        for listener in self.listeners:
            listener(sql)
        try:
            conn.execute(sql)
        except sqlite3.Error as exc:
            raise _StorageFailed(storage_cause(exc) or f"{type(exc).__name__}: {exc}") from exc

    def _execute(self, conn: sqlite3.Connection, step: Step) -> Result:
        statement = step.statement
        if statement.sqlite is None:  # nothing to do here (a PostgreSQL-only lock, say)
            return Result([], 0)
        for listener in self.listeners:
            listener(statement.name)
        if isinstance(step, Many):
            cursor = conn.executemany(statement.sqlite, [sqlite_params(row) for row in step.rows])
            return Result([], cursor.rowcount)
        assert isinstance(step, Call)
        cursor = conn.execute(statement.sqlite, sqlite_params(step.params))
        if cursor.description is None:
            return Result([], cursor.rowcount)
        names = [column[0] for column in cursor.description]
        found = sqlite_rows(names, iter(cursor.fetchall()))
        return Result(found, len(found))


def _resolve(future: asyncio.Future[list[Outcome]], outcomes: list[Outcome]) -> None:
    if not future.done():
        future.set_result(outcomes)
