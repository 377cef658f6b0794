"""The AI-spend tools: what the user asked before, what their model use cost, and where it
could cost less. Every figure is the user's own: their model calls as recorded (the usage
reports of ``netra.db.usage``, scoped to the caller), compared by the model catalog's price
table."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.records import utcnow
from netra.db.search import search, terms
from netra.db.sql import Tx
from netra.db.usage import UsageLine, usage_report
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


class SpendTools:
    """Builds the three tools, bound to the database and the model catalog."""

    def __init__(self, db: DatabaseManager, catalog: ModelCatalog) -> None:
        self._db = db
        self._catalog = catalog

    def tools(self) -> list[Tool]:
        return [self._search_threads(), self._usage_report(), self._recommend_models()]

    async def usage(self, ctx: UserExecutionContext, days: int) -> dict[str, Any]:
        """The user's model usage over the last ``days`` (UTC days, today included): totals,
        by model, by day."""
        last = utcnow().date()
        first = last - timedelta(days=days - 1)

        def report() -> Tx[tuple[list[UsageLine], list[UsageLine], UsageLine]]:
            by_model, totals = yield from usage_report(
                scope=ctx.user_id, group="model", first_day=first, last_day=last, limit=1000
            )
            by_day, _ = yield from usage_report(
                scope=ctx.user_id, group="day", first_day=first, last_day=last, limit=days
            )
            return by_model, by_day, totals

        by_model, by_day, totals = await self._db.transact(report())
        return {
            "days": days,
            "since": first.isoformat(),
            "totals": _sums(totals),
            "by_model": [
                {"model": line.key, **_sums(line)}
                for line in sorted(by_model, key=lambda line: -line.cost_usd)
            ],
            "by_day": [{"day": line.key, **_sums(line)} for line in by_day],
        }

    async def recommendations(self, ctx: UserExecutionContext, days: int) -> dict[str, Any]:
        """For each paid model the user used: the priced models that would have done the same
        token volume for less, with the savings, best first."""
        report = await self.usage(ctx, days)
        prices = self._catalog.prices()
        found: list[dict[str, Any]] = []
        for used in report["by_model"]:
            model = ModelId.parse(used["model"])
            tokens_in, tokens_out = used["input_tokens"], used["output_tokens"]
            current = used["cost_usd"]
            price = prices.lookup(model)
            if not current and price is not None:
                current = price.cost(tokens_in, tokens_out)
            if current <= 0:
                continue  # free or unpriced (the offline model, a local server)
            options = []
            for candidate, offer in prices.offers():
                if candidate.name == model.name:
                    continue
                cost = offer.cost(tokens_in, tokens_out)
                if cost < current:
                    saved = current - cost
                    options.append(
                        {
                            "model": used["model"],
                            "switch_to": str(candidate),
                            "current_cost_usd": round(current, 6),
                            "estimated_cost_usd": round(cost, 6),
                            "savings_usd": round(saved, 6),
                            "savings_percent": round(100 * saved / current, 1),
                            "savings_per_30_days_usd": round(saved * 30 / days, 6),
                            "same_provider": candidate.provider == model.provider,
                        }
                    )
            # Same provider first (a smaller step), then by what it saves.
            options.sort(key=lambda o: (not o["same_provider"], -o["savings_usd"]))
            found.extend(options[:PER_MODEL])
        found.sort(key=lambda o: -o["savings_usd"])
        return {
            "days": days,
            "spent_usd": report["totals"]["cost_usd"],
            "prices_as_of": prices.as_of,
            "recommendations": [{"rank": i + 1, **o} for i, o in enumerate(found)],
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
        async def usage_report(ctx: UserExecutionContext, days: Days = 30) -> dict[str, Any]:
            """The user's model usage and cost over the last days, by model and by day."""
            return await usage(ctx, days)

        return usage_report

    def _recommend_models(self) -> Tool:
        recommendations = self.recommendations

        @tool(name="recommend_models")
        async def recommend_models(ctx: UserExecutionContext, days: Days = 30) -> dict[str, Any]:
            """Cheaper models for the user's actual usage, with estimated savings."""
            return await recommendations(ctx, days)

        return recommend_models


def _sums(line: UsageLine) -> dict[str, Any]:
    sums = line.as_dict()
    del sums["key"], sums["split"]
    return sums
