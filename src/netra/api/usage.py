"""Usage reports: the caller's own (``GET /me/usage``), an organisation's (``GET /org/usage``,
its admins only) and everyone's (``GET /admin/usage``, administrators only): model calls and
spend summed by day, model or agent — and beyond one's own by user, tier or organisation —
as JSON pages, or as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from netra.api.deps import AdminUser, AppState, OrgAdmin, ThreadsReader
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.paging import Cursor, key_cursor, keys_of
from netra.api.views.runs import UsageReportView
from netra.db.records import utcnow
from netra.db.usage import DEFAULT_DAYS, Group, UsageLine, usage_report
from netra.errors import InvalidRequest
from netra.instance import Netra

router = APIRouter(tags=["usage"], route_class=DocumentedRoute)

SPAN_MAX_DAYS = 366
CSV_PAGE = 1000
_First = Annotated[
    date | None,
    Query(alias="from", description="The first day (UTC, YYYY-MM-DD); 29 days before `to`."),
]
_Last = Annotated[
    date | None, Query(description="The last day (UTC, YYYY-MM-DD), included; today.")
]
_Limit = Annotated[int, Query(ge=1, le=1000, description="Groups per page, 1 to 1000.")]


def span(first: date | None, last: date | None) -> tuple[date, date]:
    """The days asked for: by default the last 30, today included."""
    last = last or utcnow().date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidRequest("from is after to: give the first day, then the last", code="bad_span")
    if (last - first).days >= SPAN_MAX_DAYS:
        raise InvalidRequest(f"a report spans at most {SPAN_MAX_DAYS} days", code="bad_span")
    return first, last


async def _page(
    netra: Netra,
    *,
    scope: str | None,
    org: str | None = None,
    group: Group,
    split: Group | None,
    days: tuple[date, date],
    limit: int,
    cursor: str | None,
) -> UsageReportView:
    if split == group:
        raise InvalidRequest("split_by must differ from group_by", code="bad_grouping")
    after = keys_of(cursor, 2) if cursor else ("", "")
    lines, totals = await netra.db.transact(
        usage_report(
            scope=scope,
            org=org,
            group=group,
            split=split,
            first_day=days[0],
            last_day=days[1],
            after=(after[0], after[1]),
            limit=limit + 1,
        )
    )
    page = lines[:limit]
    more = len(lines) > limit
    return UsageReportView.model_validate(
        {
            "group_by": group,
            "split_by": split,
            "first_day": days[0].isoformat(),
            "last_day": days[1].isoformat(),
            "items": [line.as_dict() for line in page],
            "totals": {k: v for k, v in totals.as_dict().items() if k not in ("key", "split")},
            "next_cursor": key_cursor(page[-1].key or "", page[-1].split) if more else None,
        }
    )


JSON_OR_CSV: dict[int | str, dict[str, Any]] = {
    **error_responses(422),
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
}
"""What a report that may be CSV answers."""
_Split = Annotated[
    Literal["day", "model", "agent", "user", "tier", "org"] | None,
    Query(description="Split each group by this too (the parts of a stacked chart)."),
]


@router.get("/me/usage", responses=error_responses(422))
async def my_usage(
    ctx: ThreadsReader,
    netra: AppState,
    *,
    group_by: Literal["day", "model", "agent"] = "day",
    split_by: Annotated[
        Literal["day", "model", "agent"] | None,
        Query(description="Split each group by this too (the parts of a stacked chart)."),
    ] = None,
    first: _First = None,
    to: _Last = None,
    limit: _Limit = 100,
    cursor: Cursor = None,
) -> UsageReportView:
    """The caller's runs and their spend over a span of days (the last 30 by default, at
    most 366), summed by day, model or agent — each split by another if asked — in key
    order."""
    days = span(first, to)
    return await _page(
        netra,
        scope=ctx.user_id,
        group=group_by,
        split=split_by,
        days=days,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/admin/usage",
    response_model=UsageReportView,
    responses=JSON_OR_CSV,
)
async def all_usage(
    _: AdminUser,
    netra: AppState,
    *,
    group_by: Literal["user", "tier", "org", "agent", "model", "day"] = "user",
    split_by: _Split = None,
    first: _First = None,
    to: _Last = None,
    limit: _Limit = 100,
    cursor: Cursor = None,
    format: Literal["json", "csv"] = "json",
) -> UsageReportView | Response:
    """Every user's model calls and their spend over a span of days, summed by user
    (email), tier (as the users have it now), organisation (the one the call was made in;
    "" for none), agent, model or day — each split by another if asked.
    ``format=csv``: every group at once, a row each
    (``<group_by>[,<split_by>],runs,calls,input_tokens,output_tokens,cost_usd``), no paging."""
    days = span(first, to)
    return await _everyone(
        netra,
        None,
        group=group_by,
        split=split_by,
        days=days,
        limit=limit,
        cursor=cursor,
        format=format,
    )


@router.get(
    "/org/usage",
    response_model=UsageReportView,
    responses=JSON_OR_CSV,
)
async def org_usage(
    ctx: OrgAdmin,
    netra: AppState,
    *,
    group_by: Literal["user", "agent", "model", "day"] = "user",
    split_by: Annotated[
        Literal["user", "agent", "model", "day"] | None,
        Query(description="Split each group by this too (the parts of a stacked chart)."),
    ] = None,
    first: _First = None,
    to: _Last = None,
    limit: _Limit = 100,
    cursor: Cursor = None,
    format: Literal["json", "csv"] = "json",
) -> UsageReportView | Response:
    """Organisation admins only: the model calls the organisation's members made while in
    it, and their spend, summed by user (email), agent, model or day — figures only, never
    what was said. ``format=csv`` as for ``GET /admin/usage``."""
    assert ctx.org is not None  # an org admin's
    days = span(first, to)
    return await _everyone(
        netra,
        ctx.org.org_id,
        group=group_by,
        split=split_by,
        days=days,
        limit=limit,
        cursor=cursor,
        format=format,
    )


async def _everyone(
    netra: Netra,
    org: str | None,
    *,
    group: Group,
    split: Group | None,
    days: tuple[date, date],
    limit: int,
    cursor: str | None,
    format: Literal["json", "csv"],
) -> UsageReportView | Response:
    """Everyone's report (``org`` None) or one organisation's: a JSON page, or CSV."""
    if format == "csv":
        return await _csv(netra, org, group, split, days)
    return await _page(
        netra, scope=None, org=org, group=group, split=split, days=days, limit=limit, cursor=cursor
    )


async def _all_lines(
    netra: Netra, org: str | None, group: Group, split: Group | None, days: tuple[date, date]
) -> list[UsageLine]:
    lines: list[UsageLine] = []
    after = ("", "")
    while True:
        page, _ = await netra.db.transact(
            usage_report(
                scope=None,
                org=org,
                group=group,
                split=split,
                first_day=days[0],
                last_day=days[1],
                after=after,
                limit=CSV_PAGE,
            )
        )
        lines += page
        if len(page) < CSV_PAGE:
            return lines
        after = (page[-1].key or "", page[-1].split)


async def _csv(
    netra: Netra, org: str | None, group: Group, split: Group | None, days: tuple[date, date]
) -> Response:
    """Every group at once, as CSV: everyone's (``org`` None) or one organisation's."""
    if split == group:
        raise InvalidRequest("split_by must differ from group_by", code="bad_grouping")
    lines = await _all_lines(netra, org, group, split, days)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    sums = ["runs", "calls", "input_tokens", "output_tokens", "cost_usd"]
    writer.writerow([group, *([split] if split else []), *sums])
    for line in lines:
        row = line.as_dict()
        keys = [row["key"], *([row["split"]] if split else [])]
        writer.writerow([*keys, *(row[name] for name in sums)])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
