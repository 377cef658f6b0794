"""The one event envelope, and the event types."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any

from netra.db.event_log import NewEvent
from netra.db.sql import TxFactory

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


@dataclass(frozen=True, slots=True)
class Event:
    """A persisted event: ``body`` is the serialised envelope, identical on every socket."""

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
    ``{"type", "seq", "event_id", "thread_id", "run_id", "agent", "ts", "data"}``. Only
    ``data`` goes through the JSON encoder; the envelope's own fields are strings, each
    quoted on its own (an encoder made for every event cost more than the rest of it)."""
    ts = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    tail = (
        f',"event_id":{_string(event_id)},"thread_id":{_string(thread_id)}'
        f',"run_id":{_string(run_id)},"agent":{_string(agent)},"ts":"{ts}"'
        f',"data":{_DATA.encode(data)}}}'
    )
    return NewEvent(
        event_id=event_id,
        type=type.value,
        thread_id=thread_id,
        head=f'{{"type":"{type.value}","seq":',
        tail=tail,
    )


_DATA = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Compact, UTF-8 as is: the encoding of every envelope's ``data`` (stateless)."""


def _string(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)
