"""CostGuard: a run's model calls, recorded as they are made, and its dollar budgets, checked
after every call.

Each call's usage is stored (``netra.db.calls``) with the event log's next batch, under the
model that answered and the price it was charged at — not fenced by the attempt: a call an
attempt made counts even when the attempt is killed or loses the run, and every report,
budget and quota sums these rows.

``run_usd_budget`` is the run's own: what its calls cost so far, held in memory. The user's
``usd_per_day`` and ``usd_per_month`` span every run of the user, on every instance: when
either is set, the run waits until its call is stored, then reads the user's spend. Each
check reads after its own call committed, so of two runs charging at once the later reader
sees both. A run that finds a budget spent ends ``failed`` with error ``cost_budget``; what
it streamed stays. So a user overshoots a budget by at most the model calls its runs had in
flight when it was crossed: one per run then running, whichever instance executes it.
"""

from __future__ import annotations

from netra.context import UserExecutionContext
from netra.db.calls import CallRepository, ModelCallRecord
from netra.db.manager import DatabaseManager
from netra.db.records import RunRecord, utcnow
from netra.db.runs import day_start, month_start
from netra.errors import NetraError
from netra.events.bridge import RunEmitter
from netra.ids import new_id
from netra.models.base import Usage
from netra.models.failover import PricedCall
from netra.settings import LimitSettings


class CostBudgetExceeded(NetraError):
    """Raised when a run's model calls pass a dollar budget (the run's or its user's)."""

    code = "cost_budget"


class CostGuard:
    """One attempt's meter: records its model calls and checks the budgets in force."""

    def __init__(
        self,
        db: DatabaseManager,
        ctx: UserExecutionContext,
        run: RunRecord,
        emitter: RunEmitter,
        *,
        limits: LimitSettings,
    ) -> None:
        self._db = db
        self._ctx = ctx
        self._run = run
        self._emitter = emitter
        self._limits = limits

    @property
    def shared(self) -> bool:
        """The user's own budgets apply: each call is stored before the spend is read."""
        return bool(self._limits.usd_per_day or self._limits.usd_per_month)

    async def record(self, call: PricedCall) -> None:
        """Store one call's usage (``FailoverModel``'s meter), waited for when the user's
        budgets will read it."""
        price, usage, run = call.price, call.usage, self._run
        record = ModelCallRecord(
            id=new_id("mc"),
            user_id=self._ctx.user_id,
            run_id=run.id,
            attempt=run.attempt,
            agent=run.agent,
            model=call.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cost_usd=usage.cost_usd,
            input_per_mtok=price.input_per_mtok if price else None,
            output_per_mtok=price.output_per_mtok if price else None,
            cached_input_per_mtok=price.cached_input_per_mtok if price else None,
            prices_as_of=call.prices_as_of if price else None,
            created_at=utcnow(),
        )
        await self._emitter.meter(record.store, wait=self.shared)

    async def after_call(self, usage: Usage) -> None:
        """Check the budgets with the run's ``usage`` so far (every call, its latest too),
        once the latest call is recorded."""
        budget = self._limits.run_usd_budget
        if budget and usage.cost_usd > budget:
            raise CostBudgetExceeded(
                f"the run cost ${usage.cost_usd:.6f}, past its budget of ${budget:g}"
            )
        if not self.shared:
            return
        now = utcnow()
        today, month = await self._db.transact(
            CallRepository(self._ctx).spent(day_start=day_start(now), month_start=month_start(now))
        )
        if self._limits.usd_per_day and today > self._limits.usd_per_day:
            raise CostBudgetExceeded(
                f"your daily budget of ${self._limits.usd_per_day:g} is spent "
                f"(${today:.6f} today); it renews at 00:00 UTC"
            )
        if self._limits.usd_per_month and month > self._limits.usd_per_month:
            raise CostBudgetExceeded(
                f"your monthly budget of ${self._limits.usd_per_month:g} is spent "
                f"(${month:.6f} this month); it renews on the 1st"
            )
