"""organisations: users may belong to one; budgets per organisation; calls keep the org

Each user may be a member (or an admin) of one organisation. An organisation's dollar
budgets span every member's model calls, so each call records the organisation its user was
in when it was made.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("usd_per_day", sa.Float(), server_default="0", nullable=False),
        sa.Column("usd_per_month", sa.Float(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orgs")),
        sa.UniqueConstraint("name", name=op.f("uq_orgs_name")),
    )
    op.add_column("users", sa.Column("org_id", sa.String(length=40), nullable=True))
    op.add_column("users", sa.Column("org_role", sa.String(length=20), nullable=True))
    op.create_index(op.f("ix_users_org_id"), "users", ["org_id"])
    op.add_column("model_calls", sa.Column("org_id", sa.String(length=40), nullable=True))
    op.create_index(
        op.f("ix_model_calls_org_id_created_at"), "model_calls", ["org_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_model_calls_org_id_created_at"), table_name="model_calls")
    op.execute("ALTER TABLE model_calls DROP COLUMN org_id")
    op.drop_index(op.f("ix_users_org_id"), table_name="users")
    op.execute("ALTER TABLE users DROP COLUMN org_role")
    op.execute("ALTER TABLE users DROP COLUMN org_id")
    op.drop_table("orgs")
