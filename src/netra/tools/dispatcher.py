"""UnifiedToolDispatcher: runs one user's tool calls, never raising for a tool's failure.

One dispatcher per attempt of a run, bound to that run's ``UserExecutionContext``. For each
call it enters the call in the ledger and emits ``tool_executing`` (stored together), checks
the tool exists, the user may use it and the arguments fit its schema, runs it under a time
limit, bounds its output, then records the outcome and emits the paired ``tool_completed``
(stored together). An ``unsafe`` call runs only once its entry is stored; any other runs at
once, its entry stored meanwhile in order. Every failure becomes a structured result the
model sees. Calls of one model turn run concurrently.

A tool that ``requires_approval`` is not run: its call is stored as ``awaiting_approval``
and the outcome is *pending*; the run pauses (the engine asks the user).

The ledger answers for what earlier attempts did (``replay``): finished calls as they ended,
approved calls executed now, denied calls as a ``denied`` error, calls cut off mid-way run
again if safe and reported as ``outcome_unknown`` if not. Because a call's events are stored
with its ledger entries, the ledger also says which events the stream already holds. A step
an earlier attempt began (``recorded``) is answered from the ledger whatever the agent asks
this time: a call is never made twice because a run was resumed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.records import Decision, ToolCallRecord
from netra.db.sql import Tx
from netra.errors import RunError, ToolError
from netra.events.bridge import RunEmitter
from netra.events.sanitize import sanitize
from netra.ids import new_id
from netra.models.base import ChatMessage, ToolCallRequest, ToolSpec
from netra.registry import UniversalRegistry
from netra.settings.agents import ToolSettings
from netra.tools.arguments import ArgumentsInvalid
from netra.tools.tool import SideEffects, Tool

log = logging.getLogger(__name__)
ToolRegistry = UniversalRegistry[Tool]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    call: ToolCallRequest
    result: Any
    error: RunError | None
    duration_ms: int
    pending: bool = False
    """Waiting for the user's approval: no result yet."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def brief(self) -> str:
        """The call in one short line, as later turns recall it:
        ``calculator {"expression": "12*7"} → 84``."""
        arguments = _brief(json.dumps(self.call.arguments, ensure_ascii=False), BRIEF_ARGUMENTS)
        if self.error is not None:
            return (
                f"{self.call.name} {arguments} → failed: {_brief(self.error.message, BRIEF_RESULT)}"
            )
        result = self.result
        text = (
            result
            if isinstance(result, str)
            else json.dumps(result, default=str, ensure_ascii=False)
        )
        return f"{self.call.name} {arguments} → {_brief(text, BRIEF_RESULT)}"

    def as_message(self) -> ChatMessage:
        payload = {"error": self.error.as_dict()} if self.error else self.result
        return ChatMessage(
            role="tool",
            content=json.dumps(payload, default=str, ensure_ascii=False),
            tool_call_id=self.call.id,
            name=self.call.name,
        )


BRIEF_ARGUMENTS = 120
"""Characters of a call's arguments its brief line keeps …"""
BRIEF_RESULT = 200
"""… and of its result."""


