"""AttemptBuilder: what one attempt of a run starts from.

A fresh attempt gets the conversation up to its own message, a model with its fallbacks,
and a tool dispatcher limited to what the agent, the user's role and tier allow. An attempt
that continues an earlier one (after an approval, a hand-back or a takeover) also continues
its event stream and gets back what the earlier attempts did: the tool-call ledger, the
answer text of finished turns and the usage recorded.
"""

from __future__ import annotations

from netra.agents.base import AgentDefinition, AgentRun
from netra.agents.registry import AgentRegistry
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.records import RunRecord, ToolCallRecord
from netra.db.repositories import EventRepository, MessageRepository
from netra.engine.resume import RunLog, interrupted
from netra.events.bridge import RunEmitter
from netra.models.base import ChatMessage, Usage
from netra.models.catalog import ModelCatalog
from netra.models.failover import FailoverNote
from netra.settings import LimitSettings
from netra.tools.dispatcher import ToolRegistry, UnifiedToolDispatcher


class AttemptBuilder:
    """Process-wide; builds the ``AgentRun`` of each attempt."""

    def __init__(
        self,
        *,
        db: DatabaseManager,
        agents: AgentRegistry,
        tools: ToolRegistry,
        models: ModelCatalog,
        config: UnifiedConfigurationManager,
    ) -> None:
        self._db = db
        self._agents = agents
        self._tools = tools
        self._models = models
        self._config = config

    async def resume_stream(
        self, ctx: UserExecutionContext, run: RunRecord, emitter: RunEmitter
    ) -> RunLog:
        """Continue the event stream earlier attempts left: ``agent_started`` unless it is
        out, every call they announced and nobody completed reopened."""
        async with self._db.read() as conn:
            bodies = await EventRepository(conn, ctx).for_run(run.id, 0, limit=1_000_000)
        stream = RunLog.read(body for _, body in bodies)
        if stream.started:
            emitter.resume_started()
        else:
            await emitter.started(model=run.model, attempt=run.attempt)
        for tool_call_id, tool in stream.open_tools.items():
            emitter.reopen_tool(tool_call_id, tool)
        return stream

    async def prepare(
        self,
        ctx: UserExecutionContext,
        run: RunRecord,
        emitter: RunEmitter,
        *,
        limits: LimitSettings,
        definition: AgentDefinition,
    ) -> AgentRun:
        """The ``AgentRun`` of a fresh attempt, under the limits and the agent definition
        its attempt resolved (once)."""
        settings = self._config.settings
        fallbacks = definition.fallbacks
        if fallbacks is None:
            fallbacks = settings.models.fallbacks

        async def note_failover(note: FailoverNote) -> None:
            await emitter.thinking(note.text, failover=note.as_dict())

        model = self._models.for_run([run.model, *fallbacks], notify=note_failover)
        async with self._db.read() as conn:
            stored = await MessageRepository(conn, ctx).list(run.thread_id)
        # The conversation up to this run's own message: never what was sent after it.
        own = next(
            (i for i, m in enumerate(stored) if m.run_id == run.id and m.role == "user"),
            len(stored) - 1,
        )
        history = [
            ChatMessage("user" if m.role == "user" else "assistant", m.content)
            for m in stored[: own + 1]
            if m.role in ("user", "assistant") and m.content
        ]
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
        return AgentRun(
            ctx=ctx,
            history=history,
            model=model,
            dispatcher=dispatcher,
            emitter=emitter,
            message_id=run.message_id,
            max_steps=limits.max_steps,
            token_budget=limits.run_token_budget,
        )

    async def restore(
        self, ctx: UserExecutionContext, run: RunRecord, agent_run: AgentRun, stream: RunLog
    ) -> None:
        """What earlier attempts of the run did: their tool calls (one list per model turn),
        the answer text of their finished turns and the usage they recorded. A call they
        announced but never entered in the ledger is closed as interrupted (the model is
        asked again)."""
        async with self._db.read() as conn:
            records = await ToolCallRepository(conn, ctx).for_run(run.id)
        turns: dict[int, list[ToolCallRecord]] = {}
        for record in records:
            turns.setdefault(record.step, []).append(record)
        agent_run.ledger = [turns[step] for step in sorted(turns)]
        known = {record.tool_call_id for record in records}
        for tool_call_id, tool in stream.open_tools.items():
            if tool_call_id not in known:
                await agent_run.emitter.tool_completed(
                    tool_call_id,
                    tool,
                    result=None,
                    error=interrupted(),
                    duration_ms=0,
                )
        if stream.text:
            agent_run.text.append(stream.text)
        spent = run.usage or {}
        agent_run.usage = Usage(
            int(spent.get("input_tokens", 0)),
            int(spent.get("output_tokens", 0)),
            float(spent.get("cost_usd", 0.0)),
        )
