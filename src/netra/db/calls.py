"""Model calls: each call's usage, stored when it is made, at the price it was charged then
(table ``model_calls``), each also added to its user's day (``spend_days``) and, made in an
organisation, to the organisation's (``org_spend_days``). The writes go with the event log's
batches; the reads are what a user's runs cost over a span, for budgets and quotas, from the
days. Reports group the calls (``netra.db.usage``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from netra.db.repositories import Scoped
from netra.db.runs import day_start
from netra.db.sql import Statement, Tx, execute, first

CALL_INSERT = Statement(
    "model call: its usage and price, as it was made",
    "INSERT INTO model_calls (id, user_id, run_id, attempt, agent, model, input_tokens,"
    " output_tokens, cached_input_tokens, cost_usd, input_per_mtok, output_per_mtok,"
    " cached_input_per_mtok, prices_as_of, created_at, org_id) VALUES (:id, :user_id, :run_id,"
    " :attempt, :agent, :model, :input_tokens, :output_tokens, :cached_input_tokens, :cost_usd,"
    " :input_per_mtok, :output_per_mtok, :cached_input_per_mtok, :prices_as_of, :created_at,"
    " :org_id)",
)
SPEND_ADD = Statement(
    "model call: added to its user's day",
    "INSERT INTO spend_days (user_id, starts_at, input_tokens, output_tokens, cost_usd)"
    " VALUES (:user_id, :starts_at, :input_tokens, :output_tokens, :cost_usd)"
    " ON CONFLICT (user_id, starts_at) DO UPDATE SET"
    " input_tokens = spend_days.input_tokens + excluded.input_tokens,"
    " output_tokens = spend_days.output_tokens + excluded.output_tokens,"
    " cost_usd = spend_days.cost_usd + excluded.cost_usd",
)
ORG_SPEND_ADD = Statement(
    "model call: added to its organisation's day",
    "INSERT INTO org_spend_days (org_id, starts_at, cost_usd) VALUES (:org_id, :starts_at,"
    " :cost_usd) ON CONFLICT (org_id, starts_at) DO UPDATE SET"
    " cost_usd = org_spend_days.cost_usd + excluded.cost_usd",
)
CALLS_SPENT = Statement(
    "spend: the user's today and this month (a run's check after a model call)",
    "SELECT coalesce(sum(CASE WHEN starts_at >= :day_start THEN cost_usd ELSE 0 END), 0.0)"
    " AS today, coalesce(sum(cost_usd), 0.0) AS month FROM spend_days"
    " WHERE user_id = :user_id AND starts_at >= :month_start",
)


@dataclass(frozen=True, slots=True)
class ModelCallRecord:
    """One model call of a run's attempt: tokens, cost, and the price per million tokens it
    was charged at (None: the model had no price)."""

    id: str
    user_id: str
    run_id: str
    attempt: int
    agent: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float
    input_per_mtok: float | None
    output_per_mtok: float | None
    cached_input_per_mtok: float | None
    prices_as_of: str | None
    created_at: datetime
    org_id: str | None
    """The organisation the user was in: its budgets and reports count the call."""

    def store(self) -> Tx[bool]:
        """Insert the row, and add it to its user's day (``spend_days``) and, made in an
        organisation, to the organisation's (``org_spend_days``): a write that goes with the
        event log's batch."""
        yield from execute(CALL_INSERT(**{name: getattr(self, name) for name in _COLUMNS}))
        day = day_start(self.created_at)
        yield from execute(
            SPEND_ADD(
                user_id=self.user_id,
                starts_at=day,
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cost_usd=self.cost_usd,
            )
        )
        if self.org_id is not None:
            yield from execute(
                ORG_SPEND_ADD(org_id=self.org_id, starts_at=day, cost_usd=self.cost_usd)
            )
        return True


_COLUMNS = tuple(field.name for field in fields(ModelCallRecord))
"""The row's columns, the record's fields (``asdict`` would deep-copy every value)."""


class CallRepository(Scoped):
    """One user's model calls."""

    def spent(self, *, day_start: datetime, month_start: datetime) -> Tx[tuple[float, float]]:
        """What the user's model calls cost since ``day_start`` and since ``month_start``."""
        row = yield from first(
            CALLS_SPENT(user_id=self.user_id, day_start=day_start, month_start=month_start)
        )
        assert row is not None
        return float(row["today"]), float(row["month"])
