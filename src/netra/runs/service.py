"""RunService: turns a user message into a stored message plus a queued run, in one
transaction, then hands the run to the engine. Used by the WebSocket and HTTP paths alike.

Admission, in that transaction, before anything is stored: the thread is the caller's, the
agent is allowed, the double-texting policy, the tier's quotas (``netra.runs.quotas``), then
the server-wide bound on queued runs (``netra.runs.shedding``).

The same transaction stores the events the message makes (``thread_updated``,
``message_created``, quota warnings), and when the run can execute at once — its thread's
turn, a slot of its user and one of the instance all free (``ExecutionEngine.reserve``) —
the run itself claimed, with its ``agent_started``: one transaction between the send and the
run's first event. A run that must wait is stored queued and claimed once its turn comes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from netra.agents.registry import AgentRegistry
from netra.config import UnifiedConfigurationManager
from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.messages import Conversation, MessageRepository, opening
from netra.db.queue import RunQueue
from netra.db.records import Decision, MessageRecord, RunRecord, ThreadRecord, ToolCallRecord
from netra.db.repositories import ThreadRepository
from netra.db.runs import RunRepository
from netra.db.sql import IntegrityViolation, Tx
from netra.engine.attempt import CANCELLED_BY_USER
from netra.engine.execution import ExecutionEngine
from netra.errors import Conflict, InvalidRequest, RunError
from netra.events.bridge import AgentWebSocketBridge
from netra.events.bus import EventBus, Notice
from netra.events.envelope import Event
from netra.events.payloads import (
    AgentStarted,
    MessageCreated,
    Payload,
    QuotaWarning,
    ThreadDeleted,
    ThreadUpdated,
)
from netra.ids import new_id
from netra.runs.answers import Ack, Acked, DecisionAnswer, Turn
from netra.runs.quotas import admit, measure
from netra.runs.shedding import LoadShedder
from netra.settings import LimitSettings

DEFAULT_AGENT = "assistant"
SUPERSEDED = RunError("superseded", "a newer message on the thread interrupted this run")
TITLE_CHARS = 60
CANCEL_WAIT_S = 5.0
"""How long deleting a thread waits for its runs executing here to end after the cancel."""
ADMISSION_TURNS = 32
"""Most turns (a question and its answer) of its conversation a run executing at once reads
in its admission, on SQLite's one writer (~8 µs a message). A longer conversation is read by
the attempt, beside the writer (``DatabaseManager.query``): a long thread never holds up
everyone's writes."""


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
        model: str | None = None,
        history: Sequence[Turn] = (),
        acked: Acked | None = None,
    ) -> Ack:
        """Store the message at the end of the thread's branch and queue its run; a
        retried ``client_msg_id`` stores nothing. ``model``: one the agent allows instead
        of its own (``AgentDefinition.model_for``). ``history``: turns stored before the
        message in the new thread it starts (no ``thread_id``), which its run sees as the
        conversation so far (the OpenAI-compatible API's earlier messages). ``acked`` is told
        the ack as soon as the message is stored, before its events go out (a socket sends
        the ack first)."""
        if history and thread_id is not None:
            raise InvalidRequest("earlier turns can only start a new thread")
        request = _Request(ctx, content, thread_id, agent, client_msg_id, model=model)
        return await self._start(replace(request, history=tuple(history)), acked)

    async def edit(
        self,
        ctx: UserExecutionContext,
        *,
        thread_id: str,
        message_id: str,
        content: str,
        agent: str | None = None,
        client_msg_id: str | None = None,
        acked: Acked | None = None,
    ) -> Ack:
        """A new version of one of the caller's messages: stored beside it (a new branch,
        which the thread now shows) and answered by a new run that sees only that branch."""
        request = _Request(ctx, content, thread_id, agent, client_msg_id, edit_of=message_id)
        return await self._start(request, acked)

    async def regenerate(
        self,
        ctx: UserExecutionContext,
        *,
        thread_id: str,
        message_id: str,
        agent: str | None = None,
        acked: Acked | None = None,
    ) -> Ack:
        """A new answer to a question (``message_id``, or the question an answer of it
        answers): a new run whose answer goes beside the earlier ones; the thread's branch
        ends at the question until it comes."""
        request = _Request(ctx, None, thread_id, agent, None, regenerate=message_id)
        return await self._start(request, acked)

    async def _start(self, request: _Request, acked: Acked | None) -> Ack:
        ctx = request.ctx
        limits = self._config.limits_for(ctx.tier, ctx.limits)
        for content in request.contents():
            _check_content(content, limits)
        if request.thread_id is None:
            request = replace(request, new_thread_id=new_id("th"))
        # Once its transaction is sent, an admission finishes even if its caller is cancelled
        # (a socket closing, a shutdown): a run stored is always handed to the engine.
        return await asyncio.shield(self._admit_and_start(request, limits, acked))

    async def _admit_and_start(
        self, request: _Request, limits: LimitSettings, acked: Acked | None
    ) -> Ack:
        ctx = request.ctx
        slots = await self._engine.reserve(ctx, request.thread_id or request.new_thread_id or "")
        try:
            admitted = await self._store(request, limits, start=slots is not None)
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        if isinstance(admitted, Ack):  # a retried client_msg_id: stored before
            if slots is not None:
                slots.release()
            return _told(admitted, acked)
        run = admitted.run
        if slots is not None:  # stored running: its task starts now, before any await here
            self._engine.start(ctx, run, slots, admitted.conversation)
        ack = Ack(request.client_msg_id, admitted.message.id, run.thread_id, run.id)
        _told(ack, acked)
        await self._bridge.publish(admitted.events)
        for active in admitted.superseded:  # double-texting policy "interrupt"
            await self.cancel(ctx, active.id, why=SUPERSEDED)
        if slots is None:
            await self._engine.submit(ctx, run)
        return ack

    async def _store(
        self, request: _Request, limits: LimitSettings, *, start: bool
    ) -> Ack | _Admitted:
        ctx, client_msg_id = request.ctx, request.client_msg_id
        try:
            return await self._db.transact(self._admit(request, limits, start=start))
        except IntegrityViolation:
            if client_msg_id is None:
                raise
            # The same message sent twice at once, on two connections: the other one won.
            earlier = await self._db.transact(_earlier(ctx, client_msg_id))
            if earlier is None:
                raise
            return earlier

    def _admit(
        self, request: _Request, limits: LimitSettings, *, start: bool
    ) -> Tx[Ack | _Admitted]:
        """Admission, in the transaction that stores the message and its run: the thread is
        the caller's, the agent is allowed, the double-texting policy, the quotas, the
        server-wide bound on queued runs. The thread's row is held until commit, so the
        message joins the end of its branch as it is. Its events are stored with it; with
        ``start`` (its slots are taken: it executes at once) the run is stored claimed, with
        its ``agent_started``."""
        ctx = request.ctx
        if request.client_msg_id is not None:
            earlier = yield from _earlier(ctx, request.client_msg_id)
            if earlier is not None:
                return earlier
        threads = ThreadRepository(ctx)
        messages = MessageRepository(ctx)
        question_id = new_id("msg")
        created = request.thread_id is None
        if request.thread_id is None:
            name = request.agent or DEFAULT_AGENT
            self._agents.startable(ctx, name)
            title = title_from(request.content or "")
            thread = yield from threads.create(
                title=title, agent=name, first_message=question_id, thread_id=request.new_thread_id
            )
        else:
            thread = yield from threads.get(request.thread_id, hold=True)
        parent_id = None if created else thread.active_leaf
        for turn in request.history:  # a new thread's conversation so far, oldest first
            stored = yield from messages.add(
                thread_id=thread.id, role=turn.role, content=turn.content, parent_id=parent_id
            )
            parent_id = stored.id
        question: MessageRecord | None = None
        if request.regenerate is not None:
            question = yield from _question_of(messages, thread.id, request.regenerate)
        elif request.edit_of is not None:
            edited = yield from messages.get(thread.id, request.edit_of)
            if edited.role != "user":
                raise InvalidRequest("only a message of yours can be edited", code="not_editable")
            parent_id = edited.parent_id
        agent_name = request.agent or thread.agent
        definition = self._agents.startable(ctx, agent_name)
        runs = RunRepository(ctx)
        superseded: list[RunRecord] = []
        if not created and definition.double_texting != "enqueue":
            superseded = yield from runs.active_in_thread(thread.id)
            if superseded and definition.double_texting == "reject":
                raise Conflict(
                    "a run is still active on this thread; wait for it or cancel it",
                    code="thread_busy",
                )
        warnings = admit(limits, (yield from measure(ctx)), agent=agent_name)
        yield from self._shedder.check()
        owner, lease_until = self._engine.holding()
        run = yield from RunQueue.create(
            ctx,
            thread_id=thread.id,
            agent=agent_name,
            model=definition.model_for(request.model, self._config.settings.models.default),
            question_id=question.id if question else question_id,
            owner=owner,
            lease_until=lease_until,
            started=start,
        )
        if question is None:
            question = yield from messages.add(
                thread_id=thread.id,
                role="user",
                content=request.content or "",
                parent_id=parent_id,
                run_id=run.id,
                client_msg_id=request.client_msg_id,
                message_id=question_id,
            )
        if not created:
            yield from threads.touch(thread.id, leaf=question.id, at=question.created_at)
        thread = replace(thread, active_leaf=question.id, updated_at=question.created_at)
        news = _news(request, thread, question, warnings, created=created)
        events = yield from self._tell(ctx, run, news)
        # A run executing at once reads its conversation here, not in a transaction of its own.
        conversation = (yield from _short_conversation(messages, question)) if start else None
        return _Admitted(run, question, superseded, events, conversation)

    def _tell(
        self, ctx: UserExecutionContext, run: RunRecord, news: list[Payload]
    ) -> Tx[list[Event]]:
        """Store the admission's events in its transaction: ``news`` of the thread, then the
        run's ``agent_started`` if it was created claimed."""
        bridge = self._bridge
        told = [bridge.entry(ctx, payload, thread_id=run.thread_id) for payload in news]
        if run.started_at is not None:
            started = AgentStarted(run.model, run.attempt, None)
            told.append(
                bridge.entry(ctx, started, agent=run.agent, run_id=run.id, thread_id=run.thread_id)
            )
        return (yield from bridge.store_now(told))

    async def cancel(
        self, ctx: UserExecutionContext, run_id: str, *, why: RunError | None = None
    ) -> RunRecord:
        """Cancel the caller's run, whichever instance holds it; a run already final is
        returned unchanged. A run held elsewhere ends once its holder hears of it (a notice
        on the bus, or its next heartbeat)."""
        run = await self._db.transact(RunRepository(ctx).get(run_id))
        if run.status.final or self._engine.cancel(ctx.user_id, run_id, why=why):
            return run
        adopted = await self._db.transact(self._request_cancel(ctx, run_id, why))
        if adopted is not None:
            await self._engine.end_cancelled(ctx, adopted, why)
        else:
            await self._bus.notify(Notice("cancel", ctx.user_id, run_id))
        return await self._db.transact(RunRepository(ctx).get(run_id))

    async def delete_thread(self, ctx: UserExecutionContext, thread_id: str) -> None:
        """Delete the caller's thread with everything of it. Its active runs are cancelled
        first, and those executing here get a moment (``CANCEL_WAIT_S``) to end, so open
        tabs see them end before the thread goes; a run of it that still writes afterwards
        (held elsewhere) finds its row gone and is refused. Then every tab hears
        ``thread_deleted``."""
        active = await self._db.transact(_active_in(ctx, thread_id))  # not the caller's: 404
        for run in active:
            await self.cancel(ctx, run.id)
        attempts = (self._engine.attempt_of(ctx.user_id, run.id) for run in active)
        ending = [a.task for a in attempts if a is not None and a.task is not None]
        if ending:
            await asyncio.wait(ending, timeout=CANCEL_WAIT_S)
        await self._bridge.drain()  # what the thread emitted so far is stored, then goes
        await self._db.transact(ThreadRepository(ctx).delete(thread_id))
        await self._bridge.emit(ctx, ThreadDeleted(thread_id), thread_id=thread_id)

    def _request_cancel(
        self, ctx: UserExecutionContext, run_id: str, why: RunError | None
    ) -> Tx[RunRecord | None]:
        """Note the cancel for whoever holds the run; a run nobody executes (waiting for
        approval, queued without a holder, or its holder died) is adopted, to be ended here."""
        yield from RunQueue.request_cancel(ctx, run_id, why or CANCELLED_BY_USER)
        return (
            yield from RunQueue.adopt_unheld(
                ctx, run_id, owner=self._engine.instance_id, lease_until=self._engine.lease_until()
            )
        )

    async def decide(
        self, ctx: UserExecutionContext, run_id: str, tool_call_id: str, decision: Decision
    ) -> DecisionAnswer:
        """The owning user's answer to a tool call awaiting approval. The first answer
        stands; once no call of the run waits any more, the run continues."""
        record, decided, requeued = await self._db.transact(
            self._decide(ctx, run_id, tool_call_id, decision)
        )
        if requeued is not None:
            await self._engine.submit(ctx, requeued)
        return DecisionAnswer(run_id, tool_call_id, record.decision, already_decided=not decided)

    def _decide(
        self, ctx: UserExecutionContext, run_id: str, tool_call_id: str, decision: Decision
    ) -> Tx[tuple[ToolCallRecord, bool, RunRecord | None]]:
        """The answer stored; the run requeued once no call of it waits any more."""
        yield from RunRepository(ctx).get(run_id)  # another user's run: not found
        calls = ToolCallRepository(ctx)
        record = yield from calls.get(run_id, tool_call_id)
        if record.status != "awaiting_approval" and record.decision is None:
            raise Conflict("this tool call does not need approval")
        decided = yield from calls.decide(run_id, tool_call_id, decision)
        if not decided:  # an earlier answer stands: read it (it may have just landed)
            return (yield from calls.get(run_id, tool_call_id)), False, None
        record = replace(record, decision=decision)
        if (yield from calls.undecided(run_id)):
            return record, True, None
        owner, lease_until = self._engine.holding()
        requeued = yield from RunQueue.requeue(ctx, run_id, owner=owner, lease_until=lease_until)
        return record, True, requeued


