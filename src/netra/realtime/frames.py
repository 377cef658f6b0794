"""The WebSocket frames, in one place: what a client may send (``ClientFrame``), what the
server sends besides events (``ServerFrame``), and what a refused frame is told (the ``error``
frame). Events are not frames of this module: they go out as the stored envelope of
``netra.events.envelope``, byte for byte.

Every server frame is a frozen model tagged by ``type`` and goes out through
``Outgoing.dumps``: compact JSON (``netra.json_text``), its keys in the order the model
declares them, an optional key (``resumed.reason``, ``error.retry_after``) only when it was
given."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from netra.db.records import Decision, RunStatus
from netra.errors import ANSWERED, RETRY_LATER, InvalidRequest
from netra.json_text import dumps
from netra.runs.answers import Ack as Acknowledgement
from netra.runs.answers import DecisionAnswer
from netra.text import Text

log = logging.getLogger(__name__)

_Id = Annotated[Text, Field(min_length=1, max_length=100)]
_Ref = Annotated[Text, Field(max_length=100)]
MAX_SEQ = 2**63 - 1
"""Seqs are 64-bit integers in the database: a larger resume point is refused, not queried."""


# ---- client → server -----------------------------------------------------------------------
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


class EditMessage(Frame):
    """A new version of a question of the thread: a new branch, answered by a new run."""

    type: Literal["edit_message"]
    thread_id: _Id
    message_id: _Id
    content: Annotated[Text, Field(min_length=1)]
    agent: _Id | None = None
    client_msg_id: _Id | None = None


class Regenerate(Frame):
    """A new answer to a question (``message_id``: the question, or an answer of it)."""

    type: Literal["regenerate"]
    thread_id: _Id
    message_id: _Id
    agent: _Id | None = None


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


FRAME_TYPES = frozenset(
    {
        "send_message",
        "edit_message",
        "regenerate",
        "cancel_run",
        "resume",
        "ping",
        "approve_tool",
    }
)
"""The ``type`` of every frame a client may send."""

ClientFrame = Annotated[
    SendMessage | EditMessage | Regenerate | CancelRun | Resume | Ping | ApproveTool,
    Field(discriminator="type"),
]
CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


# ---- server → client -----------------------------------------------------------------------
class Outgoing(BaseModel):
    """A frame the server sends. Every field but ``type`` and the optional keys is required;
    an optional key goes out when it was given (``exclude_unset``), so leave it out rather
    than pass None."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    type: str

    def dumps(self) -> str:
        """The frame's text, as every frame has been sent: compact, UTF-8 unescaped."""
        fields = self.model_dump(mode="json", exclude_unset=True, exclude={"type"})
        return dumps({"type": self.type, **fields})


class Connected(Outgoing):
    """The first frame on every socket."""

    type: Literal["connected"] = "connected"
    user_id: str
    last_seq: int
    """The user's newest event seq at connect time; live events with a larger seq follow."""


class Ack(Outgoing):
    """A ``send_message``, ``edit_message`` or ``regenerate`` was admitted: its message
    stored (none for a regeneration) and its run queued."""

    type: Literal["ack"] = "ack"
    client_msg_id: str | None
    message_id: str
    """The question the run answers."""
    thread_id: str
    run_id: str
    ref: str | None = None
    """The frame's ``ref`` (sent only when it had one)."""

    @classmethod
    def of(cls, ack: Acknowledgement, ref: str | None = None) -> Ack:
        fields = {"ref": ref} if ref is not None else {}
        return cls(
            client_msg_id=ack.client_msg_id,
            message_id=ack.message_id,
            thread_id=ack.thread_id,
            run_id=ack.run_id,
            **fields,
        )


ResumeFailure = Literal["expired", "future", "already_sent"]
"""Why a resume point was not recovered: older than the retained history, past the newest
event, or behind what the socket already sent."""


class Resumed(Outgoing):
    """The answer to a resume point (``?after_seq=`` or a ``resume`` frame)."""

    type: Literal["resumed"] = "resumed"
    after_seq: int
    last_seq: int
    recovered: bool
    """Every event after ``after_seq`` follows, in order; else reload over HTTP."""
    reason: ResumeFailure | None = None
    """Why it was not recovered (sent only then)."""


class CancelAccepted(Outgoing):
    """The answer to ``cancel_run``."""

    type: Literal["cancel_accepted"] = "cancel_accepted"
    ref: str | None
    run_id: str
    status: RunStatus
    """The run's status as the answer was written."""


class Pong(Outgoing):
    """The answer to ``ping``."""

    type: Literal["pong"] = "pong"


class ToolDecision(Outgoing):
    """The answer to ``approve_tool``: the answer that stands (the first one given)."""

    type: Literal["tool_decision"] = "tool_decision"
    ref: str | None
    run_id: str
    tool_call_id: str
    decision: Decision | None
    already_decided: bool

    @classmethod
    def of(cls, answer: DecisionAnswer, ref: str | None) -> ToolDecision:
        return cls(
            ref=ref,
            run_id=answer.run_id,
            tool_call_id=answer.tool_call_id,
            decision=answer.decision,
            already_decided=answer.already_decided,
        )


class ErrorFrame(Outgoing):
    """A frame could not be handled; the socket stays open."""

    type: Literal["error"] = "error"
    code: str
    message: str
    ref: str | None
    """The refused frame's ``ref`` (or ``client_msg_id``), when it had a valid one."""
    retry_after: int | None = None
    """Seconds to wait before trying again (refusals that say so only)."""


ServerFrame = Annotated[
    Connected | Ack | Resumed | CancelAccepted | Pong | ToolDecision | ErrorFrame,
    Field(discriminator="type"),
]
SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)
SERVER_FRAME_TYPES = frozenset(
    {"connected", "ack", "resumed", "cancel_accepted", "pong", "tool_decision", "error"}
)
"""The ``type`` of every frame the server sends besides events."""
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


def error_frame(exc: Exception, ref: str | None) -> ErrorFrame:
    """The ``error`` frame of a frame that failed: the client reads the message of an error
    meant for it (``ANSWERED``), and ``retry_after`` when it may try again
    (``RETRY_LATER``); any other error is logged and is ``internal_error``."""
    if isinstance(exc, RETRY_LATER):
        return ErrorFrame(code=exc.code, message=exc.message, ref=ref, retry_after=exc.retry_after)
    if isinstance(exc, ANSWERED):
        return ErrorFrame(code=exc.code, message=exc.message, ref=ref)
    log.error("unexpected error handling a frame", exc_info=exc)
    return ErrorFrame(code="internal_error", message="internal error", ref=ref)


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
