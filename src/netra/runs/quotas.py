"""Quotas: what a user's tier allows, checked at admission, before a run exists.

Each check reads the user's own runs and model calls (indexed by user and time; one
statement for all of them) inside the same transaction that would store the new run, so two
racing sends cannot both slip past a limit on one database. Token allowances and dollar
budgets (``usd_per_day``, ``usd_per_month``) count the user's model calls as recorded when
each was made (``netra.db.calls``), running runs' calls included. A member of an
organisation is held to its dollar budgets too, which count every member's calls (one more
statement). Refusals are ``QuotaExceeded`` (HTTP 429 with ``Retry-After``, WS error frame
``quota_exceeded`` with ``retry_after``); usage near a limit yields ``quota_warning``
events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.orgs import OrgRepository, OrgSpend
from netra.db.records import utcnow
from netra.db.runs import RunRepository, day_start, month_start, next_month
from netra.db.sql import Tx
from netra.errors import PermissionDenied, QuotaExceeded
from netra.events.payloads import QuotaWarning
from netra.settings import LimitSettings

MINUTE = timedelta(minutes=1)


def budget_left(
    per_day: float, per_month: float, *, today: float, month: float, at: datetime, whose: str
) -> None:
    """Refuse when a daily or monthly dollar budget (``whose``: "the", "your
    organisation's") is spent (``budget_exceeded``, with the seconds until it renews)."""
    if per_day and today >= per_day:
        renews = day_start(at) + timedelta(days=1)
        raise QuotaExceeded(
            f"{whose} daily budget of ${per_day:g} is spent; it renews at 00:00 UTC",
            retry_after=max(1, math.ceil((renews - at).total_seconds())),
            code="budget_exceeded",
        )
    if per_month and month >= per_month:
        raise QuotaExceeded(
            f"{whose} monthly budget of ${per_month:g} is spent; it renews on the 1st at 00:00 UTC",
            retry_after=max(1, math.ceil((next_month(at) - at).total_seconds())),
            code="budget_exceeded",
        )


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    """One user's usage as quotas see it."""

    runs_last_minute: int
    oldest_in_minute: datetime | None
    runs_today: int | None
    """None: not counted (``measure``)."""
    input_tokens_today: int
    output_tokens_today: int
    cost_usd_today: float
    cost_usd_month: float
    active_runs: int
    at: datetime
    org: OrgSpend | None = None
    """The user's organisation's budgets and spend; None: no organisation."""

    @property
    def tokens_today(self) -> int:
        return self.input_tokens_today + self.output_tokens_today

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs_last_minute": self.runs_last_minute,
            "active_runs": self.active_runs,
            "today": {
                "runs": self.runs_today,
                "input_tokens": self.input_tokens_today,
                "output_tokens": self.output_tokens_today,
                "tokens": self.tokens_today,
                "cost_usd": round(self.cost_usd_today, 6),
            },
            "month": {"cost_usd": round(self.cost_usd_month, 6)},
            "org": None
            if self.org is None
            else {
                "cost_usd_today": round(self.org.today, 6),
                "cost_usd_month": round(self.org.month, 6),
                "usd_per_day": self.org.usd_per_day,
                "usd_per_month": self.org.usd_per_month,
            },
        }


def measure(ctx: UserExecutionContext, *, runs_today: bool = False) -> Tx[UsageSnapshot]:
    """The user's usage now, in one read (two for a member of an organisation); the runs
    of the day are counted only when asked for (no quota checks them)."""
    now = utcnow()
    row = yield from RunRepository(ctx).usage(
        day_start=day_start(now),
        month_start=month_start(now),
        minute_start=now - MINUTE,
        runs_today=runs_today,
    )
    org = None
    if ctx.org is not None:
        org = yield from OrgRepository.spent(
            ctx.org.org_id, day_start=day_start(now), month_start=month_start(now)
        )
    return UsageSnapshot(
        runs_last_minute=int(row["runs_last_minute"]),
        oldest_in_minute=row["oldest_in_minute_at"],
        runs_today=int(row["runs_today"]) if runs_today else None,
        input_tokens_today=int(row["input_tokens"]),
        output_tokens_today=int(row["output_tokens"]),
        cost_usd_today=float(row["cost_usd"]),
        cost_usd_month=float(row["cost_usd_month"]),
        active_runs=int(row["active"]),
        at=now,
        org=org,
    )


def admit(limits: LimitSettings, usage: UsageSnapshot, *, agent: str) -> list[QuotaWarning]:
    """Refuse a new run the tier does not allow; return the warnings its admission causes."""
    if limits.allowed_agents is not None and agent not in limits.allowed_agents:
        raise PermissionDenied(f"the agent {agent!r} is not available on your plan")
    if limits.runs_per_minute and usage.runs_last_minute >= limits.runs_per_minute:
        oldest = usage.oldest_in_minute or usage.at
        wait = (oldest + MINUTE - usage.at).total_seconds()
        raise QuotaExceeded(
            f"at most {limits.runs_per_minute} runs per minute on your plan",
            retry_after=max(1, math.ceil(wait)),
        )
    if limits.tokens_per_day and usage.tokens_today >= limits.tokens_per_day:
        tomorrow = day_start(usage.at) + timedelta(days=1)
        raise QuotaExceeded(
            f"the daily allowance of {limits.tokens_per_day} tokens is used up; "
            "it renews at 00:00 UTC",
            retry_after=max(1, math.ceil((tomorrow - usage.at).total_seconds())),
        )
    budget_left(
        limits.usd_per_day,
        limits.usd_per_month,
        today=usage.cost_usd_today,
        month=usage.cost_usd_month,
        at=usage.at,
        whose="the",
    )
    org = usage.org
    if org is not None:
        budget_left(
            org.usd_per_day,
            org.usd_per_month,
            today=org.today,
            month=org.month,
            at=usage.at,
            whose="your organisation's",
        )
    if (
        limits.concurrency_policy == "reject"
        and usage.active_runs >= limits.max_concurrent_runs_per_user
    ):
        raise QuotaExceeded(
            f"{usage.active_runs} runs are already active; "
            f"your plan allows {limits.max_concurrent_runs_per_user} at once",
            retry_after=5,
        )
    warnings = []
    checks: tuple[tuple[str, float, float], ...] = (
        ("runs_per_minute", usage.runs_last_minute + 1, limits.runs_per_minute),
        ("tokens_per_day", usage.tokens_today, limits.tokens_per_day),
        ("usd_per_day", round(usage.cost_usd_today, 6), limits.usd_per_day),
        ("usd_per_month", round(usage.cost_usd_month, 6), limits.usd_per_month),
    )
    if org is not None:
        checks += (
            ("org_usd_per_day", round(org.today, 6), org.usd_per_day),
            ("org_usd_per_month", round(org.month, 6), org.usd_per_month),
        )
    for quota, used, limit in checks:
        if limit and used >= limits.quota_warning_ratio * limit:
            warnings.append(QuotaWarning(quota, used, limit))
    return warnings


@dataclass(frozen=True, slots=True)
class SubAgentAdmission:
    """The engine's admission of a sub-agent's run (``netra.engine.children.ChildAdmission``):
    the same quotas as any run of its user, so delegating passes no limit the user could not.
    Only refusals count here: quota warnings go with a user's own message (``RunService``)."""

    config: UnifiedConfigurationManager

    def __call__(self, ctx: UserExecutionContext, agent: str) -> Tx[None]:
        usage = yield from measure(ctx)
        admit(self.config.limits_for(ctx.tier, ctx.limits), usage, agent=agent)
