"""The AI-spend tools: what the user asked before, what their model use cost, and where it
could cost less. Every figure is the user's own: their model calls as recorded (the usage
reports of ``netra.db.usage``, scoped to the caller), compared by the model catalog's price
table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.records import utcnow
from netra.db.search import search, terms
from netra.db.sql import Tx
from netra.db.usage import Group, UsageLine, model_mix, usage_report
from netra.errors import ToolError
from netra.model_ids import ModelId
from netra.models.catalog import ModelCatalog
from netra.tools.tool import Tool, tool

Days = Annotated[int, Field(ge=1, le=365)]
PER_MODEL = 3
"""Cheaper alternatives listed per model used."""
QUALITY_NOTE = (
    "Cheaper models are often smaller: try the suggestion on a sample of your own prompts "
    "before switching."
)

SNIPPET_CHARS = 80
"""Characters of a hit the search tool quotes, around the first word found."""


Scope = Literal["me", "org"]
"""Whose usage: the caller's own, or (an organisation's admins only) its members'."""
TOP = 5
"""Entries of each ranking a report lists (users, agents, models)."""
TRIM_TO = 8000
"""Input tokens a call could be trimmed to (the newest turns that fit, the older ones
summarised): what prompts past it cost is what trimming would save."""


@dataclass(frozen=True, slots=True)
class _Span:
    """Whose usage, over which days."""

    days: int
    first: date
    last: date
    scope: str | None
    org: str | None

    @classmethod
    def of(cls, ctx: UserExecutionContext, days: int, scope: Scope) -> _Span:
        last = utcnow().date()
        first = last - timedelta(days=days - 1)
        if scope == "me":
            return cls(days, first, last, ctx.user_id, None)
        if ctx.org is None or not ctx.org.admin:
            raise ToolError("only an organisation's admins may read its usage (scope 'org')")
        return cls(days, first, last, None, ctx.org.org_id)

    def report(self, group: Group, limit: int) -> Tx[tuple[list[UsageLine], UsageLine]]:
        return usage_report(
            scope=self.scope,
            org=self.org,
            group=group,
            first_day=self.first,
            last_day=self.last,
            limit=limit,
        )


