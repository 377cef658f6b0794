"""RunRepository: reads of a user's runs, as transaction functions; every statement is
filtered by the context's ``user_id``. Every change of a run (status, holder, lease,
attempt) is ``netra.db.queue``."""

from __future__ import annotations

from datetime import datetime

from netra.db.records import RunRecord, RunStatus
from netra.db.repositories import Scoped
from netra.db.sql import Row, Statement, Tx, first, rows
from netra.errors import NotFound

ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.REQUIRES_APPROVAL.value)
"""Statuses of a run not yet final (the statements spell them out, for the planner)."""


def day_start(now: datetime) -> datetime:
    """The UTC day ``now`` is in starts then: daily quotas and budgets count from it."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    """The UTC calendar month ``now`` is in starts then (monthly budgets)."""
    return day_start(now).replace(day=1)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


RUN_GET = Statement(
    "run: one of the user's",
    "SELECT * FROM runs WHERE id = :id AND user_id = :user_id",
)
_QUOTAS_FROM = (
    " (SELECT coalesce(sum(CASE WHEN starts_at >= :day_start THEN input_tokens ELSE 0 END), 0)"
    " AS input_tokens,"
    " coalesce(sum(CASE WHEN starts_at >= :day_start THEN output_tokens ELSE 0 END), 0)"
    " AS output_tokens,"
    " coalesce(sum(CASE WHEN starts_at >= :day_start THEN cost_usd ELSE 0 END), 0.0)"
    " AS cost_usd, coalesce(sum(cost_usd), 0.0) AS cost_usd_month"
    " FROM spend_days WHERE user_id = :user_id AND starts_at >= :month_start) AS spend,"
    " (SELECT count(*) AS runs_last_minute, min(created_at) AS oldest_in_minute_at"
    " FROM runs WHERE user_id = :user_id AND created_at >= :minute_start) AS minute,"
    " (SELECT count(*) AS active FROM runs"
    " WHERE user_id = :user_id AND status IN ('queued', 'running', 'requires_approval'))"
    " AS active"
)
_QUOTAS_READ = (
    "spend.input_tokens, spend.output_tokens, spend.cost_usd, spend.cost_usd_month,"
    " minute.runs_last_minute, minute.oldest_in_minute_at, active.active"
)
RUN_QUOTAS = Statement(
    "usage: the user's model calls' tokens and spend today and this month, runs in the last"
    " minute, runs not yet final",
    f"SELECT {_QUOTAS_READ} FROM{_QUOTAS_FROM}",
)
"""What a new run's quotas check, read at every message: each part bounded (a month's
days, a minute's runs, the runs not yet final), however many runs the user made today."""
RUN_USAGE = Statement(
    "usage: the user's runs today, and what a new run's quotas check",
    f"SELECT today.runs_today, {_QUOTAS_READ} FROM"  # noqa: S608 - constants, no input
    " (SELECT count(*) AS runs_today FROM runs"
    " WHERE user_id = :user_id AND created_at >= :day_start) AS today,"
    f"{_QUOTAS_FROM}",
)
"""``RUN_QUOTAS`` and the runs of the day, counted one by one (``GET /me``, not a run's
admission)."""
RUNS_OF_THREAD = Statement(
    "runs: a thread's, newest first",
    "SELECT * FROM runs WHERE user_id = :user_id AND thread_id = :thread_id"
    " ORDER BY created_at DESC, id DESC LIMIT :limit",
)
RUNS_OF_THREAD_BEFORE = Statement(
    "runs: a thread's, newest first, before a position",
    "SELECT * FROM runs WHERE user_id = :user_id AND thread_id = :thread_id"
    " AND (created_at < :created_at OR (created_at = :created_at AND id < :id))"
    " ORDER BY created_at DESC, id DESC LIMIT :limit",
)
RUN_ACTIVE_IN_THREAD = Statement(
    "runs: a thread's not yet final, oldest first",
    "SELECT * FROM runs WHERE thread_id = :thread_id AND user_id = :user_id"
    " AND status IN ('queued', 'running', 'requires_approval') ORDER BY created_at",
    # Without statistics SQLite would walk all of the user's runs by (user_id, created_at).
    sqlite="SELECT * FROM runs INDEXED BY ix_runs_thread_id_created_at"
    " WHERE thread_id = :thread_id AND user_id = :user_id"
    " AND status IN ('queued', 'running', 'requires_approval') ORDER BY created_at",
)


def run_record(row: Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        user_id=row["user_id"],
        thread_id=row["thread_id"],
        parent_run_id=row["parent_run_id"],
        agent=row["agent"],
        model=row["model"],
        status=RunStatus(row["status"]),
        outcome=row["outcome"],
        error=row["error"],
        usage=row["usage"],
        attempt=row["attempt"],
        message_id=row["message_id"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        owner=row["owner"],
        cancel_requested=row["cancel_requested"],
        recoveries=row["recoveries"],
        resume_reason=row["resume_reason"],
        question_id=row["question_id"],
    )


class RunRepository(Scoped):
    def get(self, run_id: str) -> Tx[RunRecord]:
        row = yield from first(RUN_GET(id=run_id, user_id=self.user_id))
        if row is None:
            raise NotFound("run not found")
        return run_record(row)

    def usage(
        self,
        *,
        day_start: datetime,
        month_start: datetime,
        minute_start: datetime,
        runs_today: bool = False,
    ) -> Tx[Row]:
        """One read of what the quotas check: ``input_tokens``, ``output_tokens``,
        ``cost_usd`` (of model calls made since ``day_start``), ``cost_usd_month`` (since
        ``month_start``), ``runs_last_minute`` and ``oldest_in_minute_at`` (since
        ``minute_start``), and ``active`` (runs not yet final, whenever created); with
        ``runs_today``, the runs created since ``day_start`` too."""
        row = yield from first(
            (RUN_USAGE if runs_today else RUN_QUOTAS)(
                user_id=self.user_id,
                day_start=day_start,
                month_start=month_start,
                minute_start=minute_start,
            )
        )
        assert row is not None
        return row

    def of_thread(
        self, thread_id: str, *, limit: int, before: tuple[datetime, str] | None = None
    ) -> Tx[list[RunRecord]]:
        """The thread's runs, newest first: the first ``limit``, or those past ``before``
        (a run's ``(created_at, id)``)."""
        scope = {"user_id": self.user_id, "thread_id": thread_id, "limit": limit}
        if before is None:
            statement = RUNS_OF_THREAD(**scope)
        else:
            statement = RUNS_OF_THREAD_BEFORE(**scope, created_at=before[0], id=before[1])
        found = yield from rows(statement)
        return [run_record(row) for row in found]

    def active_in_thread(self, thread_id: str) -> Tx[list[RunRecord]]:
        """Runs of the thread not yet final (queued, running or waiting for approval)."""
        found = yield from rows(RUN_ACTIVE_IN_THREAD(user_id=self.user_id, thread_id=thread_id))
        return [run_record(row) for row in found]
