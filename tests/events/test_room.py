"""Room: the event log writer's bound on queued entries. Waiters get units first in, first
out; a waiter cancelled before or after it was handed a unit loses none."""

from __future__ import annotations

import asyncio

from netra.events.writer import Room


async def _taker(room: Room, name: str, order: list[str]) -> None:
    await room.take()
    order.append(name)


async def test_units_freed_go_to_the_waiters_in_arrival_order() -> None:
    room = Room(2)
    await room.take()
    await room.take()
    order: list[str] = []
    tasks = [asyncio.create_task(_taker(room, str(i), order)) for i in range(5)]
    await asyncio.sleep(0)  # every taker is waiting now
    assert order == []
    room.give(3)
    await asyncio.gather(*tasks[:3])
    assert order == ["0", "1", "2"]
    room.give(2)
    await asyncio.gather(*tasks)
    assert order == ["0", "1", "2", "3", "4"]


async def test_a_newcomer_does_not_pass_the_waiters() -> None:
    room = Room(1)
    await room.take()
    order: list[str] = []
    first = asyncio.create_task(_taker(room, "first", order))
    await asyncio.sleep(0)
    room.give(1)  # handed to "first", which has not run yet
    late = asyncio.create_task(_taker(room, "late", order))
    await first
    assert order == ["first"]
    assert not late.done()
    room.give(1)
    await late
    assert order == ["first", "late"]


async def test_a_cancelled_waiter_is_skipped() -> None:
    room = Room(1)
    await room.take()
    order: list[str] = []
    gone = asyncio.create_task(_taker(room, "gone", order))
    kept = asyncio.create_task(_taker(room, "kept", order))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    room.give(1)
    await kept
    assert order == ["kept"]


async def test_a_unit_handed_to_a_waiter_cancelled_meanwhile_goes_on() -> None:
    room = Room(1)
    await room.take()
    order: list[str] = []
    handed = asyncio.create_task(_taker(room, "handed", order))
    after = asyncio.create_task(_taker(room, "after", order))
    await asyncio.sleep(0)
    room.give(1)  # "handed" holds the unit but has not run ...
    handed.cancel()  # ... and is cancelled before it does
    await asyncio.gather(handed, return_exceptions=True)
    await after
    assert order == ["after"]
    room.give(1)
    await room.take()  # the count came out even: one unit was free again
