"""Many Netra users, one socket each, every one of them running long streaming runs.

The client side of the event-path benchmark (event_path.py): signs ``sockets`` users up,
opens one ``/ws`` each, sends ``runs_per_socket`` messages per socket (each on a new thread)
and reads every frame. Checked on every frame: ``seq`` strictly increasing per socket; each
run begins with ``agent_started``, its ``message_delta``s read "1 2 3 … k" (the offline
model counting: a lost, repeated or reordered delta breaks the sequence) and it ends with
exactly one ``agent_completed``, after which nothing of it arrives; no error frame, no
socket closed by the server. At the end every run is cancelled and must complete
(``cancelled``, or ``completed`` if it got there first), and each socket is compared with
``GET /events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from checks import DELIVERY_VIOLATIONS, Violations, check_delivery
from client import open_ws, sign_up
from processes import HOST, ServerProcess
from tally import Tally

JsonObject = dict[str, Any]

SIGN_UPS_IN_FLIGHT = 16
CONNECTS_IN_FLIGHT = 50
START_TIMEOUT_S = 180.0
"""Every run must have started (its `agent_started` received) within this."""
FINISH_TIMEOUT_S = 120.0
"""Every run must have ended (`agent_completed`) this long after it was cancelled."""
DRAIN_S = 0.5
VIOLATIONS = (
    "error_frames",
    "socket_closed",
    "bad_frame",
    "seq_not_increasing",
    "foreign_run_event",
    "first_event_not_agent_started",
    "duplicate_agent_started",
    "delta_out_of_order",
    "duplicate_agent_completed",
    "event_after_agent_completed",
    "unexpected_outcome",
    "runs_not_started",
    "runs_not_completed",
    *DELIVERY_VIOLATIONS,
    "server_exited",
)


@dataclass
class StreamRun:
    """One counting run as its socket saw it."""

    run_id: str
    started: bool = False
    completed: bool = False
    outcome: str | None = None
    next_number: int = 1
    """The next number its deltas must bring."""
    broken: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class UserSocket:
    index: int
    email: str
    password: str
    token: str = ""
    user_id: str = ""
    ws: ClientConnection | None = None
    connected_last_seq: int = 0
    last_seq: int = 0
    received: dict[int, str] = field(default_factory=dict)
    """seq -> event_id of every envelope received."""
    acked: set[str] = field(default_factory=set)
    """Run ids of this socket's own messages."""
    runs: dict[str, StreamRun] = field(default_factory=dict)
    closing: bool = False


