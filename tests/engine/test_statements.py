"""What one simple run costs the database, counted with the executors' statement listener on
a real server: "what is 12*7?" on the offline model (one calculator call, then the answer),
one client.

On SQLite every transaction function of the hot path runs on the database's thread, grouped
into as few transactions as timing allows; on PostgreSQL each is a transaction of its own.
The event log writer's batches depend on timing too, so they are counted apart; everything
else a run does is a fixed number of statements, bounded here so that a change adding work
to the hot path shows up.
"""

from __future__ import annotations

import threading
from collections import Counter

import httpx

from netra.runs.service import ADMISSION_TURNS
from tests.conftest import ServerFactory
from tests.support import assert_run_grammar, make_user, open_socket

BATCH = "append: one event of the log"
"""Once per batch of the event log writer, and once in the admission (its events)."""
WRITER = (
    BATCH,
    "reserve: add each user's count of new events to its counter, returning the last seq",
    "current_attempts: each run's attempt, rows locked in id order until commit",
)
"""The writer's own statements per batch: lock the runs' rows, reserve the users' seqs,
insert the events."""
CONTROL = ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")
OTHERS = {
    # admission, one transaction (the message starts a thread; the run, created claimed,
    # executes at once; its events are stored with it; its conversation is the message)
    "message: the user's with this client_msg_id (a retried send)": 1,
    "thread: a new one": 1,
    "usage: the user's model calls' tokens and spend today and this month, runs in the last"
    " minute, runs not yet final": 1,
    "depth: runs waiting to execute, every user's": 1,
    "create: a queued run, or one running already (its first attempt, its stream begun)": 1,
    "message: a new one, in the turn after its parent's (a question) or in it (an answer)": 2,
    # with the events: the two model calls' usage, the tool call's two ledger entries, the
    # turn, the final state
    "model call: its usage and price, as it was made": 2,
    "model call: added to its user's day": 2,
    "begin: a call entered before it runs (or while it waits for approval)": 1,
    "end: a call's outcome": 1,
    "record: a turn of the run's checkpoint": 1,
    "finish: the final state, by the attempt that holds the run": 1,
    "thread: an answer came; its branch ends there if it ended at the question": 1,
}
"""Everything else one calculator run does, and how often: admission (the retried-message
check, the new thread, one read of the quotas, the queue's depth, the run created claimed and
the message, with their events and ``agent_started``; a thread's first message is the run's
whole conversation, not read);
then, each carried by its event: the two model calls (each added to the user's day), the tool
call's two ledger writes, the turn, and the final state with the answer and the thread's
touch. No claim and no read of
its own: a run whose slots are free when it is admitted is stored running, and given what
its admission read."""
TRANSACTIONS = 0
"""Transactions besides those that store events (the admission, the writer's batches)."""


async def test_a_simple_run_takes_a_bounded_number_of_statements(
    server_factory: ServerFactory, backend: str | None
) -> None:
    server = server_factory(
        # Quiet background: no heartbeat or position check inside the counted window.
        cluster={"lease_s": 600.0, "heartbeat_s": 300.0},
        websocket={"position_check_s": 300.0},
    )
    statements: list[str] = []
    lock = threading.Lock()

    def count(name: str) -> None:
        with lock:
            statements.append(name)

    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        await server.call(server.netra.bridge.drain)
        stop = server.netra.db.listen(count)
        try:
            ack = await socket.send_message("what is 12*7?")
            events = await socket.run_to_end(ack["run_id"])
            await server.call(server.netra.bridge.drain)
        finally:
            stop()
        await socket.close()
    assert_run_grammar(events)
    assert [e["data"]["tool"] for e in events if e["type"] == "tool_completed"] == ["calculator"]
    with lock:
        seen = list(statements)
    listing = "\n".join(seen)
    batches = seen.count(BATCH)
    others = Counter(s for s in seen if s not in WRITER and not s.startswith(CONTROL))
    # the admission's (thread_updated, message_created, agent_started), the writer's (the
    # drain's barrier stores nothing)
    assert 2 <= batches <= len(events) + 1, listing
    assert others == Counter(OTHERS), listing
    transactions = sum(1 for s in seen if s.startswith("BEGIN"))
    assert transactions <= batches + TRANSACTIONS, listing


CONVERSATION = "messages: a run's conversation, the branch ending at its question, back to a bound"


async def test_a_long_conversation_is_read_once_and_beside_the_writer(
    server_factory: ServerFactory, backend: str | None
) -> None:
    """A run reads its conversation once: in its admission, on the writer, while the thread
    is short; by its attempt once it is longer than ``ADMISSION_TURNS``, which on SQLite
    means on the reader's connection, so a long thread holds up nobody's writes. The first
    run of a thread reads nothing: its question is its whole conversation."""
    server = server_factory(
        tiers={"free": {"runs_per_minute": 0, "tokens_per_day": 0}},  # 33 runs in a row
        websocket={"frames_per_s": 10_000},
    )
    reads: list[str] = []

    def count(name: str) -> None:
        if name == CONVERSATION:  # called on the thread that runs the statement
            reads.append(threading.current_thread().name)

    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        thread: dict[str, str] = {}
        by_turn: dict[int, list[str]] = {}
        for turn in range(1, ADMISSION_TURNS + 2):
            stop = server.netra.db.listen(count)
            try:
                ack = await socket.send_message(f"hello, turn {turn}", **thread)
                events = await socket.run_to_end(ack["run_id"])
            finally:
                stop()
            assert events[-1]["data"]["outcome"] == "completed", events[-1]
            thread = {"thread_id": ack["thread_id"]}
            by_turn[turn], reads[:] = list(reads), []
            socket.frames.clear()
        await socket.close()
    assert by_turn[1] == [], by_turn
    assert all(len(names) == 1 for turn, names in by_turn.items() if turn > 1), by_turn
    if backend is None:  # SQLite: the writer's thread, then the reader's
        assert by_turn[ADMISSION_TURNS] == ["sqlite"]
        assert by_turn[ADMISSION_TURNS + 1] == ["sqlite-reader"]
