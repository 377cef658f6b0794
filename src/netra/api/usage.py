"""Usage reports: the caller's own (``GET /me/usage``) and everyone's (``GET /admin/usage``,
administrators only), runs and spend summed by day, model or agent — and for administrators
by user or tier — as JSON pages, or for administrators as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from netra.api.deps import AdminUser, AppState, CurrentUser
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.paging import Cursor, key_cursor, key_of
from netra.api.views import UsageReportView
from netra.db.records import utcnow
from netra.db.usage import Group, usage_report
from netra.errors import InvalidRequest
from netra.instance import Netra

router = APIRouter(tags=["usage"], route_class=DocumentedRoute)

SPAN_MAX_DAYS = 366
DEFAULT_DAYS = 30
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
    days: tuple[date, date],
    limit: int,
    cursor: str | None,
) -> UsageReportView:
    after = key_of(cursor) if cursor else ""
    lines, totals = await netra.db.transact(
        usage_report(
            scope=scope,
            group=group,
            first_day=days[0],
            last_day=days[1],
            after=after,
            limit=limit + 1,
        )
    )
    page = lines[:limit]
    more = len(lines) > limit and page[-1].key is not None
    return UsageReportView.model_validate(
        {
            "group_by": group,
            "first_day": days[0].isoformat(),
            "last_day": days[1].isoformat(),
            "items": [line.as_dict() for line in page],
            "totals": {k: v for k, v in totals.as_dict().items() if k != "key"},
            "next_cursor": key_cursor(page[-1].key or "") if more else None,
        }
    )


@router.get("/me/usage", responses=error_responses(422))
async def my_usage(
    ctx: CurrentUser,
    netra: AppState,
    *,
    group_by: Literal["day", "model", "agent"] = "day",
    first: _First = None,
    to: _Last = None,
    limit: _Limit = 100,
    cursor: Cursor = None,
) -> UsageReportView:
    """The caller's runs and their spend over a span of days (the last 30 by default, at
    most 366), summed by day, model or agent, in key order."""
    days = span(first, to)
    return await _page(
        netra, scope=ctx.user_id, group=group_by, days=days, limit=limit, cursor=cursor
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
    first: _First = None,
    to: _Last = None,
    limit: _Limit = 100,
    cursor: Cursor = None,
    format: Literal["json", "csv"] = "json",
) -> UsageReportView | Response:
    """Every user's runs and their spend over a span of days, summed by user (email), tier
    (as the users have it now), agent, model or day. ``format=csv``: every group at once, a
    row each (``key,runs,input_tokens,output_tokens,cost_usd``), no paging."""
    days = span(first, to)
    if format == "csv":
        return _csv(await _all_lines(netra, group_by, days), group_by)
    return await _page(netra, scope=None, group=group_by, days=days, limit=limit, cursor=cursor)


async def _all_lines(netra: Netra, group: Group, days: tuple[date, date]) -> list[list[object]]:
    lines: list[list[object]] = []
    after = ""
    while True:
        page, _ = await netra.db.transact(
            usage_report(
                scope=None,
                group=group,
                first_day=days[0],
                last_day=days[1],
                after=after,
                limit=CSV_PAGE,
            )
        )
        for line in page:
            row = line.as_dict()
            lines.append(
                [
                    row["key"],
                    row["runs"],
                    row["input_tokens"],
                    row["output_tokens"],
                    row["cost_usd"],
                ]
            )
        if len(page) < CSV_PAGE:
            return lines
        after = page[-1].key or ""


def _csv(lines: list[list[object]], group: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([group, "runs", "input_tokens", "output_tokens", "cost_usd"])
    writer.writerows(lines)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
