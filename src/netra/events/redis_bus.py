"""RedisBus: the event bus of several Netra instances sharing one Redis (pub/sub).

Any instance may hold any user's sockets and any instance may execute that user's runs, so
stored events travel between instances on one channel per user (``netra.events.redis_wire``).

Subscriptions. An instance subscribes to a user's channel while it holds at least one
subscriber (socket) of that user, and unsubscribes when the last one goes. One pub/sub
connection per instance carries every subscription; a reader task reads it and a control
task sends ``SUBSCRIBE``/``UNSUBSCRIBE`` as the set of wanted users changes and pings the
connection when idle. A ping left unanswered, or any error, replaces the connection.

Publishing. ``publish`` hands the events to this instance's own subscribers at once, then
queues them in an outbox; a publisher task sends the outbox per tick, one message per user,
all in one pipeline. Redis being slow or down never fails or stalls a run: a failed
publish is logged and counted, and the newest event of each user it carried is kept and
republished (with backoff) until Redis answers. One event is enough, because a socket that
sees a seq past its cursor reads the gap from the event log.

Catching up. The bus may lose messages; these are the ways nothing stays lost:

- a socket that sees a seq gap reads the missing events from the event log (``Connection``);
- whenever Redis confirms a subscription — the first socket of a user, and every channel
  again after a reconnect — that user's subscribers are told to ``resync``: they read the
  event log past their cursor. Events stored before the subscription took effect are in
  the log (persist, then publish); events stored after it arrive on the channel;
- a publish that failed is retried with the newest event per user, as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from netra.config import mask_url
from netra.errors import ConfigurationError
from netra.events.bus import BusHealth, Handler, InProcessBus, Notice, NoticeHandler, Resync
from netra.events.envelope import Event
from netra.events.redis_wire import (
    BusMessage,
    MalformedMessage,
    UserChannels,
    decode_notice,
    encode_notice,
)
from netra.ids import new_id
from netra.settings import RedisSettings

log = logging.getLogger(__name__)
FIRST_BACKOFF_S = 0.05
"""First pause after a failed connect or publish; it doubles up to ``reconnect_max_s``."""
_PING = b"netra-bus-ping"
_TRANSPORT_ERRORS = (RedisError, OSError, TimeoutError)


class LinkState(StrEnum):
    """The state of the pub/sub connection."""

    STOPPED = "stopped"
    """Not started yet, or stopped."""
    CONNECTING = "connecting"
    """Connecting, or waiting to reconnect after the connection was lost or refused."""
    CONNECTED = "connected"
    """Connected; every wanted channel is subscribed or being subscribed."""


def describe(exc: BaseException) -> str:
    """A one-line reason for logs and ``/ready`` (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RedisBus:
    """Process-wide: this instance's subscribers, its pub/sub connection and its outbox."""

    def __init__(self, settings: RedisSettings) -> None:
        if not settings.url:
            raise ConfigurationError("redis.url must be set to use the Redis event bus")
        self.instance_id = new_id("bus")
        self._url = settings.url
        self._settings = settings
        self._timeout = settings.timeout_s
        self.channels = UserChannels(settings.channel_prefix)
        """The channel names this bus publishes and subscribes on."""
        self._local = InProcessBus()
        self._wanted: set[str] = set()
        """Users with at least one subscriber here: the channels that should be subscribed."""
        self._subscribed: set[str] = set()
        """Users whose SUBSCRIBE was sent on the current pub/sub connection."""
        self._notices_subscribed = False
        """Whether the notice channel is subscribed on the current pub/sub connection."""
        self._changed = asyncio.Event()
        self._outbox: deque[tuple[str, Sequence[Event]]] = deque()
        self._outbox_events = 0
        self._outbox_ready = asyncio.Event()
        self._unpublished: dict[str, Event] = {}
        """Newest event of each user whose publish failed or was dropped, until republished."""
        self._state = LinkState.STOPPED
        self._link_error: str | None = "not started"
        self._publish_error: str | None = None
        self._heard = 0.0
        self._publisher: Redis | None = None
        self._listener: Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "published",
                "publish_failures",
                "dropped",
                "received",
                "malformed",
                "connects",
                "resyncs",
                "notices",
            ),
            0,
        )

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        common: dict[str, Any] = {
            "socket_connect_timeout": self._timeout,
            "socket_timeout": self._timeout,
            "socket_keepalive": True,
        }
        # Publishing: pooled connections, pinged before reuse when idle, one quick retry
        # on a fresh connection (a pooled one may be dead after a Redis restart).
        self._publisher = Redis.from_url(
            self._url,
            health_check_interval=self._settings.health_check_interval_s,
            retry=Retry(ExponentialBackoff(cap=self._timeout, base=FIRST_BACKOFF_S), 1),
            **common,
        )
        # Listening: no silent reconnects inside redis-py; the listen loop replaces the
        # connection itself, so that it knows when to resubscribe and resync.
        self._listener = Redis.from_url(
            self._url, health_check_interval=0, retry=Retry(NoBackoff(), 0), **common
        )
        self._state = LinkState.CONNECTING
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-bus-listen"),
            asyncio.create_task(self._publish_loop(), name="redis-bus-publish"),
        ]
        log.info("event bus: redis at %s as %s", mask_url(self._url), self.instance_id)

    async def stop(self) -> None:
        """Stop listening, publish what is still queued (within the timeout), disconnect."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._publisher is not None and (self._outbox or self._unpublished):
            try:
                await self._flush(self._publisher)
            except _TRANSPORT_ERRORS as exc:
                log.warning("events left unpublished at shutdown: %s", describe(exc))
        for client in (self._publisher, self._listener):
            if client is not None:
                with contextlib.suppress(*_TRANSPORT_ERRORS):
                    async with asyncio.timeout(self._timeout):
                        await client.aclose()
        self._publisher = self._listener = None
        self._state = LinkState.STOPPED
        self._link_error = "stopped"

    # ---- the EventBus protocol ----------------------------------------------------------
    async def publish(self, user_id: str, events: Sequence[Event]) -> None:
        """Deliver to this instance's subscribers now; queue for the others."""
        self._local.deliver(user_id, events)
        if not events:
            return
        if self._outbox_events + len(events) > self._settings.outbox_max:
            self.counters["dropped"] += len(events)
            self._remember(user_id, events[-1])
            return
        self._outbox.append((user_id, events))
        self._outbox_events += len(events)
        self._outbox_ready.set()

    def subscribe(
        self, user_id: str, handler: Handler, *, resync: Resync | None = None
    ) -> Callable[[], None]:
        unsubscribe_here = self._local.subscribe(user_id, handler, resync=resync)
        if user_id not in self._wanted:
            self._wanted.add(user_id)
            self._changed.set()

        def unsubscribe() -> None:
            unsubscribe_here()
            if not self._local.subscribers(user_id) and user_id in self._wanted:
                self._wanted.discard(user_id)
                self._changed.set()

        return unsubscribe

    async def notify(self, notice: Notice) -> None:
        """Publish at once (notices are rare and small); lost when Redis is down."""
        self._local.announce(notice)
        if self._publisher is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._publisher.publish(
                    self.channels.notices, encode_notice(self.instance_id, notice)
                )
        except _TRANSPORT_ERRORS as exc:
            self.counters["publish_failures"] += 1
            log.warning("a %s notice was not published: %s", notice.kind, describe(exc))

    def on_notice(self, handler: NoticeHandler) -> None:
        self._local.on_notice(handler)

    def health(self) -> BusHealth:
        problems = []
        if self._state is not LinkState.CONNECTED:
            problems.append(f"pub/sub {self._state.value}: {self._link_error}")
        if self._publish_error is not None:
            problems.append(f"publish failing: {self._publish_error}")
        return BusHealth(
            healthy=not problems,
            backend="redis",
            reason="; ".join(problems) or None,
            counters={
                **self.counters,
                "subscriptions": len(self._subscribed),
                "outbox": self._outbox_events,
                "unpublished_users": len(self._unpublished),
            },
        )

    @property
    def state(self) -> LinkState:
        return self._state

    # ---- listening ----------------------------------------------------------------------
    async def _listen(self) -> None:
        """Keep one pub/sub connection up: connect, subscribe, read; on failure, again."""
        assert self._listener is not None
        delay = FIRST_BACKOFF_S
        while True:
            connected = False
            pubsub = self._listener.pubsub()
            try:
                async with asyncio.timeout(self._timeout):
                    await pubsub.connect()  # type: ignore[no-untyped-call]  # untyped upstream
                connected = True
                self._subscribed.clear()
                self._notices_subscribed = False
                self._heard = asyncio.get_running_loop().time()
                self._state, self._link_error = LinkState.CONNECTED, None
                self.counters["connects"] += 1
                if self.counters["connects"] > 1:
                    log.info("redis pub/sub reconnected; resubscribing %d users", len(self._wanted))
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._read(pubsub))
                    group.create_task(self._control(pubsub))
            except Exception as exc:  # any failure: drop the connection, back off, reconnect
                self._state, self._link_error = LinkState.CONNECTING, describe(exc)
                if connected:
                    delay = FIRST_BACKOFF_S
                log.warning(
                    "redis pub/sub connection %s (%s); reconnecting in %.2f s",
                    "lost" if connected else "failed",
                    self._link_error,
                    delay,
                )
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._timeout):
                        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed in newer redis
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.reconnect_max_s)

    async def _read(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Blocks until something arrives; the control task's pings bound the silence.
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                self._heard = loop.time()
                self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in ("message", "subscribe"):
            return  # pong, unsubscribe
        raw = message["channel"]
        channel = raw.decode() if isinstance(raw, bytes) else str(raw)
        if channel == self.channels.notices:
            if kind == "message":
                self._on_notice(message["data"])
            return
        user_id = self.channels.user(channel)
        if user_id is None:
            return
        if kind == "subscribe":
            # Live from here on; what was stored before is in the event log.
            if user_id in self._wanted:
                self.counters["resyncs"] += 1
                self._local.resync(user_id)
            return
        try:
            decoded = BusMessage.decode(user_id, message["data"])
        except MalformedMessage as exc:
            self.counters["malformed"] += 1
            log.warning("ignored a malformed message on %s: %s", channel, exc)
            return
        if decoded.origin != self.instance_id:  # our own were delivered when published
            self.counters["received"] += 1
            self._local.deliver(user_id, decoded.events)

    def _on_notice(self, data: bytes | str) -> None:
        try:
            origin, notice = decode_notice(data)
        except MalformedMessage:
            self.counters["malformed"] += 1
            return
        if origin != self.instance_id:  # ours were handled here when sent
            self.counters["notices"] += 1
            self._local.announce(notice)

    async def _control(self, pubsub: PubSub) -> None:
        """Subscribe and unsubscribe as wanted users change; ping when the line is idle."""
        loop = asyncio.get_running_loop()
        interval = self._settings.health_check_interval_s
        pinged_at: float | None = None
        next_ping = loop.time() + interval
        while True:
            self._changed.clear()
            join = sorted(self._wanted - self._subscribed)
            leave = sorted(self._subscribed - self._wanted)
            async with asyncio.timeout(self._timeout):
                if not self._notices_subscribed:
                    await pubsub.subscribe(self.channels.notices)
                    self._notices_subscribed = True
                if join:
                    await pubsub.subscribe(*(self.channels.of(user) for user in join))
                if leave:
                    await pubsub.unsubscribe(*(self.channels.of(user) for user in leave))
            self._subscribed.update(join)
            self._subscribed.difference_update(leave)
            now = loop.time()
            if now >= next_ping:
                if pinged_at is not None and self._heard < pinged_at:
                    raise RedisConnectionError(f"no pong within {interval} s")
                pinged_at, next_ping = now, now + interval
                async with asyncio.timeout(self._timeout):
                    await pubsub.ping(_PING)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_ping - loop.time()):
                    await self._changed.wait()

    # ---- publishing ---------------------------------------------------------------------
    def _remember(self, user_id: str, event: Event) -> None:
        kept = self._unpublished.get(user_id)
        if kept is None or kept.seq < event.seq:
            self._unpublished[user_id] = event

    async def _publish_loop(self) -> None:
        assert self._publisher is not None
        delay = FIRST_BACKOFF_S
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            try:
                await self._flush(self._publisher)
            except _TRANSPORT_ERRORS as exc:
                self.counters["publish_failures"] += 1
                self._publish_error = describe(exc)
                log.warning(
                    "publishing to redis failed (%s); newest events of %d users kept, "
                    "retrying in %.2f s",
                    self._publish_error,
                    len(self._unpublished),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.reconnect_max_s)
                self._outbox_ready.set()
                continue
            if self._publish_error is not None:
                log.info("publishing to redis works again")
            self._publish_error = None
            delay = FIRST_BACKOFF_S

    async def _flush(self, client: Redis) -> None:
        """Publish the outbox — one message per user — plus the events kept from failures.

        On failure, the newest event of each user in this attempt is kept for the next.
        """
        by_user: dict[str, list[Event]] = {}
        while self._outbox:
            user_id, events = self._outbox.popleft()
            by_user.setdefault(user_id, []).extend(events)
        self._outbox_events = 0
        for user_id, event in self._unpublished.items():
            # A newer event makes the kept one redundant: the receiver fills the gap.
            by_user.setdefault(user_id, [event])
        self._unpublished = {}
        if not by_user:
            return
        try:
            async with asyncio.timeout(self._timeout):
                async with client.pipeline(transaction=False) as pipe:
                    for user_id, events in by_user.items():
                        message = BusMessage(self.instance_id, events)
                        pipe.publish(self.channels.of(user_id), message.encode())
                    await pipe.execute()
        except BaseException:
            for user_id, events in by_user.items():
                self._remember(user_id, events[-1])
            raise
        self.counters["published"] += len(by_user)
