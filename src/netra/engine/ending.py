"""How an attempt of a run ends: it finishes the run (final state, answer and
``agent_completed`` in one transaction, then metrics) or pauses it for the user's approval.
Both writes are fenced by the attempt and the holding instance."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from netra.agents.base import AgentState
from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.messages import MessageRepository
from netra.db.queue import RunQueue
from netra.db.records import RunRecord, RunStatus, ToolCallRecord, utcnow
from netra.db.repositories import ThreadRepository
from netra.db.sql import Tx
from netra.db.turns import TurnRepository
from netra.errors import LostClaim, RunError
from netra.events.bridge import RunEmitter
from netra.metrics import Metrics

log = logging.getLogger(__name__)


INTERRUPTED = RunError("interrupted", "the server stopped while the run was executing")
"""The error of a run cut off by its server stopping."""


@dataclass(frozen=True, slots=True)
class Ending:
    status: RunStatus
    error: RunError | None = None


class AttemptEnds:
    """Process-wide; writes how each attempt ends, as ``instance_id``."""

    def __init__(
        self,
        *,
        db: DatabaseManager,
        metrics: Metrics,
        instance_id: str,
        lease_until: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._instance_id = instance_id
        self._lease_until = lease_until

    async def pause(
        self, ctx: UserExecutionContext, run: RunRecord, emitter: RunEmitter, state: AgentState
    ) -> RunRecord | None:
        """Pause the run until its user answers, then ask. The pause and the step's turn are
        one transaction, made once what the step streamed is stored; ``approval_required``
        goes out only once the pause is stored, so a client that sees it finds the run
        waiting. If every call was answered meanwhile, the run goes straight back to the
        queue: the requeued run is returned, for the engine to submit."""
        await emitter.settle()
        paused = await self._db.transact(self._suspend(ctx, run, state))
        if paused is None:
            log.warning("run %s attempt %d lost its claim while pausing", run.id, run.attempt)
            return None
        waiting, requeued = paused
        for record in waiting:
            await emitter.approval_required(
                record.tool_call_id, record.tool, record.arguments, record.side_effects
            )
        await emitter.settle()
        return requeued

    def _suspend(
        self, ctx: UserExecutionContext, run: RunRecord, state: AgentState
    ) -> Tx[tuple[list[ToolCallRecord], RunRecord | None] | None]:
        """The pause, with the step's turn: the calls still waiting, or the run requeued when
        none is; None when the attempt no longer holds the run."""
        suspended = yield from RunQueue.suspend(
            ctx, run.id, attempt=run.attempt, owner=self._instance_id, usage=state.usage.as_dict()
        )
        if not suspended:
            return None
        if state.turn is not None and state.turn.step == state.step:
            yield from TurnRepository(ctx).record(run.id, state.turn, fenced=False)
        waiting = yield from ToolCallRepository(ctx).undecided(run.id)
        if waiting:
            return waiting, None
        requeued = yield from RunQueue.requeue(
            ctx, run.id, owner=self._instance_id, lease_until=self._lease_until()
        )
        return waiting, requeued

    async def finish(
        self,
        ctx: UserExecutionContext,
        run: RunRecord,
        emitter: RunEmitter,
        state: AgentState | None,
        ending: Ending,
        *,
        store_answer: bool = True,
    ) -> bool:
        """Write the final state (and the answer) in one transaction with ``agent_completed``.
        False when the write was refused: another attempt took the run over (fencing)."""
        text = state.answer if state else ""
        usage = (
            state.usage.as_dict()
            if state
            else {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        )
        message_id = run.message_id if text else None

        instance_id = self._instance_id

        def final_state() -> Tx[bool]:
            finished = yield from RunQueue.finish(
                ctx,
                run.id,
                status=ending.status,
                attempt=run.attempt,
                owner=instance_id,
                error=ending.error,
                usage=usage,
            )
            if finished and text and store_answer:
                yield from MessageRepository(ctx).add(
                    thread_id=run.thread_id,
                    role="assistant",
                    content=text,
                    parent_id=run.question_id,
                    run_id=run.id,
                    message_id=run.message_id,
                    data={
                        "outcome": ending.status.value,
                        "tool_calls": state.tool_trace if state else [],
                    },
                )
                if run.question_id is not None:
                    yield from ThreadRepository(ctx).answered(
                        run.thread_id,
                        question_id=run.question_id,
                        answer_id=run.message_id,
                        since=run.created_at,
                    )
            return finished

        try:
            await emitter.completed(
                outcome=ending.status.value,
                usage=usage,
                message_id=message_id,
                error=ending.error,
                final_state=final_state,
            )
        except LostClaim:  # another attempt took the run over: its result is not ours to give
            log.warning(
                "run %s attempt %d lost its claim; final state not written", run.id, run.attempt
            )
            return False
        self._metrics.run_finished(
            agent=run.agent,
            outcome=ending.status.value,
            seconds=(utcnow() - run.started_at).total_seconds() if run.started_at else None,
        )
        return True
