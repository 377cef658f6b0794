"""What an agent is given for one run, and what each of its steps returns.

The engine drives an agent one step at a time: ``Agent.step`` gets the run's fixed
dependencies (``AgentDeps``) and its checkpointable state (``AgentState``) and says what
comes next — ``Final`` (the answer), ``Pause`` (calls wait for the user's approval) or
``Continue`` (another step). After a step that made tool calls the engine stores the turn;
a run that continues after an approval, a hand-back or a takeover gets its state rebuilt from
those turns and the ledger, so an agent has no resume logic of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from netra.context import UserExecutionContext
from netra.db.records import TurnCall, TurnRecord
from netra.errors import NotFound
from netra.events.bridge import RunEmitter
from netra.models.base import ChatMessage, Model, Usage
from netra.models.context import ContextBudget
from netra.tools.dispatcher import ToolOutcome, UnifiedToolDispatcher


@dataclass(frozen=True, slots=True)
class AgentDeps:
    """What one attempt of a run uses and never changes; built by the engine."""

    ctx: UserExecutionContext
    model: Model
    dispatcher: UnifiedToolDispatcher
    emitter: RunEmitter
    message_id: str
    """Id of the assistant message this run writes."""
    context: ContextBudget
    """What of the conversation fits the model's window."""
    token_budget: int = 0
    """Model tokens (in + out) the run may use; 0 means no limit."""
    costs: CostCheck | None = None
    """The dollar budgets, checked after every model call."""


class CostCheck(Protocol):
    async def after_call(self, usage: Usage) -> None:
        """Raise when the run's ``usage`` so far passes a dollar budget in force."""
        ...


@dataclass(slots=True)
class AgentState:
    """What a run has done so far: rebuilt from its checkpoint when it continues."""

    attempt: int
    """The attempt the state is being advanced by (it writes the next turn)."""
    messages: list[ChatMessage]
    """The run's own part of the conversation: its user message (a sub-agent's task), then
    its turns."""
    earlier: list[ChatMessage] = field(default_factory=list)
    """The thread's turns before the run's message, oldest first: each model call is sent
    the newest of them that fit (``AgentDeps.context``)."""
    unread: int = 0
    """Turns of the thread before ``earlier`` that are neither read nor summarised: never
    sent."""
    summary: str | None = None
    """The thread's summary of the turns before ``earlier`` (``netra.engine.summary``),
    sent after the system prompt."""
    summarized: int = 0
    """Turns the summary holds."""
    step: int = 0
    """The step being taken (steps before it are done)."""
    text: list[str] = field(default_factory=list)
    """Answer text streamed so far (kept even when the run is cut short)."""
    usage: Usage = field(default_factory=Usage)
    """Model usage so far (kept even when the run is cut short)."""
    outcomes: list[ToolOutcome] = field(default_factory=list)
    """Every tool call's outcome, in order."""
    turn: TurnRecord | None = None
    """The turn the last step ended with, for the engine to store."""

    @property
    def answer(self) -> str:
        return "".join(self.text)

    @property
    def tool_trace(self) -> list[dict[str, object]]:
        """The tool calls made, with their outcome, as the answer's message records them:
        each with a ``line`` saying it in brief, which later runs of the thread are sent
        with the answer (``ToolOutcome.brief``)."""
        return [
            {
                "tool_call_id": outcome.call.id,
                "tool": outcome.call.name,
                "ok": outcome.ok,
                "duration_ms": outcome.duration_ms,
                "line": outcome.brief(),
            }
            for outcome in self.outcomes
            if not outcome.pending
        ]

    def end_turn(self, text: str, outcomes: Sequence[ToolOutcome], usage: Usage) -> bool:
        """The step's model turn asked for tools and got ``outcomes``: into the conversation
        and the turn to store. True when a call waits for the user's approval."""
        calls = tuple(outcome.call for outcome in outcomes)  # with the ids the ledger uses
        self.messages.append(ChatMessage("assistant", text, tool_calls=calls))
        self.outcomes.extend(outcomes)
        self.turn = TurnRecord(
            step=self.step,
            attempt=self.attempt,
            text=text,
            tool_calls=tuple(TurnCall(c.id, c.name, dict(c.arguments)) for c in calls),
            usage=usage.as_dict(),
        )
        if any(outcome.pending for outcome in outcomes):
            return True
        self.messages.extend(outcome.as_message() for outcome in outcomes)
        return False

    def result_of(self, tool: str) -> ToolOutcome | None:
        """The last outcome of a call of ``tool``."""
        return next((o for o in reversed(self.outcomes) if o.call.name == tool), None)


@dataclass(frozen=True, slots=True)
class Final:
    """The run is answered: ``text`` is the whole answer, as streamed."""

    text: str


@dataclass(frozen=True, slots=True)
class Pause:
    """The step's calls wait for the user's approval: the run pauses until they answer."""

    calls: tuple[str, ...]
    """Ids of the calls waiting."""


@dataclass(frozen=True, slots=True)
class Continue:
    """The step is done and another follows."""


Next = Final | Pause | Continue
CONTINUE = Continue()


class Agent(Protocol):
    """One agent instance serves exactly one attempt of a run."""

    async def step(self, deps: AgentDeps, state: AgentState) -> Next:
        """Take step ``state.step``, streaming through ``deps.emitter``; say what is next."""
        ...


def pause_for(outcomes: Sequence[ToolOutcome]) -> Pause:
    return Pause(tuple(outcome.call.id for outcome in outcomes if outcome.pending))


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    """A registered agent: how to build it and what it may use."""

    name: str
    description: str
    model: str | None = None
    """Model id; None uses the configured default."""
    models: Sequence[str] = ()
    """Other model ids a caller may choose to run it on (``agent@model`` on the
    OpenAI-compatible API), besides ``model``; none by default."""
    fallbacks: Sequence[str] | None = None
    """Model ids tried in order when the model fails before answering; None uses
    ``models.fallbacks``, ``()`` means none."""
    tools: Sequence[str] | None = None
    """Tools it may call; None means every tool the user may use."""
    system_prompt: str = ""
    permission: str | None = None
    """Permission a user needs to start it."""
    tiers: Sequence[str] | None = None
    """Tiers whose users may start it; None means every tier."""
    max_steps: int | None = None
    """Model calls one of its runs may make, below the user's ``limits.max_steps``; None
    leaves that."""
    delegated_only: bool = False
    """Started only by another agent (``delegate``): not listed, and a message may not
    name it (a member of the optimizer's team)."""
    double_texting: Literal["enqueue", "reject", "interrupt"] = "enqueue"
    """A new message on a thread whose run is still active: waits its turn (``enqueue``),
    is refused (``reject``, ``thread_busy``), or cancels the active run (``interrupt``)."""

    def model_for(self, chosen: str | None, default: str) -> str:
        """The model a run of it uses: ``chosen`` when the caller named one it allows
        (else ``NotFound``, ``model_not_found``), else its own, else ``default``."""
        own = self.model or default
        if chosen is None or chosen == own:
            return own
        if chosen not in self.models:
            raise NotFound(
                f"agent {self.name!r} does not run on model {chosen!r}", code="model_not_found"
            )
        return chosen
