"""The optimizer: answers "how can I cut my AI costs?" with the figures, as a small team.

The optimizer's own run is the triage: it decides whether the question is about spend and
whose spend it is — the caller's own, or for an organisation's admin the organisation's —
then hands the work to three sub-agents, each a child run of its own in the stream
(``delegate``, ``netra.engine.children``): ``spend-data`` reads the usage report,
``spend-savings`` finds the cheaper models that would fit that usage and what trimming long
prompts would save, and ``spend-report`` writes the ranked answer from both, which the
optimizer then gives as its own. Every step is a paired tool event in the ledger, under the
user's permissions and quotas.

The figures are computed, never generated: the two analysts call their tool and hand back
its result, the reporter composes text from them, so the answer is exact with any model,
the offline one included.
"""

from __future__ import annotations

import json
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
TEAM = ("spend-data", "spend-savings", "spend-report")
"""The optimizer's sub-agents, in the order it hands them the work."""
SHOWN = 5
"""Entries of each ranking the answer lists."""


class OptimizerAgent:
    """Steps 0–2 hand the work to ``TEAM`` in turn; step 2 answers with the report."""

    def __init__(self, definition: AgentDefinition) -> None:
        self.definition = definition

    async def step(self, deps: AgentDeps, state: AgentState) -> Next:
        org = deps.ctx.org
        task: dict[str, Any] = {
            "days": PERIOD_DAYS,
            "scope": "org" if org is not None and org.admin else "me",
        }
        if state.step == 0:
            await deps.emitter.thinking("Triaging your question…")
            question = next((m.content for m in reversed(state.messages) if m.role == "user"), "")
            if not SPEND_WORDS.search(question):
                return await say(
                    deps,
                    state,
                    "I look after AI spend: ask me how to cut your AI costs, what you spent, "
                    "or which cheaper models would suit your usage.",
                )
            whose = "your organisation's" if task["scope"] == "org" else "your"
            await deps.emitter.thinking(f"Asking the data analyst for {whose} usage…")
        elif state.step == 1:
            await deps.emitter.thinking("Asking the savings analyst where it could cost less…")
        else:
            await deps.emitter.thinking("Asking the reporter to write it up…")
            report, advice = (_figures(o) for o in state.outcomes[:2])
            task = {"report": _brief(report), "advice": _brief(advice)}
        outcome = await _delegate(deps, state, TEAM[state.step], task)
        if outcome.error is not None:
            return await say(deps, state, f"My team could not finish: {outcome.error.message}")
        if state.step < len(TEAM) - 1:
            figures = _figures(outcome)
            if "error" in figures:
                return await say(deps, state, f"I could not read your usage: {figures['error']}")
            return CONTINUE
        return await say(deps, state, str(outcome.result["answer"]))


class AnalystAgent:
    """A member of the optimizer's team that calls its one tool (the definition's only one)
    with the task's arguments and answers with the result as JSON, or ``{"error": …}``."""

    def __init__(self, definition: AgentDefinition) -> None:
        if definition.tools is None or len(definition.tools) != 1:
            raise ValueError(f"{definition.name} needs exactly one tool")
        self.definition = definition
        self._tool = definition.tools[0]

    async def step(self, deps: AgentDeps, state: AgentState) -> Next:
        arguments = _task(state)
        if arguments is None:
            return await say(deps, state, json.dumps({"error": "tasks come from the optimizer"}))
        await deps.emitter.thinking(f"Running {self._tool}…")
        call = ToolCallRequest(new_id("call"), self._tool, arguments)
        (outcome,) = await deps.dispatcher.execute([call], step=state.step)
        state.end_turn("", [outcome], Usage())
        found = {"error": outcome.error.message} if outcome.error else outcome.result
        return await say(deps, state, json.dumps(found, separators=(",", ":")))


class ReporterAgent:
    """The optimizer's reporter: the answer, composed from the analysts' figures."""

    def __init__(self, definition: AgentDefinition) -> None:
        self.definition = definition

    async def step(self, deps: AgentDeps, state: AgentState) -> Next:
        task = _task(state)
        if task is None or "report" not in task or "advice" not in task:
            return await say(deps, state, "I write up what the optimizer's analysts found.")
        return await say(deps, state, compose(task["report"], task["advice"]))


