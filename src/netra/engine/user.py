"""UserExecutionEngine: one user's runs, under that user's concurrency limit.

Runs of one thread execute in the order they were sent; runs of different threads run side
by side up to the limit, and up to the instance's own (``limits.max_executing_runs``, shared
by every user's engine). Each run is an ``Attempt`` with a task of its own that moves it
through its phases (see ``netra.engine.attempt``); this engine holds them and stops them.

A run whose slots are all free when it is admitted takes them then (``take_now``), before
its admission's transaction, which stores it claimed and begun: it executes at once, with no
claim of its own. Every other run waits for them in its task (``_take``), then claims.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.engine.attempt import Attempt, Phase, Stop
from netra.errors import RunError

_UNINTERRUPTED = (Phase.SUBMITTED, Phase.CLAIMING, Phase.ENDING)
"""Phases a stop does not cancel: the task sees the stop at its next step."""


class UserExecutionEngine:
    """Owns the attempts of one user's runs; at most ``limit`` execute at once."""

    def __init__(
        self, user_id: str, limit: int, instance_slots: asyncio.Semaphore | None = None
    ) -> None:
        self.user_id = user_id
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._instance_slots = instance_slots
        self._attempts: dict[str, Attempt] = {}
        self._thread_turns: dict[str, asyncio.Lock] = {}
        self._thread_waiters: Counter[str] = Counter()

    @property
    def busy(self) -> bool:
        return len(self._attempts) >= self.limit

    @property
    def idle(self) -> bool:
        """No run here, none waiting, no slots taken for one being admitted."""
        return not self._attempts and not self._thread_waiters

    def running(self) -> list[str]:
        return list(self._attempts)

    def attempts(self) -> list[Attempt]:
        return list(self._attempts.values())

    def attempt(self, run_id: str) -> Attempt | None:
        return self._attempts.get(run_id)

    def submit(self, attempt: Attempt, slots: Slots | None = None) -> None:
        """Own a task for the attempt: wait for its thread's turn and the slots, claim the
        run, execute it — or, given the ``slots`` (``take_now``: the run was admitted
        claimed, its stream begun), execute it at once. A run cancelled before it executes
        is abandoned (ends cancelled)."""
        if attempt.run_id in self._attempts:
            if slots is not None:
                slots.release()
            return
        self._attempts[attempt.run_id] = attempt
        attempt.task = asyncio.create_task(self._drive(attempt, slots), name=attempt.run_id)
        attempt.task.add_done_callback(lambda _: self._forget(attempt))

    async def take_now(self, thread_id: str) -> Slots | None:
        """The slots of a run about to be admitted — its thread's turn, a slot of the user,
        one of the instance — when every one is free now; None when the run would wait (a
        run of the thread is here, or the user's or the instance's slots are all taken)."""
        if thread_id in self._thread_turns:
            return None
        wanted = self._run_slots()
        if any(primitive.locked() for primitive in wanted):
            return None
        slots = Slots(self, thread_id)
        for primitive in (self._enter(thread_id), *wanted):
            await primitive.acquire()  # free, and nothing ran since it was seen free: no wait
            slots.held.append(primitive)
        return slots

    def _run_slots(self) -> list[asyncio.Lock | asyncio.Semaphore]:
        """A slot of the user, then one of the instance (if it bounds its runs)."""
        slots: list[asyncio.Lock | asyncio.Semaphore] = [self._slots]
        if self._instance_slots is not None:
            slots.append(self._instance_slots)
        return slots

    def _enter(self, thread_id: str) -> asyncio.Lock:
        """The thread's turn, counted as wanted until ``_leave``."""
        turn = self._thread_turns.setdefault(thread_id, asyncio.Lock())
        self._thread_waiters[thread_id] += 1
        return turn

    def leave(self, thread_id: str) -> None:
        """The thread's turn is no longer wanted by one more run (``Slots.release``)."""
        self._thread_waiters[thread_id] -= 1
        if not self._thread_waiters[thread_id]:
            del self._thread_waiters[thread_id]
            del self._thread_turns[thread_id]

    async def _drive(self, attempt: Attempt, slots: Slots | None) -> None:
        attempt.phase = Phase.WAITING
        if slots is None and attempt.stop is None:
            slots = await self._take(attempt)
            if slots is None:  # cancelled while it waited: abandoned
                return
        try:
            await self._claim_and_execute(attempt)
        finally:
            if slots is not None:
                slots.release()

    async def _take(self, attempt: Attempt) -> Slots | None:
        """Wait for the thread's turn (runs of one thread execute one after another, in the
        order they were sent: ``asyncio.Lock`` wakes its waiters first in, first out), then
        a slot of the user, then one of the instance; None when the user cancelled the run
        meanwhile (it is then abandoned, holding what it had taken)."""
        slots = Slots(self, attempt.thread_id)
        wanted = [self._enter(attempt.thread_id), *self._run_slots()]
        try:
            for primitive in wanted:
                if not await self._wait_for(attempt, primitive):
                    slots.release()
                    return None
                slots.held.append(primitive)
        except BaseException:
            slots.release()
            raise
        return slots

    async def _wait_for(
        self, attempt: Attempt, primitive: asyncio.Lock | asyncio.Semaphore
    ) -> bool:
        """Acquire; False when the user cancelled the run meanwhile (it is then abandoned)."""
        try:
            await primitive.acquire()
        except asyncio.CancelledError:
            if attempt.stop is not Stop.CANCEL:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await attempt.abandon()
            return False
        return True

    async def _claim_and_execute(self, attempt: Attempt) -> None:
        if attempt.stop is not None:
            if attempt.stop is Stop.CANCEL:
                await attempt.abandon()
            return
        if not attempt.opened:
            attempt.phase = Phase.CLAIMING
            if not await attempt.claim():
                return
        attempt.phase = Phase.EXECUTING
        if attempt.stop is not None:  # asked for while claiming
            current = asyncio.current_task()
            if current is not None:
                current.cancel()
        await attempt.execute()

    def _forget(self, attempt: Attempt) -> None:
        attempt.phase = Phase.DONE
        if self._attempts.get(attempt.run_id) is attempt:
            del self._attempts[attempt.run_id]

    def cancel(self, run_id: str, reason: Stop = Stop.CANCEL, why: RunError | None = None) -> bool:
        """Stop a run this engine holds; False when it holds no such run."""
        attempt = self._attempts.get(run_id)
        if attempt is None or attempt.task is None or attempt.task.done():
            return False
        attempt.request_stop(reason, why)
        if attempt.phase not in _UNINTERRUPTED:
            attempt.task.cancel()
        return True

    async def retire(self, run_id: str) -> bool:
        """Stop the task of an older attempt of ``run_id`` (the run was taken over, maybe by
        this very instance) and wait until it has ended, so a new attempt can be submitted;
        False when this engine holds no task of that run."""
        attempt = self._attempts.get(run_id)
        if attempt is None or attempt.task is None:
            return False
        self.cancel(run_id, Stop.LOST)
        await asyncio.gather(attempt.task, return_exceptions=True)
        self._forget(attempt)
        return True

    async def shutdown(self) -> None:
        """Stop every attempt: executing runs and waiting ones go back to the cluster."""
        tasks = [a.task for a in self._attempts.values() if a.task is not None]
        for run_id in list(self._attempts):
            self.cancel(run_id, Stop.HANDBACK)
        await asyncio.gather(*tasks, return_exceptions=True)


