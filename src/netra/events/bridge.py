"""AgentWebSocketBridge: the only way anything emits events.

It builds the envelope, sanitises the payload and hands the event to the event log writer
(persist, then publish) — or, for a transaction whose events must commit with it (a run's
admission), stores them in that transaction and publishes them after (``store_now``).
``RunEmitter`` enforces a run's event grammar: ``agent_started`` first, tool calls paired,
message deltas coalesced, exactly one ``agent_completed`` last.

What a run's stream holds is known without reading it back: ``agent_started`` is stored in
one transaction with the run's ``started_at`` (``RunQueue.mark_started``, or the run's
creation when it starts at once), and a tool call's
``tool_executing`` and ``tool_completed`` with the ledger's entry for it (the dispatcher's
writes, handed in as ``stored_with``). A later attempt of the run reads the runs table and
the ledger, never the event log.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from netra.context import UserExecutionContext
from netra.db.event_log import Entry, store
from netra.db.queue import RunQueue
from netra.db.records import utcnow
from netra.db.sql import Tx
from netra.errors import RunError
from netra.events.envelope import Event, StoredWith, encode
from netra.events.payloads import (
    AgentCompleted,
    AgentStarted,
    AgentThinking,
    ApprovalRequired,
    MessageDelta,
    Payload,
    Resumed,
    ToolCompleted,
    ToolExecuting,
)
from netra.events.sanitize import sanitize
from netra.events.writer import EventLogWriter, Waiter, stored_event
from netra.ids import new_id
from netra.settings import EventSettings

DELTA_WINDOW_S = 0.03
"""Message deltas arriving within this window after a flush are sent together."""
DELTA_MAX_CHARS = 2048


class AgentWebSocketBridge:
    """Process-wide: turns what runs and services report into stored, published events."""

    def __init__(self, writer: EventLogWriter, settings: EventSettings) -> None:
        self._writer = writer
        self._settings = settings

    async def emit(
        self,
        ctx: UserExecutionContext,
        payload: Payload,
        *,
        agent: str | None = None,
        run_id: str | None = None,
        thread_id: str | None = None,
        attempt: int | None = None,
        stored_with: StoredWith | None = None,
        wait: bool = False,
    ) -> Waiter | None:
        """Queue the event (encoded once, here); with ``wait``, the future that says whether
        it was stored (with its write, ``stored_with``)."""
        entry = self.entry(
            ctx,
            payload,
            agent=agent,
            run_id=run_id,
            thread_id=thread_id,
            attempt=attempt,
            stored_with=stored_with,
        )
        return await self._writer.append(entry, wait=wait)

    def entry(
        self,
        ctx: UserExecutionContext,
        payload: Payload,
        *,
        agent: str | None = None,
        run_id: str | None = None,
        thread_id: str | None = None,
        attempt: int | None = None,
        stored_with: StoredWith | None = None,
    ) -> Entry:
        """The event as the log stores it, its envelope encoded (once, here): for ``emit``,
        or for a transaction that stores its events itself (``store_now``)."""
        clean = sanitize(
            payload.as_data(),
            max_string=self._settings.max_string_chars,
            max_items=self._settings.max_list_items,
        )
        event = encode(
            type=payload.TYPE,
            event_id=new_id("ev"),
            thread_id=thread_id if thread_id is not None else ctx.thread_id,
            run_id=run_id,
            agent=agent,
            data=clean,
            at=utcnow(),
        )
        return Entry(ctx.user_id, event, run_id, attempt, stored_with)

    @staticmethod
    def store_now(entries: Sequence[Entry]) -> Tx[list[Event]]:
        """Store events inside the caller's transaction, not behind the writer's batches:
        their seqs are reserved there (the users' counters locked until it commits), so
        they commit with what the transaction writes, or not at all. Once it committed,
        ``publish`` what this returns. (A run's admission: its message, and for a run that
        starts at once its ``agent_started``, reach the sockets one transaction after the
        send.)"""
        outcomes = yield from store(entries)
        stored = (stored_event(e, o) for e, o in zip(entries, outcomes, strict=True))
        return [event for event in stored if event is not None]

    async def publish(self, events: Sequence[Event]) -> None:
        """Hand events a transaction stored (``store_now``) to the sockets, after its commit."""
        await self._writer.publish(events)

    async def after_events(
        self,
        ctx: UserExecutionContext,
        run_id: str,
        attempt: int | None,
        write: StoredWith | None,
        *,
        wait: bool,
    ) -> None:
        """Store ``write`` (if any) right after everything the attempt emitted so far, fenced
        by ``attempt`` (None: not fenced); with ``wait``, return once it is (``LostClaim``
        once the attempt is not the run's)."""
        waiter = await self._writer.append(
            Entry(ctx.user_id, None, run_id, attempt, write), wait=wait
        )
        if waiter is not None:
            await waiter

    async def drain(self) -> None:
        """Wait until every event emitted so far is stored."""
        await self._writer.drain()

    def for_run(
        self, ctx: UserExecutionContext, *, run_id: str, agent: str, attempt: int, model: str = ""
    ) -> RunEmitter:
        """The emitter of one attempt of a run: its events are stored only while that
        attempt is the run's current one."""
        return RunEmitter(self, ctx, run_id=run_id, agent=agent, attempt=attempt, model=model)


class RunEmitter:
    """The events of one run, in their grammar."""

    def __init__(
        self,
        bridge: AgentWebSocketBridge,
        ctx: UserExecutionContext,
        *,
        run_id: str,
        agent: str,
        attempt: int,
        model: str = "",
    ) -> None:
        self._model_hint = model
        self.attempt = attempt
        self._bridge = bridge
        self._ctx = ctx
        self.run_id = run_id
        self.agent = agent
        self._started = False
        self._completed = False
        self._open_tools: dict[str, str] = {}
        self._delta_message: str | None = None
        self._delta_buffer: list[str] = []
        self._delta_chars = 0
        self._last_flush = 0.0

    async def _emit(
        self, payload: Payload, *, stored_with: StoredWith | None = None, wait: bool = False
    ) -> Event | None:
        """Queue the event, with the write that commits with it (``stored_with``). Most
        callers go on at once: what the writer stores keeps their order. With ``wait`` the
        caller goes on only once both landed, and gets the event (``LostClaim`` if
        refused)."""
        if self._completed:
            raise RuntimeError(f"run {self.run_id} already completed; {payload.TYPE} refused")
        if not isinstance(payload, AgentStarted) and not self._started:
            raise RuntimeError(f"run {self.run_id} must emit agent_started first")
        if not isinstance(payload, MessageDelta):
            await self._flush_deltas()
        waiter = await self._bridge.emit(
            self._ctx,
            payload,
            agent=self.agent,
            run_id=self.run_id,
            attempt=self.attempt,
            stored_with=stored_with,
            wait=wait,
        )
        return await waiter if waiter is not None else None

    def resume_started(self) -> None:
        """For a run whose ``agent_started`` an earlier attempt stored (its ``started_at``
        is set)."""
        self._started = True

    async def started(self, *, model: str, attempt: int, parent_run_id: str | None = None) -> None:
        """``agent_started``, stored with the run's ``started_at``: the mark a later attempt
        reads to know the stream began."""
        if self._started:
            raise RuntimeError(f"run {self.run_id} already started")
        self._started = True
        ctx, run_id = self._ctx, self.run_id

        def mark_started() -> Tx[bool]:
            yield from RunQueue.mark_started(ctx, run_id)
            return True

        await self._emit(AgentStarted(model, attempt, parent_run_id), stored_with=mark_started)

    async def thinking(
        self,
        text: str,
        *,
        failover: Mapping[str, Any] | None = None,
        resumed: Resumed | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """A note on what the run is doing; ``failover`` when it switched model, ``resumed``
        where it continues an earlier attempt, ``context`` what a model call is sent."""
        await self._emit(AgentThinking(text, failover, resumed, context))

    async def delta(self, message_id: str, text: str) -> None:
        if not text:
            return
        if self._delta_message not in (None, message_id):
            await self._flush_deltas()
        self._delta_message = message_id
        self._delta_buffer.append(text)
        self._delta_chars += len(text)
        now = time.monotonic()
        if now - self._last_flush >= DELTA_WINDOW_S or self._delta_chars >= DELTA_MAX_CHARS:
            await self._flush_deltas()

    async def _flush_deltas(self) -> None:
        if not self._delta_buffer or self._delta_message is None:
            return
        text = "".join(self._delta_buffer)
        self._delta_buffer.clear()
        self._delta_chars = 0
        self._last_flush = time.monotonic()
        await self._emit(MessageDelta(self._delta_message, text))

    async def tool_executing(
        self, tool_call_id: str, tool: str, arguments: Any, *, stored_with: StoredWith, wait: bool
    ) -> None:
        """Announce a call, stored with its ledger entry (``stored_with``); with ``wait``,
        return once both are (a call that must not run before the ledger knows of it)."""
        self._open_tools[tool_call_id] = tool
        await self._emit(
            ToolExecuting(tool_call_id, tool, arguments), stored_with=stored_with, wait=wait
        )

    def reopen_tool(self, tool_call_id: str, tool: str) -> None:
        """A call whose ``tool_executing`` an earlier attempt stored is to be completed."""
        self._open_tools[tool_call_id] = tool

    async def tool_completed(
        self,
        tool_call_id: str,
        tool: str,
        *,
        result: Any,
        error: RunError | None,
        duration_ms: int,
        stored_with: StoredWith | None = None,
    ) -> None:
        """Complete a call, stored with its outcome in the ledger (``stored_with``); a call
        cut off by its run's end has none."""
        if self._open_tools.pop(tool_call_id, None) is None:
            raise RuntimeError(f"tool_completed for {tool_call_id} without tool_executing")
        await self._emit(
            ToolCompleted(tool_call_id, tool, result, error, duration_ms), stored_with=stored_with
        )

    async def approval_required(
        self, tool_call_id: str, tool: str, arguments: Any, side_effects: str
    ) -> None:
        await self._emit(ApprovalRequired(tool_call_id, tool, arguments, side_effects))

    async def settle(self) -> None:
        """Wait until everything emitted so far is stored (buffered deltas included): what
        a pause records was streamed first. ``LostClaim`` once this attempt is not the
        run's."""
        await self._flush_deltas()
        await self._bridge.after_events(self._ctx, self.run_id, self.attempt, None, wait=True)

    async def store(self, write: StoredWith) -> None:
        """Store ``write`` right after everything emitted so far (buffered deltas included),
        fenced like the events; the caller goes on at once."""
        await self._flush_deltas()
        await self._bridge.after_events(self._ctx, self.run_id, self.attempt, write, wait=False)

    async def meter(self, write: StoredWith, *, wait: bool) -> None:
        """Store ``write``, a model call's usage, right after everything emitted so far,
        *not* fenced: what a call cost counts even when its attempt has lost the run. With
        ``wait``, return once it is stored."""
        await self._flush_deltas()
        await self._bridge.after_events(self._ctx, self.run_id, None, write, wait=wait)

    async def completed(
        self,
        *,
        outcome: str,
        usage: Mapping[str, Any],
        message_id: str | None,
        error: RunError | None = None,
        final_state: StoredWith | None = None,
    ) -> Event:
        """Close the run: emit ``agent_started`` if it never was, pair any tool call left
        open, emit ``agent_completed`` — stored in one transaction with ``final_state``, the
        run's final write — and wait until every event of the run is stored. Raises
        ``LostClaim`` when the final write was refused."""
        if not self._started:
            await self.started(model=self._model_hint, attempt=0)
        for tool_call_id, tool in list(self._open_tools.items()):
            await self.tool_completed(
                tool_call_id,
                tool,
                result=None,
                error=RunError(outcome, f"the run ended ({outcome}) during the call"),
                duration_ms=0,
            )
        event = await self._emit(
            AgentCompleted(outcome, usage, message_id, error),
            stored_with=final_state or _nothing,
            wait=True,
        )
        self._completed = True
        assert event is not None
        return event


def _nothing() -> Tx[bool]:
    yield from ()
    return True
