"""What one simple run costs the database, counted with an SQL listener on a real server:
"what is 12*7?" on the offline model (one calculator call, then the answer), one client.

The event log writer's batches (one transaction each: the runs' rows locked, the users' seq
ranges reserved, the events inserted, with the writes that belong to them) depend on timing,
so they are counted apart; everything else a run does is a fixed number of statements, bounded
here so that a change adding work to the hot path shows up.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
from sqlalchemy import event

from tests.conftest import ServerFactory
from tests.support import assert_run_grammar, make_user, open_socket

WRITER = ("INSERT INTO EVENTS", "UPDATE USERS SET EVENT_SEQ", "SELECT RUNS.ID, RUNS.ATTEMPT")
"""The writer's own statements per batch: lock the runs' rows (when the batch holds run
events), reserve the users' seqs, insert the events."""
OTHERS = 18
"""Everything else one calculator run does, once each: admission (the retried-message check,
the thread, four quota and load reads, the run and the message), the claim, ``started_at``
(with ``agent_started``), the conversation read, the call's two ledger writes (with its two
events: fenced there), the turn and its fence, then the final state, the answer and the
thread's touch (with ``agent_completed``)."""
FIXED_TRANSACTIONS = 3
"""Write transactions besides the writer's batches: admission, the claim, the turn."""


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

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        with lock:
            statements.append(" ".join(statement.split()))

    async with httpx.AsyncClient(base_url=server.url) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        await server.netra.bridge.drain()
        engine = server.netra.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            ack = await socket.send_message("what is 12*7?")
            events = await socket.run_to_end(ack["run_id"])
            await server.netra.bridge.drain()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        await socket.close()
    assert_run_grammar(events)
    assert [e["data"]["tool"] for e in events if e["type"] == "tool_completed"] == ["calculator"]
    with lock:
        seen = [s.upper() for s in statements]
    listing = "\n".join(seen)
    begins = [s for s in seen if s.startswith("BEGIN")]
    batches = sum(1 for s in seen if s.startswith(WRITER[0]))
    others = [s for s in seen if not s.startswith(("BEGIN", *WRITER))]
    assert 1 <= batches <= len(events) + 1, listing  # message_created rides too
    assert len(others) <= OTHERS, f"{len(others)} statements besides the writer's:\n{listing}"
    if begins:  # SQLite says BEGIN through the cursor; PostgreSQL's driver does not
        writes = [s for s in begins if s != "BEGIN"]
        assert len(writes) <= batches + FIXED_TRANSACTIONS, listing
