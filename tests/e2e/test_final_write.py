"""A run's end survives a crash at its final write: real ``netra serve`` processes on
PostgreSQL and Redis that kill themselves (SIGKILL) at a crash point while finishing a run
(``faults.crash_at``, armed for one run by a file naming it):

- ``final_write``: the final state and ``agent_completed`` are written, not committed. The run
  is still running in the table; another instance takes it over and ends it.
- ``final_publish``: committed, not published. The run is final and its ``agent_completed``
  stored; a client on another instance gets it from the log (position check), one whose
  socket was on the dead instance gets it when it resumes.

Whenever a run is final in the runs table, its ``agent_completed`` is in its log.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import (
    Cluster,
    NetraProcess,
    Rotation,
    embedded,
    expected_answer,
    metric,
    record_request,
)
from tests.follower import Follower, assert_same_stream, resumptions, visible_answer
from tests.support import CanaryWatch, User, assert_run_grammar, make_user, submit_run

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
CYCLES = 20
WORDS = 5
FINAL = {"completed", "failed", "cancelled", "timed_out", "interrupted"}
POINTS = {"a": "final_write", "b": "final_publish", "c": "final_write"}
"""Each instance's crash point; instances are killed in turn, so both points come often."""
ARM = "crash.armed"


@dataclass(frozen=True)
class Cycle:
    number: int
    token: str
    run_id: str
    point: str
    socket_on_victim: bool
    status_after_crash: str


async def _run_state(http: httpx.AsyncClient, user: User, run_id: str) -> tuple[str, list[str]]:
    """The run's status, then its stored event types: read in that order, so a final status
    seen first must find its ``agent_completed`` (stored in the same transaction)."""
    run = await http.get(f"/runs/{run_id}", headers=user.auth)
    assert run.status_code == 200, run.text
    events = await http.get(f"/runs/{run_id}/events", headers=user.auth)
    assert events.status_code == 200, events.text
    return run.json()["status"], [event["type"] for event in events.json()["items"]]


def _arm(victim: NetraProcess, run_id: str) -> None:
    """Arm the victim's crash point for this run only (written whole, then renamed into
    place, so the victim never reads half a name)."""
    staged = victim.directory / f"{ARM}.new"
    staged.write_text(run_id)
    staged.replace(victim.directory / ARM)


async def _crashed(victim: NetraProcess, follower: Follower, run_id: str) -> bool:
    """Whether the victim reached its crash point with this run (True: it is dead or
    dying), or the run ended without it (False: on a busy machine the victim's lease can run
    out first, and another instance finishes the run while the victim's final write is
    refused before the point; or the run ran faster than the test armed it). Whoever
    removes the arming file first decides."""
    async with asyncio.timeout(60):
        while victim.returncode is None:
            if follower.has(run_id, "agent_completed"):
                try:
                    (victim.directory / ARM).unlink()
                except FileNotFoundError:
                    return True  # the victim took it: it is killing itself
                return False
            await asyncio.sleep(0.02)
    return True


def _instance(cluster: Cluster, name: str) -> NetraProcess:
    return cluster.serve(
        name,
        cluster={"lease_s": 1.0, "heartbeat_s": 0.2},
        websocket={"position_check_s": 0.3},
        faults={"crash_at": POINTS[name], "crash_armed_by": ARM},
    )


@pytest.mark.timeout(300)
async def test_a_run_killed_at_its_final_write_ends_once_for_every_client(
    netra_cluster: Cluster,
) -> None:
    instances = [_instance(netra_cluster, name) for name in POINTS]
    await netra_cluster.start(*instances)
    async with httpx.AsyncClient(base_url=instances[0].url, timeout=10) as http:
        user = await make_user(http)
    follower = Follower(user.token)
    rotation = Rotation(netra_cluster, instances)
    cycles: list[Cycle] = []
    number = 0
    try:
        while len(cycles) < CYCLES:
            assert number < 2 * CYCLES, f"only {len(cycles)} crashes in {number} runs"
            victim, survivors = await rotation.next(number)
            socket_on_victim = number % 4 == 3  # the client then resumes after the crash
            wanted = victim if socket_on_victim else survivors[number % len(survivors)]
            if follower.endpoint is not wanted or not follower.attached:
                if follower.attached:
                    await follower.detach()
                await follower.attach(wanted)

            token = f"f{number:02d}-{uuid.uuid4().hex[:8]}"
            async with httpx.AsyncClient(base_url=victim.url, timeout=10) as http:
                ack = await submit_run(http, user, record_request(token, WORDS))
            _arm(victim, ack["run_id"])
            number += 1
            if not await _crashed(victim, follower, ack["run_id"]):
                continue
            code = await rotation.crashed(victim)
            assert code == -9, (victim, code)
            async with httpx.AsyncClient(base_url=survivors[0].url, timeout=10) as http:
                status, types = await _run_state(http, user, ack["run_id"])
            if status in FINAL:
                assert types.count("agent_completed") == 1, (status, types)
            cycles.append(
                Cycle(number, token, ack["run_id"], POINTS[victim.name], socket_on_victim, status)
            )
            if socket_on_victim:
                assert await follower.closed() is None  # dropped: a dead process says nothing
                await follower.attach(survivors[0])
            await follower.run_to_end(ack["run_id"], timeout=60)
        await rotation.settle()
    finally:
        await rotation.abandon()

    async with httpx.AsyncClient(base_url=instances[0].url, timeout=10) as http:
        await assert_same_stream(follower, http, user)
        for cycle in cycles:
            events = follower.run_events(cycle.run_id)
            # Where each point lies: before the commit the end was lost with the process and
            # another instance took the run over; after it, the run was final at once.
            # (On a busy machine a starved heartbeat may add a takeover of its own.)
            reasons = {n["reason"] for n in resumptions(events)}
            assert reasons <= {"takeover"}, (cycle, reasons)
            if cycle.point == "final_write":
                assert reasons == {"takeover"}, cycle
            else:
                assert cycle.status_after_crash == "completed", cycle
            assert_run_grammar(events)
            assert events[-1]["data"]["outcome"] == "completed", (cycle, events[-1])
            assert visible_answer(events) == expected_answer(cycle.token, WORDS), cycle
            status, types = await _run_state(http, user, cycle.run_id)
            assert status == "completed" and types.count("agent_completed") == 1, (cycle, types)
    published_late = [c for c in cycles if c.point == "final_publish" and not c.socket_on_victim]
    assert published_late, "some cycles crashed after the commit with the client elsewhere"
    print(
        f"\n{len(cycles)} crashes: "
        + ", ".join(
            f"{point} {sum(c.point == point for c in cycles)}"
            for point in ("final_write", "final_publish")
        )
        + f"; {len(published_late)} ends reached a live client only from the log"
        + f"; {number - len(cycles)} runs ended before their point (lease lost first)"
    )
    await follower.detach()


