"""Durable runs with real OS processes (tests/cluster.py) on PostgreSQL and Redis: a run
outlives the instance executing it — killed (SIGKILL), frozen past its lease (SIGSTOP) or
stopped gracefully (SIGTERM) — and is finished by another instance in the same event stream:
one ``agent_started``, one ``agent_completed``, tool calls paired, the user's seq gapless, the
answer stored once, and the unsafe ``record`` tool never executed twice. A cancel reaches the
run wherever it executes; ``netra worker`` executes runs that the servers only queue.

Leases are short (1 s, heartbeats every 0.2 s) so that takeovers are quick. Times are
printed (``pytest -s``) and never asserted on.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.cluster import (
    RECORD_TOOL,
    Cluster,
    RecordScript,
    Rotation,
    expected_answer,
    metric,
    record_request,
)
from tests.follower import Follower, assert_same_stream, resumptions, visible_answer
from tests.support import (
    assert_run_grammar,
    assistant_messages,
    eventually,
    make_user,
    submit_run,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
FAST_LEASES = {"lease_s": 1.0, "heartbeat_s": 0.2}
KILL_CYCLES = 20
SEED_VARIABLE = "NETRA_TEST_DURABILITY_SEED"
"""Set it to the seed a run printed to repeat that run's kill timings."""


@dataclass(frozen=True)
class Cycle:
    """One kill of the kill -9 test, for the checks and the report."""

    number: int
    token: str
    thread_id: str
    run_id: str
    victim: str
    socket_on_victim: bool
    delay_s: float
    """From the ack to the SIGKILL."""
    killed_at: float
    """Wall-clock time of the SIGKILL (the events' ``ts`` are wall-clock too)."""