async def say(deps: AgentDeps, state: AgentState, text: str) -> Final:
    """Stream ``text`` as the answer and end the run with it."""
    for start in range(0, len(text), CHUNK_CHARS):
        chunk = text[start : start + CHUNK_CHARS]
        state.text.append(chunk)
        await deps.emitter.delta(deps.message_id, chunk)
    return Final(state.answer)


async def _delegate(
    deps: AgentDeps, state: AgentState, agent: str, task: dict[str, Any]
) -> ToolOutcome:
    arguments = {"agent": agent, "task": json.dumps(task, separators=(",", ":"))}
    call = ToolCallRequest(new_id("call"), "delegate", arguments)
    (outcome,) = await deps.dispatcher.execute([call], step=state.step)
    state.end_turn("", [outcome], Usage())
    return outcome


def _task(state: AgentState) -> dict[str, Any] | None:
    """The JSON object a team member was handed as its task; None for anything else."""
    text = next((m.content for m in state.messages if m.role == "user"), "")
    try:
        task = json.loads(text)
    except ValueError:
        return None
    return task if isinstance(task, dict) else None


def _figures(outcome: ToolOutcome) -> dict[str, Any]:
    """What an analyst answered (its tool's result, as JSON)."""
    try:
        found = json.loads(str(outcome.result["answer"]))
    except (TypeError, KeyError, ValueError):
        return {"error": "an analyst answered something else than figures"}
    return found if isinstance(found, dict) else {"error": "no figures"}


def _brief(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures the answer uses (each ranking's first ``SHOWN``, no day-by-day), so the
    reporter's task stays small."""
    brief = {k: v for k, v in figures.items() if k != "by_day"}
    for key, value in brief.items():
        if isinstance(value, list):
            brief[key] = value[:SHOWN]
    return brief


def compose(report: dict[str, Any], advice: dict[str, Any]) -> str:
    """The answer: what was spent on what (and by whom, for an organisation), then the
    ranked switches and the trimming, each with its savings."""
    totals = report["totals"]
    days = report["days"]
    org = report.get("scope") == "org"
    who = "your organisation's members" if org else "you"
    if not totals["runs"]:
        return (
            f"{'Your organisation has' if org else 'You have'} not used any model in the last "
            f"{days} days, so there is nothing to cut."
        )
    lines = [
        f"In the last {days} days {who} made {totals['runs']} model runs using "
        f"{totals['input_tokens'] + totals['output_tokens']:,} tokens "
        f"for ${totals['cost_usd']:.4f}."
    ]
    rankings = [("model", "By model"), ("agent", "By agent")]
    if org:
        rankings.insert(0, ("user", "By member"))
    for key, title in rankings:
        entries = report.get(f"by_{key}", [])[:SHOWN]
        if len(entries) > 1 or (key == "model" and entries):
            lines.append(f"{title}:")
            for used in entries:
                lines.append(
                    f"- {used[key]}: {used['runs']} runs, "
                    f"{used['input_tokens'] + used['output_tokens']:,} tokens, "
                    f"${used['cost_usd']:.4f}"
                )
    ranked = advice["recommendations"][:SHOWN]
    trimming = advice.get("trimming", [])[:SHOWN]
    if not ranked and not trimming:
        lines.append(
            "None of that usage is on a priced model with a cheaper alternative that fits "
            "it: there is nothing to save by switching models."
        )
        return "\n".join(lines)
    if ranked:
        lines.append("Ranked ways to cut it:")
    for option in ranked:
        lines.append(
            f"{option['rank']}. Move {option['model']} to {option['switch_to']}: "
            f"${option['current_cost_usd']:.4f} → ${option['estimated_cost_usd']:.4f}, "
            f"saving ${option['savings_usd']:.4f} ({option['savings_percent']}%), "
            f"about ${option['savings_per_30_days_usd']:.4f} per 30 days."
        )
    for trim in trimming:
        lines.append(
            f"- Trim {trim['model']}'s prompts to {trim['trim_to_tokens']:,} tokens "
            f"(summarise older turns): {trim['calls_over']} calls sent "
            f"{trim['input_tokens_over']:,} tokens more, ${trim['savings_usd']:.4f} "
            f"(about ${trim['savings_per_30_days_usd']:.4f} per 30 days)."
        )
    lines.append(f"Prices as of {advice['prices_as_of']}. {advice['note']}")
    return "\n".join(lines)
