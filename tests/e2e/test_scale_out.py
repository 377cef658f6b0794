"""Two Netra instances on one PostgreSQL database and one Redis: any instance serves any
socket, events of a run executed on one instance reach the user's sockets on the other in
order and without gaps, isolation holds across instances, resume works on any instance, and
a Redis restart in the middle of a run loses nothing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio

from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.e2e.conftest import Cluster
from tests.e2e.test_budgets import PRICE_PER_MTOK, call_cost, calls_then_answers
from tests.redis_process import RedisProcess
from tests.support import (
    Socket,
    User,
    answer_text,
    assert_run_grammar,
    eventually,
    grant_admin,
    make_user,
    open_socket,
    open_stream,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def gapless(events: list[dict[str, Any]], after: int) -> None:
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(after + 1, after + 1 + len(seqs))), seqs


async def stored_events(http: httpx.AsyncClient, user: User, after_seq: int) -> list[Any]:
    response = await http.get(f"/events?after_seq={after_seq}&limit=1000", headers=user.auth)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def submit(http: httpx.AsyncClient, user: User, content: str) -> dict[str, Any]:
    thread = await http.post("/threads", json={}, headers=user.auth)
    assert thread.status_code == 201, thread.text
    ack = await http.post(
        f"/threads/{thread.json()['id']}/runs", json={"content": content}, headers=user.auth
    )
    assert ack.status_code == 202, ack.text
    body: dict[str, Any] = ack.json()
    return body


async def test_a_socket_on_one_instance_streams_a_run_executed_on_another_and_only_its_own(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url, models={"offline_chunk_delay_ms": 5})
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        alice, bob = await make_user(http_a, "alice"), await make_user(http_a, "bob")
        canaries = {alice.id: f"canary-{uuid.uuid4().hex}", bob.id: f"canary-{uuid.uuid4().hex}"}
        alice_socket = await open_socket(a, alice.token)
        bob_socket = await open_socket(a, bob.token)

        acks = await asyncio.gather(
            *(
                submit(http_b, user, f"secret {canaries[user.id]}: what is 6*7?")
                for user in (alice, bob)
            )
        )
        sockets = {alice.id: alice_socket, bob.id: bob_socket}
        for user, ack in zip((alice, bob), acks, strict=True):
            socket = sockets[user.id]
            run_events = await socket.run_to_end(ack["run_id"])
            assert_run_grammar(run_events)
            assert run_events[-1]["data"]["outcome"] == "completed"
            assert "42" in answer_text(run_events)

            received = socket.events()
            gapless(received, after=socket.connected["last_seq"])
            stored = await stored_events(http_b, user, socket.connected["last_seq"])
            assert received == stored[: len(received)]
            run_ids = {f["run_id"] for f in received if f["run_id"] is not None}
            assert run_ids == {ack["run_id"]}
            text = json.dumps(socket.frames)
            assert canaries[user.id] in text
            assert all(c not in text for u, c in canaries.items() if u != user.id)

        # Instance A stored no event at all: everything its sockets got came from B.
        assert a.netra.writer.events_written == 0
        assert b.netra.writer.events_written > 0
        await alice_socket.close()
        await bob_socket.close()


async def test_each_instance_subscribes_to_a_users_channel_only_while_it_holds_a_socket(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url)
    prefix = a.netra.settings.redis.channel_prefix
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)

    async def subscribers(user: User) -> int:
        [(_, count)] = await client.pubsub_numsub(f"{prefix}:user:{user.id}")
        return int(count)

    async def has(user: User, count: int) -> bool:
        return await subscribers(user) == count

    try:
        async with httpx.AsyncClient(base_url=a.url) as http:
            user = await make_user(http)
            on_a = [await open_socket(a, user.token) for _ in range(3)]
            await eventually(lambda: has(user, 1), "A subscribed the user's channel")
            on_b = await open_socket(b, user.token)
            # One pub/sub connection per instance, whatever the number of sockets.
            await eventually(lambda: has(user, 2), "B subscribed too")
            for socket in on_a:
                await socket.close()
            await eventually(lambda: has(user, 1), "A unsubscribed with its last socket")
            await on_b.close()
            await eventually(lambda: has(user, 0), "B unsubscribed")
            # Left: only the notice channel every instance listens on.
            assert await client.pubsub_channels(f"{prefix}:user:*") == []
            assert await client.pubsub_channels(f"{prefix}:*") == [f"{prefix}:notices"]
            assert a.netra.sockets.stats() == {"users": 0, "sockets": 0}
    finally:
        await client.aclose()


async def test_resume_on_another_instance_returns_exactly_the_missed_events(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url, models={"offline_chunk_delay_ms": 15})
    async with httpx.AsyncClient(base_url=b.url) as http_b:
        user = await make_user(http_b)
        first = await open_socket(a, user.token)
        ack = await submit(http_b, user, "tell me about yourself")
        await first.first(lambda f: f["type"] == "message_delta")
        await first.close()
        seen = first.events()
        gapless(seen, after=first.connected["last_seq"])

        second = await open_socket(b, user.token, after_seq=seen[-1]["seq"])
        resumed = await second.until(lambda f: f["type"] == "resumed")
        assert resumed["recovered"] is True
        await second.until(
            lambda f: f["type"] == "agent_completed" and f["run_id"] == ack["run_id"]
        )
        after_resume = second.frames[second.frames.index(resumed) + 1 :]
        missed = [f for f in after_resume if "seq" in f]
        assert missed[0]["seq"] == seen[-1]["seq"] + 1
        combined = seen + missed
        gapless(combined, after=first.connected["last_seq"])
        stored = await stored_events(http_b, user, first.connected["last_seq"])
        assert combined == stored[: len(combined)]
        assert_run_grammar([e for e in combined if e["run_id"] == ack["run_id"]])
        await second.close()


class Recorder:
    """Reads a socket in the background, keeping each frame with the time it arrived."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            frame = await self.socket.recv(timeout=120)
            self.arrivals.append((time.monotonic(), frame))

    def events(self) -> list[dict[str, Any]]:
        return [frame for _, frame in self.arrivals if "seq" in frame]

    def last_seq(self) -> int:
        events = self.events()
        return events[-1]["seq"] if events else int(self.socket.connected["last_seq"])

    def first_arrival(self, seq: int) -> float:
        return next(at for at, frame in self.arrivals if frame.get("seq", -1) >= seq)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_a_redis_restart_mid_run_loses_no_event_and_duplicates_none(
    cluster: Cluster, private_redis: RedisProcess, record_property: Callable[[str, Any], None]
) -> None:
    a, b = cluster(
        private_redis.url,
        models={"default": "scripted"},
        redis={"health_check_interval_s": 1, "reconnect_max_s": 0.5, "timeout_s": 1.0},
    )
    model = b.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.push(ScriptedTurn(chunks=tuple(f"w{i}" for i in range(80)), delay_s=0.05))
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        user = await make_user(http_b)
        socket = await open_socket(a, user.token)
        start = socket.connected["last_seq"]
        recorder = Recorder(socket)
        try:
            ack = await submit(http_b, user, "stream slowly")
            run_id = ack["run_id"]
            await eventually(
                lambda: any(e["type"] == "message_delta" for e in recorder.events()),
                "the first deltas reached the socket on A",
            )

            await asyncio.to_thread(private_redis.kill)
            received_at_kill = len(recorder.events())

            async def a_sees_redis_down() -> bool:
                ready = (await http_a.get("/ready")).json()
                return bool(ready["status"] == "degraded")

            async def stored_while_down() -> bool:
                stored = await stored_events(http_b, user, start)
                return len(stored) >= received_at_kill + 20

            await eventually(a_sees_redis_down, "A's /ready reported the bus degraded")
            await eventually(stored_while_down, "B stored events while Redis was down")
            assert len(recorder.events()) == received_at_kill  # nothing can cross meanwhile
            run = (await http_b.get(f"/runs/{run_id}", headers=user.auth)).json()
            assert run["status"] == "running", "the run should outlast the outage"

            await asyncio.to_thread(private_redis.start)
            restarted = time.monotonic()
            backlog = (await stored_events(http_b, user, start))[-1]["seq"]
            await eventually(
                lambda: recorder.last_seq() >= backlog,
                "the socket on A caught up with what was stored during the outage",
            )
            converged = recorder.first_arrival(backlog) - restarted
            await eventually(
                lambda: any(
                    e["type"] == "agent_completed" and e["run_id"] == run_id
                    for e in recorder.events()
                ),
                "the run's last event reached the socket on A",
                timeout=60,
            )
        finally:
            await recorder.stop()

        received = recorder.events()
        gapless(received, after=start)
        run_events = [e for e in received if e["run_id"] == run_id]
        stored_run = (await http_b.get(f"/runs/{run_id}/events", headers=user.auth)).json()
        assert run_events == stored_run["items"]
        assert_run_grammar(run_events)
        assert answer_text(run_events) == " ".join(f"w{i}" for i in range(80))

        bus_a = a.netra.bus.health()
        bus_b = b.netra.bus.health()
        assert bus_a.counters["connects"] >= 2  # A's pub/sub connection was replaced
        assert bus_b.counters["publish_failures"] >= 1  # B published into the outage
        await eventually(lambda: a.netra.bus.health().healthy, "A's bus healthy again")
        await eventually(lambda: b.netra.bus.health().healthy, "B's bus healthy again")
        ready = (await http_a.get("/ready")).json()
        assert ready["status"] == "ready" and ready["checks"]["event_bus"]["backend"] == "redis"

        record_property("redis_restart_convergence_s", round(converged, 4))
        # Reported (pytest -s, or the junit property), never asserted on.
        print(
            f"\nredis restart: socket on A caught up {converged * 1000:.1f} ms after Redis "
            f"answered again ({backlog - start - received_at_kill} events stored during the "
            f"outage, {len(run_events)} run events in all)"
        )
        await socket.close()


