"""CostGuard: a run's dollar budgets, checked after every model call.

``run_usd_budget`` is the run's own: what its calls cost so far, held in memory. The user's
``usd_per_day`` and ``usd_per_month`` span every run of the user, on every instance: when
either is set, each model call's usage is recorded on the run's row at once (fenced by the
attempt), and the user's spend read back in the same transaction, which holds the user's row
so that the charges of its runs, on any instance, are counted one after another. A run that
finds a budget spent ends ``failed`` with error ``cost_budget``; what it streamed stays. So a
user overshoots a budget by at most the model calls its runs had in flight when it was
crossed: one per run then running, whichever instance executes it.
"""

from __future__ import annotations

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.queue import RunQueue
from netra.db.records import RunRecord, utcnow
from netra.db.runs import RunRepository, day_start, month_start
from netra.db.sql import Tx
from netra.errors import NetraError
from netra.models.base import Usage
from netra.settings import LimitSettings


class CostBudgetExceeded(NetraError):
    """Raised when a run's model calls pass a dollar budget (the run's or its user's)."""

    code = "cost_budget"


class CostGuard:
    """One attempt's view of the dollar budgets in force for its run."""

    def __init__(
        self,
        db: DatabaseManager,
        ctx: UserExecutionContext,
        run: RunRecord,
        *,
        owner: str,
        limits: LimitSettings,
    ) -> None:
        self._db = db
        self._ctx = ctx
        self._run = run
        self._owner = owner
        self._limits = limits

    @property
    def shared(self) -> bool:
        """The user's own budgets apply: each call is recorded and the spend read back."""
        return bool(self._limits.usd_per_day or self._limits.usd_per_month)

    async def after_call(self, usage: Usage) -> None:
        """Check the budgets with the run's ``usage`` so far (every call, its latest too)."""
        budget = self._limits.run_usd_budget
        if budget and usage.cost_usd > budget:
            raise CostBudgetExceeded(
                f"the run cost ${usage.cost_usd:.6f}, past its budget of ${budget:g}"
            )
        if not self.shared:
            return
        spent = await self._db.transact(self._charge(usage))
        if spent is None:  # the attempt lost the run: its next write is refused anyway
            return
        today, month = spent
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

    def _charge(self, usage: Usage) -> Tx[tuple[float, float] | None]:
        run = self._run
        charged = yield from RunQueue.charge(
            self._ctx, run.id, attempt=run.attempt, owner=self._owner, usage=usage.as_dict()
        )
        if not charged:
            return None
        now = utcnow()
        return (
            yield from RunRepository(self._ctx).spent(
                day_start=day_start(now), month_start=month_start(now)
            )
        )
