"""RunQueue: the runs table as the cluster's one queue of runs — every change of a run's
status, holder (``owner``), lease or attempt number is a method here, and so is the fence
that keeps the writes of a replaced attempt out. Reads of a user's runs are
``netra.db.runs.RunRepository``.

Transitions (status → next status: method, and who calls it):

=====================================  ==============  =========================================
queued (new)                           ``create``      RunService.submit; SubAgents (then starts)
queued → running                       ``start``       the holder's Attempt.claim
(no status change: ``started_at``)     ``mark_started``  RunEmitter, with ``agent_started``
running → requires_approval            ``suspend``     AttemptEnds.pause
requires_approval → queued             ``requeue``     RunService.decide; AttemptEnds.pause
queued/running/requires_approval →     ``finish``      AttemptEnds.finish, in one transaction
completed/failed/cancelled/…                           with ``agent_completed``
queued/running, lease out or unheld    ``take``        RunSupervisor (takeover, adoption)
→ queued, held by the taker
requires_approval, or queued/running   ``adopt_unheld``  RunService.cancel (to end it here)
nobody holds → queued, held here
queued/running → queued, unheld        ``release``     RunSupervisor.hand_back (at shutdown)
(no status change)                     ``renew``       RunSupervisor heartbeat (leases)
(no status change)                     ``expire``      RunSupervisor at start (old leases)
(no status change)                     ``request_cancel``  RunService.cancel (for the holder)
=====================================  ==============  =========================================

The attempt number counts executions, and is bumped exactly once for each: by ``start``,
except after a takeover, where ``take`` bumps it at once — the old executor may still be
alive, and nothing it writes may land from then on — and ``start`` then claims that number
(a queued run whose ``resume_reason`` is ``takeover`` has not executed at its number yet:
every other way back to the queue sets another reason or bumps). Fencing: every write of an
executing attempt — events (``current_attempts``, under the rows' locks), tool-call ledger
entries (``fence``), the final state and the pause (their own ``WHERE attempt = … AND owner
= …``) — lands only while that attempt is the run's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netra.context import UserExecutionContext
from netra.db import tables as t
from netra.db.records import RunRecord, RunStatus, utcnow
from netra.db.runs import ACTIVE, RunRepository, run_record
from netra.errors import LostClaim, RunError
from netra.ids import new_id

_HELD = [RunStatus.QUEUED.value, RunStatus.RUNNING.value]


@dataclass(frozen=True, slots=True)
class Lease:
    """A run as its holder sees it at a heartbeat."""

    run_id: str
    user_id: str
    owner: str | None
    attempt: int
    status: RunStatus
    cancel_requested: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Orphan:
    """A run no live instance holds: queued without a holder, or its holder's lease ran out."""

    run_id: str
    user_id: str
    status: RunStatus
    parent_run_id: str | None


def _lease(row: Row[Any, Any, Any, Any, Any, Any]) -> Lease:
    return Lease(
        run_id=row.id,
        user_id=row.user_id,
        owner=row.owner,
        attempt=row.attempt,
        status=RunStatus(row.status),
        cancel_requested=row.cancel_requested,
    )


_LEASE_COLUMNS = (
    t.runs.c.id,
    t.runs.c.user_id,
    t.runs.c.owner,
    t.runs.c.attempt,
    t.runs.c.status,
    t.runs.c.cancel_requested,
)


