"""PostgresExecutor: transaction functions (``netra.db.sql``) on asyncpg, directly.

Each transaction function runs in one transaction on a connection of an asyncpg pool of its
own (``database.pool_size`` connections, opened as needed): statements are prepared once per
connection (asyncpg's statement cache) and sent without SQLAlchemy's statement building,
which costs more than the round trip on the hot path. Connections leave no session state
behind (no ``LISTEN``, no temporary objects), so the pool does not reset them between uses.

The database failing — a lost or refused connection, a server shutting down, a full disk, an
exhausted pool — raises ``StorageUnavailable``; the transaction was rolled back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from netra.db.sql import (
    IntegrityViolation,
    Listener,
    Many,
    Result,
    Step,
    Tx,
    postgres_params,
)
from netra.errors import StorageUnavailable
from netra.settings import DatabaseSettings

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)
_STORAGE_CLASSES = ("08", "53", "57", "58", "25P03")
"""SQLSTATE classes (and one code) that say the server or the connection failed: connection
exceptions, insufficient resources (a full disk), operator intervention (a shutdown, a
cancel), system errors, and a session ended for idling inside a transaction."""


def storage_cause(exc: BaseException) -> str | None:
    """What failed, when the database (not the statement) did; None otherwise."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        if not state.startswith(_STORAGE_CLASSES):
            return None
    elif not isinstance(exc, asyncpg.InterfaceError | OSError | TimeoutError):
        return None
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"


async def _no_reset(_connection: Any) -> None:
    return None


async def _codecs(connection: asyncpg.Connection) -> None:
    """JSON goes in as text (``netra.db.sql`` encodes it) and comes out decoded."""
    await connection.set_type_codec(
        "json", encoder=str, decoder=json.loads, schema="pg_catalog", format="text"
    )


class PostgresExecutor:
    """Owns the hot path's asyncpg pool; ``run`` is the way in."""

    def __init__(self, dsn: str, settings: DatabaseSettings) -> None:
        self._dsn = dsn
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self.listeners: list[Listener] = []

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    timeout = self._settings.idle_in_transaction_timeout_s
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._settings.pool_size,
                        init=_codecs,
                        reset=_no_reset,
                        timeout=self._settings.pool_timeout_s,
                        server_settings={
                            "idle_in_transaction_session_timeout": str(int(timeout * 1000))
                        },
                    )
        return self._pool

    async def run(self, tx: Tx[Any]) -> Any:
        """Run one transaction function in a transaction of its own. A function that begins
        with a plain read runs it before ``BEGIN`` (under read committed every statement has
        a snapshot of its own anyway), so one that is only that read costs one round trip
        instead of three."""
        try:
            pool = await self._get_pool()
            connection = await pool.acquire(timeout=self._settings.pool_timeout_s)
            try:
                return await self._run(connection, tx)
            finally:
                await pool.release(connection)
        except Exception as exc:
            cause = storage_cause(exc)
            if cause is None:
                raise
            raise StorageUnavailable(cause) from exc

    async def _run(self, connection: PoolConnectionProxy[Any], tx: Tx[Any]) -> Any:
        step = _next(tx, None)
        if isinstance(step, _Returned):
            return step.value
        if step.statement.plain_read:
            step = await self._advance(connection, tx, step)
            if isinstance(step, _Returned):
                return step.value
        self._tell("BEGIN")
        async with connection.transaction():
            while not isinstance(step, _Returned):
                step = await self._advance(connection, tx, step)
        self._tell("COMMIT")
        return step.value

    async def _advance(
        self, connection: PoolConnectionProxy[Any], tx: Tx[Any], step: Step
    ) -> Step | _Returned:
        """Run ``step``; the function's next step, or what it returned."""
        try:
            result = await self._execute(connection, step)
        except asyncpg.IntegrityConstraintViolationError as exc:
            return _next(tx, IntegrityViolation(str(exc)))
        except asyncpg.PostgresError as exc:
            if storage_cause(exc) is not None:
                raise
            return _next(tx, exc)
        return _next(tx, result)

    async def _execute(self, connection: PoolConnectionProxy[Any], step: Step) -> Result:
        statement = step.statement
        if statement.postgres is None:  # nothing to do here (an SQLite index's upkeep, say)
            return Result([], 0)
        self._tell(statement.name)
        if isinstance(step, Many):
            await connection.executemany(
                statement.postgres, [postgres_params(statement, row) for row in step.rows]
            )
            return Result([], len(step.rows))
        args = postgres_params(statement, step.params)
        if statement.returns_rows:
            found = [
                dict(record.items()) for record in await connection.fetch(statement.postgres, *args)
            ]
            return Result(found, len(found))
        status = await connection.execute(statement.postgres, *args)
        return Result([], _changed(status))

    def _tell(self, name: str) -> None:
        for listener in self.listeners:
            listener(name)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


@dataclass(frozen=True, slots=True)
class _Returned:
    value: Any


def _next(tx: Tx[Any], sent: Result | Exception | None) -> Step | _Returned:
    """The function's next step after ``sent`` (a result, or an error thrown in at its
    statement); what it returned once it is done. (A coroutine may not let ``StopIteration``
    out, so it is caught here.)"""
    try:
        if isinstance(sent, Exception):
            return tx.throw(sent)
        return tx.send(sent) if sent is not None else next(tx)
    except StopIteration as stop:
        return _Returned(stop.value)


def _changed(status: str) -> int:
    """Rows changed, from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
