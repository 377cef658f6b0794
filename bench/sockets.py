"""What a socket costs: accepts per second, RSS per idle socket, fan-out events per second.

The server is this script run again with ``--serve`` in a child process pinned to core 0:
``create_app`` on a fresh SQLite data dir (uvicorn with Netra's own options) plus routes of
the benchmark's own: ``POST /bench/prepare`` seals synthetic events of the given users, and
``POST /bench/publish`` hands them straight to the bus, the way the event log writer
publishes a flush. The writer and the database are left out on purpose: this measures the
socket side alone. The clients run
here, pinned to core 1, on a minimal WebSocket client (asyncio protocols, uvloop).

1. ``--users`` users sign up and sign in (argon2 at its cheapest).
2. Cold accepts: one socket per user (each a session the server has not seen on a socket).
3. Warm accepts: ``--sockets-per-user`` - 1 more per user (the same sessions again).
4. Idle: the server's RSS with every socket open, minus its RSS before the first one.
5. Fan-out: every socket but the first of each user is closed; ``--rounds`` rounds of
   ``--batch`` events per user are published; the clients check every seq arrives once, in
   order, without a gap, and count until all are in.

Every figure comes with the server's CPU time (user + system, from /proc) and the load
average. Violations (a seq out of order, missing or repeated; a socket refused) are counted;
any makes the exit status 1.

    python bench/sockets.py                                # 1,000 users x 5 sockets, 50 rounds
    python bench/sockets.py --users 200 --rounds 20        # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

HOST = "127.0.0.1"
PASSWORD = "correct horse battery"  # noqa: S105  # a throwaway account
BODY_PAD = "x" * 120
"""A ``message_delta`` of a few words: envelopes of ~260 bytes, like a streamed answer's."""


# --------------------------------------------------------------------------- server side


def _envelope(seq: int) -> str:
    return json.dumps(
        {
            "type": "message_delta",
            "seq": seq,
            "event_id": f"ev_{seq}",
            "thread_id": "th_bench",
            "run_id": "run_bench",
            "agent": "assistant",
            "ts": "2026-01-01T00:00:00.000Z",
            "data": {"message_id": "msg_bench", "delta": BODY_PAD},
        },
        separators=(",", ":"),
    )


def serve(port: int, data_dir: Path, session_cache_s: float | None) -> None:
    """The server: Netra's application plus the benchmark's routes; runs until killed."""
    import uvicorn
    from fastapi import Body

    from netra.app import create_app
    from netra.config import UnifiedConfigurationManager
    from netra.env import IsolatedEnvironment
    from netra.events.envelope import Event, EventType
    from netra.server import uvicorn_config
    from netra.settings import Settings

    settings = Settings.model_validate(
        {
            "environment": "development",
            "server": {"data_dir": data_dir, "port": port},
            "auth": {
                "password_time_cost": 1,
                "password_memory_kib": 64,
                **({} if session_cache_s is None else {"session_cache_s": session_cache_s}),
            },
            "websocket": {"max_connections_per_user": 64, "frames_per_s": 100.0},
            "logging": {"level": "WARNING"},
        }
    )
    config = UnifiedConfigurationManager(
        IsolatedEnvironment.isolated(), overrides=settings.model_dump(exclude_unset=True)
    )
    app = create_app(config=config)
    netra = app.state.netra

    prepared: dict[str, list[Event]] = {}

    @app.post("/bench/prepare", include_in_schema=False)
    async def prepare(spec: dict[str, Any] = Body(...)) -> dict[str, int]:  # noqa: B008
        """Seal the events of a fan-out up front, as the writer hands them over: only their
        delivery is measured."""
        count, start = int(spec["count"]), int(spec["after_seq"]) + 1
        prepared.clear()
        for user in spec["users"]:
            prepared[user] = [
                Event(user, seq, EventType.MESSAGE_DELTA, "run_bench", _envelope(seq))
                for seq in range(start, start + count)
            ]
        return {"events": count * len(prepared)}

    @app.post("/bench/publish", include_in_schema=False)
    async def publish(spec: dict[str, Any] = Body(...)) -> dict[str, float]:  # noqa: B008
        """The prepared events: ``batch`` per user per round, a loop turn after each round."""
        batch = int(spec["batch"])
        rounds = len(next(iter(prepared.values()), [])) // batch
        cpu = time.process_time()
        for r in range(rounds):
            for user, events in prepared.items():
                await netra.bus.publish(user, events[r * batch : (r + 1) * batch])
            await asyncio.sleep(0)
        return {"publish_cpu_s": time.process_time() - cpu}

    @app.get("/bench/sockets", include_in_schema=False)
    async def sockets() -> dict[str, int]:
        held, users = netra.sockets.counts()
        return {"sockets": held, "users": users}

    uvicorn.Server(uvicorn_config(app, settings)).run()


