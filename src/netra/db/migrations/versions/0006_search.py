"""full-text search over messages and thread titles

SQLite: two FTS5 indexes over the rows of ``messages`` and ``threads`` (external content: the
text is not stored twice), kept current by triggers, filled from the rows already there.
PostgreSQL: GIN indexes over the same words. Both split a text into its runs of letters and
digits, lowercased, so that a search finds the same rows on either (``netra.db.search``).

The SQLite indexes refer to rows by rowid: after a ``VACUUM`` (which may renumber rowids)
rebuild them with ``INSERT INTO message_search(message_search) VALUES ('rebuild')`` and the
same for ``thread_search``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 06:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_SQLITE_INDEX = (
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
    "INSERT INTO {index} ({index}) VALUES ('rebuild')",
)
_POSTGRES_INDEX = (
    "CREATE INDEX {index} ON {table} USING gin"
    " (to_tsvector('simple', regexp_replace({column}, '(\\W|_)+', ' ', 'g')))"
)
"""``netra.db.search``'s statements repeat the expression, so that they use the index."""
_INDEXES = (("message_search", "messages", "content"), ("thread_search", "threads", "title"))


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for index, table, column in _INDEXES:
        if sqlite:
            for statement in _SQLITE_INDEX:
                op.execute(statement.format(index=index, table=table, column=column))
        else:
            op.execute(_POSTGRES_INDEX.format(index=index, table=table, column=column))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for index, _, _ in _INDEXES:
        if sqlite:
            for trigger in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {index}_{trigger}")
            op.execute(f"DROP TABLE IF EXISTS {index}")
        else:
            op.execute(f"DROP INDEX IF EXISTS {index}")
