"""Transactions as values: the hot path's way to the database.

A *transaction function* (``Tx[T]``) is a generator. It yields each statement it runs — a
``Call`` of a named ``Statement``, or ``Many`` rows for one — and is sent back its
``Result``; what it returns is the transaction's value. It does no I/O itself, so one function
runs on SQLite (stdlib ``sqlite3`` on the database's own thread, ``netra.db.sqlite``) and on
PostgreSQL (``asyncpg``, ``netra.db.postgres``) alike, and a whole transaction costs one hop
however many statements it holds. Functions compose with ``yield from``::

    def rename(ctx, thread_id, title) -> Tx[ThreadRecord]:
        thread = yield from ThreadRepository(ctx).get(thread_id)   # NotFound raises out
        yield from execute(THREAD_RENAME(id=thread.id, title=title))
        return replace(thread, title=title)

    await db.transact(rename(ctx, thread_id, "Plans"))

Whatever a function raises rolls its transaction back and reaches the caller of
``transact``. A failing statement is thrown into the function at its ``yield``: the database
being away as ``StorageUnavailable``, a broken constraint as ``IntegrityViolation`` (on
PostgreSQL the transaction is then unusable, so a function that means to go on after one
opens a ``savepoint`` around the statement).

Statements are written once, in PostgreSQL's SQL with ``:name`` parameters; SQLite's text is
derived mechanically (``= ANY(:ids)`` becomes ``IN (SELECT value FROM json_each(:ids))``,
``FOR UPDATE`` is dropped: SQLite has one writer) unless a statement gives its own.

Values follow one rule each way, on both databases, so no statement converts anything:

- a parameter or column named after a JSON column of ``netra.db.tables`` holds JSON;
- a name ending in ``_at`` is a timestamp: an aware UTC ``datetime`` in Python (SQLite
  stores it as SQLAlchemy does, so the cold paths read the same rows);
- a list or tuple parameter is an array (of text or integers); a dict parameter is a JSON
  object (PostgreSQL ``json_each_text(:p::json)``, SQLite ``json_each(:p)``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from netra.json_text import dumps

T = TypeVar("T")
Row = dict[str, Any]

JSON_NAMES = frozenset(
    {
        "arguments",
        "cancel_requested",
        "data",
        "error",
        "limits",
        "result",
        "roles",
        "scopes",
        "tool_calls",
        "usage",
    }
)
"""Names that hold JSON, wherever they appear: the JSON columns of ``netra.db.tables``
(spelled out, so a server need not load SQLAlchemy; a test holds the two to each other, and
the tables to one meaning per name)."""
BOOL_NAMES = frozenset({"archived", "disabled", "pinned"})
"""Names of the tables' boolean columns (held to ``netra.db.tables`` by the same test)."""
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_ANY = re.compile(r"= ANY\(:(\w+)\)")
_FOR_UPDATE = re.compile(r"\s+FOR UPDATE\b")
_LOCKING = re.compile(r"\bFOR (?:NO KEY UPDATE|UPDATE|KEY SHARE|SHARE)\b|_LOCK\(")
"""What makes a read take a lock (the statement's words upper-cased, spaces single)."""
_UNSET: Any = object()


class IntegrityViolation(Exception):
    """A statement broke a constraint (a unique key, a foreign key): thrown into the
    transaction function at the statement that did."""


class Statement:
    """One named SQL statement, written once with ``:name`` parameters."""

    __slots__ = ("name", "plain_read", "postgres", "postgres_names", "returns_rows", "sqlite")

    def __init__(
        self,
        name: str,
        sql: str | None = None,
        *,
        sqlite: str | None = _UNSET,
        postgres: str | None = _UNSET,
    ) -> None:
        self.name = name
        pg = postgres if postgres is not _UNSET else sql
        shared = sql if sql is not None else pg
        if shared is None and sqlite in (None, _UNSET):
            raise ValueError(f"statement {name} has no SQL")
        self.sqlite: str | None = (
            sqlite if sqlite is not _UNSET else _for_sqlite(shared) if shared else None
        )
        """The text SQLite runs (``:name`` parameters); None: nothing to do on SQLite."""
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.postgres: str | None = _PARAM.sub(number, " ".join(pg.split())) if pg else None
        """The text PostgreSQL runs (``$n`` parameters, in ``postgres_names`` order); None:
        nothing to do on PostgreSQL."""
        self.postgres_names = tuple(names)
        words = (self.postgres or self.sqlite or "").upper()
        self.returns_rows = words.startswith(("SELECT", "WITH")) or " RETURNING " in words
        self.plain_read = words.startswith("SELECT") and not _LOCKING.search(words)
        """A read that takes no lock (no row's, nor an advisory ``pg_advisory_xact_lock``):
        it needs no transaction of its own."""

    def __call__(self, **params: Any) -> Call:
        return Call(self, params)

    def __repr__(self) -> str:
        return f"Statement({self.name})"


def _for_sqlite(sql: str) -> str:
    sql = _ANY.sub(r"IN (SELECT value FROM json_each(:\1))", sql)
    return " ".join(_FOR_UPDATE.sub("", sql).split())


