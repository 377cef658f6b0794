"""Client → server WebSocket frames, in one place, and what a refused one is told: the
``error`` frame. Other server → client frames are built in ``connection.py``; events use the
envelope from ``netra.events.envelope``."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from netra.errors import ANSWERED, RETRY_LATER, InvalidRequest
from netra.text import Text

log = logging.getLogger(__name__)

_Id = Annotated[Text, Field(min_length=1, max_length=100)]
_Ref = Annotated[Text, Field(max_length=100)]
MAX_SEQ = 2**63 - 1
"""Seqs are 64-bit integers in the database: a larger resume point is refused, not queried."""


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ref: _Ref | None = None
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
_REF: TypeAdapter[str] = TypeAdapter(_Ref)
SHOWN_CHARS = 40
"""Most characters of a client's value an error message shows."""
SHOWN_ERRORS = 5
"""Most problems of one frame an error message lists."""


def ref_of(raw: object) -> str | None:
    """The ``ref`` of a parsed frame that failed validation, to echo in its error frame: only
    a valid one (as ``Frame.ref``), so nothing the server would refuse to store goes back."""
    if not isinstance(raw, dict):
        return None
    try:
        return _REF.validate_python(raw.get("ref"))
    except ValidationError:
        return None


def error_frame(exc: Exception, ref: str | None) -> dict[str, Any]:
    """``{"type": "error", "code", "message", "ref"}`` for a frame that failed: the client
    reads the message of an error meant for it (``ANSWERED``), and ``retry_after`` when it
    may try again (``RETRY_LATER``); any other error is logged and is ``internal_error``."""
    if isinstance(exc, ANSWERED):
        frame: dict[str, Any] = {
            "type": "error",
            "code": exc.code,
            "message": exc.message,
            "ref": ref,
        }
        if isinstance(exc, RETRY_LATER):
            frame["retry_after"] = exc.retry_after
        return frame
    log.error("unexpected error handling a frame", exc_info=exc)
    return {"type": "error", "code": "internal_error", "message": "internal error", "ref": ref}


def refusal(raw: object, exc: ValidationError) -> InvalidRequest:
    """What a client is told about a parsed frame that failed validation. The message quotes
    the client's own names only cut short and escaped (``_shown``), and lists a few problems,
    so it stays short and sendable whatever the frame held."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(kind, str) or kind not in FRAME_TYPES:
        return InvalidRequest(f"unknown frame type {_shown(kind)}", code="unknown_frame")
    errors = exc.errors()
    problems = [
        f"{'.'.join(_field(p) for p in e['loc'][1:]) or kind}: {e['msg']}"
        for e in errors[:SHOWN_ERRORS]
    ]
    if len(errors) > SHOWN_ERRORS:
        problems.append(f"and {len(errors) - SHOWN_ERRORS} more")
    return InvalidRequest(f"invalid {kind} frame: {'; '.join(problems)}", code="invalid_frame")


def _field(name: str | int) -> str:
    """A field name as a message shows it: a short identifier as it is, else ``_shown``."""
    plain = isinstance(name, str) and name.isascii() and name.isidentifier()
    return str(name) if plain and len(str(name)) <= SHOWN_CHARS else _shown(name)


def _shown(value: object) -> str:
    """A client's value as a message shows it: its ``repr`` (quoted; NUL, lone surrogates and
    other unprintable characters escaped), cut at ``SHOWN_CHARS``."""
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{value[:SHOWN_CHARS]!r}…"
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}…"


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
