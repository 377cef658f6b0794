"""What an agent is given for one run, and what it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from netra.context import UserExecutionContext
from netra.db.records import ToolCallRecord
from netra.events.bridge import RunEmitter
from netra.models.base import ChatMessage, Model, Usage
from netra.tools.dispatcher import UnifiedToolDispatcher


@dataclass(slots=True)
class AgentRun:
    """Everything one run of an agent may use; built per run by the engine."""

    ctx: UserExecutionContext
    history: Sequence[ChatMessage]
    """The thread so far, ending with the user's new message."""
    model: Model
    dispatcher: UnifiedToolDispatcher
    emitter: RunEmitter
    message_id: str
    """Id of the assistant message this run writes."""
    max_steps: int
    token_budget: int = 0
    """Model tokens (in + out) the run may use; 0 means no limit."""
    text: list[str] = field(default_factory=list)
    """Answer text streamed so far (kept even when the run is cut short)."""
    usage: Usage = field(default_factory=Usage)
    """Usage so far (kept even when the run is cut short)."""
    tool_trace: list[dict[str, object]] = field(default_factory=list)
    """Tool calls made, with their outcome, in order."""
    ledger: Sequence[Sequence[ToolCallRecord]] = ()
    """For a run that continues (after an approval): the tool calls of its earlier turns,
    one sequence per model turn, to replay instead of asking the model again."""


class ApprovalPending(Exception):
    """Raised by an agent when a turn's tool call waits for the user's approval."""


class Agent(Protocol):
    """One agent instance serves exactly one run."""

    async def run(self, run: AgentRun) -> str:
        """Drive the run to its answer, streaming through ``run.emitter``; return the text."""
        ...


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    """A registered agent: how to build it and what it may use."""

    name: str
    description: str
    model: str | None = None
    """Model id; None uses the configured default."""
    fallbacks: Sequence[str] | None = None
    """Model ids tried in order when the model fails before answering; None uses
    ``models.fallbacks``, ``()`` means none."""
    tools: Sequence[str] | None = None
    """Tools it may call; None means every tool the user may use."""
    system_prompt: str = ""
    permission: str | None = None
    """Permission a user needs to start it."""
    double_texting: Literal["enqueue", "reject", "interrupt"] = "enqueue"
    """A new message on a thread whose run is still active: waits its turn (``enqueue``),
    is refused (``reject``, ``thread_busy``), or cancels the active run (``interrupt``)."""
