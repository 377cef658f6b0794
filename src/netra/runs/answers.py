"""What RunService answers its callers — the ack of an admitted message, the answer to an
approval — and the earlier turns a caller may hand it with a new thread's first message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from netra.db.records import Decision

Acked = Callable[["Ack"], None]
"""Told the ack of an admitted message before its events are published."""


@dataclass(frozen=True, slots=True)
class Ack:
    """What the client learns when its message is stored."""

    client_msg_id: str | None
    message_id: str
    thread_id: str
    run_id: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "client_msg_id": self.client_msg_id,
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class DecisionAnswer:
    """What the client learns when it answers a tool call awaiting approval."""

    run_id: str
    tool_call_id: str
    decision: Decision | None
    """The answer that stands: the first one given."""
    already_decided: bool
    """An earlier answer stood already; this one changed nothing."""

    def as_dict(self) -> dict[str, str | bool | None]:
        return {
            "run_id": self.run_id,
            "tool_call_id": self.tool_call_id,
            "decision": self.decision.value if self.decision else None,
            "already_decided": self.already_decided,
        }


@dataclass(frozen=True, slots=True)
class Turn:
    """A message of a conversation so far, stored before a new thread's first question."""

    role: Literal["user", "assistant"]
    content: str