@dataclass(frozen=True, slots=True)
class _Request:
    """A run to admit: a message sent, a message edited, or an answer made again."""

    ctx: UserExecutionContext
    content: str | None
    """The new message (None: a regeneration, which adds none)."""
    thread_id: str | None
    agent: str | None
    client_msg_id: str | None
    edit_of: str | None = None
    """The message the new one is a version of (its sibling)."""
    regenerate: str | None = None
    """The question to answer again, or an answer of it."""
    model: str | None = None
    """The model the caller chose, among those the agent allows; None: the agent's."""
    history: tuple[Turn, ...] = ()
    """Turns stored before the message, in the new thread it starts."""
    new_thread_id: str | None = None
    """The id of the thread it starts (no ``thread_id``), made before admission."""

    def contents(self) -> list[str]:
        """What the caller wrote: the earlier turns, then the message (if any)."""
        said = [turn.content for turn in self.history]
        return said if self.content is None else [*said, self.content]

    @property
    def branches(self) -> bool:
        """It starts a new branch: the thread's branch no longer ends where it did."""
        return self.edit_of is not None or self.regenerate is not None


@dataclass(frozen=True, slots=True)
class _Admitted:
    """What admission stored, and what follows from it."""

    run: RunRecord
    message: MessageRecord
    """The question the run answers."""
    superseded: list[RunRecord]
    """Active runs of the thread the message interrupts (double-texting "interrupt")."""
    events: list[Event]
    """Stored with it, to publish: the thread's and message's news, quota warnings, and the
    run's ``agent_started`` when it executes at once."""
    conversation: Conversation | None
    """For a run that executes at once: the thread up to its question, unless it is longer
    than ``ADMISSION_TURNS`` (its attempt reads it then)."""


