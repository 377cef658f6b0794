"""One run the client started: its events, as they come, until its ``agent_completed``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from netra.client.errors import ClientError
from netra.client.models import Event, Json


class Run:
    """A handle on a run: ``async for event in run`` yields each of its events once, in seq
    order, and stops after its ``agent_completed`` (or raises the ``ClientError`` that ended
    the client's connection for good). The events it has received are in ``events``."""

    def __init__(self, ack: Json) -> None:
        self.id: str = ack["run_id"]
        self.thread_id: str = ack["thread_id"]
        self.message_id: str = ack["message_id"]
        """The user message the run answers."""
        self.client_msg_id: str = ack["client_msg_id"]
        self.events: list[Event] = []
        self.last_seq = 0
        """The seq of the last event received (0 before the first)."""
        self._queue: asyncio.Queue[Event | ClientError] = asyncio.Queue()

    def __repr__(self) -> str:
        return f"<Run {self.id} events={len(self.events)} outcome={self.outcome}>"

    @property
    def done(self) -> bool:
        """Its ``agent_completed`` was received."""
        return bool(self.events) and self.events[-1].type == "agent_completed"

    @property
    def outcome(self) -> str | None:
        """``completed``, ``failed``, ``cancelled``, ``timed_out``, ``interrupted``; None while
        it runs."""
        return str(self.events[-1].data["outcome"]) if self.done else None

    @property
    def text(self) -> str:
        """The answer so far, as a reader shows it: the deltas, cut back to ``text_chars``
        wherever the run resumed a turn that was cut off (which it then streams again)."""
        text = ""
        for event in self.events:
            if event.type == "message_delta":
                text += event.data["delta"]
            elif event.type == "agent_thinking" and "resumed" in event.data:
                text = text[: event.data["resumed"]["text_chars"]]
        return text

    async def wait(self) -> Run:
        """Consume the rest of its events; itself, done."""
        async for _ in self:
            pass
        return self

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._queue.empty() and self.done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, ClientError):
            self._queue.put_nowait(item)  # every later call raises it too
            raise item
        return item

    def deliver(self, event: Event) -> None:
        """Take an event of this run (the stream already dropped any it delivered before)."""
        if event.seq <= self.last_seq or self.done:
            return
        self.last_seq = event.seq
        self.events.append(event)
        self._queue.put_nowait(event)

    def fail(self, error: ClientError) -> None:
        self._queue.put_nowait(error)
