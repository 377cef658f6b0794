"""The instances of the cluster: registration, heartbeats, the cluster view
(``GET /admin/instances``). How they share the runs table is ``netra.db.queue``. Methods
are transaction functions (``netra.db.sql``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from netra.db.records import utcnow
from netra.db.sql import Statement, Tx, execute, rows

INSTANCE_REGISTER = Statement(
    "register: an instance starts (again, with a fixed id)",
    "INSERT INTO instances (id, role, host, pid, version, started_at, heartbeat_at,"
    " stopped_at, runs_executing, sockets) VALUES (:id, :role, :host, :pid, :version,"
    " :started_at, :started_at, NULL, 0, 0) ON CONFLICT (id) DO UPDATE SET"
    " role = excluded.role, host = excluded.host, pid = excluded.pid,"
    " version = excluded.version, started_at = excluded.started_at,"
    " heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, runs_executing = 0,"
    " sockets = 0",
)
INSTANCE_BEAT = Statement(
    "beat: an instance's heartbeat, with what it holds",
    "UPDATE instances SET heartbeat_at = :heartbeat_at, runs_executing = :runs_executing,"
    " sockets = :sockets WHERE id = :id",
)
INSTANCE_STOPPED = Statement(
    "stopped: an instance signs off",
    "UPDATE instances SET stopped_at = :stopped_at, runs_executing = 0, sockets = 0 WHERE id = :id",
)
INSTANCES_SINCE = Statement(
    "list: instances that beat since a time, newest first",
    "SELECT * FROM instances WHERE heartbeat_at >= :since ORDER BY started_at DESC",
)


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

    @staticmethod
    def register(*, id: str, role: str, host: str, pid: int, version: str) -> Tx[None]:
        yield from execute(
            INSTANCE_REGISTER(
                id=id, role=role, host=host, pid=pid, version=version, started_at=utcnow()
            )
        )

    @staticmethod
    def beat(id: str, *, runs_executing: int, sockets: int) -> Tx[None]:
        yield from execute(
            INSTANCE_BEAT(
                id=id, heartbeat_at=utcnow(), runs_executing=runs_executing, sockets=sockets
            )
        )

    @staticmethod
    def stopped(id: str) -> Tx[None]:
        yield from execute(INSTANCE_STOPPED(id=id, stopped_at=utcnow()))

    @staticmethod
    def list(*, since: datetime) -> Tx[list[InstanceRecord]]:
        """Instances that beat since ``since``, newest first."""
        found = yield from rows(INSTANCES_SINCE(since=since))
        return [
            InstanceRecord(
                id=row["id"],
                role=row["role"],
                host=row["host"],
                pid=row["pid"],
                version=row["version"],
                started_at=row["started_at"],
                heartbeat_at=row["heartbeat_at"],
                stopped_at=row["stopped_at"],
                runs_executing=row["runs_executing"],
                sockets=row["sockets"],
            )
            for row in found
        ]
