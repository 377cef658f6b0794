"""The tool-call ledger, keyed ``(run_id, tool_call_id)``: written before a tool runs and
again when it ends; read back to continue a run (after an approval or a restart).

Every write is fenced by the attempt making it. A write carried by its event
(``fenced=False``: the event log writer's transaction, which fenced the event under the run's
row lock already) skips its own fence."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select, update

from netra.db import tables as t
from netra.db.queue import RunQueue
from netra.db.records import Decision, ToolCallRecord, utcnow
from netra.db.repositories import Scoped
from netra.errors import NotFound


class ToolCallRepository(Scoped):
    """The tool-call ledger, keyed ``(run_id, tool_call_id)``."""

    async def begin(
        self,
        *,
        run_id: str,
        tool_call_id: str,
        tool: str,
        arguments: Any,
        side_effects: str,
        attempt: int,
        step: int = 0,
        status: str = "running",
        fenced: bool = True,
    ) -> None:
        if fenced:
            await self._fence(run_id, attempt)
        await self._conn.execute(
            insert(t.tool_calls).values(
                run_id=run_id,
                tool_call_id=tool_call_id,
                user_id=self.user_id,
                tool=tool,
                arguments=arguments,
                side_effects=side_effects,
                status=status,
                attempt=attempt,
                step=step,
                started_at=utcnow(),
            )
        )

    async def for_run(self, run_id: str) -> list[ToolCallRecord]:
        """The run's ledger in the order the model asked: by step, then as asked."""
        rows = await self._conn.execute(
            select(t.tool_calls)
            .where(t.tool_calls.c.run_id == run_id, t.tool_calls.c.user_id == self.user_id)
            .order_by(t.tool_calls.c.step, t.tool_calls.c.started_at, t.tool_calls.c.tool_call_id)
        )
        return [_tool_call(row) for row in rows]

    async def get(self, run_id: str, tool_call_id: str) -> ToolCallRecord:
        row = (
            await self._conn.execute(
                select(t.tool_calls).where(
                    t.tool_calls.c.run_id == run_id,
                    t.tool_calls.c.tool_call_id == tool_call_id,
                    t.tool_calls.c.user_id == self.user_id,
                )
            )
        ).first()
        if row is None:
            raise NotFound("tool call not found")
        return _tool_call(row)

    async def decide(self, run_id: str, tool_call_id: str, decision: Decision) -> bool:
        """Record the user's answer to a call awaiting approval. False when it was answered
        already (the first answer stands: approving twice executes once)."""
        result = await self._conn.execute(
            update(t.tool_calls)
            .where(
                t.tool_calls.c.run_id == run_id,
                t.tool_calls.c.tool_call_id == tool_call_id,
                t.tool_calls.c.user_id == self.user_id,
                t.tool_calls.c.status == "awaiting_approval",
                t.tool_calls.c.decision.is_(None),
            )
            .values(decision=decision.value, decided_at=utcnow())
        )
        return result.rowcount == 1

    async def undecided(self, run_id: str) -> list[ToolCallRecord]:
        """Calls of the run still waiting for the user's answer."""
        rows = await self._conn.execute(
            select(t.tool_calls).where(
                t.tool_calls.c.run_id == run_id,
                t.tool_calls.c.user_id == self.user_id,
                t.tool_calls.c.status == "awaiting_approval",
                t.tool_calls.c.decision.is_(None),
            )
        )
        return [_tool_call(row) for row in rows]

    async def reopen(
        self, run_id: str, tool_call_id: str, *, attempt: int, fenced: bool = True
    ) -> None:
        """An approved call starts executing (in a later attempt of its run)."""
        if fenced:
            await self._fence(run_id, attempt)
        await self._conn.execute(
            update(t.tool_calls)
            .where(
                t.tool_calls.c.run_id == run_id,
                t.tool_calls.c.tool_call_id == tool_call_id,
                t.tool_calls.c.user_id == self.user_id,
            )
            .values(status="running", attempt=attempt, started_at=utcnow())
        )

    async def end(
        self,
        *,
        run_id: str,
        tool_call_id: str,
        attempt: int,
        status: str,
        result: Any,
        error: dict[str, Any] | None,
        duration_ms: int,
        fenced: bool = True,
    ) -> None:
        if fenced:
            await self._fence(run_id, attempt)
        await self._conn.execute(
            update(t.tool_calls)
            .where(
                t.tool_calls.c.run_id == run_id,
                t.tool_calls.c.tool_call_id == tool_call_id,
                t.tool_calls.c.user_id == self.user_id,
            )
            .values(
                status=status,
                result=result,
                error=error,
                duration_ms=duration_ms,
                finished_at=utcnow(),
            )
        )

    async def _fence(self, run_id: str, attempt: int) -> None:
        await RunQueue(self._conn).fence(self._ctx, run_id, attempt)


def _tool_call(row: Row[Any]) -> ToolCallRecord:
    m = row._mapping
    return ToolCallRecord(
        run_id=m["run_id"],
        tool_call_id=m["tool_call_id"],
        tool=m["tool"],
        arguments=m["arguments"],
        side_effects=m["side_effects"],
        status=m["status"],
        result=m["result"],
        error=m["error"],
        step=m["step"],
        decision=Decision(m["decision"]) if m["decision"] else None,
        attempt=m["attempt"],
        duration_ms=m["duration_ms"],
    )