class RunQueue:
    """Every transition of the runs table, in one transaction's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    # ---- one user's run --------------------------------------------------------------------
    async def create(
        self,
        ctx: UserExecutionContext,
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
            user_id=ctx.user_id,
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

    async def start(
        self, ctx: UserExecutionContext, run_id: str, *, owner: str, lease_until: datetime
    ) -> RunRecord | None:
        """Claim a queued run held by ``owner``: running under a new attempt number (the one
        ``take`` already gave a run taken over), leased until ``lease_until``. None when it
        is no longer queued or another instance holds it."""
        row = (
            await self._conn.execute(
                update(t.runs)
                .where(
                    t.runs.c.id == run_id,
                    t.runs.c.user_id == ctx.user_id,
                    t.runs.c.status == RunStatus.QUEUED.value,
                    t.runs.c.owner == owner,
                )
                .values(
                    status=RunStatus.RUNNING.value,
                    attempt=t.runs.c.attempt
                    + case((t.runs.c.resume_reason == "takeover", 0), else_=1),
                    lease_expires_at=lease_until,
                )
                .returning(*t.runs.c)
            )
        ).first()
        return run_record(row) if row else None

    async def mark_started(self, ctx: UserExecutionContext, run_id: str) -> None:
        """The run's stream began: ``started_at`` is set in the transaction that stores its
        ``agent_started`` (the writer's, fenced there), so a later attempt knows from the
        row whether it must emit one."""
        await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == ctx.user_id,
                t.runs.c.started_at.is_(None),
            )
            .values(started_at=utcnow())
        )

    async def finish(
        self,
        ctx: UserExecutionContext,
        run_id: str,
        *,
        status: RunStatus,
        attempt: int,
        owner: str,
        error: RunError | None = None,
        usage: dict[str, Any] | None = None,
    ) -> bool:
        """Record a final state; refused (False) when the run is final already, or ``owner``
        no longer holds ``attempt`` of it (fencing)."""
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == ctx.user_id,
                t.runs.c.attempt == attempt,
                t.runs.c.owner == owner,
                t.runs.c.status.in_(ACTIVE),
            )
            .values(
                status=status.value,
                outcome=status.value,
                error=error.as_dict() if error else None,
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
        self,
        ctx: UserExecutionContext,
        run_id: str,
        *,
        attempt: int,
        owner: str,
        usage: dict[str, Any],
    ) -> bool:
        """A running run stops to wait for the user's approval, keeping its usage so far.
        Refused (False) when ``owner`` no longer holds ``attempt`` of it."""
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == ctx.user_id,
                t.runs.c.attempt == attempt,
                t.runs.c.owner == owner,
                t.runs.c.status == RunStatus.RUNNING.value,
            )
            .values(status=RunStatus.REQUIRES_APPROVAL.value, usage=usage, lease_expires_at=None)
        )
        return result.rowcount == 1

    async def requeue(
        self,
        ctx: UserExecutionContext,
        run_id: str,
        *,
        owner: str | None,
        lease_until: datetime | None,
    ) -> RunRecord | None:
        """A run waiting for approval goes back to the queue, held by ``owner``; None when
        it is not waiting (already requeued by a racing answer, cancelled, or never
        suspended)."""
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == ctx.user_id,
                t.runs.c.status == RunStatus.REQUIRES_APPROVAL.value,
            )
            .values(
                status=RunStatus.QUEUED.value,
                owner=owner,
                lease_expires_at=lease_until,
                resume_reason="approval",
            )
        )
        return await RunRepository(self._conn, ctx).get(run_id) if result.rowcount == 1 else None

    async def request_cancel(self, ctx: UserExecutionContext, run_id: str, why: RunError) -> bool:
        """Note a cancel for whichever instance holds the run; False when it is final."""
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == ctx.user_id,
                t.runs.c.status.in_(ACTIVE),
                t.runs.c.cancel_requested.is_(None),
            )
            .values(cancel_requested=why.as_dict())
        )
        return result.rowcount == 1

    async def adopt_unheld(
        self, ctx: UserExecutionContext, run_id: str, *, owner: str, lease_until: datetime
    ) -> RunRecord | None:
        """Hold a run nobody executes — waiting for approval, queued without a holder, or
        whose holder's lease expired — as queued by ``owner``; None when another instance
        holds it or it is final."""
        now = utcnow()
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.user_id == ctx.user_id,
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
        return await RunRepository(self._conn, ctx).get(run_id) if result.rowcount == 1 else None

    async def fence(self, ctx: UserExecutionContext, run_id: str, attempt: int) -> None:
        """Refuse (``LostClaim``) a write by an attempt that is no longer the run's, its row
        locked until the write commits, so a takeover cannot slip in between."""
        current = await self._conn.scalar(
            select(t.runs.c.attempt)
            .where(t.runs.c.id == run_id, t.runs.c.user_id == ctx.user_id)
            .with_for_update()
        )
        if current != attempt:
            raise LostClaim(f"attempt {attempt} of run {run_id} was replaced")

    # ---- the cluster's runs ----------------------------------------------------------------
    async def current_attempts(self, run_ids: Collection[str]) -> dict[str, int]:
        """The current attempt of each run, its row locked until the transaction commits,
        in id order — the order ``renew`` locks them in, so the two never deadlock (SQLite
        has one writer anyway)."""
        if not run_ids:
            return {}
        rows = await self._conn.execute(
            select(t.runs.c.id, t.runs.c.attempt)
            .where(t.runs.c.id.in_(sorted(run_ids)))
            .order_by(t.runs.c.id)
            .with_for_update()
        )
        return {row.id: row.attempt for row in rows}

    async def renew(self, owner: str, until: datetime) -> list[Lease]:
        """Extend the lease of every run ``owner`` holds (queued or running). The rows are
        locked in id order first — the order the event writer locks them in — so the two
        never deadlock."""
        held = and_(t.runs.c.owner == owner, t.runs.c.status.in_(_HELD))
        await self._conn.execute(
            select(t.runs.c.id).where(held).order_by(t.runs.c.id).with_for_update()
        )
        rows = await self._conn.execute(
            update(t.runs)
            .where(t.runs.c.owner == owner, t.runs.c.status.in_(_HELD))
            .values(lease_expires_at=until)
            .returning(*_LEASE_COLUMNS)
        )
        return [_lease(row) for row in rows]

    async def of(self, run_ids: Collection[str]) -> list[Lease]:
        """The current holder and attempt of each run."""
        if not run_ids:
            return []
        rows = await self._conn.execute(
            select(*_LEASE_COLUMNS).where(t.runs.c.id.in_(list(run_ids)))
        )
        return [_lease(row) for row in rows]

    async def orphans(self, *, limit: int, include_unheld: bool) -> list[Orphan]:
        """Runs whose holder's lease expired, oldest first; with ``include_unheld`` also
        queued runs nobody holds (left for workers, or handed back)."""
        now = utcnow()
        expired = t.runs.c.lease_expires_at < now
        rows = await self._conn.execute(
            select(t.runs.c.id, t.runs.c.user_id, t.runs.c.status, t.runs.c.parent_run_id)
            .where(
                t.runs.c.status.in_(_HELD),
                or_(expired, t.runs.c.owner.is_(None)) if include_unheld else expired,
            )
            .order_by(t.runs.c.created_at)
            .limit(limit)
        )
        return [
            Orphan(row.id, row.user_id, RunStatus(row.status), row.parent_run_id) for row in rows
        ]

    async def take(self, run_id: str, owner: str, until: datetime) -> bool:
        """Hold an orphan as queued by ``owner``. A run that was running counts one more
        recovery and will resume as a takeover. False when another instance was faster."""
        now = utcnow()
        running = t.runs.c.status == RunStatus.RUNNING.value
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.id == run_id,
                t.runs.c.status.in_(_HELD),
                or_(t.runs.c.lease_expires_at < now, t.runs.c.owner.is_(None)),
            )
            .values(
                status=RunStatus.QUEUED.value,
                owner=owner,
                lease_expires_at=until,
                # A new attempt number at once: the old executor may still be alive (paused),
                # and nothing it writes from now on may land (fencing).
                attempt=t.runs.c.attempt + case((running, 1), else_=0),
                recoveries=t.runs.c.recoveries + case((running, 1), else_=0),
                resume_reason=case((running, "takeover"), else_=t.runs.c.resume_reason),
            )
        )
        return result.rowcount == 1

    async def expire(self, owner: str | None) -> int:
        """At start: the runs an earlier process with this instance's id held (``owner``),
        or every held run (None: SQLite, where no other instance can be executing any),
        become orphans at once instead of when their lease runs out."""
        held = t.runs.c.status.in_(_HELD)
        result = await self._conn.execute(
            update(t.runs)
            .where(held if owner is None else and_(held, t.runs.c.owner == owner))
            .values(lease_expires_at=utcnow())
        )
        return result.rowcount

    async def release(self, owner: str) -> int:
        """At shutdown: hand every run ``owner`` holds back to the cluster — running top-level
        runs resume elsewhere as a hand-back, queued ones are adopted as they are."""
        running = t.runs.c.status == RunStatus.RUNNING.value
        result = await self._conn.execute(
            update(t.runs)
            .where(
                t.runs.c.owner == owner,
                t.runs.c.status.in_(_HELD),
                t.runs.c.parent_run_id.is_(None),
            )
            .values(
                status=RunStatus.QUEUED.value,
                owner=None,
                lease_expires_at=None,
                resume_reason=case((running, "handback"), else_=t.runs.c.resume_reason),
            )
        )
        return result.rowcount

    async def depth(self) -> int:
        """Runs waiting to execute (``queued``), every user's: one count over an index that
        begins with ``status``, reading the queued entries only."""
        value = await self._conn.scalar(
            select(func.count()).where(t.runs.c.status == RunStatus.QUEUED.value)
        )
        return int(value or 0)