async def test_a_run_that_ends_while_redis_is_down_reaches_the_socket_once_it_is_back(
    cluster: Cluster, private_redis: RedisProcess
) -> None:
    a, b = cluster(private_redis.url, redis={"reconnect_max_s": 0.5, "timeout_s": 1.0})
    async with httpx.AsyncClient(base_url=b.url) as http_b:
        user = await make_user(http_b)
        socket = await open_socket(a, user.token)
        start = socket.connected["last_seq"]
        await eventually(lambda: a.netra.bus.health().counters["subscriptions"] == 1, "subscribed")

        await asyncio.to_thread(private_redis.kill)
        ack = await submit(http_b, user, "what is 12*7?")

        async def finished() -> bool:
            run = await http_b.get(f"/runs/{ack['run_id']}", headers=user.auth)
            return bool(run.json()["status"] == "completed")

        await eventually(finished, "the run completed on B while Redis was down")
        # No later event will come to reveal a gap: only the reconnect can bring the run.
        await asyncio.to_thread(private_redis.start)
        restarted = time.monotonic()
        events = await socket.run_to_end(ack["run_id"], timeout=30)
        converged = time.monotonic() - restarted
        assert_run_grammar(events)
        received = socket.events()
        gapless(received, after=start)
        assert received == await stored_events(http_b, user, start)
        assert "84" in answer_text(events)
        # Reported (pytest -s), never asserted on.
        print(
            f"\nrun ended during the outage: on the socket {converged * 1000:.1f} ms after restart"
        )
        await socket.close()


