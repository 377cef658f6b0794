"""An empty database built at the head revision in one step.

Migrations replay the schema's history; an empty database needs only its present. So a
first start runs ``build_at_head``: one transaction (on the hot path's executor) that takes
the migrations' lock, finds the database empty and creates the head's schema — the tables and
indexes of ``netra.db.tables``, the search indexes, and Alembic's version row — from the DDL
in ``netra.db.ddl``. Neither Alembic nor SQLAlchemy is loaded; a test holds that DDL to what
SQLAlchemy renders from the tables (``render``; ``python -m netra.db.schema`` writes it
again), and the schema built to the one the migrations build, on both backends. A database
holding any table goes through Alembic."""

from __future__ import annotations

import sys
from pathlib import Path

from netra.db import ddl
from netra.db.revisions import head_revision
from netra.db.sql import Statement, Tx, execute, first

MIGRATION_LOCK = 0x6E65747261  # "netra": the advisory lock key that serializes migrations
LOCK = Statement(
    "schema: the migrations' lock, until commit (SQLite has one writer)",
    "SELECT pg_advisory_xact_lock(:key)",
    sqlite=None,
)
TABLES = Statement(
    "schema: the tables the database holds",
    "SELECT count(*) AS tables FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    sqlite="SELECT count(*) AS tables FROM sqlite_master WHERE type = 'table'",
)
VERSION = Statement(
    "schema: the revision it is at",
    "INSERT INTO alembic_version (version_num) VALUES (:revision)",
)
_SEARCHED = (("message_search", "messages", "content"), ("thread_search", "threads", "title"))
"""Each search index, the table it indexes and the column (``netra.db.search``). Migration
0006 keeps its own copy of these statements: a migration records what was done and never
imports the application's present definitions."""
_SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE {index} USING fts5({column}, user_id, content='{table}',"
    " tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER {index}_insert AFTER INSERT ON {table} BEGIN"
    " INSERT INTO {index} (rowid, {column}, user_id)"
    " VALUES (new.rowid, new.{column}, new.user_id); END",
    "CREATE TRIGGER {index}_delete AFTER DELETE ON {table} BEGIN"
    " INSERT INTO {index} ({index}, rowid, {column}, user_id)"
    " VALUES ('delete', old.rowid, old.{column}, old.user_id); END",
    "CREATE TRIGGER {index}_update AFTER UPDATE OF {column}, user_id ON {table} BEGIN"
    " INSERT INTO {index} ({index}, rowid, {column}, user_id)"
    " VALUES ('delete', old.rowid, old.{column}, old.user_id);"
    " INSERT INTO {index} (rowid, {column}, user_id)"
    " VALUES (new.rowid, new.{column}, new.user_id); END",
)
_POSTGRES_SEARCH = (
    "CREATE INDEX {index} ON {table} USING gin"
    " (to_tsvector('simple', regexp_replace({column}, '(\\W|_)+', ' ', 'g')))",
)
_VERSION_TABLE = (
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
    " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)


def build_at_head(backend: str) -> Tx[str | None]:
    """Under the migrations' lock, build the head's schema in an empty database; the
    revision built, or None when the database holds tables (Alembic's case)."""
    yield from execute(LOCK(key=MIGRATION_LOCK))
    found = yield from first(TABLES())
    if found is None or found["tables"]:
        return None
    for index, sql in enumerate(ddl.SQLITE if backend == "sqlite" else ddl.POSTGRES):
        yield from execute(Statement(f"schema: the head's, statement {index}", sql)())
    revision = head_revision()
    yield from execute(VERSION(revision=revision))
    return revision


def render(backend: str) -> tuple[str, ...]:
    """The head's DDL as SQLAlchemy renders ``netra.db.tables`` for ``backend`` (what
    ``create_all`` runs: each table, then its indexes), the search indexes, and Alembic's
    version table."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from netra.db.tables import metadata

    dialect = postgresql.dialect() if backend == "postgresql" else sqlite.dialect()  # type: ignore[no-untyped-call]
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)))
    search = _SQLITE_SEARCH if backend == "sqlite" else _POSTGRES_SEARCH
    for index_name, table_name, column in _SEARCHED:
        for statement in search:
            statements.append(statement.format(index=index_name, table=table_name, column=column))
    statements.append(_VERSION_TABLE)
    return tuple(" ".join(statement.split()) for statement in statements)


def ddl_module() -> str:
    """The text of ``netra.db.ddl``, rendered now."""
    lines = [
        "# ruff: noqa: E501",
        '"""The head revision\'s schema, as DDL for each backend: what ``build_at_head`` runs',
        "in an empty database. Written by ``python -m netra.db.schema`` from",
        "``netra.db.tables`` (``render``); a test fails when the two differ.",
        '"""',
        "",
    ]
    for name, backend in (("SQLITE", "sqlite"), ("POSTGRES", "postgresql")):
        lines.append(f"{name} = (")
        lines.extend(f"    {statement!r}," for statement in render(backend))
        lines.extend((")", ""))
    return "\n".join(lines)


if __name__ == "__main__":
    target = Path(__file__).with_name("ddl.py")
    target.write_text(ddl_module())
    sys.stdout.write(f"wrote {target}\n")
