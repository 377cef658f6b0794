"""Attempt: one attempt of one run — its phase, why it was stopped, and how it ended.

An attempt is made when a queued run is submitted to this process and lives until its task
ends. Its phases, in order (``Phase``):

- ``submitted``: its task is made but has not run yet (a stop is noted and seen first thing);
- ``waiting``: for its thread's turn, a slot of its user and one of the instance (a stop
  cancels the wait; a user's cancel then ends the run ``cancelled`` without executing it);
- ``claiming``: marking the run running in the database, attempt + 1 (never interrupted
  mid-write: a stop is applied right after); skipped by a run admitted claimed (``opened``:
  its slots were free, so its admission stored it running with its ``agent_started``);
- ``executing``: the agent takes its steps under the run's time budget, each step that made
  tool calls stored as a turn of the run's checkpoint (a stop cancels it at once);
- ``ending``: the final state, or the pause for an approval, is being written (not
  interrupted);
- ``done``.

Why an attempt is stopped before it ends by itself is its ``stop`` (``Stop``): the user's
cancel (with ``why``, the run's error), this process handing its runs back at shutdown, or
another instance having taken the run over. ``ending_for`` turns whatever the agent raised
into the run's ending; the same rule serves top-level runs and sub-agents.

An attempt that continues an earlier one (its run's ``started_at`` is set: the stream began)
continues the same event stream and starts from the run's checkpoint
(``netra.engine.checkpoint``), never from the event log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from netra.agents.base import AgentDefinition, AgentDeps, AgentState, Continue, Final, Pause
from netra.agents.registry import AgentRegistry
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.messages import Conversation
from netra.db.queue import RunQueue
from netra.db.records import RunRecord, RunStatus, utcnow
from netra.engine.builder import AttemptBuilder
from netra.engine.checkpoint import Checkpoint, Saved
from netra.engine.ending import INTERRUPTED, AttemptEnds, Ending
from netra.errors import NetraError, RunError, StorageUnavailable
from netra.events.bridge import AgentWebSocketBridge, RunEmitter
from netra.events.payloads import Resumed
from netra.settings import LimitSettings

log = logging.getLogger(__name__)

CANCELLED_BY_USER = RunError("cancelled", "cancelled by the user")
TIMED_OUT = RunError("timed_out", "the run exceeded its time budget")
RESUMING = {
    "approval": "Continuing with your decision…",
    "handback": "Continuing on another server…",
    "takeover": "Continuing after a server failure…",
}


class Phase(StrEnum):
    SUBMITTED = "submitted"
    WAITING = "waiting"
    CLAIMING = "claiming"
    EXECUTING = "executing"
    ENDING = "ending"
    DONE = "done"


class Stop(StrEnum):
    """Why a run's attempt is stopped before it ends by itself."""

    CANCEL = "cancel"
    """The user cancelled it: it ends ``cancelled``."""
    HANDBACK = "handback"
    """This process is shutting down: the run goes back to the cluster to resume elsewhere."""
    LOST = "lost"
    """Another instance took the run over (this one's lease ran out): stop, write nothing."""


class BudgetExpired(NetraError):
    """Raised when a run's time budget (``limits.run_timeout_s``) is spent."""

    code = "timed_out"


class StepLimitExceeded(NetraError):
    """Raised when a run takes more steps (model calls) than ``limits.max_steps`` allows."""

    code = "step_limit"


class SubAgentPaused(NetraError):
    """A sub-agent's call needs the user's approval: only a top-level run can wait."""

    code = "approval_in_subagent"


def ending_for(exc: Exception, *, run_id: str) -> Ending:
    """How a run ends when its attempt raised ``exc`` (cancellation and an approval pause
    are the caller's: they depend on who stopped the run and what kind it is)."""
    if isinstance(exc, BudgetExpired):
        return Ending(RunStatus.TIMED_OUT, TIMED_OUT)
    if isinstance(exc, NetraError):
        return Ending(RunStatus.FAILED, exc.as_run_error())
    log.error("run %s failed", run_id, exc_info=exc)  # an agent's bug fails its run only
    return Ending(
        RunStatus.FAILED,
        RunError("internal_error", f"the agent failed ({type(exc).__name__})"),
    )


@dataclass(frozen=True, slots=True)
class AttemptKit:
    """Process-wide: what every attempt uses."""

    db: DatabaseManager
    bridge: AgentWebSocketBridge
    builder: AttemptBuilder
    checkpoint: Checkpoint
    ends: AttemptEnds
    agents: AgentRegistry
    config: UnifiedConfigurationManager
    instance_id: str
    lease_until: Callable[[], datetime]
    accepting: Callable[[], bool]
    """False once the process is shutting down: a claim waiting for the database gives up."""
    requeued: Callable[[UserExecutionContext, RunRecord], Awaitable[None]]
    """Submits a run that went straight back to the queue (its approvals all answered)."""
    lost: Callable[[], None]
    """Counts a run whose final write was refused: another instance had taken it over."""


