"""ExecutionEngine: executes runs. One per process; one UserExecutionEngine per active user.

A run's life here: claim it in the runs table (queued → running, attempt + 1), emit
``agent_started``, build a fresh agent, model and tool dispatcher for it, drive the agent under
the run's time budget, store the answer and the final state, emit ``agent_completed``. Every
exit path — answer, error, timeout, cancel, shutdown — ends in exactly one final state.

The one pause: a tool call that needs the user's approval suspends the run (status
``requires_approval``, no executor, no time running). The user's answer puts it back in the
queue; the next attempt continues the same event stream and replays the tool-call ledger to
the agent instead of asking the model again (``RunService.decide``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from netra.agents.base import AgentRun, ApprovalPending
from netra.agents.registry import AgentRegistry
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.records import RunRecord, RunStatus, ToolCallRecord, utcnow
from netra.db.repositories import (
    EventRepository,
    MessageRepository,
    RunRepository,
    ThreadRepository,
    unfinished_runs,
)
from netra.engine.user import UserExecutionEngine
from netra.errors import NetraError
from netra.events.bridge import AgentWebSocketBridge, RunEmitter
from netra.events.envelope import EventType
from netra.metrics import Metrics
from netra.models.base import ChatMessage, Usage
from netra.models.catalog import ModelCatalog
from netra.models.failover import FailoverNote
from netra.runs.quotas import admit, measure
from netra.tools.dispatcher import ToolRegistry, UnifiedToolDispatcher

log = logging.getLogger(__name__)
ContextLoader = Callable[[str], Awaitable[UserExecutionContext | None]]
"""Builds a user's context server-side (start-up recovery has no token to build it from)."""


CANCELLED_BY_USER = {"code": "cancelled", "message": "cancelled by the user"}


