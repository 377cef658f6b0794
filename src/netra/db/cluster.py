"""The instances of the cluster: registration, heartbeats, the cluster view
(``GET /admin/instances``). How they share the runs table is ``netra.db.queue``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netra.db import tables as t
from netra.db.records import aware, utcnow


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
