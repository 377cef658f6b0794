"""Usage reports: the caller's own (``GET /me/usage``) and everyone's (``GET /admin/usage``,
administrators only), runs and spend summed by day, model or agent — and for administrators
by user or tier — as JSON pages, or for administrators as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from netra.api.deps import AdminUser, AppState, ThreadsReader
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.paging import Cursor, key_cursor, keys_of
from netra.api.views import UsageReportView
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


_Split = Annotated[
    Literal["day", "model", "agent", "user", "tier"] | None,
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
    responses={
        **error_responses(422),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
async def all_usage(
    _: AdminUser,
    netra: AppState,
    *,
    group_by: Literal["user", "tier", "agent", "model", "day"] = "user",
    split_by: _Split = None,
    first: _First = None,
    to: _Last = None,
    limit: _Limit = 100,
    cursor: Cursor = None,
    format: Literal["json", "csv"] = "json",
) -> UsageReportView | Response:
    """Every user's runs and their spend over a span of days, summed by user (email), tier
    (as the users have it now), agent, model or day — each split by another if asked.
    ``format=csv``: every group at once, a row each
    (``<group_by>[,<split_by>],runs,input_tokens,output_tokens,cost_usd``), no paging."""
    days = span(first, to)
    if format == "csv":
        if split_by == group_by:
            raise InvalidRequest("split_by must differ from group_by", code="bad_grouping")
        return _csv(await _all_lines(netra, group_by, split_by, days), group_by, split_by)
    return await _page(
        netra,
        scope=None,
        group=group_by,
        split=split_by,
        days=days,
        limit=limit,
        cursor=cursor,
    )


async def _all_lines(
    netra: Netra, group: Group, split: Group | None, days: tuple[date, date]
) -> list[UsageLine]:
    lines: list[UsageLine] = []
    after = ("", "")
    while True:
        page, _ = await netra.db.transact(
            usage_report(
                scope=None,
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


def _csv(lines: list[UsageLine], group: str, split: str | None) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    sums = ["runs", "input_tokens", "output_tokens", "cost_usd"]
    writer.writerow([group, *([split] if split else []), *sums])
    for line in lines:
        row = line.as_dict()
        keys = [row["key"], *([row["split"]] if split else [])]
        writer.writerow([*keys, *(row[name] for name in sums)])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