async def test_a_cancel_sent_to_one_instance_stops_a_run_executing_on_another(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url, models={"offline_chunk_delay_ms": 200})
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        user = await make_user(http_a)
        on_b = await open_socket(b, user.token)
        ack = await submit(http_a, user, "tell me a long story")  # A executes it
        await on_b.first(lambda f: f["type"] == "message_delta" and f["run_id"] == ack["run_id"])
        await on_b.send({"type": "cancel_run", "run_id": ack["run_id"], "ref": "stop"})
        events = await on_b.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "cancelled"
        run = (await http_b.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        assert run["status"] == "cancelled" and run["error"]["code"] == "cancelled"
        # B stored none of the run's events: A executed it and ended it as cancelled.
        assert a.netra.engine.lost == 0
        await on_b.close()


async def test_every_instance_registers_and_the_admin_sees_them_alive(
    cluster: Cluster, redis_url: str
) -> None:
    a, b = cluster(redis_url)
    async with httpx.AsyncClient(base_url=b.url) as http:
        admin = await make_user(http, "admin")
        grant_admin(a, admin.email)
        login = await http.post(
            "/auth/login", json={"email": admin.email, "password": admin.password}
        )
        token = login.json()["access_token"]
        listed = await http.get("/admin/instances", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["instance"] == b.netra.instance_id
        seen = {item["id"]: item for item in body["items"]}
        for server in (a, b):
            item = seen[server.netra.instance_id]
            assert item["role"] == "serve" and item["alive"] is True
        ready = (await http.get("/ready")).json()
        assert ready["instance"] == b.netra.instance_id
        assert ready["checks"]["cluster"]["healthy"] is True


async def test_a_users_own_limits_set_on_one_instance_hold_on_every_other(
    cluster: Cluster, redis_url: str
) -> None:
    """Overrides are stored with the account, not in one process: set through one instance,
    the next message to another is admitted under them."""
    a, b = cluster(redis_url)
    async with (
        httpx.AsyncClient(base_url=a.url) as at_a,
        httpx.AsyncClient(base_url=b.url) as at_b,
    ):
        user = await make_user(at_b, "spread")
        admin = await make_user(at_a, "admin")
        grant_admin(a, admin.email)
        login = await at_a.post(
            "/auth/login", json={"email": admin.email, "password": admin.password}
        )
        boss = {"Authorization": f"Bearer {login.json()['access_token']}"}
        ack = await submit(at_b, user, "what is 2*3?")
        changed = await at_a.put(
            f"/admin/users/{user.id}/limits", json={"max_message_chars": 5}, headers=boss
        )
        assert changed.status_code == 200, changed.text
        refused = await at_b.post(
            f"/threads/{ack['thread_id']}/runs", json={"content": "what is 2*4?"}, headers=user.auth
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "message_too_large"
        me = (await at_b.get("/me", headers=user.auth)).json()
        assert me["limit_overrides"]["max_message_chars"] == 5


async def test_sse_on_one_instance_streams_a_run_executed_on_another_and_resumes_on_either(
    cluster: Cluster, redis_url: str
) -> None:
    """A run submitted to B executes there; A streams it over SSE. The client is killed
    mid-run and resumes on B with ``Last-Event-ID``: no gap, no duplicate; A's stream of
    the run alone ends after its ``agent_completed``."""
    a, b = cluster(redis_url, models={"offline_chunk_delay_ms": 15})
    async with (
        httpx.AsyncClient(base_url=a.url) as http_a,
        httpx.AsyncClient(base_url=b.url) as http_b,
    ):
        user = await make_user(http_a)
        first = await open_stream(http_a, "/events/stream", user)
        connected = await first.next()
        assert connected is not None and connected.event == "connected"
        ack = await submit(http_b, user, "tell me about yourself")
        run_stream = await open_stream(http_a, f"/runs/{ack['run_id']}/stream", user)
        await first.until(lambda d: d["type"] == "message_delta")
        await first.close()
        last_id = first.messages[-1].id
        assert last_id is not None

        second = await open_stream(http_b, "/events/stream", user, last_event_id=int(last_id))
        await second.next()  # connected
        resumed = await second.next()
        assert resumed is not None and resumed.data["recovered"] is True
        await second.until(
            lambda d: d["type"] == "agent_completed" and d["run_id"] == ack["run_id"]
        )
        combined = first.events() + second.events()
        gapless(combined, after=connected.data["last_seq"])
        assert (
            combined
            == (await stored_events(http_a, user, connected.data["last_seq"]))[: len(combined)]
        )
        run_events = [m.data for m in await run_stream.to_end()]
        assert_run_grammar(run_events)
        assert run_events == [e for e in combined if e["run_id"] == ack["run_id"]]
        assert "offline model" in answer_text(run_events)
        # Instance A stored no event at all: everything its streams got came from B.
        assert a.netra.writer.events_written == 0
        await second.close()
        for server in (a, b):
            await eventually(
                lambda server=server: server.netra.sockets.counts() == (0, 0), "streams released"
            )


async def test_two_instances_charging_one_user_overshoot_a_budget_by_at_most_the_calls_in_flight(
    cluster: Cluster, redis_url: str
) -> None:
    """Four runs of one user sent at once, alternately to each instance, six model calls
    each: once the user's spend passes its daily budget every run stops after the call it
    had in flight, whichever instance executes it — the spend ends at most one call per run
    admitted past the budget, and every call is recorded. (A run sent once the budget is
    spent is refused at admission: the first runs may get there before the last is sent.)"""
    a, b = cluster(
        redis_url,
        models={
            "default": "scripted",
            "prices": [
                {"model": "scripted", "input_per_mtok": PRICE_PER_MTOK, "output_per_mtok": 0}
            ],
        },
        tiers={"free": {"max_concurrent_runs_per_user": 4, "runs_per_minute": 0}},
    )
    models: list[ScriptedModel] = []
    for server in (a, b):
        model = server.netra.models.get("scripted")
        assert isinstance(model, ScriptedModel)
        model.responder = calls_then_answers
        models.append(model)
    async with (
        httpx.AsyncClient(base_url=a.url) as at_a,
        httpx.AsyncClient(base_url=b.url) as at_b,
    ):
        user = await make_user(at_a, "racer")
        admin = await make_user(at_b, "boss")
        grant_admin(a, admin.email)
        login = await at_b.post(
            "/auth/login", json={"email": admin.email, "password": admin.password}
        )
        boss = {"Authorization": f"Bearer {login.json()['access_token']}"}
        budget = 0.25
        changed = await at_b.put(
            f"/admin/users/{user.id}/limits", json={"usd_per_day": budget}, headers=boss
        )
        assert changed.status_code == 200, changed.text
        socket = await open_socket(a, user.token)
        acks = []
        for http in (at_a, at_b, at_a, at_b):
            thread = (await http.post("/threads", json={}, headers=user.auth)).json()
            sent = await http.post(
                f"/threads/{thread['id']}/runs", json={"content": "job"}, headers=user.auth
            )
            if sent.status_code == 429:  # the runs admitted first spent it already: refused
                assert sent.json()["error"]["code"] == "budget_exceeded", sent.text
                continue
            assert sent.status_code == 202, sent.text
            acks.append(sent.json())
        assert acks, "the first run is admitted: nothing was spent before it"
        endings = [(await socket.run_to_end(ack["run_id"]))[-1]["data"] for ack in acks]
        await socket.close()
        stopped = [e for e in endings if e["outcome"] == "failed"]
        assert stopped and all(e["error"]["code"] == "cost_budget" for e in stopped)
        spent = sum(e["usage"]["cost_usd"] for e in endings)
        requests = [request for model in models for request in model.requests]
        most = max(call_cost(request) for request in requests)
        assert budget < spent <= budget + len(acks) * most, (spent, budget, most)
        me = (await at_b.get("/me", headers=user.auth)).json()
        assert abs(me["usage"]["today"]["cost_usd"] - spent) < 1e-6, "every call was recorded"
