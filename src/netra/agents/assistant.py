"""The assistant: the classic tool loop (model → tools → model …) until an answer."""

from __future__ import annotations

from netra.agents.base import AgentDefinition, AgentRun
from netra.errors import NetraError
from netra.models.base import ChatMessage, ModelRequest, TextDelta, ToolCallRequest, Usage


class StepLimitExceeded(NetraError):
    """Raised when a run asks the model more times than ``limits.max_steps`` allows."""

    code = "step_limit"


class ToolLoopAgent:
    """Calls the model, runs the tools it asks for, feeds the results back, repeats."""

    def __init__(self, definition: AgentDefinition) -> None:
        self.definition = definition

    async def run(self, run: AgentRun) -> str:
        messages = list(run.history)
        if self.definition.system_prompt:
            messages.insert(0, ChatMessage("system", self.definition.system_prompt))
        tools = run.dispatcher.specs()
        for step in range(run.max_steps):
            await run.emitter.thinking("Thinking…" if step == 0 else "Reading the tool results…")
            calls: list[ToolCallRequest] = []
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
            if not calls:
                return "".join(run.text)
            messages.append(ChatMessage("assistant", "".join(step_text), tool_calls=tuple(calls)))
            for outcome in await run.dispatcher.execute(calls):
                run.tool_trace.append(
                    {
                        "tool_call_id": outcome.call.id,
                        "tool": outcome.call.name,
                        "ok": outcome.ok,
                        "duration_ms": outcome.duration_ms,
                    }
                )
                messages.append(outcome.as_message())
        raise StepLimitExceeded(f"the run needed more than {run.max_steps} model calls")
