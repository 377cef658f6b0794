"""What earlier attempts of a run left in its event log, for the attempt that continues it.

A run continues after an approval, after its instance handed it back at shutdown, or after
another instance took it over from one that died. The new attempt continues the same event
stream, so it needs to know what the stream already holds: whether ``agent_started`` is out,
which tool calls were announced (``tool_executing``) and never completed, and how much of
the streamed answer text still stands — text of a model turn that was cut off mid-stream is
streamed again, so only the text before the last tool event stays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from netra.events.envelope import EventType

_TOOL_EVENTS = {
    EventType.TOOL_EXECUTING.value,
    EventType.TOOL_COMPLETED.value,
    EventType.APPROVAL_REQUIRED.value,
}


@dataclass(slots=True)
class RunLog:
    started: bool = False
    """``agent_started`` is in the log."""
    text: str = ""
    """Answer text of the model turns that finished (the rest is streamed again)."""
    streamed_chars: int = 0
    """All answer text in the log, finished turns or not."""
    open_tools: dict[str, str] = field(default_factory=dict)
    """Tool calls announced and not completed: id → tool."""

    @classmethod
    def read(cls, bodies: Iterable[str]) -> RunLog:
        log = cls()
        text: list[str] = []
        kept = 0
        for body in bodies:
            event = json.loads(body)
            kind, data = event["type"], event.get("data") or {}
            if kind == EventType.AGENT_STARTED.value:
                log.started = True
            elif kind == EventType.MESSAGE_DELTA.value:
                text.append(str(data.get("delta", "")))
            elif kind in _TOOL_EVENTS:
                kept = len(text)
                if kind == EventType.TOOL_EXECUTING.value:
                    log.open_tools[data["tool_call_id"]] = data["tool"]
                elif kind == EventType.TOOL_COMPLETED.value:
                    log.open_tools.pop(data["tool_call_id"], None)
        log.text = "".join(text[:kept])
        log.streamed_chars = sum(len(part) for part in text)
        return log


def interrupted() -> dict[str, str]:
    """The error of a run, or a tool call, cut off by its server stopping."""
    return {"code": "interrupted", "message": "the server stopped while the run was executing"}