class Attempt:
    """One attempt of one run in this process."""

    def __init__(
        self,
        kit: AttemptKit,
        ctx: UserExecutionContext,
        run: RunRecord,
        *,
        opened: bool = False,
        conversation: Conversation | None = None,
    ) -> None:
        self._kit = kit
        self.opened = opened
        """The run was admitted claimed, as this attempt, its ``agent_started`` stored with
        it (``RunQueue.create(started=True)``): no claim, and the stream is already open."""
        self._conversation = conversation
        """The thread up to the run's question, as its admission read it (None: read it)."""
        self.ctx = ctx.with_run(thread_id=run.thread_id, run_id=run.id)
        self.run = run
        """As submitted, then as claimed (its attempt number the one executing)."""
        self.limits: LimitSettings = kit.config.limits_for(ctx.tier, ctx.limits)
        self.phase = Phase.SUBMITTED
        self.stop: Stop | None = None
        self.why: RunError | None = None
        """For a cancel: the run's error (default: cancelled by the user)."""
        self.task: asyncio.Task[None] | None = None
        self.definition: AgentDefinition | None = None
        """The agent as this attempt resolved it, once: an edit of the config file meanwhile
        changes the next runs, not this one."""

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def thread_id(self) -> str:
        return self.run.thread_id

    def request_stop(self, reason: Stop, why: RunError | None = None) -> None:
        """Note why the attempt stops (the first reason stands)."""
        if self.stop is None:
            self.stop = reason
        if why is not None and self.why is None:
            self.why = why

    def cancelled(self) -> Ending:
        return Ending(RunStatus.CANCELLED, self.why or CANCELLED_BY_USER)

    def adopted_ending(self, max_recoveries: int) -> Ending | None:
        """For a run just taken from the cluster: how it ends at once, when it must not go
        on (a sub-agent continues only inside its parent; a run whose servers kept dying;
        a cancel asked for meanwhile); None when it continues."""
        run = self.run
        if run.parent_run_id is not None:
            return Ending(RunStatus.INTERRUPTED, INTERRUPTED)
        if run.recoveries > max_recoveries:
            return Ending(
                RunStatus.INTERRUPTED,
                RunError(
                    "interrupted", f"the run's server stopped {run.recoveries} times while it ran"
                ),
            )
        if run.cancel_requested is not None:
            self.request_stop(Stop.CANCEL, RunError.of(run.cancel_requested))
            return self.cancelled()
        return None

    def _emitter(self) -> RunEmitter:
        run = self.run
        return self._kit.bridge.for_run(
            self.ctx, run_id=run.id, agent=run.agent, attempt=run.attempt, model=run.model
        )

    # ---- the phases ----------------------------------------------------------------------
    async def claim(self) -> bool:
        """Mark the run running, as attempt + 1; False when it is no longer queued here.
        While the database is away the claim is tried again, until this process stops."""
        kit = self._kit
        failures = 0
        while True:
            try:
                claimed = await kit.db.transact(
                    RunQueue.start(
                        self.ctx, self.run_id, owner=kit.instance_id, lease_until=kit.lease_until()
                    )
                )
                break
            except StorageUnavailable:
                if not kit.accepting():
                    return False  # stopping: the run stays queued for whoever comes next
                failures += 1
                await asyncio.sleep(kit.db.retry_delay(failures))
        if claimed is None:
            return False
        self.run = claimed
        if claimed.cancel_requested is not None:  # asked for on another instance
            self.request_stop(Stop.CANCEL, RunError.of(claimed.cancel_requested))
        return True

    async def execute(self) -> None:
        """Drive the claimed run to its ending (or its pause) and write it."""
        emitter = self._emitter()
        state: AgentState | None = None
        try:
            saved = await self._open_stream(emitter)
            deps, state = await self._prepare(emitter)
            if isinstance(await self._drive(deps, state, saved), Pause):
                await self._pause(emitter, state)
                return
            ending = Ending(RunStatus.COMPLETED)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.stop is Stop.CANCEL and current is not None:
                current.uncancel()
                ending = self.cancelled()
            elif self.stop in (Stop.HANDBACK, Stop.LOST):
                raise  # handed back at shutdown, or someone else's now: nothing to write
            else:
                ending = Ending(RunStatus.INTERRUPTED, INTERRUPTED)
                await asyncio.shield(self._finish(emitter, state, ending))
                raise
        except Exception as exc:
            ending = ending_for(exc, run_id=self.run_id)
        await self._finish(emitter, state, ending)

    async def abandon(self) -> None:
        """A run cancelled before it executed: final state cancelled, with its two events."""
        await self.end(self.cancelled())

    async def end(self, ending: Ending) -> None:
        """End the run without executing it (cancelled, or not to be continued): its stream
        continued if an earlier attempt began it."""
        emitter = self._emitter()
        if self.run.started_at is not None:
            emitter.resume_started()
        await self._finish(emitter, None, ending)

    async def execute_child(self, task: str, parent: Attempt | None) -> tuple[Ending, AgentState]:
        """A sub-agent's run, inside its parent's task (created running, on the parent's
        slot): ``task`` is its whole conversation, and its answer goes back to the parent,
        not into the thread. It stops with its parent; it keeps no checkpoint (it is never
        continued on its own)."""
        emitter = self._emitter()
        state = AgentState(attempt=self.run.attempt, messages=[])
        try:
            await self._start_stream(emitter)
            deps, state = await self._prepare(emitter, task=task)
            if isinstance(await self._drive(deps, state, None, checkpoint=False), Pause):
                raise SubAgentPaused("sub-agents cannot wait for approval")
            ending = Ending(RunStatus.COMPLETED)
        except asyncio.CancelledError:  # the parent was cancelled or stopped
            stop = parent.stop if parent is not None else None
            if stop is not Stop.LOST:  # a lost parent's child is ended by whoever took it
                ending = (
                    self.cancelled()
                    if stop is Stop.CANCEL
                    else Ending(RunStatus.INTERRUPTED, INTERRUPTED)
                )
                await asyncio.shield(self._finish(emitter, state, ending, store_answer=False))
            raise
        except Exception as exc:
            ending = ending_for(exc, run_id=self.run_id)
        await self._finish(emitter, state, ending, store_answer=False)
        return ending, state

    async def _prepare(
        self, emitter: RunEmitter, task: str | None = None
    ) -> tuple[AgentDeps, AgentState]:
        definition = self._kit.agents.check_access(self.ctx, self.run.agent)
        self.definition = definition
        conversation, self._conversation = self._conversation, None
        return await self._kit.builder.prepare(
            self.ctx,
            self.run,
            emitter,
            limits=self.limits,
            definition=definition,
            task=task,
            conversation=conversation,
        )

    async def _drive(
        self, deps: AgentDeps, state: AgentState, saved: Saved | None, *, checkpoint: bool = True
    ) -> Final | Pause:
        """Take the agent's steps under the run's time budget (``BudgetExpired`` once it is
        spent), from the checkpoint ``saved`` when the run continues, storing each step's
        turn, until it answers or pauses."""
        agents = self._kit.agents
        definition = self.definition
        assert definition is not None  # resolved by _prepare
        agent = agents.create_agent_for_user(definition, self.ctx)
        max_steps = min(self.limits.max_steps, definition.max_steps or self.limits.max_steps)
        budget = asyncio.timeout(self.limits.run_timeout_s)
        try:
            async with budget:
                if saved is not None:
                    paused = await self._kit.checkpoint.restore(saved, deps, state)
                    if paused is not None:
                        return paused
                while True:
                    if state.step >= max_steps:
                        raise StepLimitExceeded(f"the run needed more than {max_steps} model calls")
                    next_step = await agent.step(deps, state)
                    if not isinstance(next_step, Continue):
                        return next_step
                    if checkpoint:
                        await self._kit.checkpoint.record(self.ctx, deps, state)
                    state.step += 1
        except TimeoutError:
            if budget.expired():
                raise BudgetExpired(TIMED_OUT.message) from None
            raise
        finally:
            agents.release(self.ctx)

    async def _open_stream(self, emitter: RunEmitter) -> Saved | None:
        """Start the run's event stream, or continue the one an earlier attempt began; then
        the checkpoint that attempt left is returned. A client that saw the run begin is told
        where it continues."""
        run = self.run
        if self.opened:
            emitter.resume_started()
            return None
        if run.started_at is None:
            await self._start_stream(emitter)
            return None if run.attempt <= 1 else await self._kit.checkpoint.read(self.ctx, run)
        emitter.resume_started()
        saved = await self._kit.checkpoint.read(self.ctx, run)
        reason = run.resume_reason or "takeover"
        await emitter.thinking(
            RESUMING.get(reason, RESUMING["takeover"]),
            resumed=Resumed(reason, run.attempt, len(saved.text)),
        )
        return saved

    async def _start_stream(self, emitter: RunEmitter) -> None:
        """``agent_started``, stored with the run's ``started_at``."""
        run = self.run
        await emitter.started(model=run.model, attempt=run.attempt, parent_run_id=run.parent_run_id)
        self.run = replace(run, started_at=utcnow())

    async def _pause(self, emitter: RunEmitter, state: AgentState) -> None:
        self.phase = Phase.ENDING
        requeued = await self._kit.ends.pause(self.ctx, self.run, emitter, state)
        if requeued is not None:  # every call was answered meanwhile
            await self._kit.requeued(self.ctx, requeued)

    async def _finish(
        self,
        emitter: RunEmitter,
        state: AgentState | None,
        ending: Ending,
        *,
        store_answer: bool = True,
    ) -> None:
        self.phase = Phase.ENDING
        if not await self._kit.ends.finish(
            self.ctx, self.run, emitter, state, ending, store_answer=store_answer
        ):
            self._kit.lost()
