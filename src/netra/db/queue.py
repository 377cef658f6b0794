"""RunQueue: the runs table as the cluster's one queue of runs — every change of a run's
status, holder (``owner``), lease or attempt number is a method here, and so is the fence
that keeps the writes of a replaced attempt out. Reads of a user's runs are
``netra.db.runs.RunRepository``.

Transitions (status → next status: method, and who calls it):

=====================================  ==============  =========================================
queued (new)                           ``create``      RunService.submit; SubAgents (then starts)
running (new), its stream begun        ``create``      RunService.submit, when the run can
                                       (``started``)   execute at once (its ``agent_started``
                                                       stored in the same transaction)
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

Every method is a transaction function (``netra.db.sql``), its statements named below: run
one with ``DatabaseManager.transact``, or inside a bigger transaction with ``yield from``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from netra.context import UserExecutionContext
from netra.db.records import RunRecord, RunStatus, utcnow
from netra.db.runs import run_record
from netra.db.sql import Row, Statement, Tx, execute, first, rowcount, rows, scalar
from netra.errors import LostClaim, RunError
from netra.ids import new_id

HELD = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
"""Statuses a holder keeps a lease on (the statements spell them out, for the planner)."""

RUN_INSERT = Statement(
    "create: a queued run, or one running already (its first attempt, its stream begun)",
    "INSERT INTO runs (id, user_id, thread_id, parent_run_id, agent, model, status, attempt,"
    " message_id, created_at, started_at, owner, lease_expires_at, question_id, seq_floor)"
    " VALUES (:id, :user_id, :thread_id, :parent_run_id, :agent, :model, :status, :attempt,"
    " :message_id, :created_at, :started_at, :owner, :lease_expires_at, :question_id,"
    " (SELECT event_seq FROM users WHERE id = CAST(:user_id AS VARCHAR)))",
)
RUN_START = Statement(
    "start: the holder claims its queued run, under a new attempt number",
    "UPDATE runs SET status = 'running', lease_expires_at = :lease_expires_at,"
    " attempt = attempt + CASE WHEN resume_reason = 'takeover' THEN 0 ELSE 1 END"
    " WHERE id = :id AND user_id = :user_id AND status = 'queued' AND owner = :owner"
    " RETURNING *",
)
RUN_MARK_STARTED = Statement(
    "mark_started: the run's stream began",
    "UPDATE runs SET started_at = :started_at"
    " WHERE id = :id AND user_id = :user_id AND started_at IS NULL",
)
RUN_FINISH = Statement(
    "finish: the final state, by the attempt that holds the run",
    "UPDATE runs SET status = :status, outcome = :status, error = :error, usage = :usage,"
    " input_tokens = :input_tokens, output_tokens = :output_tokens, cost_usd = :cost_usd,"
    " finished_at = :finished_at, lease_expires_at = NULL"
    " WHERE id = :id AND user_id = :user_id AND attempt = :attempt AND owner = :owner"
    " AND status IN ('queued', 'running', 'requires_approval')",
)
RUN_SUSPEND = Statement(
    "suspend: a running run waits for its user's approval",
    "UPDATE runs SET status = 'requires_approval', usage = :usage, lease_expires_at = NULL"
    " WHERE id = :id AND user_id = :user_id AND attempt = :attempt AND owner = :owner"
    " AND status = 'running'",
)
RUN_REQUEUE = Statement(
    "requeue: a run that waited for approval goes back to the queue",
    "UPDATE runs SET status = 'queued', owner = :owner, lease_expires_at = :lease_expires_at,"
    " resume_reason = 'approval'"
    " WHERE id = :id AND user_id = :user_id AND status = 'requires_approval' RETURNING *",
)
RUN_REQUEST_CANCEL = Statement(
    "request_cancel: a cancel noted for whichever instance holds the run",
    "UPDATE runs SET cancel_requested = :cancel_requested"
    " WHERE id = :id AND user_id = :user_id"
    " AND status IN ('queued', 'running', 'requires_approval')"
    " AND cancel_requested IS NULL",
)
RUN_ADOPT_UNHELD = Statement(
    "adopt_unheld: a run nobody executes is held here, queued",
    "UPDATE runs SET status = 'queued', owner = :owner, lease_expires_at = :lease_expires_at,"
    " attempt = attempt + CASE WHEN status = 'running' THEN 1 ELSE 0 END"
    " WHERE id = :id AND user_id = :user_id AND (status = 'requires_approval'"
    " OR (status IN ('queued', 'running') AND (owner IS NULL OR lease_expires_at < :now)))"
    " RETURNING *",
)
RUN_FENCE = Statement(
    "fence: the run's current attempt, its row locked until commit",
    "SELECT attempt FROM runs WHERE id = :id AND user_id = :user_id FOR UPDATE",
)
RUN_CURRENT_ATTEMPTS = Statement(
    "current_attempts: each run's attempt, rows locked in id order until commit",
    "SELECT id, attempt FROM runs WHERE id = ANY(:ids) ORDER BY id FOR UPDATE",
)
RUN_DUE = Statement(
    "renew: the holder's runs whose leases end first, before a time, locked in id order",
    "SELECT id FROM runs WHERE id IN (SELECT id FROM runs WHERE owner = :owner"
    " AND status IN ('queued', 'running') AND lease_expires_at < :due"
    " ORDER BY lease_expires_at LIMIT :limit) ORDER BY id FOR UPDATE",
)
RUN_RENEW = Statement(
    "renew: extend these leases, of runs the holder still keeps",
    "UPDATE runs SET lease_expires_at = :lease_expires_at"
    " WHERE id = ANY(:ids) AND owner = :owner AND status IN ('queued', 'running')",
)
RUN_HELD = Statement(
    "held: the holder's runs, queued or running",
    "SELECT id, user_id, owner, attempt, status, cancel_requested FROM runs"
    " WHERE owner = :owner AND status IN ('queued', 'running')",
)
RUN_LEASES = Statement(
    "of: the holder and attempt of each run",
    "SELECT id, user_id, owner, attempt, status, cancel_requested FROM runs WHERE id = ANY(:ids)",
)
RUN_ORPHANS = Statement(
    "orphans: runs whose holder's lease expired, or that nobody holds, oldest first",
    "SELECT id, user_id, status, parent_run_id FROM runs WHERE status IN ('queued', 'running')"
    " AND (lease_expires_at < :now OR owner IS NULL) ORDER BY created_at LIMIT :limit",
)
RUN_EXPIRED = Statement(
    "orphans: runs whose holder's lease expired, oldest first",
    "SELECT id, user_id, status, parent_run_id FROM runs WHERE status IN ('queued', 'running')"
    " AND lease_expires_at < :now ORDER BY created_at LIMIT :limit",
)
RUN_TAKE = Statement(
    "take: an orphan held here, queued; a running one resumes as a takeover",
    "UPDATE runs SET status = 'queued', owner = :owner, lease_expires_at = :lease_expires_at,"
    " attempt = attempt + CASE WHEN status = 'running' THEN 1 ELSE 0 END,"
    " recoveries = recoveries + CASE WHEN status = 'running' THEN 1 ELSE 0 END,"
    " resume_reason = CASE WHEN status = 'running' THEN 'takeover' ELSE resume_reason END"
    " WHERE id = :id AND status IN ('queued', 'running')"
    " AND (lease_expires_at < :now OR owner IS NULL)",
)
RUN_EXPIRE_ALL = Statement(
    "expire: every held run's lease ends now",
    "UPDATE runs SET lease_expires_at = :now WHERE status IN ('queued', 'running')",
)
RUN_EXPIRE_OWNED = Statement(
    "expire: the leases of the runs one holder keeps end now",
    "UPDATE runs SET lease_expires_at = :now"
    " WHERE status IN ('queued', 'running') AND owner = :owner",
)
RUN_RELEASE = Statement(
    "release: every top-level run the holder keeps goes back to the cluster, unheld",
    "UPDATE runs SET status = 'queued', owner = NULL, lease_expires_at = NULL,"
    " resume_reason = CASE WHEN status = 'running' THEN 'handback' ELSE resume_reason END"
    " WHERE owner = :owner AND status IN ('queued', 'running') AND parent_run_id IS NULL",
)
RUN_DEPTH = Statement(
    "depth: runs waiting to execute, every user's",
    "SELECT count(*) AS queued FROM runs WHERE status = 'queued'",
)


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


def _lease(row: Row) -> Lease:
    return Lease(
        run_id=row["id"],
        user_id=row["user_id"],
        owner=row["owner"],
        attempt=row["attempt"],
        status=RunStatus(row["status"]),
        cancel_requested=row["cancel_requested"],
    )


class RunQueue:
    """Every transition of the runs table, as transaction functions."""

    # ---- one user's run --------------------------------------------------------------------
    @staticmethod
    def create(
        ctx: UserExecutionContext,
        *,
        thread_id: str,
        agent: str,
        model: str,
        question_id: str | None = None,
        parent_run_id: str | None = None,
        owner: str | None = None,
        lease_until: datetime | None = None,
        at: datetime | None = None,
        started: bool = False,
    ) -> Tx[RunRecord]:
        """A queued run answering ``question_id`` (none: a child run, given its task);
        ``owner`` is the instance that will execute it (none: the first executing instance
        that adopts it). ``started``: created running instead, as its first attempt, held by
        ``owner`` — claimed and begun at once, its ``agent_started`` stored by the caller in
        the same transaction (``started_at`` is set, like ``mark_started``)."""
        now = at or utcnow()
        if started and (owner is None or lease_until is None):
            raise ValueError("a run created running needs its holder and lease")
        record = RunRecord(
            id=new_id("run"),
            user_id=ctx.user_id,
            thread_id=thread_id,
            parent_run_id=parent_run_id,
            agent=agent,
            model=model,
            status=RunStatus.RUNNING if started else RunStatus.QUEUED,
            outcome=None,
            error=None,
            usage=None,
            attempt=1 if started else 0,
            message_id=new_id("msg"),
            created_at=now,
            started_at=now if started else None,
            finished_at=None,
            owner=owner,
            question_id=question_id,
        )
        yield from execute(
            RUN_INSERT(
                id=record.id,
                user_id=record.user_id,
                thread_id=thread_id,
                parent_run_id=parent_run_id,
                agent=agent,
                model=model,
                status=record.status.value,
                attempt=record.attempt,
                message_id=record.message_id,
                created_at=now,
                started_at=record.started_at,
                owner=owner,
                lease_expires_at=lease_until,
                question_id=question_id,
            )
        )
        return record

    @staticmethod
    def start(
        ctx: UserExecutionContext, run_id: str, *, owner: str, lease_until: datetime
    ) -> Tx[RunRecord | None]:
        """Claim a queued run held by ``owner``: running under a new attempt number (the one
        ``take`` already gave a run taken over), leased until ``lease_until``. None when it
        is no longer queued or another instance holds it."""
        row = yield from first(
            RUN_START(id=run_id, user_id=ctx.user_id, owner=owner, lease_expires_at=lease_until)
        )
        return run_record(row) if row else None

    @staticmethod
    def mark_started(ctx: UserExecutionContext, run_id: str) -> Tx[None]:
        """The run's stream began: ``started_at`` is set in the transaction that stores its
        ``agent_started`` (the writer's, fenced there), so a later attempt knows from the
        row whether it must emit one."""
        yield from execute(RUN_MARK_STARTED(id=run_id, user_id=ctx.user_id, started_at=utcnow()))

    @staticmethod
    def finish(
        ctx: UserExecutionContext,
        run_id: str,
        *,
        status: RunStatus,
        attempt: int,
        owner: str,
        error: RunError | None = None,
        usage: dict[str, Any] | None = None,
    ) -> Tx[bool]:
        """Record a final state; refused (False) when the run is final already, or ``owner``
        no longer holds ``attempt`` of it (fencing)."""
        spent = usage or {}
        changed = yield from rowcount(
            RUN_FINISH(
                id=run_id,
                user_id=ctx.user_id,
                attempt=attempt,
                owner=owner,
                status=status.value,
                error=error.as_dict() if error else None,
                usage=usage,
                input_tokens=int(spent.get("input_tokens", 0)),
                output_tokens=int(spent.get("output_tokens", 0)),
                cost_usd=float(spent.get("cost_usd", 0.0)),
                finished_at=utcnow(),
            )
        )
        return changed == 1

    @staticmethod
    def suspend(
        ctx: UserExecutionContext,
        run_id: str,
        *,
        attempt: int,
        owner: str,
        usage: dict[str, Any],
    ) -> Tx[bool]:
        """A running run stops to wait for the user's approval, keeping its usage so far.
        Refused (False) when ``owner`` no longer holds ``attempt`` of it."""
        changed = yield from rowcount(
            RUN_SUSPEND(id=run_id, user_id=ctx.user_id, attempt=attempt, owner=owner, usage=usage)
        )
        return changed == 1

    @staticmethod
    def requeue(
        ctx: UserExecutionContext,
        run_id: str,
        *,
        owner: str | None,
        lease_until: datetime | None,
    ) -> Tx[RunRecord | None]:
        """A run waiting for approval goes back to the queue, held by ``owner``; None when
        it is not waiting (already requeued by a racing answer, cancelled, or never
        suspended)."""
        row = yield from first(
            RUN_REQUEUE(id=run_id, user_id=ctx.user_id, owner=owner, lease_expires_at=lease_until)
        )
        return run_record(row) if row else None

    @staticmethod
    def request_cancel(ctx: UserExecutionContext, run_id: str, why: RunError) -> Tx[bool]:
        """Note a cancel for whichever instance holds the run; False when it is final."""
        changed = yield from rowcount(
            RUN_REQUEST_CANCEL(id=run_id, user_id=ctx.user_id, cancel_requested=why.as_dict())
        )
        return changed == 1

    @staticmethod
    def adopt_unheld(
        ctx: UserExecutionContext, run_id: str, *, owner: str, lease_until: datetime
    ) -> Tx[RunRecord | None]:
        """Hold a run nobody executes — waiting for approval, queued without a holder, or
        whose holder's lease expired — as queued by ``owner``; None when another instance
        holds it or it is final. A run that was running gets a new attempt number, which
        fences out an executor that may still be alive past its lease."""
        row = yield from first(
            RUN_ADOPT_UNHELD(
                id=run_id,
                user_id=ctx.user_id,
                owner=owner,
                lease_expires_at=lease_until,
                now=utcnow(),
            )
        )
        return run_record(row) if row else None

    @staticmethod
    def fence(ctx: UserExecutionContext, run_id: str, attempt: int) -> Tx[None]:
        """Refuse (``LostClaim``) a write by an attempt that is no longer the run's, its row
        locked until the write commits, so a takeover cannot slip in between."""
        current = yield from scalar(RUN_FENCE(id=run_id, user_id=ctx.user_id))
        if current != attempt:
            raise LostClaim(f"attempt {attempt} of run {run_id} was replaced")

    # ---- the cluster's runs ----------------------------------------------------------------
    @staticmethod
    def current_attempts(run_ids: Collection[str]) -> Tx[dict[str, int]]:
        """The current attempt of each run, its row locked until the transaction commits,
        in id order — the order ``renew`` locks them in, so the two never deadlock (SQLite
        has one writer anyway)."""
        if not run_ids:
            return {}
        found = yield from rows(RUN_CURRENT_ATTEMPTS(ids=sorted(run_ids)))
        return {row["id"]: row["attempt"] for row in found}

    @staticmethod
    def renew(owner: str, until: datetime, *, due: datetime, limit: int) -> Tx[int]:
        """Extend to ``until`` the leases that end before ``due`` of runs ``owner`` holds
        (queued or running): at most ``limit`` of them, those that end first; how many.
        The rows are locked in id order first — the order the event writer locks them
        in — so the two never deadlock."""
        found = yield from rows(RUN_DUE(owner=owner, due=due, limit=limit))
        if not found:
            return 0
        ids = [row["id"] for row in found]
        return (yield from rowcount(RUN_RENEW(ids=ids, owner=owner, lease_expires_at=until)))

    @staticmethod
    def held(owner: str) -> Tx[list[Lease]]:
        """The runs ``owner`` holds, queued or running."""
        found = yield from rows(RUN_HELD(owner=owner))
        return [_lease(row) for row in found]

    @staticmethod
    def of(run_ids: Collection[str]) -> Tx[list[Lease]]:
        """The current holder and attempt of each run."""
        if not run_ids:
            return []
        found = yield from rows(RUN_LEASES(ids=list(run_ids)))
        return [_lease(row) for row in found]

    @staticmethod
    def orphans(*, limit: int, include_unheld: bool) -> Tx[list[Orphan]]:
        """Runs whose holder's lease expired, oldest first; with ``include_unheld`` also
        queued runs nobody holds (left for workers, or handed back)."""
        statement = RUN_ORPHANS if include_unheld else RUN_EXPIRED
        found = yield from rows(statement(now=utcnow(), limit=limit))
        return [
            Orphan(row["id"], row["user_id"], RunStatus(row["status"]), row["parent_run_id"])
            for row in found
        ]

    @staticmethod
    def take(run_id: str, owner: str, until: datetime) -> Tx[bool]:
        """Hold an orphan as queued by ``owner``. A run that was running counts one more
        recovery and will resume as a takeover, under a new attempt number at once: the old
        executor may still be alive (paused), and nothing it writes from now on may land
        (fencing). False when another instance was faster."""
        changed = yield from rowcount(
            RUN_TAKE(id=run_id, owner=owner, lease_expires_at=until, now=utcnow())
        )
        return changed == 1

    @staticmethod
    def expire(owner: str | None) -> Tx[int]:
        """At start: the runs an earlier process with this instance's id held (``owner``),
        or every held run (None: SQLite, where no other instance can be executing any),
        become orphans at once instead of when their lease runs out."""
        if owner is None:
            step = RUN_EXPIRE_ALL(now=utcnow())
        else:
            step = RUN_EXPIRE_OWNED(now=utcnow(), owner=owner)
        return (yield from rowcount(step))

    @staticmethod
    def release(owner: str) -> Tx[int]:
        """At shutdown: hand every run ``owner`` holds back to the cluster — running top-level
        runs resume elsewhere as a hand-back, queued ones are adopted as they are."""
        return (yield from rowcount(RUN_RELEASE(owner=owner)))

    @staticmethod
    def depth() -> Tx[int]:
        """Runs waiting to execute (``queued``), every user's: one count over an index that
        begins with ``status``, reading the queued entries only."""
        value = yield from scalar(RUN_DEPTH())
        return int(value or 0)
