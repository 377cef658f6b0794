"""threads can be pinned and archived

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both backends: SQLite's batch mode would copy the table, and with it
# renumber the rowids its search index (0006) refers to.


def upgrade() -> None:
    for name in ("pinned", "archived"):
        op.add_column(
            "threads", sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    for name in ("archived", "pinned"):
        op.execute(f"ALTER TABLE threads DROP COLUMN {name}")
