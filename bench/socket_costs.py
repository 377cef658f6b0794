"""What a socket costs: RSS per idle authenticated socket, and accepts per second.

Netra: ``sockets`` (5,000) authenticated sockets, ``per_user`` (100) for each of a few users
(the per-user cap, 16 by default, raised to that). ``CONNECTS_IN_FLIGHT`` handshakes at a
time, each with its user's token and read up to its ``connected`` frame: accepts/s is the
sockets divided by the time to open them all. Then they sit idle for ``IDLE_S`` and the
RSS per socket is the server's RSS growth since before the first connect, divided by the
sockets. The raw uvicorn server (raw_ws.py) is measured the same way, without accounts.
Checked: every socket opens and gets ``connected`` (on Netra, with its user's id) and is
still open at the end.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
import uuid
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from checks import Violations
from client import open_ws, sign_up
from machine import core_share, core_times
from processes import HOST, RawServer, ServerProcess, SetupError, tree_cpu, tree_rss
from server_env import CHEAP_PASSWORDS_ENV, SOCKETS_PER_USER_ENV, UNLIMITED_TIER_ENV
from stats import median, ratio

JsonObject = dict[str, Any]

CONNECTS_IN_FLIGHT = 50
SETTLE_S = 1.0
"""Quiet time before the first RSS reading (sign-ups done)."""
IDLE_S = 2.0
VIOLATIONS = ("connect_failed", "wrong_user_id", "socket_closed", "server_exited")


async def open_sockets(
    server: ServerProcess,
    credentials: list[tuple[str, str] | None],
    violations: Violations,
    cpus: str | None,
) -> JsonObject:
    """Open one socket per credential (user id, token; None: no account), measure, close."""
    process = psutil.Process(server.pid)
    await asyncio.sleep(SETTLE_S)
    rss_before = tree_rss(process)
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    opened: list[ClientConnection] = []

    async def connect(index: int, credential: tuple[str, str] | None) -> None:
        user_id, token = credential if credential is not None else ("", None)
        async with gate:
            try:
                ws, frame = await open_ws(f"ws://{HOST}:{server.port}/ws", token, f"{index}")
            except SetupError as exc:
                violations.add("connect_failed", str(exc)[:300])
                return
        opened.append(ws)
        if user_id and frame.get("user_id") != user_id:
            violations.add("wrong_user_id", f"socket {index}: {frame.get('user_id')}")

    cpu0, core0 = tree_cpu(process), core_times(cpus)
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(connect(i, c) for i, c in enumerate(credentials)))
        connect_s = time.perf_counter() - t0
        cpu_s, core = tree_cpu(process) - cpu0, core_share(core0, core_times(cpus))
        await asyncio.sleep(IDLE_S)
        rss_after = tree_rss(process)
        closed = [ws for ws in opened if ws.state is not State.OPEN]
        if closed:
            violations.add(
                "socket_closed", f"{len(closed)} closed while idle, e.g. {closed[0].close_code}"
            )
        if not server.alive():
            violations.add("server_exited", f"status {server.returncode()}")
    finally:
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    count = len(opened)
    return {
        "sockets": count,
        "connect_s": round(connect_s, 2),
        "accepts_per_s": round(count / connect_s) if connect_s > 0 else None,
        "server_cpu_ms_per_accept": round(cpu_s * 1000 / count, 3) if count else None,
        **core,
        "rss_mib_before": round(rss_before / 2**20, 1),
        "rss_mib_idle": round(rss_after / 2**20, 1),
        "rss_kib_per_socket": round((rss_after - rss_before) / 1024 / count, 1) if count else None,
    }


async def netra_round(
    sockets: int, per_user: int, cpus: str | None
) -> tuple[JsonObject, Violations]:
    violations = Violations(VIOLATIONS)
    env = {**UNLIMITED_TIER_ENV, **CHEAP_PASSWORDS_ENV, SOCKETS_PER_USER_ENV: str(per_user)}
    server = ServerProcess(env, cpus=cpus)
    try:
        server.start()
        tag = uuid.uuid4().hex[:8]
        async with httpx.AsyncClient(base_url=server.base_url, trust_env=False, timeout=60) as http:
            users = [
                await sign_up(http, f"sockets-{tag}-{i}@example.com", f"sockets-password-{i}")
                for i in range(math.ceil(sockets / per_user))
            ]
        credentials: list[tuple[str, str] | None] = [users[i // per_user] for i in range(sockets)]
        result = await open_sockets(server, credentials, violations, cpus)
    finally:
        if violations.total:
            print(server.logs(), file=sys.stderr)
        server.cleanup()
    return {"users": len(users), **result}, violations


async def raw_round(sockets: int, cpus: str | None) -> tuple[JsonObject, Violations]:
    violations = Violations(VIOLATIONS)
    server = RawServer({}, cpus=cpus)
    try:
        server.start()
        result = await open_sockets(server, [None] * sockets, violations, cpus)
    finally:
        server.cleanup()
    return result, violations


class SocketCosts:
    """Netra then raw, `rounds` times; medians and ratios."""

    def __init__(self, *, rounds: int, sockets: int, per_user: int, cpus: str | None) -> None:
        self.rounds = rounds
        self.sockets = sockets
        self.per_user = per_user
        self.cpus = cpus
        self.results: list[JsonObject] = []
        self.violations = 0
        self.problems: list[str] = []

    def run(self) -> JsonObject:
        for index in range(self.rounds):
            for server in ("netra", "raw"):
                print(
                    f"[bench] sockets: round {index + 1}/{self.rounds}, {server}", file=sys.stderr
                )
                go = (
                    netra_round(self.sockets, self.per_user, self.cpus)
                    if server == "netra"
                    else raw_round(self.sockets, self.cpus)
                )
                result, violations = asyncio.run(go)
                self.violations += violations.total
                self.problems += [f"{server} sockets: {x}" for x in violations.examples]
                self.results.append({"round": index, "server": server, **result})

        def compare(key: str) -> JsonObject:
            netra_each = [r[key] for r in self.results if r["server"] == "netra"]
            raw_each = [r[key] for r in self.results if r["server"] == "raw"]
            netra, raw = median(netra_each), median(raw_each)
            return {
                "netra": netra,
                "raw_uvicorn": raw,
                "ratio": ratio(netra, raw),
                "netra_each": netra_each,
                "raw_uvicorn_each": raw_each,
            }

        return {
            "workload": {
                "sockets": self.sockets,
                "sockets_per_user": self.per_user,
                "connects_in_flight": CONNECTS_IN_FLIGHT,
                "idle_s": IDLE_S,
            },
            "summary": {
                "rss_kib_per_idle_socket": compare("rss_kib_per_socket"),
                "accepts_per_s": compare("accepts_per_s"),
                "server_cpu_ms_per_accept": compare("server_cpu_ms_per_accept"),
            },
            "rounds": self.results,
        }
