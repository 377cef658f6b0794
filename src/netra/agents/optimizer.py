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

from netra.agents.base import CONTINUE, AgentDefinition, AgentDeps, AgentState, Final, Next
from netra.ids import new_id
from netra.models.base import ToolCallRequest, Usage
from netra.tools.dispatcher import ToolOutcome

SPEND_WORDS = re.compile(
    r"\b(cost|costs|spend|spending|spent|cheap|cheaper|save|saving|savings|bill|billing|"
    r"budget|price|prices|pricing|expensive|money|tokens?|usage|\$)",
    re.IGNORECASE,
)
PERIOD_DAYS = 30
CHUNK_CHARS = 80


class OptimizerAgent:
    """Step 0: triage → usage report. Step 1: recommendations → a ranked answer."""

    def __init__(self, definition: AgentDefinition) -> None:
        self.definition = definition

    async def step(self, deps: AgentDeps, state: AgentState) -> Next:
        if state.step == 0:
            await deps.emitter.thinking("Triaging your question…")
            question = next((m.content for m in reversed(state.messages) if m.role == "user"), "")
            if not SPEND_WORDS.search(question):
                return await self._say(
                    deps,
                    state,
                    "I look after AI spend: ask me how to cut your AI costs, what you spent, "
                    "or which cheaper models would suit your usage.",
                )
            await deps.emitter.thinking("Reading your usage of the last 30 days…")
            report = await self._call(deps, state, "usage_report")
            if report.error:
                return await self._say(
                    deps, state, f"I could not read your usage: {report.error.message}"
                )
            return CONTINUE
        usage = state.result_of("usage_report")
        assert usage is not None  # step 0 made it
        await deps.emitter.thinking("Comparing prices for your token mix…")
        advice = await self._call(deps, state, "recommend_models")
        if advice.error:
            return await self._say(
                deps, state, f"I could not compare prices: {advice.error.message}"
            )
        return await self._say(deps, state, compose(usage.result, advice.result))

    @staticmethod
    async def _call(deps: AgentDeps, state: AgentState, tool: str) -> ToolOutcome:
        call = ToolCallRequest(new_id("call"), tool, {"days": PERIOD_DAYS})
        (outcome,) = await deps.dispatcher.execute([call], step=state.step)
        state.end_turn("", [outcome], Usage())
        return outcome

    @staticmethod
    async def _say(deps: AgentDeps, state: AgentState, text: str) -> Final:
        for start in range(0, len(text), CHUNK_CHARS):
            chunk = text[start : start + CHUNK_CHARS]
            state.text.append(chunk)
            await deps.emitter.delta(deps.message_id, chunk)
        return Final(state.answer)


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
