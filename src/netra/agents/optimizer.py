"""The optimizer: answers "how can I cut my AI costs?" with the user's own numbers.

It triages the question, pulls the usage report and the model recommendations through the
run's tool dispatcher (so each step is a paired tool event in the ledger, under the user's
permissions and tier), and writes a ranked answer. The figures are computed, never
generated: the answer is composed from the tools' results, so it is exact with any model,
the offline one included.
"""

from __future__ import annotations

import re
from typing import Any

from netra.agents.base import AgentDefinition, AgentRun
from netra.ids import new_id
from netra.models.base import ToolCallRequest
from netra.tools.dispatcher import ToolOutcome

SPEND_WORDS = re.compile(
    r"\b(cost|costs|spend|spending|spent|cheap|cheaper|save|saving|savings|bill|billing|"
    r"budget|price|prices|pricing|expensive|money|tokens?|usage|\$)",
    re.IGNORECASE,
)
PERIOD_DAYS = 30
CHUNK_CHARS = 80


class OptimizerAgent:
    """Triage → usage report → recommendations → a ranked answer with numbers."""

    def __init__(self, definition: AgentDefinition) -> None:
        self.definition = definition

    async def run(self, run: AgentRun) -> str:
        await run.emitter.thinking("Triaging your question…")
        question = next((m.content for m in reversed(run.history) if m.role == "user"), "")
        if not SPEND_WORDS.search(question):
            return await self._say(
                run,
                "I look after AI spend: ask me how to cut your AI costs, what you spent, "
                "or which cheaper models would suit your usage.",
            )
        await run.emitter.thinking("Reading your usage of the last 30 days…")
        report = await self._call(run, "usage_report", step=0)
        if report.error:
            return await self._say(run, f"I could not read your usage: {report.error['message']}")
        await run.emitter.thinking("Comparing prices for your token mix…")
        advice = await self._call(run, "recommend_models", step=1)
        if advice.error:
            return await self._say(run, f"I could not compare prices: {advice.error['message']}")
        return await self._say(run, compose(report.result, advice.result))

    @staticmethod
    async def _call(run: AgentRun, tool: str, *, step: int) -> ToolOutcome:
        call = ToolCallRequest(new_id("call"), tool, {"days": PERIOD_DAYS})
        (outcome,) = await run.dispatcher.execute([call], step=step)
        run.tool_trace.append(
            {
                "tool_call_id": outcome.call.id,
                "tool": tool,
                "ok": outcome.ok,
                "duration_ms": outcome.duration_ms,
            }
        )
        return outcome

    @staticmethod
    async def _say(run: AgentRun, text: str) -> str:
        for start in range(0, len(text), CHUNK_CHARS):
            chunk = text[start : start + CHUNK_CHARS]
            run.text.append(chunk)
            await run.emitter.delta(run.message_id, chunk)
        return text


def compose(report: dict[str, Any], advice: dict[str, Any]) -> str:
    """The answer: what was spent on what, then the ranked switches with their savings."""
    totals = report["totals"]
    days = report["days"]
    if not totals["runs"]:
        return f"You have not used any model in the last {days} days, so there is nothing to cut."
    lines = [
        f"In the last {days} days you made {totals['runs']} model runs using "
        f"{totals['input_tokens'] + totals['output_tokens']:,} tokens "
        f"for ${totals['cost_usd']:.4f}."
    ]
    for used in report["by_model"][:5]:
        lines.append(
            f"- {used['model']}: {used['runs']} runs, "
            f"{used['input_tokens'] + used['output_tokens']:,} tokens, ${used['cost_usd']:.4f}"
        )
    ranked = advice["recommendations"]
    if not ranked:
        lines.append(
            "None of that usage is on a priced model with a cheaper alternative: "
            "there is nothing to save by switching models."
        )
        return "\n".join(lines)
    lines.append("Ranked ways to cut it:")
    for option in ranked[:5]:
        lines.append(
            f"{option['rank']}. Move {option['model']} to {option['switch_to']}: "
            f"${option['current_cost_usd']:.4f} → ${option['estimated_cost_usd']:.4f}, "
            f"saving ${option['savings_usd']:.4f} ({option['savings_percent']}%), "
            f"about ${option['savings_per_30_days_usd']:.4f} per 30 days."
        )
    lines.append(f"Prices as of {advice['prices_as_of']}. {advice['note']}")
    return "\n".join(lines)
