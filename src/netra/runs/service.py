"""RunService: turns a user message into a stored message plus a queued run, in one
transaction, then hands the run to the engine. Used by the WebSocket and HTTP paths alike.

Admission, in that transaction, before anything is stored: the thread is the caller's, the
agent is allowed, the double-texting policy, the tier's quotas (``netra.runs.quotas``), then
the server-wide bound on queued runs (``netra.runs.shedding``)."""

from __future__ import annotations

from dataclasses import dataclass

from netra.agents.registry import AgentRegistry
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.queue import RunQueue
from netra.db.records import Decision, RunRecord, ThreadRecord
from netra.db.repositories import (
    MessageRepository,
    ThreadRepository,
)
from netra.db.runs import RunRepository
from netra.engine.attempt import CANCELLED_BY_USER
from netra.engine.execution import ExecutionEngine
from netra.errors import Conflict, InvalidRequest, RunError
from netra.events.bridge import AgentWebSocketBridge
from netra.events.bus import EventBus, Notice
from netra.events.payloads import MessageCreated, ThreadUpdated
from netra.runs.quotas import admit, measure
from netra.runs.shedding import LoadShedder

DEFAULT_AGENT = "assistant"
SUPERSEDED = RunError("superseded", "a newer message on the thread interrupted this run")
TITLE_CHARS = 60


@dataclass(frozen=True, slots=True)
class Ack:
    """What the client learns when its message is stored."""

    client_msg_id: str | None
    message_id: str
    thread_id: str
    run_id: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "client_msg_id": self.client_msg_id,
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class DecisionAnswer:
    """What the client learns when it answers a tool call awaiting approval."""

    run_id: str
    tool_call_id: str
    decision: Decision | None
    """The answer that stands: the first one given."""
    already_decided: bool
    """An earlier answer stood already; this one changed nothing."""

    def as_dict(self) -> dict[str, str | bool | None]:
        return {
            "run_id": self.run_id,
            "tool_call_id": self.tool_call_id,
            "decision": self.decision.value if self.decision else None,
            "already_decided": self.already_decided,
        }


def title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