def _brief(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _Failure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _denied() -> _Failure:
    return _Failure("denied", "the user denied this call")


def _unknown_outcome() -> _Failure:
    return _Failure(
        "outcome_unknown",
        "the server stopped during this call; it may or may not have taken effect, "
        "and it is not repeated",
    )


def _must_wait(tool: Tool | None) -> bool:
    """An unsafe call runs only once the ledger knows it started: after a crash it is
    reported, never repeated. Any other call may run while its entry is being stored (after
    a crash it simply runs again)."""
    return tool is not None and tool.side_effects is SideEffects.UNSAFE


class UnifiedToolDispatcher:
    """Executes tool calls for one user's run."""

    def __init__(
        self,
        ctx: UserExecutionContext,
        *,
        tools: ToolRegistry,
        allowed: Sequence[str] | None,
        db: DatabaseManager,
        emitter: RunEmitter,
        settings: ToolSettings,
        attempt: int,
    ) -> None:
        if ctx.run_id is None:
            raise ValueError("a tool dispatcher needs a run context")
        self._ctx = ctx
        self._run_id = ctx.run_id
        self._tools = tools
        self._allowed = None if allowed is None else frozenset(allowed)
        self._db = db
        self._emitter = emitter
        self._settings = settings
        self._attempt = attempt
        self._ledger = ToolCallRepository(ctx)
        self._recorded: dict[int, Sequence[ToolCallRecord]] = {}
        """Steps an earlier attempt began and the checkpoint does not hold: their calls."""
        self._used_ids: set[str] = set()

    def _may_use(self, tool: Tool) -> bool:
        if self._allowed is not None and tool.name not in self._allowed:
            return False
        return tool.permission is None or self._ctx.has_permission(tool.permission)

    def available(self) -> list[Tool]:
        """The tools this user may call in this run."""
        return [tool for _, tool in self._tools.items() if self._may_use(tool)]

    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self.available()]

    async def execute(self, calls: Sequence[ToolCallRequest], *, step: int) -> list[ToolOutcome]:
        """Run the calls of one model turn concurrently; results keep the calls' order.

        Models do not always give calls ids unique within a run (some reuse ``call_0`` every
        turn); a repeated or empty id is replaced, and the outcome's ``call`` carries the id
        the conversation, the ledger and the events use from then on. A step an earlier
        attempt began is answered from the ledger instead."""
        recorded = self._recorded.pop(step, None)
        if recorded:
            return await self.replay(recorded)
        calls = [self._unique(call) for call in calls]
        if len(calls) == 1:
            return [await self._execute_one(calls[0], step)]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._execute_one(call, step)) for call in calls]
        return [task.result() for task in tasks]

    def resume(self, ledger: Mapping[int, Sequence[ToolCallRecord]], *, from_step: int) -> None:
        """What earlier attempts of the run entered in the ledger, by step: their ids are
        taken, and ``execute`` answers a step from ``from_step`` on from its entries."""
        for records in ledger.values():
            self._used_ids.update(record.tool_call_id for record in records)
        self._recorded = {
            step: records for step, records in ledger.items() if step >= from_step and records
        }

    async def replay(self, records: Sequence[ToolCallRecord]) -> list[ToolOutcome]:
        """One earlier turn's calls, from the ledger, for a run that continues."""
        self._used_ids.update(record.tool_call_id for record in records)
        return [await self._replay_one(record) for record in records]

    def _unique(self, call: ToolCallRequest) -> ToolCallRequest:
        if not call.id or call.id in self._used_ids:
            call = ToolCallRequest(new_id("call"), call.name, call.arguments)
        self._used_ids.add(call.id)
        return call

    def _tool(self, name: str) -> Tool | None:
        return self._tools.get(name) if self._tools.has(name) else None

    async def _execute_one(self, call: ToolCallRequest, step: int) -> ToolOutcome:
        arguments = sanitize(call.arguments, max_string=2_000, max_items=100)
        tool = self._tool(call.name)
        side_effects = tool.side_effects.value if tool else "none"
        entry = self._entry(call, arguments, side_effects, step)
        if tool is not None and tool.requires_approval and self._acceptable(tool, call):
            await self._db.transact(self._ledger.begin(**entry, status="awaiting_approval"))
            return ToolOutcome(call, None, None, 0, pending=True)

        def begin() -> Tx[bool]:  # fenced with its event
            yield from self._ledger.begin(**entry, fenced=False)
            return True

        await self._emitter.tool_executing(
            call.id, call.name, arguments, stored_with=begin, wait=_must_wait(tool)
        )
        return await self._complete(tool, call)

    def _entry(
        self, call: ToolCallRequest, arguments: Any, side_effects: str, step: int
    ) -> dict[str, Any]:
        return {
            "run_id": self._run_id,
            "tool_call_id": call.id,
            "tool": call.name,
            "arguments": arguments,
            "side_effects": side_effects,
            "attempt": self._attempt,
            "step": step,
        }

    async def _replay_one(self, record: ToolCallRecord) -> ToolOutcome:
        """One call from the ledger. Its events are stored with its ledger entries, so the
        entry says what the stream holds: a finished call both events, a running one its
        ``tool_executing``, one awaiting approval neither."""
        call = ToolCallRequest(record.tool_call_id, record.tool, dict(record.arguments or {}))
        if record.finished:
            error = RunError.of(record.error) if record.error else None
            return ToolOutcome(call, record.result, error, record.duration_ms or 0)
        tool = self._tool(call.name)
        if record.status == "running":
            # Started by an attempt that died: its outcome is unknown. Never run an unsafe
            # call twice; report it to the model instead.
            self._emitter.reopen_tool(call.id, call.name)
            if tool is None or tool.side_effects is SideEffects.UNSAFE:
                return await self._complete(tool, call, refuse=_unknown_outcome())
            return await self._complete(tool, call)
        if record.decision is None:
            return ToolOutcome(call, None, None, 0, pending=True)

        def reopen() -> Tx[bool]:  # fenced with its event
            yield from self._ledger.reopen(
                self._run_id, call.id, attempt=self._attempt, fenced=False
            )
            return True

        await self._emitter.tool_executing(
            call.id, call.name, record.arguments, stored_with=reopen, wait=_must_wait(tool)
        )
        if record.decision is Decision.DENIED:
            return await self._complete(tool, call, refuse=_denied())
        return await self._complete(tool, call)

    async def _complete(
        self, tool: Tool | None, call: ToolCallRequest, *, refuse: _Failure | None = None
    ) -> ToolOutcome:
        """Run the call (unless refused), then record its outcome with ``tool_completed``."""
        started = time.monotonic()
        result: Any = None
        error: RunError | None = None
        try:
            if refuse is not None:
                raise refuse
            result = await self._run(tool, call)
        except _Failure as failure:
            error = RunError(failure.code, failure.message)
        duration_ms = int((time.monotonic() - started) * 1000)

        def end() -> Tx[bool]:  # fenced with its event
            yield from self._ledger.end(
                fenced=False,
                run_id=self._run_id,
                tool_call_id=call.id,
                attempt=self._attempt,
                status="error" if error else "ok",
                result=result,
                error=error.as_dict() if error else None,
                duration_ms=duration_ms,
            )
            return True

        await self._emitter.tool_completed(
            call.id,
            call.name,
            result=result,
            error=error,
            duration_ms=duration_ms,
            stored_with=end,
        )
        return ToolOutcome(call, result, error, duration_ms)

    def _acceptable(self, tool: Tool, call: ToolCallRequest) -> bool:
        """Whether the call could run at all: worth asking the user about."""
        try:
            self._check(tool, call)
        except _Failure:
            return False
        return True

    def _check(self, tool: Tool | None, call: ToolCallRequest) -> tuple[Tool, dict[str, Any]]:
        if tool is None or not self._may_use(tool):
            # An unknown tool and a forbidden one look the same to the model.
            raise _Failure("unknown_tool", f"no tool named {call.name!r} is available")
        try:
            return tool, tool.arguments.validate(call.arguments)
        except ArgumentsInvalid as exc:
            raise _Failure("invalid_arguments", "; ".join(exc.problems)) from None

    async def _run(self, tool: Tool | None, call: ToolCallRequest) -> Any:
        tool, arguments = self._check(tool, call)
        timeout = tool.timeout_s or self._settings.timeout_s
        try:
            async with asyncio.timeout(timeout):
                result = await tool.invoke(self._ctx, arguments)
        except TimeoutError:
            raise _Failure("timeout", f"{tool.name} took longer than {timeout:g}s") from None
        except ToolError as exc:
            raise _Failure(exc.code, exc.message) from None
        except Exception as exc:  # a tool's bug becomes its result, never the run's end
            log.exception("tool %s failed", tool.name)
            raise _Failure("tool_failed", f"{tool.name} failed: {type(exc).__name__}") from None
        limit = tool.max_output_chars or self._settings.max_output_chars
        encoded = json.dumps(result, default=str, ensure_ascii=False)
        if len(encoded) > limit:
            raise _Failure("output_too_large", f"output of {len(encoded)} chars exceeds {limit}")
        # As JSON holds it (a datetime becomes its text): what the ledger stores, in the
        # event log writer's transaction, and what the model and a resumed run see alike.
        return json.loads(encoded)
