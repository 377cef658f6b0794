"""The event path: how many persisted events one Netra process delivers, and how late.

Two measurements, each on a fresh server pinned to the server core, each with the raw uvicorn
WebSocket server (raw_ws.py) measured the same way right after it:

- **burst**: ``sockets`` users (1,000), one socket each, each running ``runs_per_socket``
  (2) runs of "count to 10000", the offline model pausing 32 ms between words: just over
  the bridge's 30 ms coalescing window (``DELTA_WINDOW_S``), so every word is a
  ``message_delta`` of its own and 1,000 × 2 / 32 ms ≈ 62k events/s are offered, more than
  the target of 40k. Measured once every run has started: envelopes delivered per second
  over ``window_s``, the server's CPU per delivered event. The raw server's sockets stream
  envelopes as fast as they are read.
- **paced**: one run per socket and a pause of 50 ms: 20 events/s per socket, 20k/s over
  1,000 sockets. Measured: the delivered rate and each event's latency, receive time minus
  the envelope's ``ts`` (one machine, one clock; ``ts`` is truncated to the millisecond, so
  a latency reads 0–1 ms high). The raw server pauses 50 ms between sends the same way.

A model that pauses after each word falls behind its pace when the server cannot keep up, so
the delivered rate, not the offered one, says whether the pace held. After the window Netra's
runs are cancelled (``cancel_run``) and each must end with one ``agent_completed``; the
checks of ``netra_streams.py`` hold on every frame, and every socket is compared with
``GET /events``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection

from checks import Violations
from client import open_ws
from machine import core_share, core_times
from netra_streams import NetraStreams
from processes import HOST, RawServer, ServerProcess, loop_cpu, tree_cpu
from server_env import CHEAP_PASSWORDS_ENV, CHUNK_DELAY_ENV, UNLIMITED_RUNS_ENV, UNLIMITED_TIER_ENV
from stats import median, ratio
from tally import Tally, read_into

JsonObject = dict[str, Any]

BURST_DELAY_MS = 32
"""Just over the bridge's 30 ms delta window: one message_delta per word."""
COUNT_TO = 10_000
"""Longer than any window: runs are cancelled, not finished."""
CONNECTS_IN_FLIGHT = 50
RAW_WARM_UP_S = 1.0
VIOLATIONS = ("socket_closed", "bad_frame", "seq_not_increasing", "server_exited")
"""What the raw server's sockets are checked for (Netra's: netra_streams.VIOLATIONS)."""


def netra_env(delay_ms: int) -> dict[str, str]:
    return {
        **UNLIMITED_TIER_ENV,
        **CHEAP_PASSWORDS_ENV,
        **UNLIMITED_RUNS_ENV,
        CHUNK_DELAY_ENV: str(delay_ms),
    }


async def measure_window(tally: Tally, pid: int, window_s: float, cpus: str | None) -> JsonObject:
    """Count what arrives over `window_s`, with the server's and this client's CPU, and how
    busy the server's core was in all (other processes on the machine use it too)."""
    server, me = psutil.Process(pid), psutil.Process()
    cpu0, loop0 = tree_cpu(server), loop_cpu(server)
    mine0, core0 = sum(me.cpu_times()[:2]), core_times(cpus)
    t0 = time.perf_counter()
    tally.start()
    await asyncio.sleep(window_s)
    tally.stop()
    elapsed = time.perf_counter() - t0
    cpu_s, loop_s = tree_cpu(server) - cpu0, loop_cpu(server) - loop0
    mine_s = sum(me.cpu_times()[:2]) - mine0
    core = core_share(core0, core_times(cpus))
    per_event = 1e6 / tally.events if tally.events else None
    return {
        **tally.report(elapsed),
        "server_cores_busy": round(cpu_s / elapsed, 2),
        "server_cpu_us_per_event": round(cpu_s * per_event, 1) if per_event else None,
        "server_loop_cpu_us_per_event": round(loop_s * per_event, 1) if per_event else None,
        "client_cores_busy": round(mine_s / elapsed, 2),
        **core,
    }


