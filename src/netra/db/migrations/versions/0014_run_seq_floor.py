"""events: one key, (user_id, seq); runs.seq_floor replaces the (run_id, seq) index

Every event of a run has a seq above its user's last seq when the run was created, stored
in the run as ``seq_floor``: a run's events are read from the user's log, ``(user_id, seq)``,
from that floor on. The ``(run_id, seq)`` index it replaces cost every event an insert into
a B-tree ordered by run, whose pages the events of many runs at once dirty at random: more
than a third of what storing an event cost on SQLite. The unique index on ``event_id`` goes
too: nothing looks an event up by its id, and an id is unique by construction (milliseconds
and 80 random bits), so it only cost every event one more B-tree insert.

Existing runs get the floor their first stored event gives (0 for a run without events)
before the index goes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seq_floor", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE runs SET seq_floor = COALESCE((SELECT min(events.seq) - 1 FROM events"
        " WHERE events.user_id = runs.user_id AND events.run_id = runs.id), 0)"
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_run_id_seq"))
        batch_op.drop_constraint(batch_op.f("uq_events_event_id"), type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_events_event_id"), ["event_id"])
        batch_op.create_index(batch_op.f("ix_events_run_id_seq"), ["run_id", "seq"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("seq_floor")
