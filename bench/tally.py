"""Event envelopes counted as they arrive over many sockets, and how late each one is."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from checks import Violations
from stats import summarize


class Tally:
    """What all sockets received while counting: envelopes, `message_delta`s, latencies.

    A latency is this machine's clock at receipt minus the envelope's `ts` (set by the server
    on the same clock, truncated to the millisecond)."""

    def __init__(self) -> None:
        self.counting = False
        self.events = 0
        self.deltas = 0
        self.latencies_ms: list[float] = []

    def start(self) -> None:
        self.events, self.deltas, self.latencies_ms = 0, 0, []
        self.counting = True

    def stop(self) -> None:
        self.counting = False

    def record(self, event: dict[str, Any], wall: float) -> None:
        if not self.counting:
            return
        self.events += 1
        if event.get("type") == "message_delta":
            self.deltas += 1
        ts = event.get("ts")
        if isinstance(ts, str):
            self.latencies_ms.append((wall - datetime.fromisoformat(ts).timestamp()) * 1000)

    def report(self, elapsed: float) -> dict[str, float | int | None]:
        latency = summarize(self.latencies_ms)
        return {
            "window_s": round(elapsed, 2),
            "events": self.events,
            "events_per_s": round(self.events / elapsed) if elapsed > 0 else None,
            "message_delta_per_s": round(self.deltas / elapsed) if elapsed > 0 else None,
            "latency_ms_p50": latency["p50"],
            "latency_ms_p99": latency["p99"],
            "latency_ms_max": latency["max"],
        }


async def read_into(ws: ClientConnection, tally: Tally, violations: Violations, who: str) -> None:
    """Read a socket until it closes: every envelope into the tally, its `seq` increasing.
    Violations known to the caller: socket_closed, bad_frame, seq_not_increasing."""
    last_seq = 0
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            wall = time.time()
            try:
                event = json.loads(raw)
                seq = event["seq"]
            except (ValueError, KeyError, TypeError):
                violations.add("bad_frame", f"socket {who}: {str(raw)[:200]}")
                continue
            if seq <= last_seq:
                violations.add("seq_not_increasing", f"socket {who}: {seq} after {last_seq}")
            last_seq = seq
            tally.record(event, wall)
    if tally.counting:
        violations.add("socket_closed", f"socket {who}: closed {ws.close_code} while counting")
