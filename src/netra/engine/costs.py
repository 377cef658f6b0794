"""CostGuard: a run's model calls, recorded as they are made, and its dollar budgets, checked
after every call.

Each call's usage is stored (``netra.db.calls``) with the event log's next batch, under the
model that answered and the price it was charged at — not fenced by the attempt: a call an
attempt made counts even when the attempt is killed or loses the run, and every report,
budget and quota sums these rows.

``run_usd_budget`` is the run's own: what its calls cost so far, held in memory. The user's
``usd_per_day`` and ``usd_per_month`` span every run of the user, on every instance, and its
organisation's every run of its members: when any of them is set, the run waits until its
call is stored, then reads the spend. Each
check reads after its own call committed, so of two runs charging at once the later reader
sees both. A run that finds a budget spent ends ``failed`` with error ``cost_budget``; what
it streamed stays. So a user overshoots a budget by at most the model calls its runs had in
flight when it was crossed: one per run then running, whichever instance executes it.
"""

from __future__ import annotations

from netra.context import UserExecutionContext
from netra.db.calls import CallRepository, ModelCallRecord
from netra.db.manager import DatabaseManager
from netra.db.orgs import OrgRepository
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
        org_budgeted: bool = False,
    ) -> None:
        self._db = db
        self._ctx = ctx
        self._run = run
        self._emitter = emitter
        self._limits = limits
        self._org_budgeted = org_budgeted and ctx.org is not None
        """The user's organisation has budgets (as the attempt began)."""

    @property
    def shared(self) -> bool:
        """Budgets beyond the run apply (the user's, its organisation's): each call is
        stored before the spend is read."""
        return bool(self._limits.usd_per_day or self._limits.usd_per_month or self._org_budgeted)

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
            org_id=self._ctx.org.org_id if self._ctx.org else None,
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
        limits = self._limits
        personal = bool(limits.usd_per_day or limits.usd_per_month)
        if not personal and not self._org_budgeted:  # most runs: nothing more to check
            return
        now = utcnow()
        since = {"day_start": day_start(now), "month_start": month_start(now)}
        if personal:
            today, month = await self._db.transact(CallRepository(self._ctx).spent(**since))
            _check("your", limits.usd_per_day, limits.usd_per_month, today, month)
        if self._org_budgeted and self._ctx.org is not None:
            org = await self._db.transact(OrgRepository.spent(self._ctx.org.org_id, **since))
            if org is not None:  # budgets as they are now: an admin may have changed them
                _check(
                    "your organisation's", org.usd_per_day, org.usd_per_month, org.today, org.month
                )


def _check(whose: str, per_day: float, per_month: float, today: float, month: float) -> None:
    if per_day and today > per_day:
        raise CostBudgetExceeded(
            f"{whose} daily budget of ${per_day:g} is spent "
            f"(${today:.6f} today); it renews at 00:00 UTC"
        )
    if per_month and month > per_month:
        raise CostBudgetExceeded(
            f"{whose} monthly budget of ${per_month:g} is spent "
            f"(${month:.6f} this month); it renews on the 1st"
        )
