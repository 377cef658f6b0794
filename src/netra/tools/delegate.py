"""``delegate``: an agent hands a task to another registered agent and reads its answer.

The child runs as a sub-agent run of the caller's run (``netra.engine.children``): a
child context one level deeper (at most 10), its own events naming the parent, the same
user's permissions and quotas. A child that fails is a tool error the calling model reads.
The engine runs the child; the tool is handed that as a callable (``RunSubAgent``), because
tools sit below the engine that executes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from netra.context import UserExecutionContext
from netra.errors import RunError, ToolError, UserError
from netra.tools.tool import Tool, tool

AgentName = Annotated[str, Field(min_length=1, max_length=100)]
Task = Annotated[str, Field(min_length=1, max_length=8000)]


@dataclass(frozen=True, slots=True)
class SubRun:
    """What a sub-agent's run hands back to its parent."""

    run_id: str
    agent: str
    outcome: str
    answer: str
    usage: dict[str, Any]
    error: RunError | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "outcome": self.outcome,
            "answer": self.answer,
            "usage": self.usage,
            "error": self.error.as_dict() if self.error else None,
        }


RunSubAgent = Callable[[UserExecutionContext, str, str], Awaitable[SubRun]]
"""Runs ``agent`` on ``task`` for the run of the context and waits for its answer
(``netra.engine.children.SubAgents.run``)."""


def delegate_tool(run_sub_agent: RunSubAgent) -> Tool:
    @tool(name="delegate", timeout_s=600)
    async def delegate(ctx: UserExecutionContext, agent: AgentName, task: Task) -> dict[str, Any]:
        """Hand a task to another agent (one of GET /agents) and get its answer."""
        try:
            child = await run_sub_agent(ctx, agent, task)
        except UserError as exc:  # unknown or forbidden agent, quota, depth limit
            raise ToolError(exc.message) from None
        if child.error is not None:
            raise ToolError(f"{agent} {child.outcome}: {child.error.message}")
        return child.as_dict()

    return delegate
