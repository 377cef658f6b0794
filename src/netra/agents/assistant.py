"""The assistant: the classic tool loop (model → tools → model …) until an answer."""

from __future__ import annotations

from netra.agents.base import (
    CONTINUE,
    AgentDefinition,
    AgentDeps,
    AgentState,
    Final,
    Next,
    pause_for,
)
from netra.errors import NetraError
from netra.models.base import ModelRequest, TextDelta, ToolCallRequest, Usage


class TokenBudgetExceeded(NetraError):
    """Raised when a run's model calls use more tokens than ``limits.run_token_budget``."""

    code = "token_budget"


class ToolLoopAgent:
    """Each step asks the model; the tools it asks for run, and their results feed the next
    step, until the model answers without asking for any."""

    def __init__(self, definition: AgentDefinition) -> None:
        self.definition = definition

    async def step(self, deps: AgentDeps, state: AgentState) -> Next:
        tools = deps.dispatcher.specs()
        messages, sent = deps.context.fit(
            self.definition.system_prompt,
            tools,
            state.earlier,
            state.messages,
            unread=state.unread,
            summary=state.summary,
            summarized=state.summarized,
        )
        await deps.emitter.thinking(
            "Thinking…" if state.step == 0 else "Reading the tool results…",
            context=sent.as_dict(),
        )
        calls: list[ToolCallRequest] = []
        text: list[str] = []
        usage = Usage()
        request = ModelRequest(messages, tools)
        async for part in deps.model.stream(request):
            if isinstance(part, TextDelta):
                text.append(part.text)
                state.text.append(part.text)
                await deps.emitter.delta(deps.message_id, part.text)
            elif isinstance(part, ToolCallRequest):
                calls.append(part)
            elif isinstance(part, Usage):
                usage = usage + part
        state.usage = state.usage + usage
        spent = state.usage.input_tokens + state.usage.output_tokens
        if deps.token_budget and spent > deps.token_budget:
            raise TokenBudgetExceeded(
                f"the run used {spent} tokens, over its budget of {deps.token_budget}"
            )
        if deps.costs is not None:
            await deps.costs.after_call(state.usage)
        if not calls:
            return Final(state.answer)
        outcomes = await deps.dispatcher.execute(calls, step=state.step)
        if state.end_turn("".join(text), outcomes, usage):
            return pause_for(outcomes)
        return CONTINUE