class EventPath:
    """Burst and paced, Netra then raw, `rounds` times; medians and ratios."""

    def __init__(
        self,
        *,
        rounds: int,
        sockets: int,
        runs_per_socket: int,
        paced_rate: int,
        window_s: float,
        cpus: str | None,
    ) -> None:
        self.rounds = rounds
        self.sockets = sockets
        self.runs_per_socket = runs_per_socket
        self.paced_delay_ms = round(sockets * 1000 / paced_rate)
        self.paced_rate = paced_rate
        self.window_s = window_s
        self.cpus = cpus
        self.results: list[JsonObject] = []
        self.violations = 0
        self.problems: list[str] = []

    def run(self) -> JsonObject:
        plans = (
            ("burst", self.runs_per_socket, BURST_DELAY_MS),
            ("paced", 1, self.paced_delay_ms),
        )
        for index in range(self.rounds):
            for mode, runs, delay in plans:
                for server in ("netra", "raw"):
                    print(
                        f"[bench] events: round {index + 1}/{self.rounds}, {mode}, {server}",
                        file=sys.stderr,
                    )
                    go = self._netra(runs, delay) if server == "netra" else self._raw(mode, delay)
                    result, violations = asyncio.run(go)
                    self.violations += violations.total
                    self.problems += [f"{server} {mode}: {x}" for x in violations.examples]
                    self.results.append({"round": index, "mode": mode, "server": server, **result})
        return {
            "workload": {
                "sockets": self.sockets,
                "burst": {
                    "runs_per_socket": self.runs_per_socket,
                    "chunk_delay_ms": BURST_DELAY_MS,
                    "prompt": f"count to {COUNT_TO}",
                },
                "paced": {
                    "rate_per_s": self.paced_rate,
                    "chunk_delay_ms": self.paced_delay_ms,
                    "runs_per_socket": 1,
                },
                "window_s": self.window_s,
                "netra_env": {k: v for k, v in netra_env(0).items() if k != CHUNK_DELAY_ENV},
            },
            "summary": self.summary(),
            "rounds": self.results,
        }

    def summary(self) -> JsonObject:
        def compare(mode: str, key: str) -> JsonObject:
            picked = {
                server: [
                    r.get(key) for r in self.results if (r["mode"], r["server"]) == (mode, server)
                ]
                for server in ("netra", "raw")
            }
            netra, raw = median(picked["netra"]), median(picked["raw"])
            return {
                "netra": netra,
                "raw_uvicorn": raw,
                "ratio": ratio(netra, raw),
                "netra_each": picked["netra"],
                "raw_uvicorn_each": picked["raw"],
            }

        return {
            "burst_events_per_s": compare("burst", "events_per_s"),
            "burst_server_cpu_us_per_event": compare("burst", "server_cpu_us_per_event"),
            "burst_server_loop_cpu_us_per_event": compare("burst", "server_loop_cpu_us_per_event"),
            "paced_delivered_per_s": compare("paced", "events_per_s"),
            "paced_latency_ms_p50": compare("paced", "latency_ms_p50"),
            "paced_latency_ms_p99": compare("paced", "latency_ms_p99"),
        }

    async def _raw(self, mode: str, delay_ms: int) -> tuple[JsonObject, Violations]:
        violations = Violations(VIOLATIONS)
        server = RawServer({}, cpus=self.cpus)
        opened: list[ClientConnection] = []
        readers: list[asyncio.Task[None]] = []
        tally = Tally()
        query = "mode=stream" if mode == "burst" else f"mode=paced&interval_ms={delay_ms}"
        gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)

        async def connect(index: int) -> None:
            async with gate:
                url = f"ws://{HOST}:{server.port}/ws?{query}"
                ws, _ = await open_ws(url, None, f"socket {index}")
            opened.append(ws)
            readers.append(asyncio.create_task(read_into(ws, tally, violations, str(index))))

        try:
            server.start()
            await asyncio.gather(*(connect(i) for i in range(self.sockets)))
            await asyncio.sleep(RAW_WARM_UP_S)
            result = await measure_window(tally, server.pid, self.window_s, self.cpus)
            if not server.alive():
                violations.add("server_exited", f"status {server.returncode()}")
        finally:
            for ws in opened:
                ws.transport.abort()  # no close handshake: the server may be mid-flood
            await asyncio.gather(*readers, return_exceptions=True)
            server.cleanup()
        offered = round(self.sockets * 1000 / delay_ms) if mode == "paced" else None
        return {"sockets": self.sockets, "offered_per_s": offered, **result}, violations

    async def _netra(self, runs_per_socket: int, delay_ms: int) -> tuple[JsonObject, Violations]:
        server = ServerProcess(netra_env(delay_ms), cpus=self.cpus)
        streams = NetraStreams(server, sockets=self.sockets, runs_per_socket=runs_per_socket)
        try:
            server.start()
            await streams.connect()
            started_s = await streams.start_runs(f"count to {COUNT_TO}")
            result = await measure_window(streams.tally, server.pid, self.window_s, self.cpus)
            await streams.finish()
        finally:
            await streams.close()
            if streams.violations.total:
                print(server.logs(), file=sys.stderr)
            server.cleanup()
        return {
            "sockets": self.sockets,
            "runs": self.sockets * runs_per_socket,
            "offered_per_s": round(self.sockets * runs_per_socket * 1000 / delay_ms),
            "all_runs_started_s": round(started_s, 2),
            **result,
            "phases_s": streams.phases_s,
        }, streams.violations
