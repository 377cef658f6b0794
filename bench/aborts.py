"""Hostile clients: sockets that vanish mid-run without a close frame, one after another.

Starts a real ``netra serve`` (SQLite, offline model), signs a user up, then N times: open
``/ws``, send a message, abort the TCP connection (no close frame: a closed laptop lid). Every
``--every`` cycles it times ``GET /health`` and reads the server's RSS. Prints JSON: the
health latencies, RSS at the start and end, and the machine. A server that stalls on dropped
peers shows it here as a health latency that grows or a request that times out.

    python bench/aborts.py --cycles 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

import httpx
import psutil
from websockets.asyncio.client import connect

from machine import machine_info
from processes import ServerProcess, tree_rss


async def bench(cycles: int, every: int) -> dict[str, object]:
    server = ServerProcess({"NETRA_MODELS__OFFLINE_CHUNK_DELAY_MS": "5"})
    server.start()
    process = psutil.Process(server.pid)
    health_ms: list[float] = []
    rss: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
            email = f"aborts-{uuid.uuid4().hex[:8]}@example.com"
            body = {"email": email, "password": "correct horse battery"}
            (await http.post("/auth/register", json=body)).raise_for_status()
            token = (await http.post("/auth/login", json=body)).json()["access_token"]
            ws_url = server.base_url.replace("http", "ws") + "/ws"
            for cycle in range(cycles):
                async with connect(ws_url, subprotocols=["bearer", token]) as socket:  # type: ignore[list-item]
                    await socket.recv()  # connected
                    await socket.send(
                        json.dumps({"type": "send_message", "content": f"hello {cycle}"})
                    )
                    socket.transport.abort()
                if cycle % every == 0 or cycle == cycles - 1:
                    started = time.perf_counter()
                    (await http.get("/health")).raise_for_status()
                    health_ms.append((time.perf_counter() - started) * 1000)
                    rss.append(tree_rss(process))
    finally:
        server.cleanup()
    return {
        "bench": "aborts",
        "cycles": cycles,
        "health_ms": {
            "median": round(statistics.median(health_ms), 2),
            "max": round(max(health_ms), 2),
            "last": round(health_ms[-1], 2),
        },
        "rss_mib": {"first": round(rss[0] / 2**20, 1), "last": round(rss[-1] / 2**20, 1)},
        "load_average": os.getloadavg(),
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50, help="cycles between health checks")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.cycles, args.every)), indent=2))


if __name__ == "__main__":
    main()
