"""messages form a tree: a parent and a turn number each; a thread's active leaf; a run's
question

Until now a thread was one line of turns: each question, then its run's answer, by time.
Here every message gets the one it follows (``parent_id``) and its turn's number, every
thread the last message of that line (``active_leaf``), every run the question it answers
(``question_id``) — filled in from the rows already there, so each existing thread becomes
one branch that reads as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Plain ALTER TABLE (not batch) for the rowids of 0006's search index; UPDATE … FROM runs on
# both databases (SQLite ≥ 3.33).
_FILL = (
    # each run's question: the user message that started it
    "UPDATE runs SET question_id = m.id FROM messages AS m"
    " WHERE m.run_id = runs.id AND m.role = 'user'",
    # an answer follows its question
    "UPDATE messages SET parent_id = r.question_id FROM runs AS r"
    " WHERE r.id = messages.run_id AND messages.role <> 'user'",
    # questions are numbered in the order they were sent; each follows the one before …
    "UPDATE messages SET turn = w.n, parent_id = w.prev FROM (SELECT id,"
    " row_number() OVER (PARTITION BY thread_id ORDER BY created_at, id) AS n,"
    " lag(id) OVER (PARTITION BY thread_id ORDER BY created_at, id) AS prev"
    " FROM messages WHERE role = 'user') AS w WHERE messages.id = w.id",
    # … or rather that one's answer, where it has one
    "UPDATE messages SET parent_id = a.id FROM messages AS a"
    " WHERE messages.role = 'user' AND a.parent_id = messages.parent_id AND a.role <> 'user'",
    # an answer is in its question's turn
    "UPDATE messages SET turn = q.turn FROM messages AS q"
    " WHERE messages.role <> 'user' AND q.id = messages.parent_id",
    # the line's end: the last question's answer, or the last question
    "UPDATE threads SET active_leaf = last.id FROM (SELECT thread_id, id, row_number() OVER"
    " (PARTITION BY thread_id ORDER BY turn DESC,"
    " CASE WHEN role = 'user' THEN 0 ELSE 1 END DESC) AS k FROM messages) AS last"
    " WHERE last.k = 1 AND threads.id = last.thread_id",
)


def upgrade() -> None:
    op.add_column("threads", sa.Column("active_leaf", sa.String(length=40), nullable=True))
    op.add_column("messages", sa.Column("parent_id", sa.String(length=40), nullable=True))
    op.add_column("messages", sa.Column("turn", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("question_id", sa.String(length=40), nullable=True))
    op.create_index(op.f("ix_messages_parent_id"), "messages", ["parent_id"])
    for statement in _FILL:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_messages_parent_id"), table_name="messages")
    op.execute("ALTER TABLE runs DROP COLUMN question_id")
    op.execute("ALTER TABLE messages DROP COLUMN turn")
    op.execute("ALTER TABLE messages DROP COLUMN parent_id")
    op.execute("ALTER TABLE threads DROP COLUMN active_leaf")
