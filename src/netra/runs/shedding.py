"""LoadShedder: the server-wide bound on runs waiting to execute.

The runs table is the queue, and every instance of a cluster shares it, so the bound is the
cluster's, not one instance's: at most ``limits.max_queued_runs`` runs ``queued`` — accepted
but not executing yet (waiting for their user's concurrency slot, their thread's turn, or an
executor). A new message past it is refused before anything is stored, with ``Overloaded``:
HTTP 503 with ``Retry-After: limits.overload_retry_after_s``, or a WebSocket error frame
``overloaded`` with ``retry_after``. Work already accepted is never shed: a message retried
with its ``client_msg_id``, an answered approval, a run handed back or taken over, a
sub-agent's run.

Exactness: the depth is counted in the transaction that would store the run. On SQLite writes
take turns, so the bound is exact. On PostgreSQL, sends committing at the same moment each
count before the others' runs are visible, so the queue may pass the bound by the number of
sends in flight at that moment — a handful, never unbounded growth. Making it exact would
make every send of the cluster wait on one lock.

Cost: one count over an index of ``runs`` that begins with ``status`` (an index-only scan on
PostgreSQL), reading only the queued entries, whose number shedding keeps near the bound.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from netra.config import UnifiedConfigurationManager
from netra.db.manager import DatabaseManager
from netra.db.queue import RunQueue
from netra.db.sql import Tx
from netra.errors import Overloaded
from netra.metrics import Metrics

log = logging.getLogger(__name__)
MEASURE_TIMEOUT_S = 5.0
"""Longest ``/ready`` or ``/metrics`` waits for the count, like the database check."""


@dataclass(frozen=True, slots=True)
class QueueState:
    """The cluster's queue of runs, as ``GET /ready`` reports it."""

    queued: int | None
    """Runs waiting to execute; None when the database did not answer."""
    limit: int
    """``limits.max_queued_runs``; 0 means no limit."""

    @property
    def shedding(self) -> bool:
        """Whether a new message would be refused now."""
        return self.limit > 0 and self.queued is not None and self.queued >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {"queued": self.queued, "max_queued_runs": self.limit, "shedding": self.shedding}


class LoadShedder:
    """Admits a new run only while the cluster's queue is below its bound."""

    def __init__(
        self, *, db: DatabaseManager, config: UnifiedConfigurationManager, metrics: Metrics
    ) -> None:
        self._db = db
        self._config = config
        self._metrics = metrics
        self._shedding = False
        """Whether the last check here refused: shedding is logged when it starts and ends."""

    def check(self) -> Tx[None]:
        """Refuse a new run while the queue is full: part of the transaction that would
        store the run, so a refusal leaves nothing behind."""
        limits = self._config.settings.limits
        if not limits.max_queued_runs:
            return
        state = QueueState((yield from RunQueue.depth()), limits.max_queued_runs)
        if not state.shedding:
            if self._shedding:
                self._shedding = False
                log.info("run queue below its bound again (%d of %d)", state.queued, state.limit)
            return
        if not self._shedding:
            self._shedding = True
            log.warning(
                "run queue full (%d of limits.max_queued_runs %d): refusing new messages "
                "with 503 overloaded",
                state.queued,
                state.limit,
            )
        self._metrics.run_shed()
        wait = limits.overload_retry_after_s
        raise Overloaded(
            f"the server has too much work waiting; try again in {wait} seconds",
            retry_after=wait,
        )

    async def measure(self) -> QueueState:
        """The queue now, for ``GET /ready`` and ``GET /metrics`` (whose gauge it sets)."""
        limit = self._config.settings.limits.max_queued_runs
        queued: int | None
        try:
            async with asyncio.timeout(MEASURE_TIMEOUT_S):
                queued = await self._db.transact(RunQueue.depth())
        except Exception:  # /ready and /metrics answer whatever the database does;
            queued = None  # the database check of /ready says what is wrong
        self._metrics.queue_counted(queued)
        return QueueState(queued, limit)
