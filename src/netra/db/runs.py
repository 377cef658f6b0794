"""RunRepository: a user's runs — the queue rows, their claims, leases and final states.

Every statement is filtered by the context's ``user_id``. Cluster-wide lease work (renewal,
orphans, hand-back) is in ``netra.db.cluster``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, insert, or_, select, update

from netra.db import tables as t
from netra.db.records import RunRecord, RunStatus, aware, utcnow
from netra.db.repositories import Scoped
from netra.errors import NotFound
from netra.ids import new_id


def _run(row: Row[Any]) -> RunRecord:
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


_ACTIVE = [RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.REQUIRES_APPROVAL.value]


class RunRepository(Scoped):
    async def create(
        self,
        *,
        thread_id: str,
        agent: str,
        model: str,
        parent_run_id: str | None = None,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> RunRecord:
        """A queued run; ``owner`` is the instance that will execute it (none: the first
        executing instance that adopts it)."""
        now = utcnow()
        record = RunRecord(
            id=new_id("run"),
            user_id=self.user_id,
            thread_id=thread_id,
            parent_run_id=parent_run_id,
            agent=agent,
            model=model,
            status=RunStatus.QUEUED,
            outcome=None,
            error=None,
            usage=None,
            attempt=0,
            message_id=new_id("msg"),
            created_at=now,
            started_at=None,
            finished_at=None,
            owner=owner,
        )
        await self._conn.execute(
            insert(t.runs).values(
                id=record.id,
                user_id=record.user_id,
                thread_id=thread_id,
                parent_run_id=parent_run_id,
                agent=agent,
                model=model,
                status=record.status.value,
                attempt=0,
                message_id=record.message_id,
                created_at=now,
                owner=owner,
                lease_expires_at=lease_until,
            )
        )
        return record

    async def get(self, run_id: str) -> RunRecord:
        row = (
            await self._conn.execute(
                select(t.runs).where(t.runs.c.id == run_id, t.runs.c.user_id == self.user_id)
            )
        ).first()
        if row is None:
            raise NotFound("run not found")
        return _run(row)

    async def start(self, run_id: str, *, owner: str, lease_until: datetime) -> RunRecord | None:
        """Claim a queued run held by ``owner``: running, attempt + 1, leased until
        ``lease_until``. None when it is no longer queued or another instance holds it."""
        row = (
            await self._conn.execute(
                update(t.runs)
                .where(
                    t.runs.c.id == run_id,
                    t.runs.c.user_id == self.user_id,
                    t.runs.c.status == RunStatus.QUEUED.value,
                    t.runs.c.owner == owner,
                )
                .values(
                    status=RunStatus.RUNNING.value,
                    attempt=t.runs.c.attempt + 1,
                    started_at=utcnow(),
                    lease_expires_at=lease_until,
                )
                .returning(*t.runs.c)
            )
        ).first()
        return _run(row) if row else None

    async def finish(
        self,
        run_id: str,
        *,
        status: RunStatus,
        attempt: int,
        owner: str,
        error: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> bool:
        """Record a final state; refused (False) when the run is final already, or ``owner``
        no longer holds ``attempt`` of it (fencing)."""
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == self.user_id,
                t.runs.c.attempt == attempt,
                t.runs.c.owner == owner,
                t.runs.c.status.in_(
                    [
                        RunStatus.QUEUED.value,
                        RunStatus.RUNNING.value,
                        RunStatus.REQUIRES_APPROVAL.value,
                    ]
                ),
            )
            .values(
                status=status.value,
                outcome=status.value,
                error=error,
                usage=usage,
                input_tokens=int((usage or {}).get("input_tokens", 0)),
                output_tokens=int((usage or {}).get("output_tokens", 0)),
                cost_usd=float((usage or {}).get("cost_usd", 0.0)),
                finished_at=utcnow(),
                lease_expires_at=None,
            )
        )
        return result.rowcount == 1

    async def suspend(
        self, run_id: str, *, attempt: int, owner: str, usage: dict[str, Any]
    ) -> bool:
        """A running run stops to wait for the user's approval, keeping its usage so far.
        Refused (False) when ``owner`` no longer holds ``attempt`` of it."""
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == self.user_id,
                t.runs.c.attempt == attempt,
                t.runs.c.owner == owner,
                t.runs.c.status == RunStatus.RUNNING.value,
            )
            .values(status=RunStatus.REQUIRES_APPROVAL.value, usage=usage, lease_expires_at=None)
        )
        return result.rowcount == 1

    async def requeue(
        self, run_id: str, *, owner: str | None, lease_until: datetime | None
    ) -> RunRecord | None:
        """A run waiting for approval goes back to the queue, held by ``owner``; None when
        it is not waiting (already requeued by a racing answer, cancelled, or never
        suspended)."""
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == self.user_id,
                t.runs.c.status == RunStatus.REQUIRES_APPROVAL.value,
            )
            .values(
                status=RunStatus.QUEUED.value,
                owner=owner,
                lease_expires_at=lease_until,
                resume_reason="approval",
            )
        )
        return await self.get(run_id) if result.rowcount == 1 else None

    async def request_cancel(self, run_id: str, why: dict[str, str]) -> bool:
        """Note a cancel for whichever instance holds the run; False when it is final."""
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == self.user_id,
                t.runs.c.status.in_(_ACTIVE),
                t.runs.c.cancel_requested.is_(None),
            )
            .values(cancel_requested=why)
        )
        return result.rowcount == 1

    async def adopt_unheld(
        self, run_id: str, *, owner: str, lease_until: datetime
    ) -> RunRecord | None:
        """Hold a run nobody executes — waiting for approval, queued without a holder, or
        whose holder's lease expired — as queued by ``owner``; None when another instance
        holds it or it is final."""
        now = utcnow()
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == self.user_id,
                or_(
                    t.runs.c.status == RunStatus.REQUIRES_APPROVAL.value,
                    and_(
                        t.runs.c.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
                        or_(t.runs.c.owner.is_(None), t.runs.c.lease_expires_at < now),
                    ),
                ),
            )
            .values(
                status=RunStatus.QUEUED.value,
                owner=owner,
                lease_expires_at=lease_until,
                # fences out an executor that may still be alive past its lease
                attempt=t.runs.c.attempt
                + case((t.runs.c.status == RunStatus.RUNNING.value, 1), else_=0),
            )
        )
        return await self.get(run_id) if result.rowcount == 1 else None

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
                t.runs.c.status.in_(_ACTIVE),
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
                t.runs.c.status.in_(_ACTIVE),
            )
            .order_by(t.runs.c.created_at)
        )
        return [_run(row) for row in rows]