async def test_a_run_whose_end_was_stored_but_never_published_reaches_a_live_socket(
    netra_cluster: Cluster,
) -> None:
    """One crash after the commit, the client on another instance: the end arrives although
    no instance ever publishes it."""
    # Leases long enough that no run changes hands on a busy machine: only the crash counts.
    sections: dict[str, Any] = {"cluster": {"lease_s": 10.0, "heartbeat_s": 1.0}}
    a = netra_cluster.serve(
        "a", **sections, faults={"crash_at": "final_publish", "crash_armed_by": ARM}
    )
    other = netra_cluster.serve("other", **sections, websocket={"position_check_s": 0.3})
    await netra_cluster.start(a, other)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
        user = await make_user(http)
        follower = Follower(user.token)
        await follower.attach(other)
        for _ in range(5):  # a run may end before the test armed the point: another one
            ack = await submit_run(http, user, record_request("late", WORDS))
            _arm(a, ack["run_id"])
            if await _crashed(a, follower, ack["run_id"]):
                break
        else:
            pytest.fail("every run ended before its crash point was armed")
    assert await a.exited(60) == -9
    events = await follower.run_to_end(ack["run_id"], timeout=30)
    assert_run_grammar(events)
    assert visible_answer(events) == expected_answer("late", WORDS)
    async with httpx.AsyncClient(base_url=other.url, timeout=10) as http:
        exposition = (await http.get("/metrics")).text
        assert (metric(exposition, "netra_socket_catch_ups_total") or 0) >= 1
        await assert_same_stream(follower, http, user)
    await follower.detach()


@pytest.mark.parametrize("point", ["final_write", "final_publish"])
async def test_on_embedded_sqlite_the_restarted_server_gives_every_run_its_end(
    tmp_path: Path, canaries: CanaryWatch, point: str
) -> None:
    """The default shape: one ``netra serve`` on its SQLite file, killed at the point; the
    client reconnects to the restarted server and resumes. Before the commit the restart
    continues the run; after it, the end is in the log for the resume to deliver."""
    server = embedded(
        tmp_path / "embedded",
        canaries,
        {
            "models": {"offline_chunk_delay_ms": 20},
            "faults": {"crash_at": point, "crash_armed_by": ARM},
        },
    )
    try:
        server.launch()
        await server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            user = await make_user(http)
            follower = Follower(user.token)
            await follower.attach(server)
            for _ in range(5):  # a run may end before the test armed the point: another one
                ack = await submit_run(http, user, "tell me about spend")
                _arm(server, ack["run_id"])
                if await _crashed(server, follower, ack["run_id"]):
                    break
            else:
                pytest.fail("every run ended before its crash point was armed")
        assert await server.exited(60) == -9
        assert await follower.closed() is None  # dropped: a dead process says nothing
        server.launch()
        await server.wait_ready()
        await follower.attach(server)
        events = await follower.run_to_end(ack["run_id"], timeout=60)
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed", events[-1]
        notes = resumptions(events)
        assert len(notes) == (1 if point == "final_write" else 0), notes
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            status, types = await _run_state(http, user, ack["run_id"])
            assert status == "completed" and types.count("agent_completed") == 1, types
            await assert_same_stream(follower, http, user)
        await follower.detach()
    finally:
        server.cleanup()
        canaries.check("output of the embedded server", server.log.read_bytes())
