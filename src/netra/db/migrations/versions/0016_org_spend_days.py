"""org_spend_days: each organisation's model calls summed per UTC day, kept with every call

An organisation's budgets, checked at every message and after every model call of each of
its members, summed all of the organisation's calls of the month: a read that grew with
every call any member made, on the one writer of SQLite. Each call made in an organisation
now also adds to the organisation's row for its day, and that read sums at most 31 rows.
Existing calls are summed into their days.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 19:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_spend_days",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "starts_at", name=op.f("pk_org_spend_days")),
    )
    if op.get_bind().dialect.name == "sqlite":  # timestamps are text: the day's, at midnight
        day = "substr(created_at, 1, 10) || ' 00:00:00.000000'"
    else:
        day = "date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    summed = f"SELECT org_id, {day}, sum(cost_usd)"
    op.execute(
        "INSERT INTO org_spend_days (org_id, starts_at, cost_usd)"
        f" {summed} FROM model_calls WHERE org_id IS NOT NULL GROUP BY org_id, {day}"
    )


def downgrade() -> None:
    op.drop_table("org_spend_days")