def _short_conversation(
    messages: MessageRepository, question: MessageRecord
) -> Tx[Conversation | None]:
    """The conversation up to the question when it is at most ``ADMISSION_TURNS`` long;
    None for a longer one (the attempt reads it, beside the writer)."""
    if question.turn > ADMISSION_TURNS:  # not even read: the question's turn says it is long
        return None
    if question.parent_id is None:  # a thread's first question is its whole conversation
        return opening(question)
    conversation = yield from messages.texts(question.id, limit=2 * ADMISSION_TURNS)
    return None if conversation.unread else conversation


def _news(
    request: _Request,
    thread: ThreadRecord,
    question: MessageRecord,
    warnings: Sequence[QuotaWarning],
    *,
    created: bool,
) -> list[Payload]:
    """What an admission tells the user's sockets, in this order: the thread (new, or its
    branch moved), the message (none for a regeneration), the quotas nearly spent."""
    news: list[Payload] = []
    if created or request.branches:
        news.append(ThreadUpdated(thread.public()))
    if request.content is not None:
        news.append(MessageCreated(question.public()))
    return [*news, *warnings]


def _told(ack: Ack, acked: Acked | None) -> Ack:
    if acked is not None:
        acked(ack)
    return ack


def _check_content(content: str, limits: LimitSettings) -> None:
    if not content.strip():
        raise InvalidRequest("content must not be empty")
    if len(content) > limits.max_message_chars:
        raise InvalidRequest(
            f"message longer than {limits.max_message_chars} characters",
            code="message_too_large",
        )


def _question_of(messages: MessageRepository, thread_id: str, message_id: str) -> Tx[MessageRecord]:
    """The question a message is (a user message) or answers (an answer: its parent)."""
    message = yield from messages.get(thread_id, message_id)
    if message.role == "user":
        return message
    if message.parent_id is None:
        raise InvalidRequest("this message answers no question", code="not_regenerable")
    return (yield from messages.get(thread_id, message.parent_id))


def _active_in(ctx: UserExecutionContext, thread_id: str) -> Tx[list[RunRecord]]:
    yield from ThreadRepository(ctx).get(thread_id)
    return (yield from RunRepository(ctx).active_in_thread(thread_id))


def _earlier(ctx: UserExecutionContext, client_msg_id: str) -> Tx[Ack | None]:
    """The ack of a message already stored under this ``client_msg_id`` (a retried send)."""
    earlier = yield from MessageRepository(ctx).by_client_msg_id(client_msg_id)
    if earlier is None or earlier.run_id is None:
        return None
    return Ack(client_msg_id, earlier.id, earlier.thread_id, earlier.run_id)
