"""The one event envelope, and the event types."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

StoredWith = Callable[["AsyncConnection"], Awaitable[bool]]
"""A write that must commit in the same transaction as an event: True when it was made,
False when it was refused (the attempt making it lost its claim), and the event with it."""


class EventType(StrEnum):
    """Every event the server pushes; run events first, in their order."""

    AGENT_STARTED = "agent_started"
    """First event of every run."""
    AGENT_THINKING = "agent_thinking"
    """The agent is working (a model call is in flight)."""
    MESSAGE_DELTA = "message_delta"
    """Streamed answer text (coalesced)."""
    TOOL_EXECUTING = "tool_executing"
    """A tool call started; always followed by a ``tool_completed`` with the same id."""
    TOOL_COMPLETED = "tool_completed"
    """A tool call finished, successfully or not."""
    APPROVAL_REQUIRED = "approval_required"
    """A tool call waits for the owning user's ``approve_tool``; the run pauses."""
    AGENT_COMPLETED = "agent_completed"
    """Last event of every run, with outcome and usage."""
    MESSAGE_CREATED = "message_created"
    """A user message was stored."""
    RUN_QUEUED = "run_queued"
    """A run waits for one of the user's concurrency slots."""
    THREAD_UPDATED = "thread_updated"
    """A thread was created or changed."""
    QUOTA_WARNING = "quota_warning"
    """The user's usage passed the warning share of a quota."""


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event built by the bridge, waiting for its seq from the event log writer."""

    user_id: str
    type: EventType
    event_id: str
    thread_id: str | None
    run_id: str | None
    agent: str | None
    data: dict[str, Any]
    attempt: int | None = None
    """For a run's events: the attempt emitting them. The writer stores them only while it
    is the run's current attempt (fencing); never part of the envelope."""
    stored_with: StoredWith | None = field(default=None, compare=False)
    """A write that commits with the event: for ``agent_completed`` the run's final state (a
    crash between two transactions would leave a finished run whose clients wait for its end
    forever), for ``agent_started`` the run's ``started_at``, for a tool call's events its
    ledger entries — so what the log holds of a run can be told from its tables."""


@dataclass(frozen=True, slots=True)
class Event:
    """A persisted event: ``body`` is the serialised envelope, identical on every socket."""

    user_id: str
    seq: int
    type: EventType
    run_id: str | None
    body: str

    @classmethod
    def seal(cls, pending: PendingEvent, seq: int, ts: datetime) -> Event:
        envelope = {
            "type": pending.type.value,
            "seq": seq,
            "event_id": pending.event_id,
            "thread_id": pending.thread_id,
            "run_id": pending.run_id,
            "agent": pending.agent,
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": pending.data,
        }
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        return cls(pending.user_id, seq, pending.type, pending.run_id, body)
