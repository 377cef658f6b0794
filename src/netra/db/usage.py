"""Usage reports: what model calls used and cost, summed in SQL by day, model, agent, user,
tier or organisation — and within each group, split by a second of them — over a span of
days, on both databases alike.

A call counts on the day (UTC) it was made, under the model that answered and the agent of
its run, at the cost it was charged then (``model_calls``: a price edit changes no past
figure); ``runs`` counts the runs with a call in the group. A user's tier is the one it has
now, an organisation the one the call was made in. One user's report (``scope`` its id),
one organisation's (``org``: the calls its members made while in it) or everyone's (neither:
administrators).
Groups come in key order (then split order), a page at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any, Literal

from netra.db.sql import Statement, Tx, first, rows

DEFAULT_DAYS = 30
"""A report's span when none is asked for: the last 30 days, today included."""
Group = Literal["day", "model", "agent", "user", "tier", "org"]
GROUPS: tuple[Group, ...] = ("day", "model", "agent", "user", "tier", "org")
_KEYS: dict[Group, tuple[str, str]] = {
    # (PostgreSQL, SQLite): SQLite holds a time as text, "YYYY-MM-DD HH:MM:SS…", in UTC
    "day": (
        "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        "substr(c.created_at, 1, 10)",
    ),
    "model": ("c.model", "c.model"),
    "agent": ("c.agent", "c.agent"),
    "user": ("u.email", "u.email"),
    "tier": ("u.tier", "u.tier"),
    "org": ("coalesce(o.name, '')", "coalesce(o.name, '')"),
}
_SUMS = (
    "count(DISTINCT c.run_id) AS runs, count(*) AS calls,"
    " coalesce(sum(c.input_tokens), 0) AS input_tokens,"
    " coalesce(sum(c.output_tokens), 0) AS output_tokens,"
    " coalesce(sum(c.cost_usd), 0.0) AS cost_usd"
)
_FROM = (
    "FROM model_calls c JOIN users u ON u.id = c.user_id LEFT JOIN orgs o ON o.id = c.org_id"
    " WHERE (:everyone OR c.user_id = :user_id OR c.org_id = :org_id)"
    " AND c.created_at >= :start_at AND c.created_at < :end_at"
)


@cache
def _grouped(group: Group, split: Group | None) -> Statement:
    """The statement of one grouping (each is built once, from this module's constants
    alone: what a client chooses is a key of ``_KEYS``)."""

    def sql(dialect: int) -> str:
        key = _KEYS[group][dialect]
        second = _KEYS[split][dialect] if split else "''"
        grouping = f"{key}, {second}" if split else key
        return (
            f"SELECT * FROM (SELECT {key} AS key, {second} AS split, {_SUMS} {_FROM}"  # noqa: S608
            f" GROUP BY {grouping}) AS g"
            " WHERE g.key > :after OR (g.key = :after AND g.split > :after_split)"
            " ORDER BY g.key, g.split LIMIT :limit"
        )

    name = f"usage report: model calls and spend by {group}" + (
        f", split by {split}" if split else ""
    )
    return Statement(f"{name}, a page", postgres=sql(0), sqlite=sql(1))


TOTALS = Statement("usage report: model calls and spend in all", f"SELECT {_SUMS} {_FROM}")


@dataclass(frozen=True, slots=True)
class UsageLine:
    """One group's runs, calls and spend (``split``: its part of a second grouping, ""
    without one), or the report's totals (``key`` None)."""

    key: str | None
    split: str
    runs: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "split": self.split,
            "runs": self.runs,
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


def _line(row: dict[str, Any]) -> UsageLine:
    return UsageLine(
        row.get("key"),
        str(row.get("split") or ""),
        int(row["runs"]),
        int(row["calls"]),
        int(row["input_tokens"]),
        int(row["output_tokens"]),
        float(row["cost_usd"]),
    )


def usage_report(
    *,
    scope: str | None,
    org: str | None = None,
    group: Group,
    first_day: date,
    last_day: date,
    split: Group | None = None,
    after: tuple[str, str] = ("", ""),
    limit: int,
) -> Tx[tuple[list[UsageLine], UsageLine]]:
    """A page of the groups of model calls made from ``first_day`` to ``last_day`` (UTC, both
    included), each split by ``split`` if given, that come after ``after`` (a group's key
    and split), and the totals of them all."""
    span = {
        "everyone": scope is None and org is None,
        "user_id": scope or "",
        "org_id": org or "",
        "start_at": datetime.combine(first_day, time(), UTC),
        "end_at": datetime.combine(last_day + timedelta(days=1), time(), UTC),
    }
    statement = _grouped(group, split)
    found = yield from rows(statement(**span, after=after[0], after_split=after[1], limit=limit))
    totals = yield from first(TOTALS(**span))
    assert totals is not None  # an aggregate always has its row
    return [_line(row) for row in found], _line(totals)


MODEL_MIX = Statement(
    "usage report: each model's calls, their largest prompt, what passed a prompt size, and"
    " whether their runs used tools",
    "SELECT c.model AS model, count(DISTINCT c.run_id) AS runs, count(*) AS calls,"  # noqa: S608
    " coalesce(sum(c.input_tokens), 0) AS input_tokens,"
    " coalesce(sum(c.output_tokens), 0) AS output_tokens,"
    " coalesce(sum(c.cost_usd), 0.0) AS cost_usd,"
    " coalesce(max(c.input_tokens), 0) AS largest_input,"
    " coalesce(sum(CASE WHEN c.input_tokens > :trim_to THEN c.input_tokens - :trim_to"
    " ELSE 0 END), 0) AS input_over,"
    " coalesce(sum(CASE WHEN c.input_tokens > :trim_to THEN 1 ELSE 0 END), 0) AS calls_over,"
    " coalesce(max(CASE WHEN EXISTS (SELECT 1 FROM tool_calls t WHERE t.run_id = c.run_id)"
    " THEN 1 ELSE 0 END), 0) AS used_tools"
    f" {_FROM} GROUP BY c.model ORDER BY cost_usd DESC, c.model",
)


@dataclass(frozen=True, slots=True)
class ModelMix:
    """How one model was used over a span: what a cheaper model would have to match (its
    largest prompt, whether tools were called) and what prompts over ``trim_to`` tokens
    added (``input_over``, in ``calls_over`` calls)."""

    model: str
    runs: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    largest_input: int
    input_over: int
    calls_over: int
    used_tools: bool


def model_mix(
    *, scope: str | None, org: str | None = None, first_day: date, last_day: date, trim_to: int
) -> Tx[list[ModelMix]]:
    """Each model's use from ``first_day`` to ``last_day`` (UTC, both included), costliest
    first, for one user (``scope``), one organisation (``org``) or everyone."""
    found = yield from rows(
        MODEL_MIX(
            everyone=scope is None and org is None,
            user_id=scope or "",
            org_id=org or "",
            start_at=datetime.combine(first_day, time(), UTC),
            end_at=datetime.combine(last_day + timedelta(days=1), time(), UTC),
            trim_to=trim_to,
        )
    )
    return [
        ModelMix(
            model=str(row["model"]),
            runs=int(row["runs"]),
            calls=int(row["calls"]),
            input_tokens=int(row["input_tokens"]),
            output_tokens=int(row["output_tokens"]),
            cost_usd=float(row["cost_usd"]),
            largest_input=int(row["largest_input"]),
            input_over=int(row["input_over"]),
            calls_over=int(row["calls_over"]),
            used_tools=bool(row["used_tools"]),
        )
        for row in found
    ]
