"""ExecutionEngine: executes runs. One per process; one UserExecutionEngine per active user.

Each run submitted here is an ``Attempt`` (``netra.engine.attempt``: claim, steps, ending)
on its user's engine. Every exit path — answer, error, timeout, cancel, shutdown — ends in
exactly one final state; the one pause is a call waiting for the user's approval, after
which the run continues from its checkpoint (``RunService.decide``).

Across instances the runs table is the queue: this process *holds* the runs it was given or
adopted (``owner`` = its instance id) under a lease its ``RunSupervisor`` renews. A run it
executes is fenced by its attempt number: when another instance takes the run over (this
one's lease ran out), every later write of this attempt is refused and the run is stopped
here (``Stop.LOST``). At shutdown every held run is handed back and resumes elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from netra.agents.registry import AgentRegistry
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.messages import Conversation
from netra.db.records import RunRecord, utcnow
from netra.engine.attempt import Attempt, AttemptKit, Phase, Stop
from netra.engine.builder import AttemptBuilder
from netra.engine.checkpoint import Checkpoint
from netra.engine.children import ChildAdmission, SubAgents
from netra.engine.ending import AttemptEnds
from netra.engine.user import Slots, UserEngines
from netra.errors import RunError
from netra.events.bridge import AgentWebSocketBridge
from netra.events.bus import EventBus, Notice
from netra.events.payloads import RunQueued
from netra.metrics import Metrics
from netra.models.catalog import ModelCatalog
from netra.tools.dispatcher import ToolRegistry

log = logging.getLogger(__name__)


class ExecutionEngine:
    """Process-wide owner of run execution."""

    def __init__(
        self,
        *,
        db: DatabaseManager,
        bridge: AgentWebSocketBridge,
        agents: AgentRegistry,
        tools: ToolRegistry,
        models: ModelCatalog,
        config: UnifiedConfigurationManager,
        metrics: Metrics,
        bus: EventBus,
        instance_id: str,
        admit_child: ChildAdmission,
        executes: bool = True,
    ) -> None:
        self.instance_id = instance_id
        """This process's name in the runs table's ``owner`` column."""
        self.executes = executes
        """Whether this process executes runs (``netra serve`` with ``cluster.execute_runs``
        off only stores them, for the instances that do)."""
        self._bus = bus
        self._db = db
        self._bridge = bridge
        self._config = config
        self._metrics = metrics
        self._kit = AttemptKit(
            db=db,
            bridge=bridge,
            builder=AttemptBuilder(db=db, tools=tools, models=models, config=config),
            checkpoint=Checkpoint(db),
            ends=AttemptEnds(
                db=db, metrics=metrics, instance_id=instance_id, lease_until=self.lease_until
            ),
            agents=agents,
            config=config,
            instance_id=instance_id,
            lease_until=self.lease_until,
            accepting=lambda: self._accepting,
            requeued=self.submit,
            lost=self._count_lost,
        )
        self.children = SubAgents(self._kit, self.attempt_of, admit_child)
        """The sub-agents of the runs executing here (the ``delegate`` tool)."""
        self._users = UserEngines(config)
        self._accepting = True
        self.lost = 0
        """Runs stopped here because another instance took them over."""

    def lease_until(self) -> datetime:
        return utcnow() + timedelta(seconds=self._config.settings.cluster.lease_s)

    def holding(self) -> tuple[str | None, datetime | None]:
        """``(owner, lease_until)`` for a run queued here: held by this instance when it
        executes runs, else by nobody (the executors adopt it)."""
        if not self.executes:
            return None, None
        return self.instance_id, self.lease_until()

    async def submit(self, ctx: UserExecutionContext, run: RunRecord) -> None:
        """Start executing a stored, queued run this process holds (returns at once). Not
        executing runs here, tell the instances that do."""
        if not self.executes:
            await self._bus.notify(Notice("queued", run.user_id, run.id))
            return
        if not self._accepting:
            return
        engine = self._users.of(ctx)
        busy = self._users.server_busy
        if engine.busy or busy:
            waiting_for = max(0, len(engine.running()) - engine.limit + 1)
            await self._bridge.emit(
                ctx, RunQueued(run.id, waiting_for, busy), agent=run.agent, thread_id=run.thread_id
            )
        engine.submit(Attempt(self._kit, ctx, run))
        self._users.prune()

    async def reserve(self, ctx: UserExecutionContext, thread_id: str) -> Slots | None:
        """For a run about to be admitted on ``thread_id``: the slots it executes in, when
        all are free now (``UserExecutionEngine.take_now``). The admission then stores the
        run claimed with its ``agent_started`` and hands it to ``start``; it releases the
        slots if it fails. None: the run is queued and ``submit``ted as usual."""
        if not (self.executes and self._accepting):
            return None
        return await self._users.of(ctx).take_now(thread_id)

    def start(
        self,
        ctx: UserExecutionContext,
        run: RunRecord,
        slots: Slots,
        conversation: Conversation | None,
    ) -> None:
        """Execute a run admitted claimed and begun (``reserve``), in its slots, from the
        conversation its admission read (None: too long for it, the attempt reads it)."""
        if not self._accepting:  # stopping: handed back with the others (``hand_back``)
            slots.release()
            return
        attempt = Attempt(self._kit, ctx, run, opened=True, conversation=conversation)
        slots.engine.submit(attempt, slots)

    def cancel(self, user_id: str, run_id: str, *, why: RunError | None = None) -> bool:
        """Cancel a run executing (or waiting) in this process; ``why`` becomes the run's
        error (default: cancelled by the user)."""
        engine = self._users.get(user_id)
        return engine is not None and engine.cancel(run_id, Stop.CANCEL, why)

    def lose(self, user_id: str, run_id: str) -> None:
        """Another instance took the run over: stop it here without writing anything."""
        engine = self._users.get(user_id)
        if engine is not None and engine.cancel(run_id, Stop.LOST):
            self._count_lost()
            log.warning("run %s was taken over by another instance; stopped here", run_id)

    def _count_lost(self) -> None:
        self.lost += 1
        self._metrics.run_lost()

    def attempt_of(self, user_id: str, run_id: str) -> Attempt | None:
        """The attempt of a run executing (or waiting) here."""
        engine = self._users.get(user_id)
        return engine.attempt(run_id) if engine is not None else None

    def executing(self) -> dict[str, int]:
        """Runs executing here (run id → attempt), for the heartbeat."""
        return {
            attempt.run_id: attempt.run.attempt
            for attempt in self._users.attempts()
            if attempt.phase in (Phase.EXECUTING, Phase.ENDING)
        }

    def stats(self) -> dict[str, int]:
        return self._users.stats()

    async def adopt(self, ctx: UserExecutionContext, run: RunRecord) -> None:
        """A run this process just took from the cluster (its holder died, handed it back,
        or left it for an executor): execute it, or end it when it must not go on."""
        held = self._users.get(run.user_id)
        if held is not None and await held.retire(run.id):
            # Its lease ran out while it still executed here (a starved heartbeat) and this
            # instance took it back: the old attempt stops (its writes are fenced anyway),
            # or the new one would never be submitted and the run sit held by nobody.
            self._count_lost()
            log.warning("run %s: stopped its older attempt here to resume it", run.id)
        attempt = Attempt(self._kit, ctx, run)
        ending = attempt.adopted_ending(self._config.settings.cluster.max_recoveries)
        if ending is None:
            await self.submit(ctx, run)
        else:
            await attempt.end(ending)

    async def end_cancelled(
        self, ctx: UserExecutionContext, run: RunRecord, why: RunError | None
    ) -> None:
        """End a run this process just adopted for cancelling (nobody executes it)."""
        attempt = Attempt(self._kit, ctx, run)
        attempt.request_stop(Stop.CANCEL, why)
        await attempt.abandon()

    async def shutdown(self) -> bool:
        """Stop taking runs and stop the runs here; wait (at most ``server.shutdown_grace_s``)
        until the events they emitted are stored, so they can be handed back to the cluster
        (``RunSupervisor.hand_back``). False when the database did not store them in time."""
        self._accepting = False
        await self._users.shutdown()
        try:
            async with asyncio.timeout(self._config.settings.server.shutdown_grace_s):
                await self._bridge.drain()
        except TimeoutError:
            return False
        return True
