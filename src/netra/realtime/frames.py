"""Client → server WebSocket frames, in one place. Server → client frames are built in
``connection.py``; events use the envelope from ``netra.events.envelope``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from netra.text import Text

_Id = Annotated[Text, Field(min_length=1, max_length=100)]
MAX_SEQ = 2**63 - 1
"""Seqs are 64-bit integers in the database: a larger resume point is refused, not queried."""


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ref: Annotated[Text, Field(max_length=100)] | None = None
    """Client-chosen reference echoed in an error frame."""


class SendMessage(Frame):
    type: Literal["send_message"]
    content: Annotated[Text, Field(min_length=1)]
    thread_id: _Id | None = None
    agent: _Id | None = None
    client_msg_id: _Id | None = None


class CancelRun(Frame):
    type: Literal["cancel_run"]
    run_id: _Id


class Resume(Frame):
    type: Literal["resume"]
    after_seq: Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)]


class Ping(Frame):
    type: Literal["ping"]


class ApproveTool(Frame):
    type: Literal["approve_tool"]
    run_id: _Id
    tool_call_id: _Id
    decision: Literal["approve", "deny"]


FRAME_TYPES = frozenset({"send_message", "cancel_run", "resume", "ping", "approve_tool"})
"""The ``type`` of every frame a client may send."""

ClientFrame = Annotated[
    SendMessage | CancelRun | Resume | Ping | ApproveTool, Field(discriminator="type")
]
CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def json_depth(value: object) -> int:
    """Nesting depth of parsed JSON: a scalar is 0, ``[]`` and ``{}`` are 1."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
            deepest = max(deepest, depth + 1)
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
            deepest = max(deepest, depth + 1)
    return deepest