class RunService:
    def __init__(
        self,
        *,
        db: DatabaseManager,
        bridge: AgentWebSocketBridge,
        engine: ExecutionEngine,
        agents: AgentRegistry,
        config: UnifiedConfigurationManager,
        bus: EventBus,
        shedder: LoadShedder,
    ) -> None:
        self._bus = bus
        self._shedder = shedder
        self._db = db
        self._bridge = bridge
        self._engine = engine
        self._agents = agents
        self._config = config

    async def submit(
        self,
        ctx: UserExecutionContext,
        *,
        content: str,
        thread_id: str | None = None,
        agent: str | None = None,
        client_msg_id: str | None = None,
    ) -> Ack:
        """Store the message and queue its run; a retried ``client_msg_id`` stores nothing."""
        settings = self._config.settings
        limits = self._config.limits_for(ctx.user_id, ctx.tier)
        if not content.strip():
            raise InvalidRequest("content must not be empty")
        if len(content) > limits.max_message_chars:
            raise InvalidRequest(
                f"message longer than {limits.max_message_chars} characters",
                code="message_too_large",
            )
        created_thread: ThreadRecord | None = None
        async with self._db.write() as conn:
            messages = MessageRepository(conn, ctx)
            if client_msg_id is not None:
                earlier = await messages.by_client_msg_id(client_msg_id)
                if earlier is not None and earlier.run_id is not None:
                    return Ack(client_msg_id, earlier.id, earlier.thread_id, earlier.run_id)
            threads = ThreadRepository(conn, ctx)
            if thread_id is None:
                name = agent or DEFAULT_AGENT
                self._agents.check_access(ctx, name)
                created_thread = await threads.create(title=title_from(content), agent=name)
                thread = created_thread
            else:
                thread = await threads.get(thread_id)
                await threads.touch(thread.id)
            agent_name = agent or thread.agent
            definition = self._agents.check_access(ctx, agent_name)
            runs = RunRepository(conn, ctx)
            superseded = []
            if created_thread is None and definition.double_texting != "enqueue":
                superseded = await runs.active_in_thread(thread.id)
                if superseded and definition.double_texting == "reject":
                    raise Conflict(
                        "a run is still active on this thread; wait for it or cancel it",
                        code="thread_busy",
                    )
            warnings = admit(limits, await measure(runs), agent=agent_name)
            await self._shedder.check(conn)
            owner, lease_until = self._engine.holding()
            run = await RunQueue(conn).create(
                ctx,
                thread_id=thread.id,
                agent=agent_name,
                model=definition.model or settings.models.default,
                owner=owner,
                lease_until=lease_until,
            )
            message = await messages.add(
                thread_id=thread.id,
                role="user",
                content=content,
                run_id=run.id,
                client_msg_id=client_msg_id,
            )
        if created_thread is not None:
            await self._bridge.emit(
                ctx, ThreadUpdated(created_thread.public()), thread_id=created_thread.id
            )
        await self._bridge.emit(ctx, MessageCreated(message.public()), thread_id=thread.id)
        for warning in warnings:
            await self._bridge.emit(ctx, warning, thread_id=thread.id)
        for active in superseded:  # double-texting policy "interrupt"
            await self.cancel(ctx, active.id, why=SUPERSEDED)
        await self._engine.submit(ctx, run)
        return Ack(client_msg_id, message.id, thread.id, run.id)

    async def cancel(
        self, ctx: UserExecutionContext, run_id: str, *, why: RunError | None = None
    ) -> RunRecord:
        """Cancel the caller's run, whichever instance holds it; a run already final is
        returned unchanged. A run held elsewhere ends once its holder hears of it (a notice
        on the bus, or its next heartbeat)."""
        async with self._db.read() as conn:
            run = await RunRepository(conn, ctx).get(run_id)
        if run.status.final or self._engine.cancel(ctx.user_id, run_id, why=why):
            return run
        async with self._db.write() as conn:
            queue = RunQueue(conn)
            await queue.request_cancel(ctx, run_id, why or CANCELLED_BY_USER)
            # Nobody executes it (waiting for approval, queued without a holder, or its
            # holder died): end it here.
            adopted = await queue.adopt_unheld(
                ctx, run_id, owner=self._engine.instance_id, lease_until=self._engine.lease_until()
            )
        if adopted is not None:
            await self._engine.end_cancelled(ctx, adopted, why)
        else:
            await self._bus.notify(Notice("cancel", ctx.user_id, run_id))
        async with self._db.read() as conn:
            return await RunRepository(conn, ctx).get(run_id)

    async def decide(
        self, ctx: UserExecutionContext, run_id: str, tool_call_id: str, decision: Decision
    ) -> DecisionAnswer:
        """The owning user's answer to a tool call awaiting approval. The first answer
        stands; once no call of the run waits any more, the run continues."""
        async with self._db.write() as conn:
            await RunRepository(conn, ctx).get(run_id)  # another user's run: not found
            calls = ToolCallRepository(conn, ctx)
            record = await calls.get(run_id, tool_call_id)
            if record.status != "awaiting_approval" and record.decision is None:
                raise Conflict("this tool call does not need approval")
            decided = await calls.decide(run_id, tool_call_id, decision)
            if decided:
                record = await calls.get(run_id, tool_call_id)
            requeued = None
            if decided and not await calls.undecided(run_id):
                owner, lease_until = self._engine.holding()
                requeued = await RunQueue(conn).requeue(
                    ctx, run_id, owner=owner, lease_until=lease_until
                )
        if requeued is not None:
            await self._engine.submit(ctx, requeued)
        return DecisionAnswer(run_id, tool_call_id, record.decision, already_decided=not decided)
