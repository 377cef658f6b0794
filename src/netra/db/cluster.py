"""Cluster-wide queries: run leases across instances, the depth of the queue, and the
instances themselves.

These act on every user's runs at once — they are how instances share the runs table, not
something a user does — so they take no ``UserExecutionContext``; whoever acts on a run
they return builds its user's context first.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netra.db import tables as t
from netra.db.records import RunStatus, aware, utcnow

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


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    id: str
    role: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    runs_executing: int
    sockets: int

    def public(self, *, now: datetime, lease_s: float) -> dict[str, Any]:
        alive = self.stopped_at is None and (now - self.heartbeat_at).total_seconds() < lease_s
        return {
            "id": self.id,
            "role": self.role,
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "alive": alive,
            "runs_executing": self.runs_executing,
            "sockets": self.sockets,
        }


def _lease(row: Row[Any, Any, Any, Any, Any, Any]) -> Lease:
    return Lease(
        run_id=row.id,
        user_id=row.user_id,
        owner=row.owner,
        attempt=row.attempt,
        status=RunStatus(row.status),
        cancel_requested=row.cancel_requested,
    )


class LeaseRepository:
    """Leases of runs, by instance."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

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


_LEASE_COLUMNS = (
    t.runs.c.id,
    t.runs.c.user_id,
    t.runs.c.owner,
    t.runs.c.attempt,
    t.runs.c.status,
    t.runs.c.cancel_requested,
)


class QueueRepository:
    """The runs table as the cluster's one queue of runs."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def depth(self) -> int:
        """Runs waiting to execute (``queued``), every user's: one count over an index that
        begins with ``status``, reading the queued entries only."""
        value = await self._conn.scalar(
            select(func.count()).where(t.runs.c.status == RunStatus.QUEUED.value)
        )
        return int(value or 0)


class InstanceRepository:
    """The instances table: registration, heartbeats, the cluster view."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def register(self, *, id: str, role: str, host: str, pid: int, version: str) -> None:
        now = utcnow()
        values = {
            "role": role,
            "host": host,
            "pid": pid,
            "version": version,
            "started_at": now,
            "heartbeat_at": now,
            "stopped_at": None,
            "runs_executing": 0,
            "sockets": 0,
        }
        updated = await self._conn.execute(
            update(t.instances).where(t.instances.c.id == id).values(**values)
        )
        if updated.rowcount == 0:
            await self._conn.execute(insert(t.instances).values(id=id, **values))

    async def beat(self, id: str, *, runs_executing: int, sockets: int) -> None:
        await self._conn.execute(
            update(t.instances)
            .where(t.instances.c.id == id)
            .values(heartbeat_at=utcnow(), runs_executing=runs_executing, sockets=sockets)
        )

    async def stopped(self, id: str) -> None:
        await self._conn.execute(
            update(t.instances)
            .where(t.instances.c.id == id)
            .values(stopped_at=utcnow(), runs_executing=0, sockets=0)
        )

    async def list(self, *, since: datetime) -> list[InstanceRecord]:
        """Instances that beat since ``since``, newest first."""
        rows = await self._conn.execute(
            select(t.instances)
            .where(t.instances.c.heartbeat_at >= since)
            .order_by(t.instances.c.started_at.desc())
        )
        return [
            InstanceRecord(
                id=row.id,
                role=row.role,
                host=row.host,
                pid=row.pid,
                version=row.version,
                started_at=aware(row.started_at) or utcnow(),
                heartbeat_at=aware(row.heartbeat_at) or utcnow(),
                stopped_at=aware(row.stopped_at),
                runs_executing=row.runs_executing,
                sockets=row.sockets,
            )
            for row in rows
        ]
