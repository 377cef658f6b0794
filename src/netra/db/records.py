"""Rows as frozen dataclasses: what repositories return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from netra.context import Membership


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class RunStatus(StrEnum):
    """Lifecycle of a run; the runs table is the queue."""

    QUEUED = "queued"
    """Stored, waiting for a worker (or for the user's concurrency slot)."""
    RUNNING = "running"
    """A worker is executing it."""
    REQUIRES_APPROVAL = "requires_approval"
    """Paused until the owning user approves or denies a tool call."""
    COMPLETED = "completed"
    """Finished with an answer."""
    FAILED = "failed"
    """Ended by an error in the model, a tool loop or the agent."""
    CANCELLED = "cancelled"
    """Stopped by the user."""
    TIMED_OUT = "timed_out"
    """Ran past its time budget."""
    INTERRUPTED = "interrupted"
    """Its worker died and it could not be resumed."""

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.TIMED_OUT,
        RunStatus.INTERRUPTED,
    }
)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    password_hash: str
    roles: tuple[str, ...]
    tier: str
    disabled: bool
    created_at: datetime
    limits: dict[str, Any] = field(default_factory=dict)
    """The user's own limit overrides, over the tier's."""
    org: Membership | None = None
    """The organisation the user belongs to, if any."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "roles": list(self.roles),
            "tier": self.tier,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as its owner and administrators see it: never its secret."""

    id: str
    user_id: str
    name: str
    prefix: str
    """The secret's first characters (``nk_…``), to tell keys apart."""
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    """None: the key never expires."""
    last_used_at: datetime | None
    """When it last authenticated, to the minute; None: never."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    id: str
    user_id: str
    title: str
    agent: str
    created_at: datetime
    updated_at: datetime
    pinned: bool = False
    archived: bool = False
    active_leaf: str | None = None
    """The last message of the branch shown and continued (None: no message yet)."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "agent": self.agent,
            "pinned": self.pinned,
            "archived": self.archived,
            "active_leaf": self.active_leaf,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str
    user_id: str
    thread_id: str
    run_id: str | None
    role: str
    content: str
    data: dict[str, Any] | None
    client_msg_id: str | None
    created_at: datetime
    parent_id: str | None = None
    """The message this one follows: a question the answer before it, an answer its
    question (None: the first of its thread, or an edit of that)."""
    turn: int = 0
    """The turn's number on the message's path, from 1."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "role": self.role,
            "content": self.content,
            "parent_id": self.parent_id,
            "turn": self.turn,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    user_id: str
    thread_id: str
    parent_run_id: str | None
    agent: str
    model: str
    status: RunStatus
    outcome: str | None
    error: dict[str, Any] | None
    usage: dict[str, Any] | None
    attempt: int
    message_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    owner: str | None = None
    """The instance holding the run (see ``tables.runs``)."""
    cancel_requested: dict[str, Any] | None = None
    """A cancel asked for on another instance, to be applied by the holder."""
    recoveries: int = 0
    """Times the run was taken over after its executor died."""
    resume_reason: str | None = None
    """Why its next attempt continues an earlier one: approval, takeover or handback."""
    question_id: str | None = None
    """The user message it answers (None: a child run, which is given its task)."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "parent_run_id": self.parent_run_id,
            "agent": self.agent,
            "model": self.model,
            "status": self.status.value,
            "outcome": self.outcome,
            "error": self.error,
            "usage": self.usage,
            "attempt": self.attempt,
            "message_id": self.message_id,
            "question_id": self.question_id,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class Decision(StrEnum):
    """The owning user's answer to a tool call that needs approval."""

    APPROVED = "approved"
    DENIED = "denied"

    @classmethod
    def of(cls, answer: str) -> Decision:
        """From the wire's ``approve`` / ``deny``."""
        return cls.APPROVED if answer == "approve" else cls.DENIED


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One row of the tool-call ledger."""

    run_id: str
    tool_call_id: str
    tool: str
    arguments: Any
    side_effects: str
    status: str
    """``running``, ``ok``, ``error`` or ``awaiting_approval``."""
    result: Any
    error: dict[str, Any] | None
    step: int
    decision: Decision | None
    attempt: int
    duration_ms: int | None

    @property
    def finished(self) -> bool:
        return self.status in ("ok", "error")


@dataclass(frozen=True, slots=True)
class TurnCall:
    """A tool call as its model turn asked for it, under the id the ledger keys it by."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One model turn of a run that asked for tools: a row of the run's checkpoint."""

    step: int
    attempt: int
    text: str
    """What the model said in the turn (streamed as ``message_delta``)."""
    tool_calls: tuple[TurnCall, ...]
    usage: dict[str, Any]
    """The turn's model usage: ``input_tokens``, ``output_tokens``, ``cost_usd``."""


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    """A thread's summary of its branch up to a message (see ``tables.summaries``)."""

    thread_id: str
    through_id: str
    """The last message it holds."""
    turn: int
    """That message's turn: the summary holds turns 1 to ``turn`` of the branch."""
    text: str
    run_id: str
    """The run whose model call wrote it, and was charged for it."""
    usage: dict[str, Any]
    """That call's ``input_tokens``, ``output_tokens`` and ``cost_usd``."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event of the user's log as stored: its envelope's text and what a reader sorts
    and filters it by without parsing it."""

    seq: int
    type: str
    run_id: str | None
    body: str
    """The envelope's JSON text, byte for byte what every connection sends."""
