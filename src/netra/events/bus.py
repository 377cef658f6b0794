"""The event bus: wakes up whoever holds a user's sockets when that user's events are stored.

The bus carries stored events only; it may lose messages (a socket fills any gap from the
event log), so it needs no persistence of its own. A bus that knows it may have lost some —
the Redis bus after a reconnect — tells the subscribers through their ``resync`` callback,
and they read the event log past what they have.

Besides events, the bus carries *notices* between instances: hints that something changed
in the runs table (a run was queued for the executors, a cancel was asked for) or in the
sessions (one was revoked, an account's rights changed). Notices may be lost too; every
instance also finds the same facts at its next heartbeat, or when it next reads the session.

Two implementations: ``InProcessBus`` (one process, the embedded default) and
``netra.events.redis_bus.RedisBus`` (several instances sharing one Redis).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from netra.events.envelope import Event

Handler = Callable[[Sequence[Event]], None]
"""Receives one user's events in seq order; must not block."""
Resync = Callable[[], None]
"""Told that deliveries to this subscriber may have been lost; must not block."""


NoticeKind = Literal["queued", "cancel", "revoked", "account"]
NOTICE_KINDS: frozenset[str] = frozenset(("queued", "cancel", "revoked", "account"))


@dataclass(frozen=True, slots=True)
class Notice:
    """A hint to the other instances about the runs table or the sessions."""

    kind: NoticeKind
    """``queued``: a run waits for an executor; ``cancel``: its user cancelled it;
    ``revoked``: a session of the user (``session_id``; None: every session) ended;
    ``account``: the user's roles or tier changed."""
    user_id: str | None
    run_id: str | None
    session_id: str | None = None
    """For ``revoked``: the session that ended, or None for all of the user's."""


NoticeHandler = Callable[[Notice], None]
"""Receives notices from every instance, this one included; must not block."""


@dataclass(frozen=True, slots=True)
class BusHealth:
    """What ``/ready`` reports about the bus."""

    healthy: bool
    backend: str
    """``in-process`` or ``redis``."""
    reason: str | None = None
    """Why it is unhealthy, when it is."""
    counters: Mapping[str, int] = field(default_factory=dict)
    """Backend-specific counts (published, failures, reconnects …)."""


class EventBus(Protocol):
    async def start(self) -> None:
        """Open connections and start background tasks; called once, before any publish."""
        ...

    async def stop(self) -> None:
        """Deliver what is pending if possible, then release every resource."""
        ...

    async def publish(self, user_id: str, events: Sequence[Event]) -> None:
        """Deliver stored events of one user to every subscriber of that user.

        Never raises because of the transport: the bus may lose messages.
        """
        ...

    def subscribe(
        self, user_id: str, handler: Handler, *, resync: Resync | None = None
    ) -> Callable[[], None]:
        """Receive a user's events; returns the function that unsubscribes."""
        ...

    async def notify(self, notice: Notice) -> None:
        """Send a notice to every instance; never raises because of the transport."""
        ...

    def on_notice(self, handler: NoticeHandler) -> None:
        """Receive every notice from now on."""
        ...

    def health(self) -> BusHealth:
        """The bus's current state, without any I/O."""
        ...


@dataclass(eq=False, slots=True)
class _Subscription:
    handler: Handler
    resync: Resync | None


class InProcessBus:
    """The embedded bus: a dictionary of subscribers, called synchronously.

    ``RedisBus`` uses one too, for the subscribers inside its own process.
    """

    def __init__(self) -> None:
        self._subscriptions: dict[str, list[_Subscription]] = {}
        self._notice_handlers: list[NoticeHandler] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, user_id: str, events: Sequence[Event]) -> None:
        self.deliver(user_id, events)

    def deliver(self, user_id: str, events: Sequence[Event]) -> None:
        """Hand events to every subscriber of the user, now."""
        for subscription in tuple(self._subscriptions.get(user_id, ())):
            subscription.handler(events)

    def resync(self, user_id: str) -> None:
        """Tell every subscriber of the user that deliveries may have been lost."""
        for subscription in tuple(self._subscriptions.get(user_id, ())):
            if subscription.resync is not None:
                subscription.resync()

    def subscribe(
        self, user_id: str, handler: Handler, *, resync: Resync | None = None
    ) -> Callable[[], None]:
        subscription = _Subscription(handler, resync)
        self._subscriptions.setdefault(user_id, []).append(subscription)

        def unsubscribe() -> None:
            held = self._subscriptions.get(user_id)
            if held and subscription in held:
                held.remove(subscription)
                if not held:
                    del self._subscriptions[user_id]

        return unsubscribe

    async def notify(self, notice: Notice) -> None:
        self.announce(notice)

    def announce(self, notice: Notice) -> None:
        """Hand a notice to every handler in this process, now."""
        for handler in tuple(self._notice_handlers):
            handler(notice)

    def on_notice(self, handler: NoticeHandler) -> None:
        self._notice_handlers.append(handler)

    def subscribers(self, user_id: str) -> int:
        return len(self._subscriptions.get(user_id, ()))

    def health(self) -> BusHealth:
        return BusHealth(True, "in-process")
