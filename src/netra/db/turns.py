"""A run's checkpoint, keyed ``(run_id, step)``: one row per model turn that asked for tools
(``tables.turns``), fenced like every write of an executing attempt."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select

from netra.db import tables as t
from netra.db.queue import RunQueue
from netra.db.records import TurnCall, TurnRecord, utcnow
from netra.db.repositories import Scoped


class TurnRepository(Scoped):
    """One user's runs' turns."""

    async def record(self, run_id: str, turn: TurnRecord) -> None:
        """Store a turn, written by ``turn.attempt`` (``LostClaim`` once it is not the run's)."""
        await RunQueue(self._conn).fence(self._ctx, run_id, turn.attempt)
        await self._conn.execute(insert(t.turns).values(**_row(self.user_id, run_id, turn)))

    async def for_run(self, run_id: str) -> list[TurnRecord]:
        """The run's turns, in order."""
        rows = await self._conn.execute(
            select(t.turns)
            .where(t.turns.c.run_id == run_id, t.turns.c.user_id == self.user_id)
            .order_by(t.turns.c.step)
        )
        return [_turn(row) for row in rows]


def _row(user_id: str, run_id: str, turn: TurnRecord) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step": turn.step,
        "user_id": user_id,
        "attempt": turn.attempt,
        "text": turn.text,
        "tool_calls": [
            {"id": call.id, "name": call.name, "arguments": call.arguments}
            for call in turn.tool_calls
        ],
        "usage": turn.usage,
        "created_at": utcnow(),
    }


def _turn(row: Row[Any]) -> TurnRecord:
    m = row._mapping
    return TurnRecord(
        step=m["step"],
        attempt=m["attempt"],
        text=m["text"],
        tool_calls=tuple(
            TurnCall(call["id"], call["name"], dict(call.get("arguments") or {}))
            for call in m["tool_calls"]
        ),
        usage=dict(m["usage"]),
    )