class NetraStreams:
    def __init__(self, server: ServerProcess, *, sockets: int, runs_per_socket: int) -> None:
        self.server = server
        self.runs_per_socket = runs_per_socket
        tag = uuid.uuid4().hex[:8]
        self.users = [
            UserSocket(i, f"events-{tag}-{i}@example.com", f"events-password-{tag}-{i}")
            for i in range(sockets)
        ]
        self.tally = Tally()
        self.violations = Violations(VIOLATIONS)
        self.phases_s: dict[str, float] = {}
        """How long signing up, connecting, starting the runs and finishing took."""
        self._readers: list[asyncio.Task[None]] = []
        self._http = httpx.AsyncClient(base_url=server.base_url, trust_env=False, timeout=60)

    # ---- setting up

    async def connect(self) -> None:
        t0 = time.perf_counter()
        gate = asyncio.Semaphore(SIGN_UPS_IN_FLIGHT)

        async def sign(user: UserSocket) -> None:
            async with gate:
                user.user_id, user.token = await sign_up(self._http, user.email, user.password)

        await asyncio.gather(*(sign(u) for u in self.users))
        self.phases_s["sign_up"] = round(time.perf_counter() - t0, 2)
        print(f"[bench] {len(self.users)} users signed up", file=sys.stderr)
        t0 = time.perf_counter()
        gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)

        async def open_one(user: UserSocket) -> None:
            async with gate:
                url = f"ws://{HOST}:{self.server.port}/ws"
                user.ws, frame = await open_ws(url, user.token, f"user {user.index}")
            last_seq = frame.get("last_seq")
            user.connected_last_seq = user.last_seq = last_seq if isinstance(last_seq, int) else 0
            self._readers.append(asyncio.create_task(self._read(user)))

        await asyncio.gather(*(open_one(u) for u in self.users))
        self.phases_s["connect"] = round(time.perf_counter() - t0, 2)
        print(f"[bench] {len(self.users)} sockets open", file=sys.stderr)

    async def start_runs(self, prompt: str) -> float:
        """Send every socket's messages; seconds until every run's `agent_started` came."""
        t0 = time.perf_counter()
        for user in self.users:
            assert user.ws is not None
            for _ in range(self.runs_per_socket):
                frame = {"type": "send_message", "content": prompt, "client_msg_id": _id()}
                await user.ws.send(json.dumps(frame))
        planned = len(self.users) * self.runs_per_socket
        while time.perf_counter() - t0 < START_TIMEOUT_S:
            started = sum(1 for u in self.users for r in u.runs.values() if r.started)
            if started >= planned or not self.server.alive():
                break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - t0
        self.phases_s["start_runs"] = round(elapsed, 2)
        started = sum(1 for u in self.users for r in u.runs.values() if r.started)
        print(f"[bench] {started}/{planned} runs started in {elapsed:.1f} s", file=sys.stderr)
        if started < planned:
            self.violations.add(
                "runs_not_started",
                f"{planned - started} of {planned} within {START_TIMEOUT_S:.0f} s",
                count=planned - started,
            )
        return elapsed

    # ---- ending

    async def finish(self) -> None:
        """Cancel every run, wait for each to end, then compare the sockets with the log."""
        t0 = time.perf_counter()
        for user in self.users:
            assert user.ws is not None
            for run_id in sorted(user.acked):
                with contextlib.suppress(ConnectionClosed):
                    await user.ws.send(json.dumps({"type": "cancel_run", "run_id": run_id}))
        runs = [run for user in self.users for run in user.runs.values()]
        waiting = [asyncio.create_task(run.done.wait()) for run in runs]
        if waiting:
            await asyncio.wait(waiting, timeout=FINISH_TIMEOUT_S)
        for task in waiting:
            task.cancel()
        unfinished = [run.run_id for run in runs if not run.completed]
        if unfinished:
            self.violations.add(
                "runs_not_completed",
                f"{len(unfinished)} runs never got agent_completed (their socket closed, or "
                f"none came within {FINISH_TIMEOUT_S:.0f} s of cancel_run), e.g. {unfinished[:3]}",
                count=len(unfinished),
            )
        await asyncio.sleep(DRAIN_S)
        for user in self.users:
            foreign = set(user.runs) - user.acked
            if foreign:
                self.violations.add(
                    "foreign_run_event", f"user {user.index}: runs never acked {sorted(foreign)}"
                )
        if not self.server.alive():
            self.violations.add("server_exited", f"status {self.server.returncode()}")
            return
        await self._close_sockets()
        gate = asyncio.Semaphore(SIGN_UPS_IN_FLIGHT)

        async def compare(user: UserSocket) -> None:
            async with gate:
                await check_delivery(
                    self._http,
                    token=user.token,
                    after_seq=user.connected_last_seq,
                    received=user.received,
                    violations=self.violations,
                    who=f"user {user.index}",
                )

        await asyncio.gather(*(compare(u) for u in self.users))
        self.phases_s["finish"] = round(time.perf_counter() - t0, 2)

    async def close(self) -> None:
        await self._close_sockets()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self._http.aclose()

    async def _close_sockets(self) -> None:
        for user in self.users:
            user.closing = True
        await asyncio.gather(
            *(u.ws.close() for u in self.users if u.ws is not None), return_exceptions=True
        )

    # ---- receiving

    async def _read(self, user: UserSocket) -> None:
        ws = user.ws
        assert ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._on_frame(user, raw, time.time())
        if not user.closing:
            self.violations.add(
                "socket_closed",
                f"user {user.index}: code={ws.close_code} reason={ws.close_reason!r}",
            )
            for run in user.runs.values():
                run.done.set()

    def _on_frame(self, user: UserSocket, raw: str | bytes, wall: float) -> None:
        try:
            frame = json.loads(raw)
            kind = frame["type"]
        except (ValueError, KeyError, TypeError):
            self.violations.add("bad_frame", f"user {user.index}: {str(raw)[:200]}")
            return
        if "seq" in frame:
            self._on_event(user, frame, wall)
        elif kind == "ack":
            run_id = str(frame.get("run_id"))
            user.acked.add(run_id)
            user.runs.setdefault(run_id, StreamRun(run_id))
        elif kind == "error":
            self.violations.add(
                "error_frames", f"user {user.index}: {frame.get('code')} {frame.get('message')}"
            )
        elif kind not in ("cancel_accepted", "pong"):
            self.violations.add("bad_frame", f"user {user.index}: unexpected {str(raw)[:200]}")

    def _on_event(self, user: UserSocket, event: JsonObject, wall: float) -> None:
        seq = event["seq"]
        if not isinstance(seq, int) or seq <= user.last_seq:
            self.violations.add(
                "seq_not_increasing", f"user {user.index}: seq {seq} after {user.last_seq}"
            )
            return
        user.last_seq = seq
        user.received[seq] = str(event.get("event_id"))
        self.tally.record(event, wall)
        run_id = event.get("run_id")
        if run_id is None:
            return  # message_created, thread_updated: not part of a run's own order
        run = user.runs.get(run_id)
        if run is None:
            run = user.runs[run_id] = StreamRun(run_id)
        self._on_run_event(user, run, event)

    def _on_run_event(self, user: UserSocket, run: StreamRun, event: JsonObject) -> None:
        kind = event.get("type")
        where = f"user {user.index} run {run.run_id}"
        if run.completed:
            name = (
                "duplicate_agent_completed"
                if kind == "agent_completed"
                else ("event_after_agent_completed")
            )
            self.violations.add(name, f"{where}: {kind}")
            return
        if kind == "agent_started":
            if run.started:
                self.violations.add("duplicate_agent_started", where)
            run.started = True
            return
        if not run.started:
            run.started = True  # flagged once; the rest of the run is still checked
            self.violations.add("first_event_not_agent_started", f"{where}: first was {kind}")
        if kind == "message_delta":
            self._on_delta(run, str(event.get("data", {}).get("delta", "")), where)
        elif kind == "agent_completed":
            run.completed = True
            run.outcome = str(event.get("data", {}).get("outcome"))
            if run.outcome not in ("cancelled", "completed"):
                self.violations.add("unexpected_outcome", f"{where}: {event.get('data')}")
            run.done.set()

    def _on_delta(self, run: StreamRun, delta: str, where: str) -> None:
        if run.broken:
            return
        for word in delta.split():
            if word != str(run.next_number):
                run.broken = True
                self.violations.add(
                    "delta_out_of_order", f"{where}: {word!r} where {run.next_number} was due"
                )
                return
            run.next_number += 1


def _id() -> str:
    return f"ev-{uuid.uuid4().hex[:16]}"
