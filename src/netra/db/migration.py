"""Alembic, on a connection ``DatabaseManager`` hands in: imported only when a database is
behind the revision it is asked for, since loading Alembic and its environment costs more
than the rest of a start on a current schema."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from netra.db.revisions import MIGRATIONS


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to(connection: Connection, revision: str) -> tuple[str | None, str | None]:
    """``(revision before, revision after)``; ``None`` for an empty database."""
    before = MigrationContext.configure(connection).get_current_revision()
    command.upgrade(alembic_config(connection), revision)
    return before, MigrationContext.configure(connection).get_current_revision()
