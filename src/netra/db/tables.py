"""Every table, in one place. Every user-owned table has a ``user_id`` column."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = DateTime(timezone=True)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("tier", String(40), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("event_seq", BigInteger, nullable=False, default=0),
    Column("limits", JSON, nullable=False, server_default=text("'{}'")),
    # The user's own limit overrides ({name: value}): over the tier's, set by an admin.
    Column("created_at", TS, nullable=False),
    Column("org_id", String(40), nullable=True),
    # The organisation the user belongs to (none: its own), as "member" or "admin"
    # (org_role): an org's admins see its members' usage figures, never their messages.
    Column("org_role", String(20), nullable=True),
    Index(None, "org_id"),
)

orgs = Table(
    "orgs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("usd_per_day", Float, nullable=False, server_default="0"),
    Column("usd_per_month", Float, nullable=False, server_default="0"),
    Column("created_at", TS, nullable=False),
)
"""An organisation: its members are the users whose ``org_id`` names it. Its dollar budgets
(0: none) span every member's model calls, beside each member's own."""

threads = Table(
    "threads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("agent", String(100), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("pinned", Boolean, nullable=False, server_default=false()),
    Column("archived", Boolean, nullable=False, server_default=false()),
    Column("active_leaf", String(40), nullable=True),
    # The last message of the branch shown and continued: reads give the path to it, a new
    # message follows it. Null only while the thread has no message.
    Index(None, "user_id", "updated_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("thread_id", String(40), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", String(40), nullable=True),
    Column("role", String(20), nullable=False),
    Column("content", Text, nullable=False),
    Column("data", JSON, nullable=True),
    Column("client_msg_id", String(100), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("parent_id", String(40), nullable=True),
    # The message this one follows (null: the thread's first, or an edit of it): a question
    # follows the answer before it, an answer its question. Messages form a tree; its
    # branches are edits (questions with one parent) and regenerations (answers).
    Column("turn", Integer, nullable=False, server_default="0"),
    # The turn's number on its path: a question's is its parent's + 1, an answer's its
    # question's.
    UniqueConstraint("user_id", "client_msg_id"),
    Index(None, "thread_id", "created_at"),
    Index(None, "parent_id"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("thread_id", String(40), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
    Column("parent_run_id", String(40), nullable=True),
    Column("agent", String(100), nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(30), nullable=False),
    Column("outcome", String(30), nullable=True),
    Column("error", JSON, nullable=True),
    Column("usage", JSON, nullable=True),
    Column("attempt", Integer, nullable=False, default=0),
    Column("message_id", String(40), nullable=False),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("created_at", TS, nullable=False),
    Column("started_at", TS, nullable=True),
    Column("finished_at", TS, nullable=True),
    Column("owner", String(60), nullable=True),
    Column("lease_expires_at", TS, nullable=True),
    Column("cancel_requested", JSON, nullable=True),
    Column("recoveries", Integer, nullable=False, server_default="0"),
    Column("resume_reason", String(20), nullable=True),
    Column("question_id", String(40), nullable=True),
    # The user message the run answers (null: a child run, given its task).
    Column("seq_floor", BigInteger, nullable=False, server_default="0"),
    # Every event of the run has a seq above this one: its user's last seq at its creation.
    Index(None, "user_id", "status"),
    Index(None, "user_id", "created_at"),
    Index(None, "status", "created_at"),
    Index(None, "thread_id", "created_at"),
    Index(None, "owner", "status"),
    Index(None, "status", "lease_expires_at"),
)
"""The runs table is the queue. ``owner`` is the instance holding the run (queued in its
memory or executing it) until ``lease_expires_at``; heartbeats renew the lease, and another
instance takes over a run whose lease expired. ``attempt`` grows with every execution and
fences every write of a run. ``cancel_requested`` carries a cancel to whichever instance
holds the run; ``resume_reason`` says why the next attempt continues an earlier one
(``approval``, ``takeover``, ``handback``)."""

instances = Table(
    "instances",
    metadata,
    Column("id", String(60), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(40), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("heartbeat_at", TS, nullable=False),
    Column("stopped_at", TS, nullable=True),
    Column("runs_executing", Integer, nullable=False, server_default="0"),
    Column("sockets", Integer, nullable=False, server_default="0"),
)
"""Every Netra process that served or executed runs, with its last heartbeat."""

events = Table(
    "events",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("event_id", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("thread_id", String(40), nullable=True),
    Column("run_id", String(40), nullable=True),
    Column("body", Text, nullable=False),
    Column("created_at", TS, nullable=False),
)
"""The per-user event log; ``body`` is the serialised envelope exactly as sent. Its one
order is the user's seq: a run's events are read from its run's ``seq_floor`` on."""

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("tool_call_id", String(100), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("tool", String(100), nullable=False),
    Column("arguments", JSON, nullable=True),
    Column("side_effects", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("result", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("step", Integer, nullable=False, server_default="0"),
    Column("decision", String(10), nullable=True),
    Column("decided_at", TS, nullable=True),
    Index(None, "user_id", "started_at"),
)
"""The tool-call ledger: written before a tool runs and again when it finishes. ``step`` is
the model turn that asked for the call; a run resumes (after an approval or a restart) by
replaying its ledger to the model instead of asking again. ``decision`` is the owning
user's answer to a call that needed approval."""

turns = Table(
    "turns",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("tool_calls", JSON, nullable=False),
    Column("usage", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
)
"""A run's checkpoint: one row per model turn that asked for tools, stored when the turn
ends — what the model said (``text``), the calls it asked for (``tool_calls``: id, name and
arguments, as the ledger keys them) and the turn's ``usage``. What became of each call is
the ledger's. A later attempt of the run (after an approval, a hand-back or a takeover)
rebuilds the conversation from its turns and the ledger and goes on from the next step."""

summaries = Table(
    "summaries",
    metadata,
    Column("thread_id", String(40), ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True),
    Column("through_id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("turn", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("model", String(200), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("created_at", TS, nullable=False),
)
"""A thread's summary of its branch up to a message (``through_id``, of turn ``turn``): what
a run is sent instead of the turns its model's window cannot hold. Each one folds newer
turns into the one before it on the branch; the call that wrote it is metered to the run
that needed it (``run_id``; ``model``, tokens and cost kept here too, so a later attempt of
that run counts it again)."""

model_calls = Table(
    "model_calls",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("agent", String(100), nullable=False),
    Column("model", String(200), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("input_per_mtok", Float, nullable=True),
    Column("output_per_mtok", Float, nullable=True),
    Column("cached_input_per_mtok", Float, nullable=True),
    Column("prices_as_of", String(40), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("org_id", String(40), nullable=True),
    # The organisation the user was in when the call was made: its budgets and reports.
    Index(None, "user_id", "created_at"),
    Index(None, "org_id", "created_at"),
    Index(None, "created_at"),
    Index(None, "run_id"),
)
"""Every model call's usage, stored when the call is made (not when its run ends: a killed
attempt's calls count), under the model that answered, with the price it was charged at
(``*_per_mtok``, null for a model the table does not price; ``prices_as_of``, the shipped
table's date) and its cost then: a later price edit changes no row. Reports, budgets and
quotas sum these. ``run_id`` is no foreign key: deleting a chat deletes its words, not what
it cost."""

spend_days = Table(
    "spend_days",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("starts_at", TS, primary_key=True),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
)
"""Each user's model calls summed per UTC day (the day that ``starts_at``), added to with
every call (``netra.db.calls``): the quotas and budgets read a month of these, at most 31
rows, where summing the month's calls grew with every call a user made."""

org_spend_days = Table(
    "org_spend_days",
    metadata,
    Column("org_id", String(40), primary_key=True),
    Column("starts_at", TS, primary_key=True),
    Column("cost_usd", Float, nullable=False),
)
"""The model calls made in each organisation summed per UTC day, added to with every call
that names the organisation (``model_calls.org_id``): its budgets, checked at every message
and after every model call of a member, read at most 31 rows. No foreign key, as with the
calls: a call made while its organisation is being deleted is still stored; the deletion
removes the days it finds."""

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
    Column("revoked_reason", String(40), nullable=True),
    Index(None, "user_id"),
)
"""One sign-in: its access tokens carry its id, its refresh tokens form one rotation family."""

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("session_id", String(40), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("issued_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS, nullable=True),
    Index(None, "session_id"),
)
"""Refresh tokens, stored as SHA-256 hashes; each is used once, reuse revokes the session."""

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column(
        "session_id",
        String(40),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    # The secret's first characters, shown so its owner can tell keys apart.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=True),
    Column("last_used_at", TS, nullable=True),
    Index(None, "user_id", "created_at"),
)
"""API keys: a program's standing credential, each with a session of its own that revoking
the key ends (so its sockets close as a logged-out session's do). The secret is shown once
and stored as its SHA-256 hash, which looks it up; ``scopes`` narrow what it may do."""
