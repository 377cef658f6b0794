"""What each event's ``data`` holds: one frozen dataclass per event type, the only way an
event's payload is built (``AgentWebSocketBridge.emit`` takes one). ``as_data`` gives the
payload exactly as the wire carries it (docs/protocol.md); a field marked optional there is
left out when it is not given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from netra.errors import RunError
from netra.events.envelope import EventType


@dataclass(frozen=True, slots=True)
class AgentStarted:
    TYPE: ClassVar[EventType] = EventType.AGENT_STARTED
    model: str
    attempt: int
    parent_run_id: str | None = None
    """For a sub-agent's run: the run that delegated to it."""

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"model": self.model, "attempt": self.attempt}
        if self.parent_run_id is not None:
            data["parent_run_id"] = self.parent_run_id
        return data


@dataclass(frozen=True, slots=True)
class Resumed:
    """Where a run continues an earlier attempt."""

    reason: str
    """``approval``, ``handback`` or ``takeover``."""
    attempt: int
    text_chars: int
    """How much of the run's streamed text stands: the rest is streamed again."""

    def as_data(self) -> dict[str, Any]:
        return {"reason": self.reason, "attempt": self.attempt, "text_chars": self.text_chars}


@dataclass(frozen=True, slots=True)
class AgentThinking:
    TYPE: ClassVar[EventType] = EventType.AGENT_THINKING
    text: str
    failover: Mapping[str, Any] | None = None
    """When the run switched model: from which, to which, why."""
    resumed: Resumed | None = None
    context: Mapping[str, Any] | None = None
    """Before a model call: what of the conversation it is sent (``ContextReport``)."""

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text": self.text}
        if self.failover is not None:
            data["failover"] = dict(self.failover)
        if self.resumed is not None:
            data["resumed"] = self.resumed.as_data()
        if self.context is not None:
            data["context"] = dict(self.context)
        return data


@dataclass(frozen=True, slots=True)
class MessageDelta:
    TYPE: ClassVar[EventType] = EventType.MESSAGE_DELTA
    message_id: str
    delta: str

    def as_data(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "delta": self.delta}


@dataclass(frozen=True, slots=True)
class ToolExecuting:
    TYPE: ClassVar[EventType] = EventType.TOOL_EXECUTING
    tool_call_id: str
    tool: str
    arguments: Any

    def as_data(self) -> dict[str, Any]:
        return {"tool_call_id": self.tool_call_id, "tool": self.tool, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class ToolCompleted:
    TYPE: ClassVar[EventType] = EventType.TOOL_COMPLETED
    tool_call_id: str
    tool: str
    result: Any
    error: RunError | None
    duration_ms: int

    def as_data(self) -> dict[str, Any]:
        return {
            "tool_call_id": self.tool_call_id,
            "tool": self.tool,
            "status": "error" if self.error else "ok",
            "result": self.result,
            "error": self.error.as_dict() if self.error else None,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class ApprovalRequired:
    TYPE: ClassVar[EventType] = EventType.APPROVAL_REQUIRED
    tool_call_id: str
    tool: str
    arguments: Any
    side_effects: str

    def as_data(self) -> dict[str, Any]:
        return {
            "tool_call_id": self.tool_call_id,
            "tool": self.tool,
            "arguments": self.arguments,
            "side_effects": self.side_effects,
        }


@dataclass(frozen=True, slots=True)
class AgentCompleted:
    TYPE: ClassVar[EventType] = EventType.AGENT_COMPLETED
    outcome: str
    usage: Mapping[str, Any]
    message_id: str | None
    """The answer's message; None when the run wrote no text."""
    error: RunError | None = None

    def as_data(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "usage": dict(self.usage),
            "message_id": self.message_id,
            "error": self.error.as_dict() if self.error else None,
        }


@dataclass(frozen=True, slots=True)
class MessageCreated:
    TYPE: ClassVar[EventType] = EventType.MESSAGE_CREATED
    message: Mapping[str, Any]
    """The stored message, as ``GET /threads/{id}/messages`` lists it."""

    def as_data(self) -> dict[str, Any]:
        return {"message": dict(self.message)}


@dataclass(frozen=True, slots=True)
class ThreadUpdated:
    TYPE: ClassVar[EventType] = EventType.THREAD_UPDATED
    thread: Mapping[str, Any]
    """The thread, as ``GET /threads/{id}`` answers it."""

    def as_data(self) -> dict[str, Any]:
        return {"thread": dict(self.thread)}


@dataclass(frozen=True, slots=True)
class ThreadDeleted:
    TYPE: ClassVar[EventType] = EventType.THREAD_DELETED
    thread_id: str

    def as_data(self) -> dict[str, Any]:
        return {"thread_id": self.thread_id}


@dataclass(frozen=True, slots=True)
class RunQueued:
    TYPE: ClassVar[EventType] = EventType.RUN_QUEUED
    run_id: str
    waiting_for: int
    """How many of the user's runs must end before it starts."""
    server_busy: bool
    """Waiting for the instance's own room (``limits.max_executing_runs``) too."""

    def as_data(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "waiting_for": self.waiting_for,
            "server_busy": self.server_busy,
        }


@dataclass(frozen=True, slots=True)
class QuotaWarning:
    TYPE: ClassVar[EventType] = EventType.QUOTA_WARNING
    quota: str
    used: int | float
    limit: int | float

    def as_data(self) -> dict[str, Any]:
        return {"quota": self.quota, "used": self.used, "limit": self.limit}


Payload = (
    AgentStarted
    | AgentThinking
    | MessageDelta
    | ToolExecuting
    | ToolCompleted
    | ApprovalRequired
    | AgentCompleted
    | MessageCreated
    | ThreadUpdated
    | ThreadDeleted
    | RunQueued
    | QuotaWarning
)
"""Every payload an event may carry."""
