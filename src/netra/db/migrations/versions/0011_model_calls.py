"""model_calls: every model call's usage, stored when it is made, at the price of that moment

Until now a run's usage was stored on its row when the run paused or ended, so the calls of
an attempt that was killed were never counted, and a run's calls of several models were
counted under the run's first. Each call now has a row with the model that answered and a
snapshot of its price. Runs that already used a model get one row each, at their recorded
cost and no price snapshot (the prices they were made at were not kept).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_calls",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("input_per_mtok", sa.Float(), nullable=True),
        sa.Column("output_per_mtok", sa.Float(), nullable=True),
        sa.Column("cached_input_per_mtok", sa.Float(), nullable=True),
        sa.Column("prices_as_of", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_model_calls_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_calls")),
    )
    op.create_index(
        op.f("ix_model_calls_user_id_created_at"), "model_calls", ["user_id", "created_at"]
    )
    op.create_index(op.f("ix_model_calls_created_at"), "model_calls", ["created_at"])
    op.create_index(op.f("ix_model_calls_run_id"), "model_calls", ["run_id"])
    op.execute(
        "INSERT INTO model_calls (id, user_id, run_id, attempt, agent, model, input_tokens,"
        " output_tokens, cached_input_tokens, cost_usd, created_at)"
        " SELECT 'mc_' || id, user_id, id, attempt, agent, model, input_tokens, output_tokens,"
        " 0, cost_usd, created_at FROM runs"
        " WHERE input_tokens > 0 OR output_tokens > 0 OR cost_usd > 0"
    )


def downgrade() -> None:
    op.drop_table("model_calls")