# --------------------------------------------------------------------------- client side


@dataclass
class Tally:
    violations: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str) -> None:
        self.violations[kind] = self.violations.get(kind, 0) + 1


class Client(asyncio.Protocol):
    """One socket: the upgrade, then unmasked server frames parsed by hand (cheap enough to
    keep up with the server on one core); pings answered; every event's seq checked."""

    def __init__(self, port: int, token: str, tally: Tally) -> None:
        self.request = (
            f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: bearer, {token}\r\n\r\n"
        ).encode()
        self.tally = tally
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.last_seq = 0
        self.events = 0
        self.target = 0
        self.done: asyncio.Future[None] | None = None
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(f"closed before connected: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self.connected.set_exception(ConnectionError(bytes(self.buffer[:40]).decode()))
                return
            del self.buffer[: end + 4]
            self.upgraded = True
        buffer, at, size = self.buffer, 0, len(self.buffer)
        while size - at >= 2:
            opcode, length, head = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, 2
            if length == 126:
                if size - at < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, at + 2)
                head = 4
            elif length == 127:
                if size - at < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, at + 2)
                head = 10
            if size - at < head + length:
                break
            payload = bytes(buffer[at + head : at + head + length])
            at += head + length
            self.frame(opcode, payload)
        del buffer[:at]

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            if not self.connected.done():
                frame = json.loads(payload)
                self.connected.set_result(frame["last_seq"])
                return
            mark = payload.find(b'"seq":')
            if mark < 0:
                return
            seq = int(payload[mark + 6 : payload.index(b",", mark)])
            if seq <= self.last_seq:
                self.tally.add("seq_repeated_or_back")
            elif seq != self.last_seq + 1:
                self.tally.add("seq_gap")
            self.last_seq = max(self.last_seq, seq)
            self.events += 1
            if self.done is not None and self.events >= self.target and not self.done.done():
                self.done.set_result(None)
        elif opcode == 0x9 and self.transport is not None:  # ping: a masked pong, mask 0
            self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        elif opcode == 0x8:
            self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
            if not self.connected.done():
                self.connected.set_exception(ConnectionError(f"closed {self.close_code}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.write(b"\x88\x82\0\0\0\0\x03\xe8")  # close 1000, masked
            self.transport.close()


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def sign_in(http: httpx.AsyncClient, index: int, run: str) -> tuple[str, str]:
    email = f"s{index}-{run}@example.com"
    answer = await http.post("/auth/register", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    user_id = answer.json()["id"]
    answer = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    return user_id, answer.json()["access_token"]


async def open_many(
    port: int, tokens: list[str], tally: Tally, concurrency: int
) -> tuple[list[Client], float]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    clients: list[Client] = []

    async def one(token: str) -> None:
        async with gate:
            _, client = await loop.create_connection(lambda: Client(port, token, tally), HOST, port)
            try:
                await asyncio.wait_for(client.connected, 30)
            except (ConnectionError, TimeoutError):
                tally.add("socket_refused")
                return
            clients.append(client)

    started = time.perf_counter()
    await asyncio.gather(*(one(token) for token in tokens))
    return clients, time.perf_counter() - started


async def wait_sockets(http: httpx.AsyncClient, count: int) -> None:
    for _ in range(1000):
        if (await http.get("/bench/sockets")).json()["sockets"] == count:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"the server never settled at {count} sockets")


async def measure(args: argparse.Namespace, port: int, server: psutil.Process) -> dict[str, Any]:
    tally = Tally()
    report: dict[str, Any] = {"load_before": load()}
    run = os.urandom(3).hex()
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", limits=limits, timeout=60, trust_env=False
    ) as http:
        gate = asyncio.Semaphore(32)

        async def signed(index: int) -> tuple[str, str]:
            async with gate:
                return await sign_in(http, index, run)

        users = await asyncio.gather(*(signed(i) for i in range(args.users)))
        ids, tokens = [u for u, _ in users], [t for _, t in users]
        await asyncio.sleep(1)
        rss0 = server.memory_info().rss

        cpu = cpu_s(server)
        firsts, wall = await open_many(port, tokens, tally, args.concurrency)
        cold_cpu = cpu_s(server) - cpu
        report["cold_accepts"] = {
            "sockets": len(firsts),
            "per_s": round(len(firsts) / wall),
            "server_cpu_ms_per_accept": round(1000 * cold_cpu / max(1, len(firsts)), 3),
            "load": load(),
        }
        cpu = cpu_s(server)
        more = tokens * (args.sockets_per_user - 1)
        others, wall = await open_many(port, more, tally, args.concurrency)
        warm_cpu = cpu_s(server) - cpu
        report["warm_accepts"] = {
            "sockets": len(others),
            "per_s": round(len(others) / max(wall, 1e-9)),
            "server_cpu_ms_per_accept": round(1000 * warm_cpu / max(1, len(others)), 3),
            "load": load(),
        }
        total = len(firsts) + len(others)
        await wait_sockets(http, total)
        await asyncio.sleep(args.idle_s)
        rss1 = server.memory_info().rss
        report["idle"] = {
            "sockets": total,
            "rss_before_mib": round(rss0 / 2**20, 1),
            "rss_mib": round(rss1 / 2**20, 1),
            "rss_kb_per_socket": round((rss1 - rss0) / 1000 / max(1, total), 1),
            "load": load(),
        }

        for client in others:
            client.close()
        await wait_sockets(http, len(firsts))
        expected = args.rounds * args.batch
        loop = asyncio.get_running_loop()
        for client in firsts:
            client.target = client.events + expected
            client.done = loop.create_future()
        spec = {"users": ids, "count": expected, "after_seq": 0}
        (await http.post("/bench/prepare", json=spec)).raise_for_status()
        cpu = cpu_s(server)
        started = time.perf_counter()
        answer = await http.post("/bench/publish", json={"batch": args.batch})
        answer.raise_for_status()
        try:
            await asyncio.wait_for(asyncio.gather(*(c.done for c in firsts if c.done)), 120)
        except TimeoutError:
            tally.add("fanout_incomplete")
        wall = time.perf_counter() - started
        fan_cpu = cpu_s(server) - cpu
        delivered = sum(c.events for c in firsts)
        report["fanout"] = {
            "sockets": len(firsts),
            "events_per_socket": expected,
            "batch": args.batch,
            "delivered": delivered,
            "per_s": round(delivered / wall),
            "server_cpu_us_per_event": round(1e6 * fan_cpu / max(1, delivered), 2),
            "publish_cpu_s": round(answer.json()["publish_cpu_s"], 3),
            "closed_early": sum(1 for c in firsts if c.close_code is not None),
            "load": load(),
        }
        for client in firsts:
            client.close()
    report["violations"] = tally.violations
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--sockets-per-user", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes in flight")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1, help="events per user per publish")
    parser.add_argument("--idle-s", type=float, default=2.0)
    parser.add_argument(
        "--session-cache-s",
        type=float,
        help="the server's auth.session_cache_s (0: every socket reads its session)",
    )
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        os.sched_setaffinity(0, {0})
        serve(int(args.serve[0]), Path(args.serve[1]), args.session_cache_s)
        return 0
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    data_dir = Path(tempfile.mkdtemp(prefix="netra-sockets-"))
    cache = [] if args.session_cache_s is None else ["--session-cache-s", str(args.session_cache_s)]
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(data_dir), *cache],
        env={k: v for k, v in os.environ.items() if not k.startswith("NETRA_")},
    )
    try:
        os.sched_setaffinity(0, {1})
        with httpx.Client(trust_env=False) as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"http://{HOST}:{port}/health").status_code == 200:
                        break
                time.sleep(0.05)
        import uvloop

        report = uvloop.run(measure(args, port, psutil.Process(child.pid)))
        report["machine"] = {"cores": os.cpu_count(), "server_core": 0, "client_core": 1}
        print(json.dumps(report, indent=2))
        return 1 if report["violations"] else 0
    finally:
        child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(10)
        child.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
