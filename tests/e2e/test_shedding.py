"""Load shedding: once ``limits.max_queued_runs`` runs wait in the queue (the runs table, the
cluster's), a new message is refused — HTTP 503 ``overloaded`` with ``Retry-After``, a WS error
frame with ``retry_after`` — before anything is stored; the depth shows in ``/metrics`` and
``/ready``, and messages are accepted again once the queue drains."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from tests.conftest import POSTGRES_ADMIN, ServerFactory, settings_for_test
from tests.support import (
    CanaryWatch,
    Socket,
    assert_run_grammar,
    hold_runs,
    live_server,
    make_user,
    open_socket,
)

RETRY_AFTER_S = 7
SHEDDING = {
    "models": {"default": "scripted"},
    "limits": {"max_queued_runs": 3, "overload_retry_after_s": RETRY_AFTER_S},
    # One slot per user: a user's second run waits in the queue behind the first.
    "tiers": {"free": {"max_concurrent_runs_per_user": 1}},
}


async def fill_queue(sockets: list[Socket]) -> list[tuple[Socket, str]]:
    """Two users' one slot each taken by a holding run, then three runs waiting behind them:
    the queue at its limit of 3. Every run started, as ``(socket, run_id)``."""
    runs = []
    for socket in sockets:
        run_id = (await socket.send_message("hold on"))["run_id"]
        runs.append((socket, run_id))
        await socket.first(lambda f, r=run_id: f["type"] == "tool_executing" and f["run_id"] == r)
    for socket in (sockets[0], sockets[1], sockets[1]):
        ack = await socket.send_message("and then")
        assert ack["type"] == "ack", ack
        runs.append((socket, ack["run_id"]))
    return runs


def samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


async def queue_check(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/ready")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "ready"  # shedding is the cluster's state, not this instance's
    queue: dict[str, Any] = body["checks"]["run_queue"]
    return queue


async def test_a_full_queue_refuses_new_messages_until_it_drains(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(**SHEDDING)
    gate = threading.Event()
    hold_runs(server, gate)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        ann, bob, cat = [await make_user(http, name) for name in ("ann", "bob", "cat")]
        sockets = [await open_socket(server, user.token) for user in (ann, bob, cat)]
        late = sockets[2]
        try:
            runs = await fill_queue(sockets[:2])
            assert await queue_check(http) == {"queued": 3, "max_queued_runs": 3, "shedding": True}

            thread = (await http.post("/threads", json={}, headers=cat.auth)).json()
            refused = await http.post(
                f"/threads/{thread['id']}/runs", json={"content": "me too"}, headers=cat.auth
            )
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
            error = refused.json()["error"]
            assert error["code"] == "overloaded" and error["request_id"]
            frame = await late.send_message("me too", client_msg_id="cat-1")
            assert frame["type"] == "error" and frame["code"] == "overloaded", frame
            assert frame["ref"] == "cat-1" and frame["retry_after"] == RETRY_AFTER_S
            assert "try again" in frame["message"]
            # A user whose runs are queued is refused too: the bound is everyone's.
            again = await runs[0][0].send_message("one more")
            assert again["type"] == "error" and again["code"] == "overloaded"

            # Nothing of the refused messages was stored: no message, no run, no new thread.
            threads = (await http.get("/threads", headers=cat.auth)).json()["items"]
            assert [t["id"] for t in threads] == [thread["id"]]
            messages = await http.get(f"/threads/{thread['id']}/messages", headers=cat.auth)
            assert messages.json()["items"] == []
            assert (await http.get("/me", headers=cat.auth)).json()["usage"]["today"]["runs"] == 0
            assert (await http.get("/me", headers=ann.auth)).json()["usage"]["today"]["runs"] == 2

            metrics = samples((await http.get("/metrics")).text)
            assert metrics["netra_runs_queued"] == 3
            assert metrics["netra_runs_shed_total"] == 3

            gate.set()
            for socket, run_id in runs:
                events = await socket.run_to_end(run_id)
                assert_run_grammar(events)
                assert events[-1]["data"]["outcome"] == "completed"
            assert await queue_check(http) == {
                "queued": 0,
                "max_queued_runs": 3,
                "shedding": False,
            }
            accepted = await late.send_message("me too", client_msg_id="cat-1")
            assert accepted["type"] == "ack", accepted
            done = await late.run_to_end(accepted["run_id"])
            assert done[-1]["data"]["outcome"] == "completed"
            assert samples((await http.get("/metrics")).text)["netra_runs_queued"] == 0
        finally:
            gate.set()
            for socket in sockets:
                await socket.close()


async def test_a_retried_message_is_answered_while_the_queue_is_full(
    server_factory: ServerFactory,
) -> None:
    """A client that lost its ack resends with the same ``client_msg_id``: its message was
    stored, so it gets the same ack, never ``overloaded``."""
    server = server_factory(**SHEDDING)
    gate = threading.Event()
    hold_runs(server, gate)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        ann, bob = await make_user(http, "ann"), await make_user(http, "bob")
        sockets = [await open_socket(server, user.token) for user in (ann, bob)]
        try:
            runs = await fill_queue(sockets)
            socket, last_run = runs[-1]
            stored = next(
                f for f in socket.frames if f["type"] == "ack" and f["run_id"] == last_run
            )
            retried = await socket.send_message("and then", client_msg_id=stored["client_msg_id"])
            assert retried == stored
            assert (await queue_check(http))["queued"] == 3
            gate.set()
            for socket, run_id in runs:
                await socket.run_to_end(run_id)
        finally:
            gate.set()
            for socket in sockets:
                await socket.close()


@pytest.mark.postgres
async def test_the_bound_is_the_clusters_queue(
    tmp_path: Path, migrated_postgres_url: str, canaries: CanaryWatch
) -> None:
    """Runs queued on instance A fill the queue that instance B, on the same database,
    refuses new messages for."""
    servers = []
    for name in ("a", "b"):
        settings = settings_for_test(tmp_path / name, migrated_postgres_url, canaries, **SHEDDING)
        config = UnifiedConfigurationManager(
            IsolatedEnvironment.isolated(), overrides=settings.model_dump(exclude_unset=True)
        )
        servers.append(live_server(config, canaries))
    with servers[0] as a, servers[1] as b:
        gate = threading.Event()
        hold_runs(a, gate)
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as http_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as http_b,
        ):
            ann, bob = await make_user(http_a, "ann"), await make_user(http_a, "bob")
            cat = await make_user(http_b, "cat")
            sockets = [await open_socket(a, user.token) for user in (ann, bob)]
            try:
                runs = await fill_queue(sockets)
                assert (await queue_check(http_b))["shedding"] is True
                thread = (await http_b.post("/threads", json={}, headers=cat.auth)).json()
                refused = await http_b.post(
                    f"/threads/{thread['id']}/runs", json={"content": "hi"}, headers=cat.auth
                )
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "overloaded"
                assert samples((await http_b.get("/metrics")).text)["netra_runs_queued"] == 3
                gate.set()
                for socket, run_id in runs:
                    await socket.run_to_end(run_id)
                assert (await queue_check(http_b))["shedding"] is False
            finally:
                gate.set()
                for socket in sockets:
                    await socket.close()


@pytest.mark.postgres
async def test_ready_and_metrics_answer_while_the_database_is_away(
    tmp_path: Path, migrated_postgres_url: str, canaries: CanaryWatch
) -> None:
    """The queue's depth is unknown while the database refuses connections: ``/ready`` says
    ``not_ready`` with ``queued: null``, ``/metrics`` still answers (the gauge NaN)."""
    settings = settings_for_test(tmp_path, migrated_postgres_url, canaries, **SHEDDING)
    config = UnifiedConfigurationManager(
        IsolatedEnvironment.isolated(), overrides=settings.model_dump(exclude_unset=True)
    )
    name = make_url(migrated_postgres_url).database
    admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
    with live_server(config, canaries) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            try:
                await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    name,
                )
                away = await http.get("/ready")
                assert away.status_code == 503
                assert away.json()["checks"]["run_queue"] == {
                    "queued": None,
                    "max_queued_runs": 3,
                    "shedding": False,
                }
                metrics = await http.get("/metrics")
                assert metrics.status_code == 200
                assert math.isnan(samples(metrics.text)["netra_runs_queued"])
            finally:
                await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
                await admin.close()
            assert (await queue_check(http))["queued"] == 0


async def test_an_instance_executes_at_most_max_executing_runs_and_the_rest_queue_and_shed(
    server_factory: ServerFactory,
) -> None:
    """Many users with one message each: past ``limits.max_executing_runs`` their runs wait
    ``queued`` (``run_queued`` with ``server_busy``), and past ``max_queued_runs`` the next
    message is shed, although no user is over their own limit."""
    server = server_factory(
        models={"default": "scripted"},
        limits={"max_executing_runs": 2, "max_queued_runs": 1, "overload_retry_after_s": 3},
    )
    gate = threading.Event()
    hold_runs(server, gate)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        users = [await make_user(http, f"u{i}") for i in range(4)]
        sockets = [await open_socket(server, user.token) for user in users]
        try:
            executing = []
            for socket in sockets[:2]:
                run_id = (await socket.send_message("hold on"))["run_id"]
                executing.append((socket, run_id))
                await socket.first(
                    lambda f, r=run_id: f["type"] == "tool_executing" and f["run_id"] == r
                )
            waiting = (await sockets[2].send_message("hold on"))["run_id"]
            queued = await sockets[2].first(lambda f: f["type"] == "run_queued")
            assert queued["data"] == {"run_id": waiting, "waiting_for": 0, "server_busy": True}
            run = (await http.get(f"/runs/{waiting}", headers=users[2].auth)).json()
            assert run["status"] == "queued", run
            shed = await sockets[3].send_message("hold on")
            assert shed["type"] == "error" and shed["code"] == "overloaded", shed
            assert shed["retry_after"] == 3, shed
        finally:
            gate.set()
        for socket, run_id in [*executing, (sockets[2], waiting)]:
            events = await socket.run_to_end(run_id)
            assert_run_grammar(events)
            assert events[-1]["data"]["outcome"] == "completed", events[-1]
        again = await sockets[3].send_message("now there is room")
        assert again["type"] == "ack", again
        assert (await sockets[3].run_to_end(again["run_id"]))[-1]["data"]["outcome"] == "completed"
        for socket in sockets:
            await socket.close()
