"""UserExecutionEngine: one user's runs, under that user's concurrency limit.

Runs of one thread execute in the order they were sent; runs of different threads run side
by side up to the limit, and up to the instance's own (``limits.max_executing_runs``, shared
by every user's engine). Each run's task moves through phases: *waiting* for its thread's
turn, a slot of its user and one of the instance (cancelling it is free), *claiming*
the run in the database (never interrupted mid-write; a cancel is noted and applied right
after), and *executing* (cancelled at once; the executor records the final state).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from netra.db.records import RunRecord


class Stop(StrEnum):
    """Why a run's task is stopped before it ends by itself."""

    CANCEL = "cancel"
    """The user cancelled it: it ends ``cancelled``."""
    HANDBACK = "handback"
    """This process is shutting down: the run goes back to the cluster to resume elsewhere."""
    LOST = "lost"
    """Another instance took the run over (this one's lease ran out): stop, write nothing."""


class Phase(StrEnum):
    WAITING = "waiting"
    """Queued behind the user's other runs."""
    CLAIMING = "claiming"
    """Marking the run as running in the database."""
    EXECUTING = "executing"
    """The agent is working."""


@dataclass(slots=True)
class UserEngineStats:
    submitted: int = 0
    executed: int = 0
    cancelled: int = 0


Claim = Callable[[], Awaitable[RunRecord | None]]
Execute = Callable[[RunRecord], Awaitable[None]]
Abandon = Callable[[], Awaitable[None]]


class UserExecutionEngine:
    """Owns the tasks of one user's runs; at most ``limit`` execute at once, the rest wait."""

    def __init__(
        self, user_id: str, limit: int, instance_slots: asyncio.Semaphore | None = None
    ) -> None:
        self.user_id = user_id
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._instance_slots = instance_slots
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._phases: dict[str, Phase] = {}
        self._cancel_reasons: dict[str, Stop] = {}
        self._entered: set[str] = set()
        self._thread_turns: dict[str, asyncio.Lock] = {}
        self._thread_waiters: Counter[str] = Counter()
        self.stats = UserEngineStats()

    @property
    def busy(self) -> bool:
        return len(self._tasks) >= self.limit

    @property
    def idle(self) -> bool:
        return not self._tasks

    def running(self) -> list[str]:
        return list(self._tasks)

    def submit(
        self, run_id: str, thread_id: str, claim: Claim, execute: Execute, abandon: Abandon
    ) -> None:
        """Own a task for the run: wait for its thread's turn and a slot, ``claim`` it,
        ``execute`` it. A run cancelled before it executes is handed to ``abandon``."""
        if run_id in self._tasks:
            return
        self._phases[run_id] = Phase.WAITING
        task = asyncio.create_task(
            self._drive(run_id, thread_id, claim, execute, abandon), name=run_id
        )
        self._tasks[run_id] = task
        self.stats.submitted += 1
        task.add_done_callback(lambda _: self._forget(run_id))

    async def _drive(
        self, run_id: str, thread_id: str, claim: Claim, execute: Execute, abandon: Abandon
    ) -> None:
        self._entered.add(run_id)
        if run_id in self._cancel_reasons:  # cancelled before this task first ran
            if self._cancel_reasons[run_id] is Stop.CANCEL:
                await abandon()
            return
        # Runs of one thread execute one after another, in the order they were sent
        # (asyncio.Lock wakes its waiters first in, first out).
        turn = self._thread_turns.setdefault(thread_id, asyncio.Lock())
        self._thread_waiters[thread_id] += 1
        try:
            if not await self._wait_for(run_id, turn, abandon):
                return
            try:
                if not await self._wait_for(run_id, self._slots, abandon):
                    return
                try:
                    await self._claim_and_execute_in_instance_slot(run_id, claim, execute, abandon)
                finally:
                    self._slots.release()
            finally:
                turn.release()
        finally:
            self._thread_waiters[thread_id] -= 1
            if not self._thread_waiters[thread_id]:
                del self._thread_waiters[thread_id]
                del self._thread_turns[thread_id]

    async def _wait_for(
        self, run_id: str, primitive: asyncio.Lock | asyncio.Semaphore, abandon: Abandon
    ) -> bool:
        """Acquire; False when the user cancelled the run meanwhile (it is then abandoned)."""
        try:
            await primitive.acquire()
        except asyncio.CancelledError:
            if self._cancel_reasons.get(run_id) is not Stop.CANCEL:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await abandon()
            return False
        return True

    async def _claim_and_execute_in_instance_slot(
        self, run_id: str, claim: Claim, execute: Execute, abandon: Abandon
    ) -> None:
        if self._instance_slots is None:
            await self._claim_and_execute(run_id, claim, execute, abandon)
            return
        if not await self._wait_for(run_id, self._instance_slots, abandon):
            return
        try:
            await self._claim_and_execute(run_id, claim, execute, abandon)
        finally:
            self._instance_slots.release()

    async def _claim_and_execute(
        self, run_id: str, claim: Claim, execute: Execute, abandon: Abandon
    ) -> None:
        if run_id in self._cancel_reasons:
            if self._cancel_reasons[run_id] is Stop.CANCEL:
                await abandon()
            return
        self._phases[run_id] = Phase.CLAIMING
        run = await claim()
        if run is None:
            return
        self._phases[run_id] = Phase.EXECUTING
        self.stats.executed += 1
        if run_id in self._cancel_reasons:  # asked for while claiming
            current = asyncio.current_task()
            if current is not None:
                current.cancel()
        await execute(run)

    def _forget(self, run_id: str) -> None:
        self._tasks.pop(run_id, None)
        self._phases.pop(run_id, None)
        self._entered.discard(run_id)
        self._cancel_reasons.pop(run_id, None)

    def cancel(self, run_id: str, reason: Stop = Stop.CANCEL) -> bool:
        """Cancel a run this engine holds; False when it holds no such run."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        self._cancel_reasons.setdefault(run_id, reason)
        self.stats.cancelled += 1
        # A task that has not run yet, or is mid-claim, sees the reason at its next step.
        if run_id in self._entered and self._phases.get(run_id) is not Phase.CLAIMING:
            task.cancel()
        return True

    async def retire(self, run_id: str) -> bool:
        """Stop the task of an older attempt of ``run_id`` (the run was taken over, maybe by
        this very instance) and wait until it has ended, so a new attempt can be submitted;
        False when this engine holds no task of that run."""
        task = self._tasks.get(run_id)
        if task is None:
            return False
        self.cancel(run_id, Stop.LOST)
        await asyncio.gather(task, return_exceptions=True)
        self._forget(run_id)
        return True

    def cancel_reason(self, run_id: str) -> Stop | None:
        return self._cancel_reasons.get(run_id)

    async def shutdown(self) -> None:
        """Stop every task: executing runs and waiting ones go back to the cluster."""
        tasks = list(self._tasks.values())
        for run_id in list(self._tasks):
            self.cancel(run_id, Stop.HANDBACK)
        await asyncio.gather(*tasks, return_exceptions=True)