class SpendTools:
    """Builds the three tools, bound to the database and the model catalog."""

    def __init__(self, db: DatabaseManager, catalog: ModelCatalog) -> None:
        self._db = db
        self._catalog = catalog

    def tools(self) -> list[Tool]:
        return [self._search_threads(), self._usage_report(), self._recommend_models()]

    async def usage(
        self, ctx: UserExecutionContext, days: int, scope: Scope = "me"
    ) -> dict[str, Any]:
        """Model usage over the last ``days`` (UTC days, today included): totals, the
        costliest models, agents (and, for an organisation, users), and each day."""
        span = _Span.of(ctx, days, scope)
        groups: tuple[Group, ...] = ("model", "agent", "user") if span.org else ("model", "agent")

        def read() -> Tx[tuple[dict[str, list[UsageLine]], UsageLine]]:
            found: dict[str, list[UsageLine]] = {}
            totals = None
            for group in (*groups, "day"):
                found[group], totals = yield from span.report(group, 1000)
            assert totals is not None
            return found, totals

        found, totals = await self._db.transact(read())
        report: dict[str, Any] = {
            "scope": scope,
            "days": days,
            "since": span.first.isoformat(),
            "totals": _sums(totals),
        }
        for group in groups:
            costliest = sorted(found[group], key=lambda line: (-line.cost_usd, line.key or ""))
            report[f"by_{group}"] = [{group: line.key, **_sums(line)} for line in costliest[:TOP]]
        report["by_day"] = [{"day": line.key, **_sums(line)} for line in found["day"]]
        return report

    async def recommendations(
        self, ctx: UserExecutionContext, days: int, scope: Scope = "me"
    ) -> dict[str, Any]:
        """For each paid model used: the priced models that would have done the same token
        volume for less — only those whose context window holds its largest prompt, and
        that call tools where its runs did — with the savings, best first; and what
        trimming each prompt to ``TRIM_TO`` input tokens would save."""
        span = _Span.of(ctx, days, scope)
        mix = await self._db.transact(
            model_mix(
                scope=span.scope,
                org=span.org,
                first_day=span.first,
                last_day=span.last,
                trim_to=TRIM_TO,
            )
        )
        prices = self._catalog.prices()
        found: list[dict[str, Any]] = []
        trimming: list[dict[str, Any]] = []
        for used in mix:
            model = ModelId.parse(used.model)
            price = prices.lookup(model)
            current = used.cost_usd
            if not current and price is not None:
                current = price.cost(used.input_tokens, used.output_tokens)
            if current <= 0:
                continue  # free or unpriced (the offline model, a local server)
            if used.input_over and price is not None:
                saved = used.input_over * price.input_per_mtok / 1_000_000
                trimming.append(
                    {
                        "model": used.model,
                        "calls_over": used.calls_over,
                        "input_tokens_over": used.input_over,
                        "trim_to_tokens": TRIM_TO,
                        "savings_usd": round(saved, 6),
                        "savings_per_30_days_usd": round(saved * 30 / days, 6),
                    }
                )
            options: list[dict[str, Any]] = []
            for candidate, offer in prices.offers():
                if candidate.name == model.name:
                    continue
                window = prices.window(candidate)
                if window is not None and window < used.largest_input:
                    continue  # its largest prompt would not fit
                if used.used_tools and not prices.calls_tools(candidate):
                    continue
                cost = offer.cost(used.input_tokens, used.output_tokens)
                if cost < current:
                    saved = current - cost
                    options.append(
                        {
                            "model": used.model,
                            "switch_to": str(candidate),
                            "current_cost_usd": round(current, 6),
                            "estimated_cost_usd": round(cost, 6),
                            "savings_usd": round(saved, 6),
                            "savings_percent": round(100 * saved / current, 1),
                            "savings_per_30_days_usd": round(saved * 30 / days, 6),
                            "same_provider": candidate.provider == model.provider,
                            "largest_prompt_tokens": used.largest_input,
                            "context_window": window,
                        }
                    )
            # Same provider first (a smaller step), then by what it saves.
            options.sort(key=lambda o: (not o["same_provider"], -o["savings_usd"]))
            found.extend(options[:PER_MODEL])
        found.sort(key=lambda o: -o["savings_usd"])
        trimming.sort(key=lambda t: -float(t["savings_usd"]))
        return {
            "scope": scope,
            "days": days,
            "spent_usd": round(sum(used.cost_usd for used in mix), 6),
            "prices_as_of": prices.as_of,
            "recommendations": [{"rank": i + 1, **o} for i, o in enumerate(found)],
            "trimming": trimming,
            "note": QUALITY_NOTE,
        }

    def _search_threads(self) -> Tool:
        db = self._db

        @tool(name="search_threads")
        async def search_threads(
            ctx: UserExecutionContext,
            query: Annotated[str, Field(min_length=2, max_length=200)],
            limit: Annotated[int, Field(ge=1, le=50)] = 10,
        ) -> list[dict[str, Any]]:
            """Find the user's own chats whose title or messages have every word of a query
            (each as the start of a word), newest first."""
            words = terms(query)
            hits = await db.transact(search(ctx.user_id, words, limit=limit, sqlite=db.is_sqlite))
            return [
                {
                    "thread_id": hit.thread_id,
                    "thread_title": hit.title,
                    "message_id": hit.message_id,
                    "role": hit.role,
                    "snippet": hit.excerpt(words, SNIPPET_CHARS),
                    "created_at": hit.at.isoformat(),
                }
                for hit in hits
            ]

        return search_threads

    def _usage_report(self) -> Tool:
        usage = self.usage

        @tool(name="usage_report")
        async def usage_report(
            ctx: UserExecutionContext, days: Days = 30, scope: Scope = "me"
        ) -> dict[str, Any]:
            """Model usage and cost over the last days — the user's own, or ("org", for an
            organisation's admins) its members' — by model, agent, user and day."""
            return await usage(ctx, days, scope)

        return usage_report

    def _recommend_models(self) -> Tool:
        recommendations = self.recommendations

        @tool(name="recommend_models")
        async def recommend_models(
            ctx: UserExecutionContext, days: Days = 30, scope: Scope = "me"
        ) -> dict[str, Any]:
            """Cheaper models that fit the actual usage (context window, tool calls) and what
            trimming long prompts would save, with estimated savings — the user's own usage,
            or ("org", for an organisation's admins) its members'."""
            return await recommendations(ctx, days, scope)

        return recommend_models


def _sums(line: UsageLine) -> dict[str, Any]:
    sums = line.as_dict()
    del sums["key"], sums["split"]
    return sums
