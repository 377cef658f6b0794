"""UnifiedToolDispatcher: runs one user's tool calls, never raising for a tool's failure.

One dispatcher per run, bound to that run's ``UserExecutionContext``. For each call it emits
``tool_executing``, records the call in the ledger, checks the tool exists, the user may use
it and the arguments fit its schema, runs it under a time limit, bounds its output, records
the outcome and emits the paired ``tool_completed``. Every failure becomes a structured
result the model sees. Calls of one model turn run concurrently.

A tool that ``requires_approval`` is not run: its call is stored as ``awaiting_approval``
and the outcome is *pending*; the run pauses (the engine asks the user). When the run
continues (a later attempt), ``replay`` hands the ledger back: finished calls as they ended,
approved calls executed now, denied calls as a ``denied`` error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from netra.context import UserExecutionContext
from netra.db.ledger import ToolCallRepository
from netra.db.manager import DatabaseManager
from netra.db.records import Decision, ToolCallRecord
from netra.errors import ToolError
from netra.events.bridge import RunEmitter
from netra.events.sanitize import sanitize
from netra.ids import new_id
from netra.models.base import ChatMessage, ToolCallRequest, ToolSpec
from netra.registry import UniversalRegistry
from netra.settings import ToolSettings
from netra.tools.arguments import ArgumentsInvalid
from netra.tools.tool import SideEffects, Tool

log = logging.getLogger(__name__)
ToolRegistry = UniversalRegistry[Tool]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    call: ToolCallRequest
    result: Any
    error: dict[str, Any] | None
    duration_ms: int
    pending: bool = False
    """Waiting for the user's approval: no result yet."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_message(self) -> ChatMessage:
        payload = {"error": self.error} if self.error else self.result
        return ChatMessage(
            role="tool",
            content=json.dumps(payload, default=str, ensure_ascii=False),
            tool_call_id=self.call.id,
            name=self.call.name,
        )


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
        the conversation, the ledger and the events use from then on."""
        calls = [self._unique(call) for call in calls]
        if len(calls) == 1:
            return [await self._execute_one(calls[0], step)]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._execute_one(call, step)) for call in calls]
        return [task.result() for task in tasks]

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
        if tool is not None and tool.requires_approval and self._acceptable(tool, call):
            await self._record(call, arguments, tool, step, status="awaiting_approval")
            return ToolOutcome(call, None, None, 0, pending=True)
        await self._emitter.tool_executing(call.id, call.name, arguments)
        await self._record(call, arguments, tool, step, status="running")
        return await self._complete(tool, call)

    async def _record(
        self, call: ToolCallRequest, arguments: Any, tool: Tool | None, step: int, *, status: str
    ) -> None:
        """The call enters the ledger before anything else happens to it."""
        async with self._db.write() as conn:
            await ToolCallRepository(conn, self._ctx).begin(
                run_id=self._run_id,
                tool_call_id=call.id,
                tool=call.name,
                arguments=arguments,
                side_effects=tool.side_effects.value if tool else "none",
                attempt=self._attempt,
                step=step,
                status=status,
            )

    async def _replay_one(self, record: ToolCallRecord) -> ToolOutcome:
        """One call from the ledger. The event stream gets what it misses: an earlier
        attempt may have died between writing the ledger and emitting the call's events."""
        call = ToolCallRequest(record.tool_call_id, record.tool, dict(record.arguments or {}))
        if record.finished:
            if self._emitter.is_open(call.id):
                await self._emitter.tool_completed(
                    call.id,
                    call.name,
                    result=record.result,
                    error=record.error,
                    duration_ms=record.duration_ms or 0,
                )
            return ToolOutcome(call, record.result, record.error, record.duration_ms or 0)
        tool = self._tool(call.name)
        if record.status == "running":
            # Started by an attempt that died: its outcome is unknown. Never run an unsafe
            # call twice; report it to the model instead.
            if not self._emitter.is_open(call.id):
                await self._emitter.tool_executing(call.id, call.name, record.arguments)
            if tool is None or tool.side_effects is SideEffects.UNSAFE:
                return await self._complete(tool, call, refuse=_unknown_outcome())
            return await self._complete(tool, call)
        if record.decision is None:
            return ToolOutcome(call, None, None, 0, pending=True)
        if not self._emitter.is_open(call.id):
            await self._emitter.tool_executing(call.id, call.name, record.arguments)
        if record.decision is Decision.DENIED:
            return await self._complete(tool, call, refuse=_denied())
        async with self._db.write() as conn:
            await ToolCallRepository(conn, self._ctx).reopen(
                self._run_id, call.id, attempt=self._attempt
            )
        return await self._complete(tool, call)

    async def _complete(
        self, tool: Tool | None, call: ToolCallRequest, *, refuse: _Failure | None = None
    ) -> ToolOutcome:
        """Run the call (unless refused), record its outcome, emit ``tool_completed``."""
        started = time.monotonic()
        result: Any = None
        error: dict[str, str] | None = None
        try:
            if refuse is not None:
                raise refuse
            result = await self._run(tool, call)
        except _Failure as failure:
            error = {"code": failure.code, "message": failure.message}
        duration_ms = int((time.monotonic() - started) * 1000)
        async with self._db.write() as conn:
            await ToolCallRepository(conn, self._ctx).end(
                run_id=self._run_id,
                tool_call_id=call.id,
                attempt=self._attempt,
                status="error" if error else "ok",
                result=result,
                error=error,
                duration_ms=duration_ms,
            )
        await self._emitter.tool_completed(
            call.id, call.name, result=result, error=error, duration_ms=duration_ms
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
        size = len(json.dumps(result, default=str, ensure_ascii=False))
        if size > limit:
            raise _Failure("output_too_large", f"output of {size} chars exceeds {limit}")
        return result
