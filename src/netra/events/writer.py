"""EventLogWriter: one task that stores events in batches, then publishes them. Persist, then
publish: no socket sees an event before it is stored.

Group commit without a timer: entries (``netra.db.event_log.Entry``: an event, a write that
belongs with one, or a barrier) queue up while a batch is being stored, and the next batch is
whatever queued meanwhile (at most ``events.batch_max``). A lone event is stored at once; under
load batches grow by themselves. A batch is one transaction (``netra.db.event_log.store``):
fencing, the entries' writes, the users' seqs, the rows. Each event's envelope was encoded once
before it queued; the stored body is the published body.

Fencing: a run's entries carry the attempt that made them, and a batch stores them only
while that attempt is still the run's (under the run's row lock, so a takeover waits for the
batch or the batch sees the takeover). An executor that lost its run — paused past its lease
while another instance took over — cannot add to the run's stream.

Most events are not waited for: the emitter goes on at once. One that carries a write, and a
*barrier* (``settle``: every entry of the run queued before it is stored), are: their future
says what became of them (``LostClaim`` when fenced).

When the database is away (``StorageUnavailable``: a full disk, a lost connection) the writer
keeps trying the same batch until it is stored: events are never dropped, and their order
holds. Emitters wait only once ``events.batch_max * 64`` entries are queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Sequence

from netra.db.event_log import Entry, EntryFailed, Outcome, store
from netra.db.manager import DatabaseManager
from netra.errors import LostClaim, StorageUnavailable
from netra.events.bus import EventBus
from netra.events.envelope import Event, EventType
from netra.faults import CrashPoints
from netra.metrics import Metrics
from netra.settings import EventSettings

log = logging.getLogger(__name__)
_RETRIES = 3
Waiter = asyncio.Future[Event | None]
"""Resolves with the stored event (None for an entry without one), or ``LostClaim``."""


class EventLogWriter:
    """Owns the event-log write path of one process."""

    def __init__(
        self,
        db: DatabaseManager,
        bus: EventBus,
        settings: EventSettings,
        metrics: Metrics | None = None,
        crash_points: CrashPoints | None = None,
    ) -> None:
        self._db = db
        self._crash_points = crash_points
        self._metrics = metrics
        self._bus = bus
        self._batch_max = settings.batch_max
        self._room = Room(settings.batch_max * 64)
        """One unit per entry queued or being stored: past the bound emitters wait."""
        self._queued: list[tuple[Entry, Waiter | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.events_written = 0
        """Events stored in the log: the writer's, and those stored by another transaction
        (an admission's), counted when published."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-log-writer")

    async def stop(self, grace_s: float | None = None) -> None:
        """Store everything already queued (waiting at most ``grace_s`` for a database that
        is away), then stop."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(grace_s):
                await self.drain()
        except TimeoutError:
            log.error(
                "stopping with %d events not stored: the database is away (%s)",
                len(self._queued),
                self._db.storage_failure,
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def drain(self) -> None:
        """Wait until every entry queued so far is stored (or refused)."""
        if self._task is not None:
            waiter = await self.append(Entry(user_id=""), wait=True)
            assert waiter is not None
            await waiter

    async def append(self, entry: Entry, *, wait: bool = False) -> Waiter | None:
        """Queue an entry; with ``wait``, the future that says what became of it."""
        if self._task is None:
            raise RuntimeError("the event log writer is not running")
        if not self._room.take_now():
            await self._room.take()
        waiter: Waiter | None = asyncio.get_running_loop().create_future() if wait else None
        self._queued.append((entry, waiter))
        self._wake.set()
        return waiter

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queued:
                batch = self._queued[: self._batch_max]
                del self._queued[: self._batch_max]
                try:
                    await self._store_and_publish(batch)
                finally:
                    self._room.give(len(batch))

    async def _store_and_publish(self, batch: list[tuple[Entry, Waiter | None]]) -> None:
        entries = [entry for entry, _ in batch]
        if all(_is_barrier(entry) for entry in entries):  # nothing to store: all went before
            for _, waiter in batch:
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            return
        outcomes = await self._store_until_stored(batch)
        if outcomes is None:
            return
        stored = [e for e, o in zip(entries, outcomes, strict=True) if isinstance(o, int)]
        if self._crash_points is not None:
            self._crash_points.reached("final_publish", _having(stored, EventType.AGENT_COMPLETED))
            self._crash_points.reached("tool_completed", _having(stored, EventType.TOOL_COMPLETED))
        events = [stored_event(e, o) for e, o in zip(entries, outcomes, strict=True)]
        published = [event for event in events if event is not None]
        self.batches += 1
        await self.publish(published)
        for (entry, waiter), outcome, event in zip(batch, outcomes, events, strict=True):
            self._settle(entry, waiter, outcome, event)

    def _settle(
        self, entry: Entry, waiter: Waiter | None, outcome: Outcome, event: Event | None
    ) -> None:
        if outcome is None:
            if entry.attempt is not None and self._metrics is not None:
                self._metrics.write_fenced()
            failure: Exception = LostClaim(
                f"run {entry.run_id} attempt {entry.attempt} lost its claim"
            )
        elif isinstance(outcome, Exception):
            failure = outcome
            if waiter is None and not isinstance(outcome, LostClaim):
                log.error("a write of run %s failed", entry.run_id, exc_info=outcome)
        else:
            if waiter is not None and not waiter.done():
                waiter.set_result(event)
            return
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)
            waiter.exception()  # a stale executor need not look: nothing to report

    async def _store_until_stored(
        self, batch: list[tuple[Entry, Waiter | None]]
    ) -> list[Outcome] | None:
        """The batch stored; None when it could not be (its waiters are told why)."""
        entries = [entry for entry, _ in batch]
        hook = self._before_commit if self._crash_points is not None else None
        failed: dict[int, Exception] = {}
        failures = 0
        storage_waits = 0
        while True:
            try:
                return await self._db.transact(store(entries, failed=failed, before_commit=hook))
            except EntryFailed as failure:  # that entry alone fails; the rest go on
                failed[failure.index] = failure.error
            except StorageUnavailable:
                # The database is away (full disk, lost connection): the batch waits for
                # it, in order, and the emitters behind it wait for room in the queue. No
                # event is dropped; a run's time budget still ends the run meanwhile.
                storage_waits += 1
                await asyncio.sleep(self._db.retry_delay(storage_waits))
            except Exception as exc:  # a bug, not the storage: retried, then reported
                failures += 1
                if failures == _RETRIES:
                    log.exception("event batch of %d could not be stored", len(batch))
                    for _, waiter in batch:
                        if waiter is not None and not waiter.done():
                            waiter.set_exception(exc)
                    return None
                await asyncio.sleep(0.05 * failures)

    def _before_commit(self, stored: list[Entry]) -> None:
        assert self._crash_points is not None
        self._crash_points.reached("final_write", _having(stored, EventType.AGENT_COMPLETED))

    async def publish(self, stored: Sequence[Event]) -> None:
        """Hand stored events to the bus, each user's in order. The writer publishes what it
        stores; a transaction that stored events itself (``event_log.store``) publishes them
        here once it committed."""
        self.events_written += len(stored)
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in stored:
            by_user[event.user_id].append(event)
        for user_id, events in by_user.items():
            try:
                await self._bus.publish(user_id, events)
            except Exception:  # the bus may lose messages: sockets catch up from the log
                log.exception("publishing events of %s failed", user_id)


class Room:
    """A bounded number of units, the waiters for one woken first in, first out.

    ``asyncio.Semaphore`` would do, but a release and an acquire each scan its waiters, and
    under backpressure thousands of emitters wait: a batch stored would cost the square of
    its size. Here a unit freed is handed to the first waiter in O(1)."""

    def __init__(self, units: int) -> None:
        self._free = units
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """Take a unit if one is free and nobody waits for one (no await: the common case)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.take_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved: a unit was handed over
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed one, then cancelled
                self.give(1)
            raise  # a cancelled waiter left in the line is skipped by ``give``

    def give(self, units: int) -> None:
        for _ in range(units):
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break
            else:
                self._free += 1


def stored_event(entry: Entry, outcome: Outcome) -> Event | None:
    """The event an entry stored (its ``outcome`` from ``event_log.store``), if any."""
    if entry.event is None or not isinstance(outcome, int) or outcome == 0:
        return None
    return Event(
        entry.user_id,
        outcome,
        EventType(entry.event.type),
        entry.run_id,
        entry.event.body(outcome),
    )


def _having(stored: list[Entry], type: EventType) -> set[str]:
    """The runs with an event of ``type`` among the stored entries (for the crash points)."""
    return {e.run_id for e in stored if e.event is not None and e.event.type == type and e.run_id}


def _is_barrier(entry: Entry) -> bool:
    """An entry that stores nothing and is fenced by nothing: done once all before it are."""
    return entry.event is None and entry.write is None and entry.attempt is None
