"""A run's checkpoint, keyed ``(run_id, step)``: one row per model turn that asked for tools
(``tables.turns``), fenced like every write of an executing attempt. Methods are
transaction functions (``netra.db.sql``)."""

from __future__ import annotations

from netra.db.queue import RunQueue
from netra.db.records import TurnCall, TurnRecord, utcnow
from netra.db.repositories import Scoped
from netra.db.sql import Row, Statement, Tx, execute, rows

TURN_INSERT = Statement(
    "record: a turn of the run's checkpoint",
    "INSERT INTO turns (run_id, step, user_id, attempt, text, tool_calls, usage, created_at)"
    " VALUES (:run_id, :step, :user_id, :attempt, :text, :tool_calls, :usage, :created_at)",
)
TURNS_OF_RUN = Statement(
    "for_run: a run's turns, in order",
    "SELECT * FROM turns WHERE run_id = :run_id AND user_id = :user_id ORDER BY step",
)


class TurnRepository(Scoped):
    """One user's runs' turns."""

    def record(self, run_id: str, turn: TurnRecord, *, fenced: bool = True) -> Tx[None]:
        """Store a turn, written by ``turn.attempt`` (``LostClaim`` once it is not the run's;
        ``fenced=False`` where the caller's transaction fenced it already)."""
        if fenced:
            yield from RunQueue.fence(self._ctx, run_id, turn.attempt)
        yield from execute(
            TURN_INSERT(
                run_id=run_id,
                step=turn.step,
                user_id=self.user_id,
                attempt=turn.attempt,
                text=turn.text,
                tool_calls=[
                    {"id": call.id, "name": call.name, "arguments": call.arguments}
                    for call in turn.tool_calls
                ],
                usage=turn.usage,
                created_at=utcnow(),
            )
        )

    def for_run(self, run_id: str) -> Tx[list[TurnRecord]]:
        """The run's turns, in order."""
        found = yield from rows(TURNS_OF_RUN(run_id=run_id, user_id=self.user_id))
        return [_turn(row) for row in found]


def _turn(row: Row) -> TurnRecord:
    return TurnRecord(
        step=row["step"],
        attempt=row["attempt"],
        text=row["text"],
        tool_calls=tuple(
            TurnCall(call["id"], call["name"], dict(call.get("arguments") or {}))
            for call in row["tool_calls"]
        ),
        usage=dict(row["usage"]),
    )