@dataclass(frozen=True, slots=True)
class SubRun:
    """What a sub-agent's run hands back to its parent."""

    run_id: str
    agent: str
    outcome: str
    answer: str
    usage: dict[str, Any]
    error: dict[str, str] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "outcome": self.outcome,
            "answer": self.answer,
            "usage": self.usage,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class _Ending:
    status: RunStatus
    error: dict[str, str] | None = None


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
    ) -> None:
        self._db = db
        self._bridge = bridge
        self._agents = agents
        self._tools = tools
        self._models = models
        self._config = config
        self._metrics = metrics
        self._users: dict[str, UserExecutionEngine] = {}
        self._why_cancelled: dict[str, dict[str, str]] = {}
        self._accepting = True

    # ---- scheduling ----------------------------------------------------------------------
    def user_engine(self, ctx: UserExecutionContext) -> UserExecutionEngine:
        """The user's engine; a changed limit takes effect once the user's runs are done."""
        engine = self._users.get(ctx.user_id)
        limit = self._config.limits_for(ctx.user_id, ctx.tier).max_concurrent_runs_per_user
        if engine is None or (engine.idle and engine.limit != limit):
            engine = UserExecutionEngine(ctx.user_id, limit)
            self._users[ctx.user_id] = engine
        return engine

    async def submit(self, ctx: UserExecutionContext, run: RunRecord) -> None:
        """Start executing a stored, queued run (returns at once)."""
        if not self._accepting:
            return
        engine = self.user_engine(ctx)
        if engine.busy:
            await self._bridge.emit(
                ctx,
                EventType.RUN_QUEUED,
                {"run_id": run.id, "waiting_for": len(engine.running()) - engine.limit + 1},
                agent=run.agent,
                run_id=None,
                thread_id=run.thread_id,
            )
        run_ctx = ctx.with_run(thread_id=run.thread_id, run_id=run.id)
        engine.submit(
            run.id,
            run.thread_id,
            claim=lambda: self._claim(run_ctx, run.id),
            execute=lambda claimed: self._execute(run_ctx, claimed, engine),
            abandon=lambda: self._abandon(run_ctx, run),
        )
        self._prune()

    def cancel(self, user_id: str, run_id: str, *, why: dict[str, str] | None = None) -> bool:
        """Cancel a run executing (or waiting) in this process; ``why`` becomes the run's
        error (default: cancelled by the user)."""
        engine = self._users.get(user_id)
        if engine is None or not engine.cancel(run_id):
            return False
        if why is not None:
            self._why_cancelled.setdefault(run_id, why)
        return True

    def _cancelled(self, run_id: str) -> _Ending:
        why = self._why_cancelled.pop(run_id, None)
        return _Ending(RunStatus.CANCELLED, why or CANCELLED_BY_USER)

    def _prune(self) -> None:
        for user_id in [u for u, e in self._users.items() if e.idle]:
            del self._users[user_id]

    def stats(self) -> dict[str, int]:
        return {
            "users": len(self._users),
            "runs": sum(len(engine.running()) for engine in self._users.values()),
        }

    async def recover(self, context_for: ContextLoader) -> dict[str, int]:
        """After a restart: re-queue waiting runs, end runs whose worker died as interrupted."""
        async with self._db.read() as conn:
            pending = await unfinished_runs(conn)
        counts = {"resubmitted": 0, "interrupted": 0}
        for user_id, run_id, status in pending:
            ctx = await context_for(user_id)
            if ctx is None:
                continue
            async with self._db.read() as conn:
                run = await RunRepository(conn, ctx).get(run_id)
            if status is RunStatus.REQUIRES_APPROVAL:
                continue  # waiting for its user, not for a worker
            if status is RunStatus.QUEUED:
                await self.submit(ctx, run)
                counts["resubmitted"] += 1
            else:
                run_ctx = ctx.with_run(thread_id=run.thread_id, run_id=run.id)
                emitter = self._bridge.for_run(
                    run_ctx, run_id=run.id, agent=run.agent, model=run.model
                )
                emitter.resume_started()
                await self._finish(
                    run_ctx, run, emitter, None, _Ending(RunStatus.INTERRUPTED, _interrupted())
                )
                counts["interrupted"] += 1
        return counts

    async def shutdown(self) -> None:
        """Stop taking runs; interrupt running ones and wait until each has a final state."""
        self._accepting = False
        await asyncio.gather(*(engine.shutdown() for engine in self._users.values()))
        self._users.clear()

    # ---- sub-agents ----------------------------------------------------------------------
    async def run_child(self, ctx: UserExecutionContext, agent: str, task: str) -> SubRun:
        """Run ``agent`` on ``task`` for the run of ``ctx``, inside that run's own task (so
        it needs no second concurrency slot): a child run with a child context, its own
        events (``agent_started`` names the parent), admitted and metered against the same
        user's quotas. Its answer goes back to the parent, not into the thread."""
        if ctx.run_id is None or ctx.thread_id is None:
            raise ValueError("a sub-agent runs for a parent run")
        limits = self._config.limits_for(ctx.user_id, ctx.tier)
        definition = self._agents.check_access(ctx, agent)
        async with self._db.write() as conn:
            runs = RunRepository(conn, ctx)
            admit(limits, await measure(runs), agent=agent)
            queued = await runs.create(
                thread_id=ctx.thread_id,
                agent=agent,
                model=definition.model or self._config.settings.models.default,
                parent_run_id=ctx.run_id,
            )
            run = await runs.start(queued.id)
        assert run is not None  # just created, queued, in this transaction
        child_ctx = ctx.child(run_id=run.id)
        emitter = self._bridge.for_run(child_ctx, run_id=run.id, agent=agent, model=run.model)
        agent_run: AgentRun | None = None
        try:
            await emitter.started(model=run.model, attempt=run.attempt, parent_run_id=ctx.run_id)
            agent_run = await self._prepare(child_ctx, run, emitter)
            agent_run.history = [ChatMessage("user", task)]
            instance = self._agents.create_agent_for_user(agent, child_ctx)
            try:
                async with asyncio.timeout(limits.run_timeout_s):
                    await instance.run(agent_run)
                ending = _Ending(RunStatus.COMPLETED)
            finally:
                self._agents.release(child_ctx)
        except asyncio.CancelledError:  # the parent was cancelled or stopped
            await asyncio.shield(
                self._finish(
                    child_ctx, run, emitter, agent_run, self._cancelled(run.id), store_answer=False
                )
            )
            raise
        except TimeoutError:
            ending = _Ending(RunStatus.TIMED_OUT, {"code": "timed_out", "message": "too slow"})
        except ApprovalPending:
            ending = _Ending(
                RunStatus.FAILED,
                {"code": "approval_in_subagent", "message": "sub-agents cannot wait for approval"},
            )
        except NetraError as exc:
            ending = _Ending(RunStatus.FAILED, {"code": exc.code, "message": exc.message})
        except Exception as exc:
            log.exception("sub-agent run %s failed", run.id)
            ending = _Ending(
                RunStatus.FAILED,
                {"code": "internal_error", "message": f"the agent failed ({type(exc).__name__})"},
            )
        await self._finish(child_ctx, run, emitter, agent_run, ending, store_answer=False)
        return SubRun(
            run_id=run.id,
            agent=agent,
            outcome=ending.status.value,
            answer="".join(agent_run.text) if agent_run else "",
            usage=agent_run.usage.as_dict() if agent_run else Usage().as_dict(),
            error=ending.error,
        )

    # ---- one run -------------------------------------------------------------------------
    async def _claim(self, ctx: UserExecutionContext, run_id: str) -> RunRecord | None:
        async with self._db.write() as conn:
            return await RunRepository(conn, ctx).start(run_id)

    async def _abandon(self, ctx: UserExecutionContext, run: RunRecord) -> None:
        """A run cancelled before it executed: final state cancelled, with its two events."""
        emitter = self._bridge.for_run(ctx, run_id=run.id, agent=run.agent, model=run.model)
        if run.attempt > 0:  # it ran before (and paused): its agent_started is out already
            emitter.resume_started()
        await self._finish(ctx, run, emitter, None, self._cancelled(run.id))

    async def _execute(
        self, ctx: UserExecutionContext, run: RunRecord, engine: UserExecutionEngine
    ) -> None:
        run_id = run.id
        emitter = self._bridge.for_run(ctx, run_id=run.id, agent=run.agent, model=run.model)
        agent_run: AgentRun | None = None
        try:
            if run.attempt > 1:  # an earlier attempt started it and paused
                emitter.resume_started()
                await emitter.thinking("Continuing with your decision…")
            else:
                await emitter.started(model=run.model, attempt=run.attempt)
            agent_run = await self._prepare(ctx, run, emitter)
            agent = self._agents.create_agent_for_user(run.agent, ctx)
            try:
                limits = self._config.limits_for(ctx.user_id, ctx.tier)
                budget = asyncio.timeout(limits.run_timeout_s)
                try:
                    async with budget:
                        await agent.run(agent_run)
                    ending = _Ending(RunStatus.COMPLETED)
                except TimeoutError:
                    if not budget.expired():
                        raise
                    ending = _Ending(
                        RunStatus.TIMED_OUT,
                        {"code": "timed_out", "message": "the run exceeded its time budget"},
                    )
            finally:
                self._agents.release(ctx)
        except ApprovalPending:
            assert agent_run is not None
            await self._suspend(ctx, run, emitter, agent_run)
            return
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if engine.cancel_reason(run_id) is RunStatus.CANCELLED and current is not None:
                current.uncancel()
                ending = self._cancelled(run_id)
            else:
                await asyncio.shield(
                    self._finish(
                        ctx, run, emitter, agent_run, _Ending(RunStatus.INTERRUPTED, _interrupted())
                    )
                )
                raise
        except NetraError as exc:
            ending = _Ending(RunStatus.FAILED, {"code": exc.code, "message": exc.message})
        except Exception as exc:  # an agent's bug fails its run, never the engine
            log.exception("run %s failed", run_id)
            ending = _Ending(
                RunStatus.FAILED,
                {"code": "internal_error", "message": f"the agent failed ({type(exc).__name__})"},
            )
        await self._finish(ctx, run, emitter, agent_run, ending)

    async def _prepare(
        self, ctx: UserExecutionContext, run: RunRecord, emitter: RunEmitter
    ) -> AgentRun:
        settings = self._config.settings
        limits = self._config.limits_for(ctx.user_id, ctx.tier)
        definition = self._agents.check_access(ctx, run.agent)
        fallbacks = definition.fallbacks
        if fallbacks is None:
            fallbacks = settings.models.fallbacks

        async def note_failover(note: FailoverNote) -> None:
            await emitter.thinking(note.text, failover=note.as_dict())

        model = self._models.for_run([run.model, *fallbacks], notify=note_failover)
        async with self._db.read() as conn:
            stored = await MessageRepository(conn, ctx).list(run.thread_id)
        # The conversation up to this run's own message: never what was sent after it.
        own = next(
            (i for i, m in enumerate(stored) if m.run_id == run.id and m.role == "user"),
            len(stored) - 1,
        )
        history = [
            ChatMessage("user" if m.role == "user" else "assistant", m.content)
            for m in stored[: own + 1]
            if m.role in ("user", "assistant") and m.content
        ]
        allowed = definition.tools
        if limits.allowed_tools is not None:
            wanted = allowed if allowed is not None else limits.allowed_tools
            allowed = [name for name in wanted if name in limits.allowed_tools]
        dispatcher = UnifiedToolDispatcher(
            ctx,
            tools=self._tools,
            allowed=allowed,
            db=self._db,
            emitter=emitter,
            settings=settings.tools,
            attempt=run.attempt,
        )
        agent_run = AgentRun(
            ctx=ctx,
            history=history,
            model=model,
            dispatcher=dispatcher,
            emitter=emitter,
            message_id=run.message_id,
            max_steps=limits.max_steps,
            token_budget=limits.run_token_budget,
        )
        if run.attempt > 1:
            await self._restore(ctx, run, agent_run)
        return agent_run

    async def _restore(
        self, ctx: UserExecutionContext, run: RunRecord, agent_run: AgentRun
    ) -> None:
        """What earlier attempts of the run did: their tool calls (one list per model turn),
        the answer text they streamed and the usage they spent."""
        async with self._db.read() as conn:
            records = await ToolCallRepository(conn, ctx).for_run(run.id)
            events = await EventRepository(conn, ctx).for_run(run.id, 0, limit=1_000_000)
        turns: dict[int, list[ToolCallRecord]] = {}
        for record in records:
            turns.setdefault(record.step, []).append(record)
        agent_run.ledger = [turns[step] for step in sorted(turns)]
        for _, body in events:
            event = json.loads(body)
            if event["type"] == EventType.MESSAGE_DELTA.value:
                agent_run.text.append(event["data"]["delta"])
        spent = run.usage or {}
        agent_run.usage = Usage(
            int(spent.get("input_tokens", 0)),
            int(spent.get("output_tokens", 0)),
            float(spent.get("cost_usd", 0.0)),
        )

    async def _suspend(
        self, ctx: UserExecutionContext, run: RunRecord, emitter: RunEmitter, agent_run: AgentRun
    ) -> None:
        """Pause the run until its user answers, then ask: ``approval_required`` goes out
        only once the pause is stored, so a client that sees it finds the run waiting. If
        every call was answered meanwhile, the run goes straight back to the queue."""
        async with self._db.write() as conn:
            runs = RunRepository(conn, ctx)
            if not await runs.suspend(run.id, attempt=run.attempt, usage=agent_run.usage.as_dict()):
                log.warning("run %s attempt %d lost its claim while pausing", run.id, run.attempt)
                return
            waiting = await ToolCallRepository(conn, ctx).undecided(run.id)
            requeued = None if waiting else await runs.requeue(run.id)
        for record in waiting:
            await emitter.approval_required(
                record.tool_call_id, record.tool, record.arguments, record.side_effects
            )
        await emitter.paused()
        if requeued is not None:
            await self.submit(ctx, requeued)

    async def _finish(
        self,
        ctx: UserExecutionContext,
        run: RunRecord,
        emitter: RunEmitter,
        agent_run: AgentRun | None,
        ending: _Ending,
        *,
        store_answer: bool = True,
    ) -> None:
        text = "".join(agent_run.text) if agent_run else ""
        usage = (
            agent_run.usage.as_dict()
            if agent_run
            else {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        )
        message_id = run.message_id if text else None
        async with self._db.write() as conn:
            finished = await RunRepository(conn, ctx).finish(
                run.id, status=ending.status, attempt=run.attempt, error=ending.error, usage=usage
            )
            if finished and text and store_answer:
                await MessageRepository(conn, ctx).add(
                    thread_id=run.thread_id,
                    role="assistant",
                    content=text,
                    run_id=run.id,
                    message_id=run.message_id,
                    data={
                        "outcome": ending.status.value,
                        "tool_calls": agent_run.tool_trace if agent_run else [],
                    },
                )
            if finished and store_answer:
                await ThreadRepository(conn, ctx).touch(run.thread_id)
        if not finished:
            log.warning(
                "run %s attempt %d lost its claim; final state not written", run.id, run.attempt
            )
            return
        self._metrics.run_finished(
            agent=run.agent,
            outcome=ending.status.value,
            seconds=(utcnow() - run.started_at).total_seconds() if run.started_at else None,
        )
        await emitter.completed(
            outcome=ending.status.value, usage=usage, message_id=message_id, error=ending.error
        )


def _interrupted() -> dict[str, str]:
    return {"code": "interrupted", "message": "the server stopped while the run was executing"}
