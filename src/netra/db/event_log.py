"""The event log's writes: one transaction function stores a whole batch of the event log
writer (``netra.events.writer``) — the events of many users and runs, the writes that belong
with them, their per-user seqs.

A batch is a list of ``Entry``: an event (or none: a write, or a *barrier* a caller waits on),
the attempt of the run that made it (fencing), and the write that must commit with it
(``write``: a run's final state with its ``agent_completed``, a tool call's ledger entries
with its events, a turn of the checkpoint). In order, each entry

1. is refused when its attempt is no longer the run's (the runs' rows are locked first, in
   id order, so a takeover waits for the batch or the batch sees the takeover);
2. makes its write: refused when the write says so (``False``, having written nothing);
   when it raises (a bug, or ``LostClaim``) the transaction raises ``EntryFailed`` and the
   writer stores the batch again with that entry failed alone — no savepoint per write, so
   the common case costs nothing for the rare one;
3. gets the next seq of its user.

Seqs are reserved with one statement for all the batch's users (``users.event_seq``, whose
row locks, held until commit, keep each user's seqs gapless and ordered across instances;
the statement locks the rows in id order before it updates them), and the events are
inserted with one more. These are the only writes of the ``events`` table
and of the ``users.event_seq`` counter; one user's reads of the log are
``netra.db.repositories.EventRepository``.

An event's envelope is encoded once, before it reaches the batch, in two parts around its seq
(``head`` + seq + ``tail``): the log stores, and every socket receives, the same bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from netra.db.queue import RunQueue
from netra.db.sql import Many, Statement, Tx, TxFactory, execute, rows

SEQ_RESERVE = Statement(
    "reserve: add each user's count of new events to its counter, returning the last seq",
    postgres="WITH locked AS MATERIALIZED (SELECT id FROM users"
    " WHERE id IN (SELECT key FROM json_each_text(:counts::json)) ORDER BY id"
    " FOR NO KEY UPDATE)"
    " UPDATE users SET event_seq = users.event_seq + c.n::bigint"
    " FROM locked JOIN json_each_text(:counts::json) AS c(id, n) ON c.id = locked.id"
    " WHERE users.id = locked.id RETURNING users.id AS id, users.event_seq AS event_seq",
    sqlite="UPDATE users SET event_seq = users.event_seq + c.n"
    " FROM (SELECT key AS id, value AS n FROM json_each(:counts)) AS c"
    " WHERE users.id = c.id RETURNING users.id AS id, users.event_seq AS event_seq",
)
"""One statement on both backends. On PostgreSQL the counters' rows are locked in id order
first (``locked``), so two batches of the same users, on any instances, never wait for each
other crosswise. The order holds whatever plan joins ``locked`` to the update: its rows are
locked as they are produced, in id order (the lock is taken above the sort), and the update
reaches a row only through its row of ``locked`` — by then every smaller id of the batch is
locked. ``MATERIALIZED`` keeps the locking query a plan node of its own, never folded into
the update's join. ``NO KEY UPDATE``, the lock the update takes anyway: a transaction that
stored a row referring to the user (a run, a message) holds ``KEY SHARE`` on it, which
``FOR UPDATE`` would wait for — two admissions of one user, each holding that and wanting
this, would deadlock. (SQLite has one writer: nothing to order.)"""
EVENT_INSERT = Statement(
    "append: one event of the log",
    postgres="INSERT INTO events (user_id, seq, event_id, type, thread_id, run_id, body,"
    " created_at) VALUES (:user_id, :seq, :event_id, :type, :thread_id, :run_id, :body, now())",
    sqlite="INSERT INTO events (user_id, seq, event_id, type, thread_id, run_id, body,"
    " created_at) VALUES (:user_id, :seq, :event_id, :type, :thread_id, :run_id, :body,"
    " strftime('%Y-%m-%d %H:%M:%f000', 'now'))",
)
"""A row's ``created_at`` is when its batch was stored, taken by the database: no timestamp
is formatted in Python for each event (the envelope's ``ts`` says when it was emitted).
SQLite's clock has milliseconds, written as the microseconds of the column's format."""


class NewEvent(NamedTuple):
    """An event waiting for its seq; its envelope is ``head`` + seq + ``tail``. (This and
    ``Entry`` are tuples, not frozen dataclasses: one of each is made for every event, and a
    tuple is built in half the time.)"""

    event_id: str
    type: str
    thread_id: str | None
    head: str
    tail: str

    def body(self, seq: int) -> str:
        return f"{self.head}{seq}{self.tail}"


class Entry(NamedTuple):
    """One item of a batch: an event, a write, or both; or a barrier (neither)."""

    user_id: str
    event: NewEvent | None = None
    run_id: str | None = None
    attempt: int | None = None
    """The attempt of ``run_id`` that made the entry: stored only while it is the run's
    current one (fencing). None: not fenced."""
    write: TxFactory[bool] | None = None
    """Commits with the entry; False refuses it (and the event with it), and must then have
    written nothing."""


class EntryFailed(Exception):
    """The write of entry ``index`` raised ``error``: the batch's transaction is rolled back,
    to be stored again with that entry failed."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(f"entry {index}: {error!r}")
        self.index = index
        self.error = error


Outcome = int | None | Exception
"""For each entry: its event's seq (0 for an entry without an event), None when it was
refused (fenced, or its write said no), or what its write raised."""


def store(
    entries: Sequence[Entry],
    *,
    failed: Mapping[int, Exception] | None = None,
    before_commit: Callable[[list[Entry]], None] | None = None,
) -> Tx[list[Outcome]]:
    """Store a batch (see the module's docstring), the entries of ``failed`` (by index) left
    out as failed; ``before_commit`` sees the entries stored, inside the transaction (the
    crash points)."""
    failed = failed or {}
    fenced = {e.run_id for e in entries if e.attempt is not None and e.run_id is not None}
    current = yield from RunQueue.current_attempts(fenced)
    outcomes: list[Outcome] = []
    for index, entry in enumerate(entries):
        if index in failed:
            outcomes.append(failed[index])
            continue
        if entry.attempt is not None and current.get(entry.run_id or "") != entry.attempt:
            outcomes.append(None)
            continue
        if entry.write is not None:
            try:
                made = yield from entry.write()
            except Exception as exc:
                raise EntryFailed(index, exc) from exc
            if not made:
                outcomes.append(None)
                continue
        outcomes.append(0)
    counts = Counter(
        e.user_id for e, o in zip(entries, outcomes, strict=True) if o == 0 and e.event
    )
    last = yield from _reserve(counts)
    next_seq = {user_id: last[user_id] - counts[user_id] + 1 for user_id in last}
    inserts = []
    for index, entry in enumerate(entries):
        event = entry.event
        if event is None or outcomes[index] != 0:
            continue
        seq = next_seq.get(entry.user_id)
        if seq is None:  # the user is gone (deleted meanwhile): nobody to tell
            outcomes[index] = None
            continue
        next_seq[entry.user_id] = seq + 1
        outcomes[index] = seq
        inserts.append(
            {
                "user_id": entry.user_id,
                "seq": seq,
                "event_id": event.event_id,
                "type": event.type,
                "thread_id": event.thread_id,
                "run_id": entry.run_id,
                "body": event.body(seq),
            }
        )
    if inserts:
        yield from execute(Many(EVENT_INSERT, inserts))
    if before_commit is not None:
        before_commit([e for e, o in zip(entries, outcomes, strict=True) if isinstance(o, int)])
    return outcomes


def _reserve(counts: Counter[str]) -> Tx[dict[str, int]]:
    """The last of each user's new seqs."""
    if not counts:
        return {}
    found = yield from rows(SEQ_RESERVE(counts=dict(counts)))
    return {row["id"]: int(row["event_seq"]) for row in found}
