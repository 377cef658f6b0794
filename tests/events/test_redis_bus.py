"""RedisBus against a real Redis: channels per user, ordered delivery across buses, resync,
and publishing that never fails while Redis is away."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio

from netra.events.bus import Notice
from netra.events.envelope import Event, EventType, encode
from netra.events.redis_bus import LinkState, RedisBus
from netra.events.redis_wire import (
    BusMessage,
    MalformedMessage,
    UserChannels,
    decode_notice,
    encode_notice,
)
from netra.settings import RedisSettings, Settings
from tests.redis_process import free_port
from tests.support import eventually

BusFactory = Callable[..., Awaitable[RedisBus]]


def event(user_id: str, seq: int, text: str = "hello") -> Event:
    new = encode(
        type=EventType.MESSAGE_DELTA,
        event_id=f"ev_{seq}",
        thread_id="th_1",
        run_id="run_1",
        agent="assistant",
        data={"message_id": "msg_1", "delta": text},
        at=datetime.now(UTC),
    )
    return Event(user_id, seq, EventType.MESSAGE_DELTA, "run_1", new.body(seq))


async def _is(value: Coroutine[Any, Any, int], expected: int) -> bool:
    return await value == expected


@pytest.fixture
async def buses() -> AsyncIterator[BusFactory]:
    """Start buses at a URL on one fresh channel prefix (two buses = two instances)."""
    prefix = f"netra-test-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:

        async def start(url: str, **settings: object) -> RedisBus:
            bus = RedisBus(
                RedisSettings.model_validate({"url": url, "channel_prefix": prefix, **settings})
            )
            await bus.start()
            stack.push_async_callback(bus.stop)
            return bus

        yield start


def test_a_message_round_trips_with_envelopes_byte_for_byte() -> None:
    events = [event("usr_1", 7, "line one\nline two ü ✓"), event("usr_1", 8, '{"json": "in text"}')]
    encoded = BusMessage("bus_a", events).encode()
    decoded = BusMessage.decode("usr_1", encoded)
    assert decoded.origin == "bus_a"
    assert list(decoded.events) == events
    assert [e.body for e in decoded.events] == [e.body for e in events]


@pytest.mark.parametrize(
    "notice",
    [
        Notice("queued", "usr_1", "run_1"),
        Notice("cancel", "usr_1", "run_1"),
        Notice("revoked", "usr_1", None, session_id="ses_1"),
        Notice("revoked", "usr_1", None),
        Notice("account", "usr_1", None),
    ],
)
def test_every_kind_of_notice_round_trips(notice: Notice) -> None:
    assert decode_notice(encode_notice("bus_a", notice)) == ("bus_a", notice)


@pytest.mark.parametrize(
    "data",
    [
        b'{"origin":"bus_a","kind":"reboot","user_id":null,"run_id":null}',
        b'{"origin":"bus_a","kind":"revoked","user_id":"usr_1","run_id":null,"session_id":7}',
    ],
)
def test_a_notice_of_an_unknown_kind_or_shape_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_notice(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b'{"origin":"bus_a","events":[[1,"message_delta",null]]}', b"[1,2]\n{}"],
)
def test_bytes_that_are_not_a_bus_message_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        BusMessage.decode("usr_1", data)


def test_channels_are_per_user_and_only_this_prefix_is_read() -> None:
    channels = UserChannels("netra")
    assert channels.of("usr_1") == "netra:user:usr_1"
    assert channels.user("netra:user:usr_1") == "usr_1"
    assert channels.user("other:user:usr_1") is None
    assert channels.user("netra:user:") is None


def test_a_redis_url_must_name_a_redis_scheme() -> None:
    with pytest.raises(ValueError, match="redis://"):
        Settings.model_validate({"redis": {"url": "http://127.0.0.1:6379"}})
    assert Settings.model_validate({"redis": {"url": ""}}).redis.url is None


@pytest.mark.redis
async def test_events_published_on_one_bus_reach_subscribers_of_another_in_order(
    buses: BusFactory, redis_url: str
) -> None:
    here, there = await buses(redis_url), await buses(redis_url)
    received: list[Event] = []
    resyncs: list[str] = []
    here.subscribe("usr_1", received.extend, resync=lambda: resyncs.append("usr_1"))
    # Live from the confirmation on; before it, a subscriber reads the event log instead.
    await eventually(lambda: resyncs == ["usr_1"], "the subscription was confirmed with a resync")

    sent = [event("usr_1", seq) for seq in range(1, 21)]
    for seq in range(0, 20, 4):
        await there.publish("usr_1", sent[seq : seq + 4])
    await eventually(lambda: len(received) == len(sent), "every event arrived")
    assert received == sent
    # The publisher counts a batch once Redis has answered it, which may be after the
    # subscriber already got it.
    await eventually(
        lambda: there.counters["published"] >= 1 and here.counters["received"] >= 1,
        "both buses counted the traffic",
    )


@pytest.mark.redis
async def test_a_bus_delivers_its_own_events_once_and_only_to_their_user(
    buses: BusFactory, redis_url: str
) -> None:
    bus, other = await buses(redis_url), await buses(redis_url)
    mine: list[Event] = []
    theirs: list[Event] = []
    bus.subscribe("usr_1", mine.extend)
    bus.subscribe("usr_2", theirs.extend)
    elsewhere: list[Event] = []
    resynced: list[bool] = []
    other.subscribe("usr_1", elsewhere.extend, resync=lambda: resynced.append(True))
    await eventually(lambda: resynced == [True], "the other bus subscribed")

    sent = [event("usr_1", 1), event("usr_1", 2)]
    await bus.publish("usr_1", sent)
    assert mine == sent  # delivered at once, without a round trip
    await eventually(lambda: elsewhere == sent, "the other bus received them")
    await bus.publish("usr_1", [event("usr_1", 3)])
    await eventually(lambda: len(elsewhere) == 3, "the other bus received the third")
    assert [e.seq for e in mine] == [1, 2, 3]  # its own message from Redis was not re-delivered
    assert theirs == []


@pytest.mark.redis
async def test_an_instance_holds_a_users_channel_only_while_it_has_subscribers(
    buses: BusFactory, redis_url: str
) -> None:
    bus = await buses(redis_url)
    client = redis.asyncio.Redis.from_url(redis_url)
    channel = bus.channels.of("usr_1")

    async def subscribers() -> int:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)

    try:
        first = bus.subscribe("usr_1", lambda _events: None)
        second = bus.subscribe("usr_1", lambda _events: None)
        await eventually(lambda: bus.health().counters["subscriptions"] == 1, "subscribed")
        assert await subscribers() == 1
        first()
        assert bus.health().counters["subscriptions"] == 1
        second()
        await eventually(lambda: bus.health().counters["subscriptions"] == 0, "unsubscribed")
        await eventually(lambda: _is(subscribers(), 0), "Redis counts no subscriber")
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_malformed_message_on_a_user_channel_is_counted_and_ignored(
    buses: BusFactory, redis_url: str
) -> None:
    bus = await buses(redis_url)
    received: list[Event] = []
    resynced: list[bool] = []
    bus.subscribe("usr_1", received.extend, resync=lambda: resynced.append(True))
    await eventually(lambda: resynced == [True], "subscribed")
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        channel = bus.channels.of("usr_1")
        await client.publish(channel, b"garbage")
    finally:
        await client.aclose()
    await eventually(lambda: bus.counters["malformed"] == 1, "the malformed message was counted")
    assert received == []
    assert bus.state is LinkState.CONNECTED


async def test_publishing_without_redis_never_fails_and_local_subscribers_still_get_events(
    buses: BusFactory,
) -> None:
    bus = await buses(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5, reconnect_max_s=0.2)
    received: list[Event] = []
    bus.subscribe("usr_1", received.extend)
    sent = [event("usr_1", seq) for seq in range(1, 4)]
    for item in sent:
        await bus.publish("usr_1", [item])
    assert received == sent
    await eventually(
        lambda: bus.counters["publish_failures"] >= 1, "the failed publish was counted"
    )
    health = bus.health()
    assert not health.healthy and health.backend == "redis"
    assert health.reason is not None and "publish failing" in health.reason
    assert health.counters["unpublished_users"] == 1
