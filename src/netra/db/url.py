"""DatabaseURL: ``database.url`` read as SQLAlchemy reads one, without importing SQLAlchemy.

A serving process needs three things from the URL — which backend, SQLite's file, and the
DSN asyncpg connects with — and SQLAlchemy itself only for migrations and tests; importing
it costs a fifth of a start. So the URL is split here, by SQLAlchemy's own rule
(``dialect[+driver]://[user[:password]@][host][:port][/database][?query]``), and the
text handed to SQLAlchemy, when it is needed, is the operator's, with the driver Netra ships
written in. A test holds this reading to ``sqlalchemy.engine.make_url``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from netra.errors import ConfigurationError

_URL = re.compile(
    r"(?P<scheme>[\w+]+)://"
    r"(?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?"
    r"(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?"
)
"""SQLAlchemy's pattern (``sqlalchemy.engine.url._parse_url``), its parts named alike."""
DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}
"""Plain URLs (as hosting platforms hand them out) get the async driver Netra ships with."""
_SHIPPED = frozenset(DRIVERS.values())


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A database URL with the async driver Netra ships (``str()`` gives it whole)."""

    scheme: str
    """``sqlite+aiosqlite`` or ``postgresql+asyncpg``."""
    rest: str
    """Everything after ``://``, as the operator wrote it."""
    password: str | None
    database: str | None
    """The SQLite file (``""`` or ``:memory:`` in memory), or PostgreSQL's database."""

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.scheme.split("+", 1)[0]

    def __str__(self) -> str:
        return f"{self.scheme}://{self.rest}"

    def masked(self) -> str:
        """The URL with its password, if any, as ``***`` (for logs and messages)."""
        if not self.password:
            return str(self)
        credentials, at, address = self.rest.partition("@")
        user = credentials.split(":", 1)[0]
        return f"{self.scheme}://{user}:***{at}{address}"

    def dsn(self) -> str:
        """What asyncpg connects with: the same URL, as plain ``postgresql://``."""
        return f"postgresql://{self.rest}"


def database_url(url: str) -> DatabaseURL:
    """``url`` read (a plain scheme gets Netra's driver); a URL that is none, or names a
    driver Netra does not ship, is the operator's mistake: one line saying what to do."""
    found = _URL.match(url)
    if found is None or not (found["port"] or "0").isdigit():
        raise ConfigurationError(
            "database.url is not a database URL: use postgresql://user:password@host/db or "
            "sqlite:///path/to/netra.db"
        )
    scheme = found["scheme"]
    driver = DRIVERS.get(scheme, scheme)
    if driver not in _SHIPPED:
        raise ConfigurationError(
            f"database.url uses {scheme!r}, which Netra does not ship: use "
            "postgresql:// (asyncpg) or sqlite:// (aiosqlite)"
        )
    return DatabaseURL(
        scheme=driver,
        rest=url[len(scheme) + 3 :],
        password=_unquoted(found["password"]),
        database=_unquoted(found["database"]),
    )


def _unquoted(part: str | None) -> str | None:
    return None if part is None else unquote(part)
