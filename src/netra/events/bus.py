"""The event bus: wakes up whoever holds a user's sockets when that user's events are stored.

The bus carries stored events only; it may lose messages (a socket fills any gap from the
event log), so it needs no persistence of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from netra.events.envelope import Event

Handler = Callable[[Sequence[Event]], None]
"""Receives one user's events in seq order; must not block."""


class EventBus(Protocol):
    async def publish(self, user_id: str, events: Sequence[Event]) -> None:
        """Deliver stored events of one user to every subscriber of that user."""
        ...

    def subscribe(self, user_id: str, handler: Handler) -> Callable[[], None]:
        """Receive a user's events; returns the function that unsubscribes."""
        ...


class InProcessBus:
    """The embedded bus: a dictionary of handlers, called synchronously."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    async def publish(self, user_id: str, events: Sequence[Event]) -> None:
        for handler in tuple(self._handlers.get(user_id, ())):
            handler(events)

    def subscribe(self, user_id: str, handler: Handler) -> Callable[[], None]:
        self._handlers.setdefault(user_id, []).append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers.get(user_id)
            if handlers and handler in handlers:
                handlers.remove(handler)
                if not handlers:
                    del self._handlers[user_id]

        return unsubscribe

    def subscribers(self, user_id: str) -> int:
        return len(self._handlers.get(user_id, ()))
