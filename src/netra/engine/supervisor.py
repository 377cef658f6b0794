"""RunSupervisor: this instance's part in sharing the runs table with the others.

Every ``cluster.heartbeat_s`` it

1. renews the leases of the runs this instance holds that end within half a lease (or two
   heartbeats, if longer), in pages, soonest first — a run's lease is written about once
   every half lease, not at every beat — and records its own heartbeat in the instances
   table;
2. applies cancels asked for on other instances to the runs held here;
3. stops the runs executing here that another instance took over meanwhile (this one was
   paused or cut off past its lease) — their writes are refused anyway (fencing);
4. when this instance executes runs, takes *orphans*: runs whose holder's lease expired
   (it died, or was paused), and queued runs nobody holds (handed back at shutdown, or left
   for the executors by a serving instance that does not execute).

Notices on the bus (a run queued for the executors, a cancel) wake it early; the heartbeat
finds the same facts when a notice is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

from netra import __version__
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.cluster import InstanceRecord, InstanceRepository
from netra.db.manager import DatabaseManager
from netra.db.queue import Lease, Orphan, RunQueue
from netra.db.records import RunStatus, utcnow
from netra.db.runs import RunRepository
from netra.db.sql import Tx
from netra.engine.execution import ExecutionEngine
from netra.errors import RunError, StorageUnavailable
from netra.events.bus import EventBus, Notice
from netra.metrics import Metrics

log = logging.getLogger(__name__)
ContextLoader = Callable[[str], Awaitable[UserExecutionContext | None]]
"""Builds a user's context server-side (a run taken over has no token to build it from)."""
ORPHANS_PER_BEAT = 50
RENEW_PAGE = 500
"""Leases renewed per transaction: a beat never holds the writer for long."""


class RunSupervisor:
    """Heartbeats, leases and takeovers of one instance."""

    def __init__(
        self,
        *,
        role: str,
        db: DatabaseManager,
        engine: ExecutionEngine,
        bus: EventBus,
        config: UnifiedConfigurationManager,
        metrics: Metrics,
        context_for: ContextLoader,
        sockets: Callable[[], int],
    ) -> None:
        self.role = role
        self._db = db
        self._engine = engine
        self._bus = bus
        self._config = config
        self._metrics = metrics
        self._context_for = context_for
        self._sockets = sockets
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.beats = 0
        self.last_error: str | None = None

    @property
    def instance_id(self) -> str:
        return self._engine.instance_id

    async def start(self) -> None:
        """Register this instance, take back what a previous life of it held, begin beating."""
        expired = await self._db.transact(self._register())
        if expired:
            log.info("%d runs of an earlier start are taken back", expired)
        self._bus.on_notice(self._on_notice)
        await self.beat()
        self._task = asyncio.create_task(self._loop(), name="run-supervisor")

    def _register(self) -> Tx[int]:
        yield from InstanceRepository.register(
            id=self.instance_id,
            role=self.role,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
        )
        # SQLite: no other instance can be executing anything, so whatever is held was
        # held by this process's previous life.
        return (yield from RunQueue.expire(None if self._db.is_sqlite else self.instance_id))

    async def stop(self) -> None:
        """Stop beating (the engine hands the runs back) and sign off."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # the database may be the reason we stop
            await self._db.transact(InstanceRepository.stopped(self.instance_id))

    async def hand_back(self, *, drained: bool) -> int:
        """At shutdown, once the engine stopped its runs (``drained``: their events are
        stored): every run this instance holds goes back to the cluster, to be resumed
        elsewhere at once. How many."""
        released = await self._release() if drained else None
        if released is None:
            log.error(
                "the database is away (%s): the runs held here stay held until their lease "
                "runs out, then another instance (or this one, restarted) resumes them",
                self._db.storage_failure,
            )
            return 0
        if released:
            await self._bus.notify(Notice("queued", None, None))
        return released

    async def _release(self) -> int | None:
        try:
            return await self._db.transact(RunQueue.release(self.instance_id))
        except StorageUnavailable:
            return None

    async def instances(self) -> list[InstanceRecord]:
        """Instances that beat within the last hour (the cluster view)."""
        return await self._db.transact(InstanceRepository.list(since=utcnow() - timedelta(hours=1)))

    def _on_notice(self, notice: Notice) -> None:
        """Beat now: a cancel is read with its reason from the runs table; a queued run is
        taken as an orphan."""
        if notice.kind == "cancel" or (notice.kind == "queued" and self._engine.executes):
            self._wake.set()

    async def _loop(self) -> None:
        interval = self._config.settings.cluster.heartbeat_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.beat()
                self.last_error = None
            except StorageUnavailable as exc:  # the database is away: beat again later
                self.last_error = f"database away: {exc.cause}"
                log.warning("heartbeat failed: %s", self.last_error)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("heartbeat failed: %s", self.last_error)

    async def beat(self) -> None:
        executing = self._engine.executing()  # before renewing: each was claimed by then
        await self._renew()
        leases = await self._db.transact(self._held(len(executing)))
        self.beats += 1
        renewed = {lease.run_id: lease for lease in leases}
        for lease in leases:
            if lease.cancel_requested is not None:
                self._engine.cancel(
                    lease.user_id, lease.run_id, why=RunError.of(lease.cancel_requested)
                )
        doubtful = [
            run_id
            for run_id, attempt in executing.items()
            if run_id not in renewed or renewed[run_id].attempt != attempt
        ]
        if doubtful:
            current = await self._db.transact(RunQueue.of(doubtful))
            for lease in current:
                if lease.owner != self.instance_id or lease.attempt != executing[lease.run_id]:
                    self._engine.lose(lease.user_id, lease.run_id)
        if self._engine.executes:
            await self._take_orphans()

    async def _renew(self) -> None:
        """Extend the leases that end within half a lease, or within two heartbeats if that
        is longer (a lease must outlive a missed beat), in pages. A renewed lease ends at
        ``until``, never before ``due``: no page takes it again."""
        cluster = self._config.settings.cluster
        now = utcnow()
        until = now + timedelta(seconds=cluster.lease_s)
        due = now + timedelta(
            seconds=min(cluster.lease_s, max(cluster.lease_s / 2, 2 * cluster.heartbeat_s))
        )
        while True:
            page = RunQueue.renew(self.instance_id, until, due=due, limit=RENEW_PAGE)
            if await self._db.transact(page) < RENEW_PAGE:
                return

    def _held(self, executing: int) -> Tx[list[Lease]]:
        leases = yield from RunQueue.held(self.instance_id)
        yield from InstanceRepository.beat(
            self.instance_id, runs_executing=executing, sockets=self._sockets()
        )
        return leases

    async def _take_orphans(self) -> None:
        orphans = await self._db.transact(
            RunQueue.orphans(limit=ORPHANS_PER_BEAT, include_unheld=True)
        )
        for orphan in orphans:
            taken = await self._db.transact(
                RunQueue.take(orphan.run_id, self.instance_id, self._engine.lease_until())
            )
            if taken:
                await self._adopt(orphan)

    async def _adopt(self, orphan: Orphan) -> None:
        # A disabled or deleted account still gets its run ended, under a bare context.
        ctx = await self._context_for(orphan.user_id) or UserExecutionContext(
            user_id=orphan.user_id, trail=("server:account",)
        )
        run = await self._db.transact(RunRepository(ctx).get(orphan.run_id))
        reason = "takeover" if orphan.status is RunStatus.RUNNING else "unheld"
        self._metrics.run_recovered(reason)
        log.info("took run %s (%s, attempt %d)", run.id, reason, run.attempt)
        await self._engine.adopt(ctx, run)
