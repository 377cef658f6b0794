"""The one event envelope, and the event types."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from netra.db.event_log import NewEvent
from netra.db.sql import TxFactory
from netra.json_text import dumps

StoredWith = TxFactory[bool]
"""A write that must commit in the same transaction as an event (a transaction function of
``netra.db``): True when it was made, False when it was refused (the attempt making it lost
its claim), and the event with it."""


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
    THREAD_DELETED = "thread_deleted"
    """A thread and everything of it were deleted."""
    QUOTA_WARNING = "quota_warning"
    """The user's usage passed the warning share of a quota."""


class Event(NamedTuple):
    """A persisted event: ``body`` is the serialised envelope, identical on every socket.

    Immutable like the frozen dataclasses elsewhere, but a tuple: one is made for every
    event published, and a frozen dataclass takes twice as long to build."""

    user_id: str
    seq: int
    type: EventType
    run_id: str | None
    body: str


def encode(
    *,
    type: EventType,
    event_id: str,
    thread_id: str | None,
    run_id: str | None,
    agent: str | None,
    data: dict[str, Any],
    at: datetime,
) -> NewEvent:
    """The envelope, encoded once, in two parts around the seq the event log gives it:
    ``{"type", "seq", "event_id", "thread_id", "run_id", "agent", "ts", "data"}``. Everything
    after the seq is one object encoded in one call (``netra.json_text``), its opening brace
    turned into the comma that follows the seq."""
    tail = dumps(
        {
            "event_id": event_id,
            "thread_id": thread_id,
            "run_id": run_id,
            "agent": agent,
            "ts": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": data,
        }
    )
    return NewEvent(
        event_id=event_id,
        type=type,
        thread_id=thread_id,
        head=_HEADS[type],
        tail=f",{tail[1:]}",
    )


_HEADS = {type: f'{{"type":"{type.value}","seq":' for type in EventType}
"""What comes before the seq, by type."""
