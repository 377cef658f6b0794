"""Netra as real OS processes (tests/cluster.py): two ``netra serve`` processes on one
PostgreSQL database and one Redis, the fake model and the test MCP server; a run accepted by
one process reaches a socket on the other, and the processes answer to the signals the
durability tests send (SIGSTOP, SIGCONT, SIGTERM, SIGKILL) and start again on their port."""

from __future__ import annotations

import re
import signal
import uuid
from typing import Any

import httpx
import psutil
import pytest

from tests.cluster import RECORD_TOOL, Cluster, expected_answer, record_request
from tests.follower import Follower, visible_answer
from tests.support import (
    assert_run_grammar,
    assistant_messages,
    eventually,
    make_user,
    stored_events,
    submit_run,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_a_run_accepted_by_one_process_streams_to_a_socket_on_another_and_records_once(
    netra_cluster: Cluster,
) -> None:
    a, b = netra_cluster.serve("a"), netra_cluster.serve("b")
    await netra_cluster.start(a, b)
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as http_b,
    ):
        user = await make_user(http_b)
        follower = Follower(user.token)
        await follower.attach(b)
        token = f"tok-{uuid.uuid4().hex[:10]}"
        ack = await submit_run(http_a, user, record_request(token))

        events = await follower.run_to_end(ack["run_id"])
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed"
        [done] = [e["data"] for e in events if e["type"] == "tool_completed"]
        assert done["tool"] == RECORD_TOOL and done["status"] == "ok", done
        assert visible_answer(events) == expected_answer(token)
        assert await assistant_messages(http_b, user, ack["thread_id"], ack["run_id"]) == [
            expected_answer(token)
        ]
        assert netra_cluster.record_counts()[token] == 1

        await follower.detach()
        assert follower.breaches == []
        assert follower.events == await stored_events(http_a, user, follower.start_seq or 0)
        # Both model calls of the run went to the fake model: the tool call, then the answer.
        assert [m["messages"][-1]["role"] for m in _bodies(netra_cluster)] == ["user", "tool"]


async def test_processes_freeze_continue_stop_and_die_on_signals_and_restart_on_their_port(
    netra_cluster: Cluster,
) -> None:
    a = netra_cluster.serve("a")
    await netra_cluster.start(a)
    pid = a.pid
    assert pid is not None

    await a.stop()
    assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    await a.cont()
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
        user = await make_user(http)
    follower = Follower(user.token)
    await follower.attach(a)

    code = await a.terminate()
    assert await follower.closed() == 1012  # "server restarting: reconnect and resume"
    assert not a.running
    print(f"\nnetra serve exited with {code} after SIGTERM")

    await netra_cluster.restart(a)
    assert a.pid != pid
    a.kill()
    assert a.returncode == -signal.SIGKILL
    await netra_cluster.restart(a)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
    assert a.starts == 3


def _bodies(cluster: Cluster) -> list[dict[str, Any]]:
    return [request.body for request in cluster.model.received]


async def test_a_stopped_process_says_it_got_the_signal_and_what_it_handed_back(
    netra_cluster: Cluster,
) -> None:
    server = netra_cluster.serve("s", cluster={"execute_runs": False})
    worker = netra_cluster.worker("w")
    await netra_cluster.start(server, worker)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        user = await make_user(http)
    follower = Follower(user.token)
    await follower.attach(server)
    ack = await follower.send_message(record_request(f"tok-{uuid.uuid4().hex[:10]}", 400))
    await eventually(
        lambda: any(
            e["type"] == "message_delta" and e["run_id"] == ack["run_id"] for e in follower.events
        ),
        "the worker streams the answer",
    )
    assert await worker.terminate() == 0
    await follower.detach()
    assert await server.terminate() == 0

    for process, handed_back in ((worker, "1 run"), (server, "0 runs")):
        log = process.log.read_text()
        assert "SIGTERM received: stopping" in log, process.tail()
        stopped = rf"instance \S+ \({process.role}\) stopped: {handed_back} handed back"
        assert re.search(stopped, log), process.tail()


STAMP_PLUGIN = '''
import os
from pathlib import Path

from netra.tools.tool import SideEffects, tool

STAMPS = Path({stamps!r})


@tool(side_effects=SideEffects.UNSAFE)
def stamp(token: str) -> dict[str, object]:
    """Write the token with the id of the process that ran the call."""
    with STAMPS.open("a", encoding="utf-8") as out:
        out.write(f"{{os.getpid()}} {{token}}\\n")
    return {{"stamped": token}}


def setup(netra):
    netra.tools.register("stamp", stamp)
'''


async def test_a_tool_registered_by_app_runs_on_the_worker_for_a_config_agent(
    netra_cluster: Cluster,
) -> None:
    """Servers that only queue, and a worker that executes: the same ``--app`` on each, the
    same config agent in each file; the worker runs the plugin's tool."""
    stamps = netra_cluster.directory / "stamps.txt"
    agent = {"stamper": {"model": "offline", "tools": ["stamp"], "description": "Stamps."}}
    server = netra_cluster.serve("s", cluster={"execute_runs": False}, agents=agent)
    worker = netra_cluster.worker("w", agents=agent)
    for process in (server, worker):  # each runs in its own directory: the module is there
        (process.directory / "stamps_plugin.py").write_text(STAMP_PLUGIN.format(stamps=str(stamps)))
        process.args = ("--app", "stamps_plugin:setup")
    await netra_cluster.start(server, worker)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        user = await make_user(http)
        listed = await http.get("/agents", headers=user.auth)
        assert "stamper" in {item["name"] for item in listed.json()["items"]}
        tools = await http.get("/tools", headers=user.auth)
        assert "stamp" in {item["name"] for item in tools.json()["items"]}
    follower = Follower(user.token)
    await follower.attach(server)
    token = f"tok-{uuid.uuid4().hex[:10]}"
    ack = await follower.send_message(f'stamp {{"token": "{token}"}}', agent="stamper")
    events = await follower.run_to_end(ack["run_id"])
    assert events[-1]["data"]["outcome"] == "completed", events[-1]
    [done] = [e["data"] for e in events if e["type"] == "tool_completed"]
    assert done["tool"] == "stamp" and done["status"] == "ok", done
    assert stamps.read_text(encoding="utf-8").split() == [str(worker.pid), token]
    await follower.detach()
