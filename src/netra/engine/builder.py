"""AttemptBuilder: what one attempt of a run starts from.

An attempt gets the conversation up to its own message (what of it its model's window cannot
hold, summarised: ``netra.engine.summary``), a model with its fallbacks, and a tool
dispatcher limited to what the agent, the user's role and tier allow. An attempt that
continues an earlier one then has its state advanced from the run's checkpoint
(``netra.engine.checkpoint``).
"""

from __future__ import annotations

from netra.agents.base import AgentDefinition, AgentDeps, AgentState
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.messages import Conversation, MessageRepository
from netra.db.orgs import OrgRepository
from netra.db.records import RunRecord
from netra.engine.costs import CostGuard
from netra.engine.summary import Summarizer
from netra.events.bridge import RunEmitter
from netra.models.base import ChatMessage
from netra.models.catalog import ModelCatalog
from netra.models.context import ContextBudget
from netra.models.failover import FailoverNote
from netra.settings import LimitSettings
from netra.tools.dispatcher import ToolRegistry, UnifiedToolDispatcher


class AttemptBuilder:
    """Process-wide; builds the dependencies and the starting state of each attempt."""

    def __init__(
        self,
        *,
        db: DatabaseManager,
        tools: ToolRegistry,
        models: ModelCatalog,
        config: UnifiedConfigurationManager,
    ) -> None:
        self._db = db
        self._tools = tools
        self._models = models
        self._config = config
        self._summarizer = Summarizer(db)

    async def prepare(
        self,
        ctx: UserExecutionContext,
        run: RunRecord,
        emitter: RunEmitter,
        *,
        limits: LimitSettings,
        definition: AgentDefinition,
        task: str | None = None,
        conversation: Conversation | None = None,
    ) -> tuple[AgentDeps, AgentState]:
        """The dependencies and the starting state of an attempt, under the limits and the
        agent definition it resolved (once). ``task`` is a sub-agent's whole conversation;
        ``conversation``, the thread up to the run's question when its admission read it
        (else it is read here)."""
        settings = self._config.settings
        fallbacks = definition.fallbacks
        if fallbacks is None:
            fallbacks = settings.models.fallbacks

        async def note_failover(note: FailoverNote) -> None:
            await emitter.thinking(note.text, failover=note.as_dict())

        org_budgeted = ctx.org is not None and await self._db.transact(
            OrgRepository.budgeted(ctx.org.org_id)  # once per attempt, members only
        )
        costs = CostGuard(self._db, ctx, run, emitter, limits=limits, org_budgeted=org_budgeted)
        model_ids = [run.model, *fallbacks]
        model = self._models.for_run(model_ids, notify=note_failover, meter=costs.record)
        context = ContextBudget(
            self._models.context_window(model_ids),
            reserve_output=settings.models.reserve_output_tokens,
        )
        allowed = definition.tools
        if limits.allowed_tools is not None:
            wanted = allowed if allowed is not None else limits.allowed_tools
            allowed = [name for name in wanted if name in limits.allowed_tools]
        dispatcher = UnifiedToolDispatcher(
            ctx,
            tools=self._tools,
            allowed=allowed,
            db=self._db,
            emitter=emitter,
            settings=settings.tools,
            attempt=run.attempt,
        )
        deps = AgentDeps(
            ctx=ctx,
            model=model,
            dispatcher=dispatcher,
            emitter=emitter,
            message_id=run.message_id,
            context=context,
            token_budget=limits.run_token_budget,
            costs=costs,
        )
        if task is not None:
            return deps, AgentState(attempt=run.attempt, messages=[ChatMessage("user", task)])
        if conversation is None:
            conversation = await self._history(ctx, run, settings.models.history_messages)
        said, unread = conversation
        own = [ChatMessage("user", said[-1].content)] if said else []
        recap = await self._summarizer.recap(
            ctx,
            run_id=run.id,
            thread_id=run.thread_id,
            said=said[:-1],
            unread=unread,
            room=context.room(definition.system_prompt, dispatcher.specs(), own),
            context=context,
            model=model,
            emitter=emitter,
            enabled=settings.models.summarize,
        )
        state = AgentState(
            attempt=run.attempt,
            messages=own,
            earlier=recap.earlier,
            unread=recap.unread,
            summary=recap.summary,
            summarized=recap.summarized,
            usage=recap.usage,
        )
        return deps, state

    async def _history(self, ctx: UserExecutionContext, run: RunRecord, limit: int) -> Conversation:
        """The branch the run's question ends, ending with that question (never what was
        sent after it, nor another branch) — its newest ``limit`` messages at most — and
        how many turns before those were not read.
        Read beside the writer: a long thread holds up nobody's writes."""
        if run.question_id is None:
            return Conversation([], 0)
        return await self._db.query(MessageRepository(ctx).texts(run.question_id, limit=limit))
