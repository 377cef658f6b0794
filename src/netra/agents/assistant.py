"""The assistant: the classic tool loop (model → tools → model …) until an answer."""

from __future__ import annotations

from netra.agents.base import AgentDefinition, AgentRun, ApprovalPending
from netra.errors import NetraError
from netra.models.base import ChatMessage, ModelRequest, TextDelta, ToolCallRequest, Usage
from netra.tools.dispatcher import ToolOutcome


class StepLimitExceeded(NetraError):
    """Raised when a run asks the model more times than ``limits.max_steps`` allows."""

    code = "step_limit"


class TokenBudgetExceeded(NetraError):
    """Raised when a run's model calls use more tokens than ``limits.run_token_budget``."""

    code = "token_budget"


class ToolLoopAgent:
    """Calls the model, runs the tools it asks for, feeds the results back, repeats."""

    def __init__(self, definition: AgentDefinition) -> None:
        self.definition = definition

    async def run(self, run: AgentRun) -> str:
        messages = list(run.history)
        if self.definition.system_prompt:
            messages.insert(0, ChatMessage("system", self.definition.system_prompt))
        for records in run.ledger:  # a run that continues: earlier turns from the ledger
            calls = [
                ToolCallRequest(r.tool_call_id, r.tool, dict(r.arguments or {})) for r in records
            ]
            messages.append(ChatMessage("assistant", "", tool_calls=tuple(calls)))
            self._take(run, messages, await run.dispatcher.replay(records))
        tools = run.dispatcher.specs()
        for step in range(len(run.ledger), run.max_steps):
            await run.emitter.thinking("Thinking…" if step == 0 else "Reading the tool results…")
            calls = []
            step_text: list[str] = []
            async for part in run.model.stream(ModelRequest(messages, tools)):
                if isinstance(part, TextDelta):
                    step_text.append(part.text)
                    run.text.append(part.text)
                    await run.emitter.delta(run.message_id, part.text)
                elif isinstance(part, ToolCallRequest):
                    calls.append(part)
                elif isinstance(part, Usage):
                    run.usage = run.usage + part
            spent = run.usage.input_tokens + run.usage.output_tokens
            if run.token_budget and spent > run.token_budget:
                raise TokenBudgetExceeded(
                    f"the run used {spent} tokens, over its budget of {run.token_budget}"
                )
            if not calls:
                return "".join(run.text)
            outcomes = await run.dispatcher.execute(calls, step=step)
            asked = tuple(outcome.call for outcome in outcomes)  # with the ids the ledger uses
            messages.append(ChatMessage("assistant", "".join(step_text), tool_calls=asked))
            self._take(run, messages, outcomes)
        raise StepLimitExceeded(f"the run needed more than {run.max_steps} model calls")

    @staticmethod
    def _take(run: AgentRun, messages: list[ChatMessage], outcomes: list[ToolOutcome]) -> None:
        """Feed one turn's tool results to the conversation, or pause for an approval."""
        if any(outcome.pending for outcome in outcomes):
            raise ApprovalPending
        for outcome in outcomes:
            run.tool_trace.append(
                {
                    "tool_call_id": outcome.call.id,
                    "tool": outcome.call.name,
                    "ok": outcome.ok,
                    "duration_ms": outcome.duration_ms,
                }
            )
            messages.append(outcome.as_message())
