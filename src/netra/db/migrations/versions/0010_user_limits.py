"""users.limits: a user's own limit overrides, stored with the account

Until now an override lived in one process's memory; stored here, every instance reads it
with the user's sessions.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("limits", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
    )


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP COLUMN limits")
