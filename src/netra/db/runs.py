"""RunRepository: reads of a user's runs; every statement is filtered by the context's
``user_id``. Every change of a run (status, holder, lease, attempt) is ``netra.db.queue``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select

from netra.db import tables as t
from netra.db.records import RunRecord, RunStatus, aware, utcnow
from netra.db.repositories import Scoped
from netra.errors import NotFound


def run_record(row: Row[Any]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=m["id"],
        user_id=m["user_id"],
        thread_id=m["thread_id"],
        parent_run_id=m["parent_run_id"],
        agent=m["agent"],
        model=m["model"],
        status=RunStatus(m["status"]),
        outcome=m["outcome"],
        error=m["error"],
        usage=m["usage"],
        attempt=m["attempt"],
        message_id=m["message_id"],
        created_at=aware(m["created_at"]) or utcnow(),
        started_at=aware(m["started_at"]),
        finished_at=aware(m["finished_at"]),
        owner=m["owner"],
        cancel_requested=m["cancel_requested"],
        recoveries=m["recoveries"],
        resume_reason=m["resume_reason"],
    )


ACTIVE = [RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.REQUIRES_APPROVAL.value]


class RunRepository(Scoped):
    async def get(self, run_id: str) -> RunRecord:
        row = (
            await self._conn.execute(
                select(t.runs).where(t.runs.c.id == run_id, t.runs.c.user_id == self.user_id)
            )
        ).first()
        if row is None:
            raise NotFound("run not found")
        return run_record(row)

    async def usage_since(self, since: datetime) -> tuple[int, int, int, float]:
        """``(runs, input_tokens, output_tokens, cost_usd)`` of runs created since ``since``."""
        row = (
            await self._conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(t.runs.c.input_tokens), 0),
                    func.coalesce(func.sum(t.runs.c.output_tokens), 0),
                    func.coalesce(func.sum(t.runs.c.cost_usd), 0.0),
                ).where(t.runs.c.user_id == self.user_id, t.runs.c.created_at >= since)
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2]), float(row[3])

    async def spend_since(self, since: datetime) -> list[tuple[datetime, str, int, int, float]]:
        """``(created_at, model, input_tokens, output_tokens, cost_usd)`` of every run
        created since ``since`` that used the model, oldest first."""
        rows = await self._conn.execute(
            select(
                t.runs.c.created_at,
                t.runs.c.model,
                t.runs.c.input_tokens,
                t.runs.c.output_tokens,
                t.runs.c.cost_usd,
            )
            .where(
                t.runs.c.user_id == self.user_id,
                t.runs.c.created_at >= since,
                (t.runs.c.input_tokens + t.runs.c.output_tokens) > 0,
            )
            .order_by(t.runs.c.created_at)
        )
        return [(aware(r[0]) or since, str(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows]

    async def started_since(self, since: datetime) -> list[datetime]:
        """Creation times of runs created since ``since``, oldest first."""
        rows = await self._conn.execute(
            select(t.runs.c.created_at)
            .where(t.runs.c.user_id == self.user_id, t.runs.c.created_at >= since)
            .order_by(t.runs.c.created_at)
        )
        return [aware(row.created_at) or utcnow() for row in rows]

    async def active_count(self) -> int:
        value = await self._conn.scalar(
            select(func.count()).where(
                t.runs.c.user_id == self.user_id,
                t.runs.c.status.in_(ACTIVE),
            )
        )
        return int(value or 0)

    async def active_in_thread(self, thread_id: str) -> list[RunRecord]:
        """Runs of the thread not yet final (queued, running or waiting for approval)."""
        rows = await self._conn.execute(
            select(t.runs)
            .where(
                t.runs.c.user_id == self.user_id,
                t.runs.c.thread_id == thread_id,
                t.runs.c.status.in_(ACTIVE),
            )
            .order_by(t.runs.c.created_at)
        )
        return [run_record(row) for row in rows]