class Slots:
    """What a run holds while it executes here: its thread's turn, a slot of its user and
    one of the instance. ``release`` gives back what was taken, in reverse order."""

    __slots__ = ("_released", "engine", "held", "thread_id")

    def __init__(self, engine: UserExecutionEngine, thread_id: str) -> None:
        self.engine = engine
        self.thread_id = thread_id
        self.held: list[asyncio.Lock | asyncio.Semaphore] = []
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        while self.held:
            self.held.pop().release()
        self.engine.leave(self.thread_id)


class UserEngines:
    """The engines of the users with runs here, sharing the instance's slots
    (``limits.max_executing_runs``); an engine goes once its user's runs are done."""

    def __init__(self, config: UnifiedConfigurationManager) -> None:
        self._config = config
        self._engines: dict[str, UserExecutionEngine] = {}
        most = config.settings.limits.max_executing_runs
        self.slots = asyncio.Semaphore(most) if most else None
        """Shared by every user's engine: runs executing here at once."""

    def of(self, ctx: UserExecutionContext) -> UserExecutionEngine:
        """The user's engine; a changed limit takes effect once the user's runs are done."""
        engine = self._engines.get(ctx.user_id)
        limit = self._config.limits_for(ctx.tier, ctx.limits).max_concurrent_runs_per_user
        if engine is None or (engine.idle and engine.limit != limit):
            engine = UserExecutionEngine(ctx.user_id, limit, self.slots)
            self._engines[ctx.user_id] = engine
        return engine

    def get(self, user_id: str) -> UserExecutionEngine | None:
        return self._engines.get(user_id)

    @property
    def server_busy(self) -> bool:
        """Every slot of the instance is taken."""
        return self.slots is not None and self.slots.locked()

    def attempts(self) -> Iterator[Attempt]:
        for engine in self._engines.values():
            yield from engine.attempts()

    def prune(self) -> None:
        for user_id in [u for u, e in self._engines.items() if e.idle]:
            del self._engines[user_id]

    def stats(self) -> dict[str, int]:
        return {
            "users": len(self._engines),
            "runs": sum(len(engine.running()) for engine in self._engines.values()),
        }

    async def shutdown(self) -> None:
        """Stop every attempt of every user (see ``UserExecutionEngine.shutdown``)."""
        await asyncio.gather(*(engine.shutdown() for engine in self._engines.values()))
        self._engines.clear()
