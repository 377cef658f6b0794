"""UnifiedToolDispatcher: runs one user's tool calls, never raising for a tool's failure.

One dispatcher per run, bound to that run's ``UserExecutionContext``. For each call it emits
``tool_executing``, records the call in the ledger, checks the tool exists, the user may use
it and the arguments fit its schema, runs it under a time limit, bounds its output, records
the outcome and emits the paired ``tool_completed``. Every failure becomes a structured
result the model sees. Calls of one model turn run concurrently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from netra.context import UserExecutionContext
from netra.db.manager import DatabaseManager
from netra.db.repositories import ToolCallRepository
from netra.errors import ToolError
from netra.events.bridge import RunEmitter
from netra.events.sanitize import sanitize
from netra.models.base import ChatMessage, ToolCallRequest, ToolSpec
from netra.registry import UniversalRegistry
from netra.settings import ToolSettings
from netra.tools.tool import Tool

log = logging.getLogger(__name__)
ToolRegistry = UniversalRegistry[Tool]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    call: ToolCallRequest
    result: Any
    error: dict[str, str] | None
    duration_ms: int

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

    def _may_use(self, tool: Tool) -> bool:
        if self._allowed is not None and tool.name not in self._allowed:
            return False
        return tool.permission is None or self._ctx.has_permission(tool.permission)

    def available(self) -> list[Tool]:
        """The tools this user may call in this run."""
        return [tool for _, tool in self._tools.items() if self._may_use(tool)]

    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self.available()]

    async def execute(self, calls: Sequence[ToolCallRequest]) -> list[ToolOutcome]:
        """Run the calls of one model turn concurrently; results keep the calls' order."""
        if len(calls) == 1:
            return [await self._execute_one(calls[0])]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._execute_one(call)) for call in calls]
        return [task.result() for task in tasks]

    async def _execute_one(self, call: ToolCallRequest) -> ToolOutcome:
        arguments = sanitize(call.arguments, max_string=2_000, max_items=100)
        await self._emitter.tool_executing(call.id, call.name, arguments)
        started = time.monotonic()
        tool = self._tools.get(call.name) if self._tools.has(call.name) else None
        async with self._db.write() as conn:
            await ToolCallRepository(conn, self._ctx).begin(
                run_id=self._run_id,
                tool_call_id=call.id,
                tool=call.name,
                arguments=arguments,
                side_effects=tool.side_effects.value if tool else "none",
                attempt=self._attempt,
            )
        result: Any = None
        error: dict[str, str] | None = None
        try:
            result = await self._run(tool, call)
        except _Failure as failure:
            error = {"code": failure.code, "message": failure.message}
        duration_ms = int((time.monotonic() - started) * 1000)
        async with self._db.write() as conn:
            await ToolCallRepository(conn, self._ctx).end(
                run_id=self._run_id,
                tool_call_id=call.id,
                status="error" if error else "ok",
                result=result,
                error=error,
                duration_ms=duration_ms,
            )
        await self._emitter.tool_completed(
            call.id, call.name, result=result, error=error, duration_ms=duration_ms
        )
        return ToolOutcome(call, result, error, duration_ms)

    async def _run(self, tool: Tool | None, call: ToolCallRequest) -> Any:
        if tool is None or not self._may_use(tool):
            # An unknown tool and a forbidden one look the same to the model.
            raise _Failure("unknown_tool", f"no tool named {call.name!r} is available")
        try:
            arguments = tool.arguments.model_validate(call.arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise _Failure("invalid_arguments", problems) from None
        timeout = tool.timeout_s or self._settings.timeout_s
        try:
            async with asyncio.timeout(timeout):
                result = await tool.invoke(self._ctx, arguments)
        except TimeoutError:
            raise _Failure("timeout", f"{tool.name} took longer than {timeout:g}s") from None
        except ToolError as exc:
            raise _Failure("tool_error", exc.message) from None
        except Exception as exc:  # a tool's bug becomes its result, never the run's end
            log.exception("tool %s failed", tool.name)
            raise _Failure("tool_failed", f"{tool.name} failed: {type(exc).__name__}") from None
        limit = tool.max_output_chars or self._settings.max_output_chars
        size = len(json.dumps(result, default=str, ensure_ascii=False))
        if size > limit:
            raise _Failure("output_too_large", f"output of {size} chars exceeds {limit}")
        return result
