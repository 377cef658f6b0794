"""EventLogWriter: one task that gives events their per-user seq, stores them in batches,
then publishes them. Persist, then publish: no socket sees an event before it is stored.

Group commit: the writer takes the first queued event, waits up to ``batch_window_ms`` for
more (at most ``batch_max``), and stores the whole batch in one transaction, reserving each
user's seq range with one ``UPDATE users SET event_seq = event_seq + n … RETURNING``
(``netra.db.event_log``). The row lock on the user's counter keeps seqs gapless and ordered
across instances too.

Fencing: a run's events carry the attempt that emitted them, and a batch stores them only
while that attempt is still the run's (under the run's row lock, so a takeover waits for the
batch or the batch sees the takeover). An executor that lost its run — paused past its lease
while another instance took over — cannot add to the run's stream.

An event may carry a write that belongs with it (``PendingEvent.stored_with``: a run's final
state with its ``agent_completed``, ``started_at`` with ``agent_started``, a tool call's
ledger entries with its two events): the write is made in the batch's transaction, so both
are stored or neither is, and a refused write refuses the event.

When the database is away (``StorageUnavailable``: a full disk, a lost connection) the writer
keeps trying the same batch until it is stored: events are never dropped, and their order
holds. Emitters wait only once the bounded queue is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from netra.db.event_log import EventLog, EventRow
from netra.db.manager import DatabaseManager
from netra.db.queue import RunQueue
from netra.db.records import utcnow
from netra.errors import LostClaim, StorageUnavailable
from netra.events.bus import EventBus
from netra.events.envelope import Event, EventType, PendingEvent
from netra.faults import CrashPoints
from netra.metrics import Metrics
from netra.settings import EventSettings

log = logging.getLogger(__name__)
_RETRIES = 3


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
        self._window = settings.batch_window_ms / 1000
        self._queue: asyncio.Queue[tuple[PendingEvent, asyncio.Future[Event]]] = asyncio.Queue(
            maxsize=settings.batch_max * 64
        )
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.events_written = 0

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
                await self._queue.join()
        except TimeoutError:
            log.error(
                "stopping with %d events not stored: the database is away (%s)",
                self._queue.qsize(),
                self._db.storage_failure,
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def drain(self) -> None:
        """Wait until every event queued so far is stored (or refused)."""
        if self._task is not None:
            await self._queue.join()

    async def write(self, pending: PendingEvent) -> asyncio.Future[Event]:
        """Queue an event; the future resolves once it is stored and published."""
        if self._task is None:
            raise RuntimeError("the event log writer is not running")
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        await self._queue.put((pending, future))
        return future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = asyncio.get_running_loop().time() + self._window
            while len(batch) < self._batch_max:
                if self._queue.empty():
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                    except TimeoutError:
                        break
                else:
                    batch.append(self._queue.get_nowait())
            try:
                await self._store_and_publish(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _store_and_publish(
        self, batch: list[tuple[PendingEvent, asyncio.Future[Event]]]
    ) -> None:
        stored = await self._store_until_stored(batch)
        if stored is None:
            return
        if self._crash_points is not None:
            committed = [p for (p, _), event in zip(batch, stored, strict=True) if event]
            self._crash_points.reached("final_publish", _finishing(committed))
            self._crash_points.reached(
                "tool_completed", _having(committed, EventType.TOOL_COMPLETED)
            )
        self.batches += 1
        self.events_written += sum(1 for event in stored if event is not None)
        await self._publish([event for event in stored if event is not None])
        for (pending, future), event in zip(batch, stored, strict=True):
            if future.done():
                continue
            if event is None:
                if self._metrics is not None:
                    self._metrics.write_fenced()
                future.set_exception(
                    LostClaim(f"run {pending.run_id} attempt {pending.attempt} lost its claim")
                )
                future.exception()  # the stale executor need not look: nothing to report
            else:
                future.set_result(event)

    async def _store_until_stored(
        self, batch: list[tuple[PendingEvent, asyncio.Future[Event]]]
    ) -> list[Event | None] | None:
        """The batch stored; None when it could not be (its emitters are told why)."""
        failures = 0
        storage_waits = 0
        while True:
            try:
                return await self._store([pending for pending, _ in batch])
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
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    return None
                await asyncio.sleep(0.05 * failures)

    async def _publish(self, stored: list[Event]) -> None:
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in stored:
            by_user[event.user_id].append(event)
        for user_id, events in by_user.items():
            try:
                await self._bus.publish(user_id, events)
            except Exception:  # the bus may lose messages: sockets catch up from the log
                log.exception("publishing events of %s failed", user_id)

    async def _store(self, pending_events: list[PendingEvent]) -> list[Event | None]:
        """Store the batch; a fenced event's place in the result is None."""
        now = utcnow()
        async with self._db.write() as conn:
            current = await RunQueue(conn).current_attempts(
                {p.run_id for p in pending_events if p.attempt is not None and p.run_id}
            )
            batch = []
            for pending in pending_events:
                if (
                    pending.attempt is not None
                    and current.get(pending.run_id or "") != pending.attempt
                ):
                    continue
                if pending.stored_with is not None and not await pending.stored_with(conn):
                    continue
                batch.append(pending)
            counts: dict[str, int] = defaultdict(int)
            for pending in batch:
                counts[pending.user_id] += 1
            event_log = EventLog(conn)
            next_seq = await event_log.reserve(counts)
            events = []
            for pending in batch:
                seq = next_seq[pending.user_id]
                next_seq[pending.user_id] = seq + 1
                events.append(Event.seal(pending, seq, now))
            await event_log.append(
                [
                    EventRow(
                        user_id=event.user_id,
                        seq=event.seq,
                        event_id=pending.event_id,
                        type=event.type.value,
                        thread_id=pending.thread_id,
                        run_id=event.run_id,
                        body=event.body,
                    )
                    for event, pending in zip(events, batch, strict=True)
                ],
                at=now,
            )
            if self._crash_points is not None:
                self._crash_points.reached("final_write", _finishing(batch))
        sealed = {id(pending): event for pending, event in zip(batch, events, strict=True)}
        return [sealed.get(id(pending)) for pending in pending_events]


def _finishing(batch: list[PendingEvent]) -> set[str]:
    """The runs whose final write is in the batch (for the crash points)."""
    return _having(batch, EventType.AGENT_COMPLETED)


def _having(batch: list[PendingEvent], type: EventType) -> set[str]:
    return {p.run_id for p in batch if p.type is type and p.run_id is not None}
