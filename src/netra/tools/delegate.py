"""``delegate``: an agent hands a task to another registered agent and reads its answer.

The child runs as a sub-agent run of the caller's run (``netra.engine.children``): a
child context one level deeper (at most 10), its own events naming the parent, the same
user's permissions and quotas. A child that fails is a tool error the calling model reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from netra.context import UserExecutionContext
from netra.errors import ToolError, UserError
from netra.tools.tool import Tool, tool

if TYPE_CHECKING:
    from netra.engine.children import SubAgents

AgentName = Annotated[str, Field(min_length=1, max_length=100)]
Task = Annotated[str, Field(min_length=1, max_length=8000)]


def delegate_tool(children: SubAgents) -> Tool:
    @tool(name="delegate", timeout_s=600)
    async def delegate(ctx: UserExecutionContext, agent: AgentName, task: Task) -> dict[str, Any]:
        """Hand a task to another agent (one of GET /agents) and get its answer."""
        try:
            child = await children.run(ctx, agent, task)
        except UserError as exc:  # unknown or forbidden agent, quota, depth limit
            raise ToolError(exc.message) from None
        if child.error is not None:
            raise ToolError(f"{agent} {child.outcome}: {child.error['message']}")
        return child.as_dict()

    return delegate
