"""An empty database built at the head revision in one step.

Migrations replay the schema's history; an empty database needs only its present. So a
first start creates the tables of ``netra.db.tables``, the search indexes
(``SEARCH_OBJECTS``) and Alembic's version row naming the head revision — what the
migrations build (a test holds the two to the same schema, on both backends), without
loading Alembic or running every revision, which took ~0.4 s of a ~1.4 s first start. A
database holding any table goes through Alembic."""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

from netra.db.revisions import head_revision
from netra.db.tables import metadata

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


def is_empty(connection: Connection) -> bool:
    """Whether the database (its default schema) holds no table at all."""
    return not inspect(connection).get_table_names()


def create_at_head(connection: Connection) -> str:
    """Build the whole schema of the head revision in an empty database, in the caller's
    transaction; returns the revision."""
    metadata.create_all(connection, checkfirst=False)
    statements = _SQLITE_SEARCH if connection.dialect.name == "sqlite" else _POSTGRES_SEARCH
    for index, table, column in _SEARCHED:
        for statement in statements:
            connection.exec_driver_sql(statement.format(index=index, table=table, column=column))
    revision = head_revision()
    connection.exec_driver_sql(_VERSION_TABLE)
    connection.execute(
        text("INSERT INTO alembic_version (version_num) VALUES (:revision)"),
        {"revision": revision},
    )
    return revision
