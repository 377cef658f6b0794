"""The tool-call ledger, keyed ``(run_id, tool_call_id)``: written before a tool runs and
again when it ends; read back to continue a run (after an approval or a restart).

Every write is fenced by the attempt making it. A write carried by its event
(``fenced=False``: the event log writer's transaction, which fenced the event under the run's
row lock already) skips its own fence. Methods are transaction functions (``netra.db.sql``)."""

from __future__ import annotations

from typing import Any

from netra.db.queue import RunQueue
from netra.db.records import Decision, ToolCallRecord, utcnow
from netra.db.repositories import Scoped
from netra.db.sql import Row, Statement, Tx, execute, first, rowcount, rows
from netra.errors import NotFound

CALL_BEGIN = Statement(
    "begin: a call entered before it runs (or while it waits for approval)",
    "INSERT INTO tool_calls (run_id, tool_call_id, user_id, tool, arguments, side_effects,"
    " status, attempt, step, started_at) VALUES (:run_id, :tool_call_id, :user_id, :tool,"
    " :arguments, :side_effects, :status, :attempt, :step, :started_at)",
)
CALLS_OF_RUN = Statement(
    "for_run: a run's calls in the order the model asked, by step",
    "SELECT * FROM tool_calls WHERE run_id = :run_id AND user_id = :user_id"
    " ORDER BY step, started_at, tool_call_id",
)
CALL_GET = Statement(
    "get: one call of the user's",
    "SELECT * FROM tool_calls"
    " WHERE run_id = :run_id AND tool_call_id = :tool_call_id AND user_id = :user_id",
)
CALL_DECIDE = Statement(
    "decide: the user's answer to a call awaiting approval; the first one stands",
    "UPDATE tool_calls SET decision = :decision, decided_at = :decided_at"
    " WHERE run_id = :run_id AND tool_call_id = :tool_call_id AND user_id = :user_id"
    " AND status = 'awaiting_approval' AND decision IS NULL",
)
CALLS_UNDECIDED = Statement(
    "undecided: a run's calls still waiting for the user's answer",
    "SELECT * FROM tool_calls WHERE run_id = :run_id AND user_id = :user_id"
    " AND status = 'awaiting_approval' AND decision IS NULL",
)
CALL_REOPEN = Statement(
    "reopen: an approved call starts executing, in a later attempt",
    "UPDATE tool_calls SET status = 'running', attempt = :attempt, started_at = :started_at"
    " WHERE run_id = :run_id AND tool_call_id = :tool_call_id AND user_id = :user_id",
)
CALL_END = Statement(
    "end: a call's outcome",
    "UPDATE tool_calls SET status = :status, result = :result, error = :error,"
    " duration_ms = :duration_ms, finished_at = :finished_at"
    " WHERE run_id = :run_id AND tool_call_id = :tool_call_id AND user_id = :user_id",
)


def tool_call_record(row: Row) -> ToolCallRecord:
    return ToolCallRecord(
        run_id=row["run_id"],
        tool_call_id=row["tool_call_id"],
        tool=row["tool"],
        arguments=row["arguments"],
        side_effects=row["side_effects"],
        status=row["status"],
        result=row["result"],
        error=row["error"],
        step=row["step"],
        decision=Decision(row["decision"]) if row["decision"] else None,
        attempt=row["attempt"],
        duration_ms=row["duration_ms"],
    )


class ToolCallRepository(Scoped):
    """The tool-call ledger, keyed ``(run_id, tool_call_id)``."""

    def begin(
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
    ) -> Tx[None]:
        if fenced:
            yield from RunQueue.fence(self._ctx, run_id, attempt)
        yield from execute(
            CALL_BEGIN(
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

    def for_run(self, run_id: str) -> Tx[list[ToolCallRecord]]:
        """The run's ledger in the order the model asked: by step, then as asked."""
        found = yield from rows(CALLS_OF_RUN(run_id=run_id, user_id=self.user_id))
        return [tool_call_record(row) for row in found]

    def get(self, run_id: str, tool_call_id: str) -> Tx[ToolCallRecord]:
        row = yield from first(
            CALL_GET(run_id=run_id, tool_call_id=tool_call_id, user_id=self.user_id)
        )
        if row is None:
            raise NotFound("tool call not found")
        return tool_call_record(row)

    def decide(self, run_id: str, tool_call_id: str, decision: Decision) -> Tx[bool]:
        """Record the user's answer to a call awaiting approval. False when it was answered
        already (the first answer stands: approving twice executes once)."""
        changed = yield from rowcount(
            CALL_DECIDE(
                run_id=run_id,
                tool_call_id=tool_call_id,
                user_id=self.user_id,
                decision=decision.value,
                decided_at=utcnow(),
            )
        )
        return changed == 1

    def undecided(self, run_id: str) -> Tx[list[ToolCallRecord]]:
        """Calls of the run still waiting for the user's answer."""
        found = yield from rows(CALLS_UNDECIDED(run_id=run_id, user_id=self.user_id))
        return [tool_call_record(row) for row in found]

    def reopen(
        self, run_id: str, tool_call_id: str, *, attempt: int, fenced: bool = True
    ) -> Tx[None]:
        """An approved call starts executing (in a later attempt of its run)."""
        if fenced:
            yield from RunQueue.fence(self._ctx, run_id, attempt)
        yield from execute(
            CALL_REOPEN(
                run_id=run_id,
                tool_call_id=tool_call_id,
                user_id=self.user_id,
                attempt=attempt,
                started_at=utcnow(),
            )
        )

    def end(
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
    ) -> Tx[None]:
        if fenced:
            yield from RunQueue.fence(self._ctx, run_id, attempt)
        yield from execute(
            CALL_END(
                run_id=run_id,
                tool_call_id=tool_call_id,
                user_id=self.user_id,
                status=status,
                result=result,
                error=error,
                duration_ms=duration_ms,
                finished_at=utcnow(),
            )
        )
