"""What the server sends, as the client hands it on: events, threads, messages, tokens.
Frozen dataclasses read from the JSON of the wire protocol (docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
"""A JSON object as the server sent it: an event's ``data`` is open JSON."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the user's stream (the envelope of docs/protocol.md)."""

    type: str
    """``agent_started``, ``message_delta``, ``tool_executing``… ``agent_completed``."""
    seq: int
    """The user's stream position: strictly increasing over all threads and runs."""
    thread_id: str | None
    run_id: str | None
    data: Json
    """The payload, as the protocol describes it for ``type``."""

    @classmethod
    def from_json(cls, raw: Json) -> Event:
        return cls(raw["type"], raw["seq"], raw.get("thread_id"), raw.get("run_id"), raw["data"])


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation of the user's."""

    id: str
    title: str
    agent: str
    pinned: bool
    archived: bool
    created_at: str
    updated_at: str

    @classmethod
    def from_json(cls, raw: Json) -> Thread:
        return cls(
            raw["id"],
            raw["title"],
            raw["agent"],
            raw["pinned"],
            raw["archived"],
            raw["created_at"],
            raw["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A turn of a thread's branch: a user's question or an assistant's answer."""

    id: str
    thread_id: str
    run_id: str | None
    role: str
    """``user`` or ``assistant``."""
    content: str
    created_at: str

    @classmethod
    def from_json(cls, raw: Json) -> Message:
        return cls(
            raw["id"],
            raw["thread_id"],
            raw.get("run_id"),
            raw["role"],
            raw["content"],
            raw["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Tokens:
    """A signed-in session's credentials, as ``POST /auth/login`` and ``/auth/refresh``
    answer them."""

    access_token: str
    refresh_token: str | None

    @classmethod
    def from_json(cls, raw: Json) -> Tokens:
        return cls(raw["access_token"], raw.get("refresh_token"))