@pytest.mark.timeout(300)
async def test_runs_are_finished_by_another_instance_when_theirs_is_killed(
    netra_cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    seed = int(os.environ.get(SEED_VARIABLE) or random.randrange(2**32))
    print(f"\nkill -9 cycles: seed {seed} ({SEED_VARIABLE}={seed} repeats the kill timings)")
    delays = random.Random(seed)
    choices = random.Random(seed + 1)  # which instance the client goes to: its own sequence
    script = netra_cluster.model.responder
    assert isinstance(script, RecordScript)
    instances = [netra_cluster.serve(name, cluster=FAST_LEASES) for name in ("a", "b", "c")]
    await netra_cluster.start(*instances)
    async with httpx.AsyncClient(base_url=instances[0].url, timeout=10) as http:
        user = await make_user(http)
    follower = Follower(user.token)
    await follower.attach(instances[1])
    rotation = Rotation(netra_cluster, instances)
    cycles: list[Cycle] = []
    try:
        for number in range(KILL_CYCLES):
            victim, survivors = await rotation.next(number)
            socket_on_victim = number % 4 == 3  # then the client reconnects after the crash
            wanted = [victim] if socket_on_victim else survivors
            if follower.endpoint not in wanted or not follower.attached:
                if follower.attached:
                    await follower.detach()
                await follower.attach(choices.choice(wanted))

            token = f"c{number:02d}-{uuid.uuid4().hex[:8]}"
            async with httpx.AsyncClient(base_url=victim.url, timeout=10) as http:
                ack = await submit_run(http, user, record_request(token))
            delay = delays.uniform(0.0, script.duration_s())
            await asyncio.sleep(delay)
            killed_at = time.time()
            rotation.kill(victim)
            cycles.append(
                Cycle(
                    number,
                    token,
                    ack["thread_id"],
                    ack["run_id"],
                    victim.name,
                    socket_on_victim,
                    delay,
                    killed_at,
                )
            )
            if socket_on_victim:
                assert await follower.closed() is None  # dropped: a dead process says nothing
                await follower.attach(choices.choice(survivors))
            await follower.run_to_end(ack["run_id"], timeout=60)
        await rotation.settle()
    finally:
        await rotation.abandon()

    async with httpx.AsyncClient(base_url=instances[0].url, timeout=10) as http:
        await assert_same_stream(follower, http, user)
        counts = netra_cluster.record_counts()
        takeovers: list[float] = []
        outcomes: list[str] = []
        for cycle in cycles:
            events = follower.run_events(cycle.run_id)
            assert_run_grammar(events)
            outcome = events[-1]["data"]["outcome"]
            outcomes.append(outcome)
            assert outcome in ("completed", "interrupted"), (cycle, events[-1])
            notes = resumptions(events)
            assert [n["reason"] for n in notes] == ["takeover"] * len(notes), notes
            _attempts_go_up(events)
            calls = [e["data"] for e in events if e["type"] == "tool_completed"]
            assert {c["tool"] for c in calls} <= {RECORD_TOOL}, calls
            # The side effect happened at most once, and surely once if a call reported ok.
            assert counts[cycle.token] <= 1, (cycle, counts[cycle.token])
            if any(call["status"] == "ok" for call in calls):
                assert counts[cycle.token] == 1, cycle
            stored = await assistant_messages(http, user, cycle.thread_id, cycle.run_id)
            if outcome == "completed":
                assert visible_answer(events) == expected_answer(cycle.token), cycle
                assert stored == [expected_answer(cycle.token)], cycle
            else:
                assert len(stored) <= 1, stored
            taken = _takeover_s(cycle, events)
            if taken is not None:
                takeovers.append(taken)
            print(_describe(cycle, events, calls, taken))
    assert all(count == 1 for count in counts.values()), counts
    # A run survives one lost executor (cluster.max_recoveries is 3): nearly every one ends
    # completed; whatever the ending, each ended exactly once (assert_run_grammar above).
    assert outcomes.count("completed") >= KILL_CYCLES - KILL_CYCLES // 10, outcomes
    print(
        f"{len(takeovers)} takeovers, SIGKILL → resumed event: "
        + (
            f"min {min(takeovers):.2f} s, median {statistics.median(takeovers):.2f} s, "
            f"max {max(takeovers):.2f} s"
            if takeovers
            else "none"
        )
    )
    record_property("takeover_s", [round(t, 3) for t in takeovers])
    await follower.detach()


async def test_an_instance_frozen_past_its_lease_loses_its_run_and_its_late_writes_are_refused(
    netra_cluster: Cluster,
) -> None:
    a, b = (netra_cluster.serve(name, cluster=FAST_LEASES) for name in ("a", "b"))
    await netra_cluster.start(a, b)
    async with AsyncExitStack() as stack:
        http_a = await stack.enter_async_context(httpx.AsyncClient(base_url=a.url, timeout=10))
        http_b = await stack.enter_async_context(httpx.AsyncClient(base_url=b.url, timeout=10))
        user = await make_user(http_b)
        follower = Follower(user.token)
        await follower.attach(b)
        token = f"stop-{uuid.uuid4().hex[:8]}"
        ack = await submit_run(http_a, user, record_request(token, 60))
        run_id = ack["run_id"]
        await follower.wait_for(run_id, "message_delta")  # A is streaming the answer

        await a.stop()
        stopped_at = time.time()
        events = await follower.run_to_end(run_id, timeout=60)  # finished by B meanwhile
        await a.cont()

        async def a_let_go() -> bool:
            exposition = (await http_a.get("/metrics")).text
            lost = metric(exposition, "netra_runs_lost_total") or 0
            return lost >= 1 and metric(exposition, "netra_runs_executing") == 0

        await eventually(a_let_go, "A noticed that B took its run over, and stopped it", 30)
        exposition = (await http_a.get("/metrics")).text
        fenced = metric(exposition, "netra_fenced_writes_total")
        assert fenced is not None, "A exposes netra_fenced_writes_total"
        # Only now, with A running again and past its check, is "nothing stored late" shown.

        stored_run = (await http_b.get(f"/runs/{run_id}/events", headers=user.auth)).json()
        types = [event["type"] for event in stored_run["items"]]
        assert types.count("agent_completed") == 1 and types[-1] == "agent_completed", types
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        [note] = resumptions(events)
        assert note["reason"] == "takeover", note
        _attempts_go_up(events)
        assert visible_answer(events) == expected_answer(token, 60)
        assert await assistant_messages(http_b, user, ack["thread_id"], run_id) == [
            expected_answer(token, 60)
        ]
        run = (await http_b.get(f"/runs/{run_id}", headers=user.auth)).json()
        assert run["status"] == "completed", run
        assert netra_cluster.record_counts()[token] == 1
        await assert_same_stream(follower, http_b, user)
        await follower.detach()
        taken = _resumed_at(events) - stopped_at
        print(
            f"\nSIGSTOP: resumed on B {taken:.2f} s after A froze; A refused {fenced:g} late "
            "writes after SIGCONT"
        )


async def test_a_gracefully_stopped_instance_hands_its_run_back_and_the_client_resumes_elsewhere(
    netra_cluster: Cluster,
) -> None:
    # A hand-back needs no lease to run out (B is told at once), and with leases long enough
    # no heartbeat starved on a busy machine makes A take its own run over first.
    leases = {"lease_s": 10.0, "heartbeat_s": 1.0}
    a, b = (netra_cluster.serve(name, cluster=leases) for name in ("a", "b"))
    await netra_cluster.start(a, b)
    async with httpx.AsyncClient(base_url=b.url, timeout=10) as http_b:
        user = await make_user(http_b)
        follower = Follower(user.token)
        await follower.attach(a)
        token = f"term-{uuid.uuid4().hex[:8]}"
        ack = await follower.send_message(record_request(token, 60))  # accepted by A
        assert ack["type"] == "ack", ack
        run_id = ack["run_id"]
        await follower.wait_for(run_id, "message_delta")  # A is streaming the answer

        asked = time.monotonic()
        stopping = asyncio.create_task(a.terminate(timeout=30))
        assert await follower.closed() == 1012  # "server restarting": reconnect and resume
        assert await stopping == 0
        exited = time.monotonic() - asked
        await follower.attach(b)
        events = await follower.run_to_end(run_id, timeout=60)

        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        [note] = resumptions(events)
        assert note["reason"] == "handback", note
        _attempts_go_up(events)
        assert visible_answer(events) == expected_answer(token, 60)
        assert await assistant_messages(http_b, user, ack["thread_id"], run_id) == [
            expected_answer(token, 60)
        ]
        assert netra_cluster.record_counts()[token] == 1
        await assert_same_stream(follower, http_b, user)
        await follower.detach()
        print(f"\nSIGTERM: A exited 0 after {exited:.2f} s; B finished the run")


async def test_a_run_is_cancelled_through_any_instance_whichever_executes_it(
    netra_cluster: Cluster,
) -> None:
    a, b = (netra_cluster.serve(name, cluster=FAST_LEASES) for name in ("a", "b"))
    await netra_cluster.start(a, b)
    async with AsyncExitStack() as stack:
        http_a = await stack.enter_async_context(httpx.AsyncClient(base_url=a.url, timeout=10))
        http_b = await stack.enter_async_context(httpx.AsyncClient(base_url=b.url, timeout=10))
        user = await make_user(http_b)
        follower = Follower(user.token)
        await follower.attach(b)
        for how in ("cancel_run frame", "POST /runs/{id}/cancel"):
            token = f"cancel-{uuid.uuid4().hex[:8]}"
            ack = await submit_run(http_a, user, record_request(token, 400))  # A executes it
            run_id = ack["run_id"]
            await follower.wait_for(run_id, "message_delta")  # A is answering
            if how == "cancel_run frame":
                await follower.send({"type": "cancel_run", "run_id": run_id})
            else:
                cancelled = await http_b.post(f"/runs/{run_id}/cancel", headers=user.auth)
                assert cancelled.status_code == 202, cancelled.text
            events = await follower.run_to_end(run_id, timeout=30)

            assert_run_grammar(events)
            assert events[-1]["data"]["outcome"] == "cancelled", (how, events[-1])
            assert resumptions(events) == [], how
            run = (await http_b.get(f"/runs/{run_id}", headers=user.auth)).json()
            assert run["status"] == "cancelled", (how, run)
            assert netra_cluster.record_counts()[token] == 1  # the tool ran before the answer
        await assert_same_stream(follower, http_b, user)
        await follower.detach()


async def test_a_worker_executes_the_runs_that_servers_only_queue(netra_cluster: Cluster) -> None:
    server = netra_cluster.serve("s", cluster={**FAST_LEASES, "execute_runs": False})
    worker = netra_cluster.worker("w", cluster=FAST_LEASES)
    await netra_cluster.start(server, worker)  # the worker is listed alive once this returns
    admin = await netra_cluster.operator(server)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        listing = await http.get("/admin/instances", headers=admin.auth)
        assert listing.status_code == 200, listing.text
        by_pid = {item["pid"]: item for item in listing.json()["items"]}
        for process, role in ((server, "serve"), (worker, "worker")):
            item = by_pid[process.pid]
            assert item["role"] == role and item["alive"] is True, item
            for text in ("id", "host", "version"):
                assert isinstance(item[text], str) and item[text], item
            assert isinstance(item["runs_executing"], int), item
            assert isinstance(item["sockets"], int), item
            datetime.fromisoformat(item["started_at"])
            datetime.fromisoformat(item["heartbeat_at"])
        ready = (await http.get("/ready")).json()
        assert ready["instance"] == by_pid[server.pid]["id"], ready

        user = await make_user(http)
        refused = await http.get("/admin/instances", headers=user.auth)
        assert refused.status_code == 403, refused.text
        follower = Follower(user.token)
        await follower.attach(server)
        token = f"work-{uuid.uuid4().hex[:8]}"
        ack = await follower.send_message(record_request(token, 80))
        assert ack["type"] == "ack", ack

        async def the_worker_executes_it() -> bool:
            items = (await http.get("/admin/instances", headers=admin.auth)).json()["items"]
            executing = {item["pid"]: item["runs_executing"] for item in items}
            return executing.get(worker.pid) == 1 and executing.get(server.pid) == 0

        await eventually(the_worker_executes_it, "the worker executes the run, the server not")
        events = await follower.run_to_end(ack["run_id"], timeout=60)
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        assert visible_answer(events) == expected_answer(token, 80)
        assert netra_cluster.record_counts()[token] == 1
        finished_here = metric((await http.get("/metrics")).text, "netra_runs_finished_total")
        assert not finished_here, "the server (execute_runs=false) finished no run itself"
        await assert_same_stream(follower, http, user)
        await follower.detach()


# ---- checks and the report -------------------------------------------------------------------
def _attempts_go_up(events: list[dict[str, Any]]) -> None:
    """Each resumption is a new attempt: above the one that started the run, and above the
    resumption before it."""
    attempts = [events[0]["data"]["attempt"], *(n["attempt"] for n in resumptions(events))]
    assert attempts == sorted(set(attempts)), attempts


def _wall(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def _resumed_at(events: list[dict[str, Any]]) -> float:
    return next(
        _wall(e) for e in events if e["type"] == "agent_thinking" and "resumed" in e["data"]
    )


def _takeover_s(cycle: Cycle, events: list[dict[str, Any]]) -> float | None:
    """From the SIGKILL to the resumed run's first event (None: the run needed none)."""
    if not resumptions(events):
        return None
    return _resumed_at(events) - cycle.killed_at


def _describe(
    cycle: Cycle,
    events: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    taken: float | None,
) -> str:
    before = [e["type"] for e in events if _wall(e) <= cycle.killed_at]
    at_kill = before[-1] if before else "nothing stored yet"
    tool = ", ".join(c["status"] if c["status"] == "ok" else c["error"]["code"] for c in calls)
    resumed = f"resumed after {taken:.2f} s" if taken is not None else "no takeover"
    where = "socket on it" if cycle.socket_on_victim else "socket elsewhere"
    return (
        f"cycle {cycle.number:2d}: killed {cycle.victim} {cycle.delay_s:.2f} s after the ack "
        f"(last stored: {at_kill}; {where}) → {resumed}; tool: {tool or 'not called'}; "
        f"{events[-1]['data']['outcome']}"
    )
