"""SubAgents: a run hands a task to another agent (the ``delegate`` tool) and reads its answer.

The child is a run of its own — a child context one level deeper, its own events
(``agent_started`` names the parent), admitted and metered against the same user's quotas —
that executes inside its parent's task, so it needs no second concurrency slot, and stops
with its parent. Its answer goes back to the parent, not into the thread.
"""

from __future__ import annotations

from collections.abc import Callable

from netra.context import UserExecutionContext
from netra.db.queue import RunQueue
from netra.db.records import RunRecord
from netra.db.sql import Tx
from netra.engine.attempt import Attempt, AttemptKit
from netra.tools.delegate import SubRun

ChildAdmission = Callable[[UserExecutionContext, str], Tx[None]]
"""Refuses a sub-agent's run (of this agent, for the user of this context) that the user's
quotas do not allow, with ``QuotaExceeded`` or ``PermissionDenied``, inside the transaction
that would store it (a transaction function). The quotas are the runs layer's
(``netra.runs.quotas``): handed in, so the engine does not import the layer that drives
it."""


class SubAgents:
    """Process-wide: runs the sub-agents of the runs executing here."""

    def __init__(
        self,
        kit: AttemptKit,
        attempt_of: Callable[[str, str], Attempt | None],
        admit: ChildAdmission,
    ) -> None:
        self._kit = kit
        self._attempt_of = attempt_of
        self._admit = admit

    async def run(self, ctx: UserExecutionContext, agent: str, task: str) -> SubRun:
        """Run ``agent`` on ``task`` for the run of ``ctx`` and wait for its answer."""
        if ctx.run_id is None or ctx.thread_id is None:
            raise ValueError("a sub-agent runs for a parent run")
        kit = self._kit
        definition = kit.agents.check_access(ctx, agent)
        thread_id, parent_run_id = ctx.thread_id, ctx.run_id
        model = definition.model or kit.config.settings.models.default

        def admit_and_start() -> Tx[RunRecord | None]:
            yield from self._admit(ctx, agent)
            queued = yield from RunQueue.create(
                ctx,
                thread_id=thread_id,
                agent=agent,
                model=model,
                parent_run_id=parent_run_id,
                owner=kit.instance_id,
                lease_until=kit.lease_until(),
            )
            return (
                yield from RunQueue.start(
                    ctx, queued.id, owner=kit.instance_id, lease_until=kit.lease_until()
                )
            )

        run = await kit.db.transact(admit_and_start())
        assert run is not None  # just created, queued, in this transaction
        child = Attempt(kit, ctx.child(run_id=run.id), run)
        ending, state = await child.execute_child(task, self._attempt_of(ctx.user_id, ctx.run_id))
        return SubRun(
            run_id=run.id,
            agent=agent,
            outcome=ending.status.value,
            answer=state.answer,
            usage=state.usage.as_dict(),
            error=ending.error,
        )