@dataclass(frozen=True, slots=True)
class Call:
    """A statement with its parameters: what a transaction function yields."""

    statement: Statement
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Many:
    """One statement run for each of many rows of parameters (``executemany``)."""

    statement: Statement
    rows: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Result:
    rows: list[Row]
    """What the statement returned (``SELECT`` or ``RETURNING``), values converted."""
    rowcount: int
    """Rows it returned, or else changed."""


Step = Call | Many
Listener = Callable[[str], None]
"""Told the name of every statement an executor runs (``BEGIN``, ``COMMIT`` and savepoints
by their SQL): how tests count what a run costs the database. Called on the thread that runs
the statement."""
Tx = Generator[Step, Result, T]
"""A transaction function: yields statements, receives their results, returns a value."""
TxFactory = Callable[[], Tx[T]]
"""Makes a fresh transaction function each time (one that may have to be tried again)."""


def rows(call: Call) -> Tx[list[Row]]:
    """The rows a statement returns."""
    result = yield call
    return result.rows


def first(call: Call) -> Tx[Row | None]:
    """The first row a statement returns, or None."""
    result = yield call
    return result.rows[0] if result.rows else None


def scalar(call: Call) -> Tx[Any]:
    """The first column of the first row, or None."""
    result = yield call
    return next(iter(result.rows[0].values())) if result.rows else None


def rowcount(step: Step) -> Tx[int]:
    """How many rows a statement changed."""
    result = yield step
    return result.rowcount


def execute(step: Step) -> Tx[None]:
    yield step


_SAVEPOINTS = {
    verb: Statement(sql, sql)
    for verb, sql in (
        ("open", "SAVEPOINT inner_tx"),
        ("release", "RELEASE SAVEPOINT inner_tx"),
        ("rollback", "ROLLBACK TO SAVEPOINT inner_tx"),
    )
}


def savepoint(inner: Tx[T]) -> Tx[T]:
    """Run ``inner`` so that whatever it raises undoes only its own writes: the enclosing
    transaction goes on (on PostgreSQL too, where a failed statement spoils a transaction)."""
    yield _SAVEPOINTS["open"]()
    try:
        value = yield from inner
    except Exception:
        yield _SAVEPOINTS["rollback"]()
        yield _SAVEPOINTS["release"]()
        raise
    yield _SAVEPOINTS["release"]()
    return value


# ---- values, one rule each way (the executors call these) ----------------------------------
def encode_json(value: Any) -> str:
    return dumps(value, default=str)


def sqlite_timestamp(value: datetime) -> str:
    """As SQLAlchemy stores a ``DateTime`` on SQLite: UTC, no offset, microseconds."""
    if value.tzinfo is UTC:  # the common case: the text without its "+00:00"
        return value.isoformat(sep=" ", timespec="microseconds")[:-6]
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


_AS_IS = frozenset({str, int, float, bool})
"""Types SQLite takes as they are (unless the name says JSON)."""


def sqlite_params(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``params`` as SQLite takes them; the same mapping when nothing needs converting."""
    out: dict[str, Any] | None = None
    for name, value in params.items():
        if value is None or (type(value) in _AS_IS and name not in JSON_NAMES):
            continue
        if out is None:
            out = dict(params)
        if name in JSON_NAMES:
            out[name] = encode_json(value)
        elif isinstance(value, datetime):
            out[name] = sqlite_timestamp(value)
        elif isinstance(value, dict):
            out[name] = encode_json(value)
        elif isinstance(value, list | tuple):
            out[name] = dumps(list(value))
    return params if out is None else out


def postgres_params(statement: Statement, params: Mapping[str, Any]) -> list[Any]:
    out = []
    for name in statement.postgres_names:
        value = params[name]
        if value is not None:
            if name in JSON_NAMES or isinstance(value, dict):
                value = encode_json(value)
            elif isinstance(value, tuple):
                value = list(value)
        out.append(value)
    return out


def sqlite_converters(names: Sequence[str]) -> list[Callable[[Any], Any] | None]:
    """How each returned column of SQLite becomes its Python value."""
    return [_sqlite_converter(name) for name in names]


def _sqlite_converter(name: str) -> Callable[[Any], Any] | None:
    if name in JSON_NAMES:
        return _from_json
    if name.endswith("_at"):
        return _from_sqlite_timestamp
    if name in BOOL_NAMES:
        return _from_bool
    return None


def _from_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _from_sqlite_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def _from_bool(value: Any) -> Any:
    return bool(value) if value is not None else None


def sqlite_rows(names: Sequence[str], raw: Iterator[Sequence[Any]]) -> list[Row]:
    converters = sqlite_converters(names)
    if not any(converters):
        return [dict(zip(names, row, strict=True)) for row in raw]
    out = []
    for row in raw:
        out.append(
            {
                name: (convert(value) if convert is not None and value is not None else value)
                for name, convert, value in zip(names, converters, row, strict=True)
            }
        )
    return out
