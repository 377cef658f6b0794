"""spend_days: each user's model calls summed per UTC day, kept with every call

The quotas (at every message) and the budgets (after every model call) summed the user's
model calls of the month: a read that grew with every call a user made, on the one writer
of SQLite (~0.5 ms at 1,000 calls a month, ~8.6 ms at 20,000). Each call now also adds to
its user's row for its day, and those reads sum at most 31 rows. Existing calls are summed
into their days.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spend_days",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_spend_days_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "starts_at", name=op.f("pk_spend_days")),
    )
    if op.get_bind().dialect.name == "sqlite":  # timestamps are text: the day's, at midnight
        day = "substr(created_at, 1, 10) || ' 00:00:00.000000'"
    else:
        day = "date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    summed = f"SELECT user_id, {day}, sum(input_tokens), sum(output_tokens), sum(cost_usd)"
    op.execute(
        "INSERT INTO spend_days (user_id, starts_at, input_tokens, output_tokens, cost_usd)"
        f" {summed} FROM model_calls GROUP BY user_id, {day}"
    )


def downgrade() -> None:
    op.drop_table("spend_days")
