#!/usr/bin/env python3
"""Load benchmark: N users, each streaming M agent runs over its own WebSocket.

Starts a real Netra server (`python -m netra serve`) on 127.0.0.1 with a throwaway data dir,
registers and logs in the users, opens one `/ws` socket per user and has every user send its
messages concurrently, each run waited on until its `agent_completed`. It measures latencies
on the client, the server's RSS and CPU, and checks the delivery contract on every frame
(own runs only, seq strictly increasing, `agent_started` first, one `agent_completed` last,
nothing lost against `GET /events`). A benchmark that silently measures a broken system is
worthless, so every violation is counted and any violation makes the exit status 1.

One JSON object goes to stdout; progress and diagnostics go to stderr.

    python bench/load.py --users 20 --runs 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import secrets
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from checks import DELIVERY_VIOLATIONS, Violations, check_delivery
from client import open_ws, sign_up
from machine import machine_info
from processes import HOST, ServerProcess, SetupError, tree_cpu, tree_rss
from server_env import CHUNK_DELAY_ENV, UNLIMITED_TIER_ENV
from stats import summarize

JsonObject = dict[str, Any]

TOOL_PROMPT = "what is 12*7?"
"""Asks for what the calculator does, so the offline model calls it."""
PLAIN_PROMPT = "hello there!"
"""A greeting: the offline model answers without a tool."""
TOOL_RESULT = "84"
HTTP_TIMEOUT_S = 30.0
DRAIN_S = 0.5
"""After the load, keep reading this long to catch events sent after `agent_completed`."""
SAMPLE_INTERVAL_S = 0.1
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Where `--instances K>1` without `--database-url` creates (and drops) its throwaway database."""
RUN_EVENT_TYPES = frozenset(
    {
        "agent_started",
        "agent_thinking",
        "message_delta",
        "tool_executing",
        "tool_completed",
        "approval_required",
        "agent_completed",
    }
)
"""The types bound by a run's order: `agent_started` first, `agent_completed` last."""
ENVELOPE_KEYS = ("type", "seq", "event_id", "thread_id", "run_id", "agent", "ts", "data")

VIOLATIONS = (
    "error_frames",
    "socket_closed",
    "bad_frame",
    "bad_envelope",
    "wrong_subprotocol",
    "wrong_user_id",
    "seq_not_increasing",
    "duplicate_event_id",
    "unexpected_ack",
    "duplicate_ack",
    "ack_wrong_thread",
    "foreign_run_event",
    "foreign_thread_event",
    "event_wrong_thread",
    "first_event_not_agent_started",
    "duplicate_agent_started",
    "duplicate_agent_completed",
    "event_after_agent_completed",
    "outcome_not_completed",
    "tool_unpaired",
    "tool_error",
    "tool_wrong_result",
    "expected_tool_call_missing",
    "run_stalled",
    *DELIVERY_VIOLATIONS,
    "http_send_failed",
    "server_exited",
)
"""Every correctness check; each key is always present in the report's `errors`."""


@dataclass
class Run:
    """One `send_message` and the run it started, as seen by the client."""

    user: int
    index: int
    kind: str
    """`tool` (calculator prompt) or `plain` (greeting)."""
    client_msg_id: str
    sent_thread_id: str | None
    via: int | None = None
    """Instance the run was posted to over HTTP (`POST /threads/{id}/runs`); None: the socket."""
    t_send: float = 0.0
    t_ack: float | None = None
    t_started: float | None = None
    t_completed: float | None = None
    run_id: str | None = None
    thread_id: str | None = None
    events: int = 0
    started: bool = False
    completed: bool = False
    failed: bool = False
    """An error frame answered the send; no run to wait for."""
    order_flagged: bool = False
    outcome: str | None = None
    open_tool_calls: set[str] = field(default_factory=set)
    tool_results: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Session:
    """One user: credentials, its socket and everything received on it."""

    index: int
    email: str
    password: str
    home: int = 0
    """Instance holding this user's socket and answering its HTTP calls."""
    user_id: str = ""
    token: str = ""
    ws: ClientConnection | None = None
    connected_last_seq: int = 0
    last_seq: int = 0
    runs_by_cmid: dict[str, Run] = field(default_factory=dict)
    runs_by_id: dict[str, Run] = field(default_factory=dict)
    pending: dict[str, list[tuple[JsonObject, float]]] = field(default_factory=dict)
    """Events of run ids not acked yet (an event may overtake its ack)."""
    threads: set[str] = field(default_factory=set)
    received: dict[int, str] = field(default_factory=dict)
    """seq -> event_id of every envelope received on the socket."""
    runless: list[tuple[int, str | None]] = field(default_factory=list)
    """(seq, thread_id) of envelopes without a run id, checked once all acks are in."""
    closing: bool = False
    dead: bool = False


@dataclass
class Totals:
    """Counters shared by all sessions."""

    events: int = 0
    events_in_window: int = 0
    completed: int = 0
    sent: int = 0
    seq_gaps: int = 0
    ack_after_agent_started: int = 0
    cross_instance: int = 0
    """Runs posted over HTTP to an instance other than the one holding the user's socket."""
    window_end: float | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    event_types: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)


# --------------------------------------------------------------------------- the load


class LoadBench:
    def __init__(
        self, args: argparse.Namespace, servers: list[ServerProcess], deadline: float
    ) -> None:
        self.args = args
        self.servers = servers
        self.http: list[httpx.AsyncClient] = []
        """One client per instance, index = `Session.home` / `Run.via`."""
        self.deadline = deadline
        self.violations = Violations(VIOLATIONS)
        self.totals = Totals()
        self.stop_event = asyncio.Event()
        tag = uuid.uuid4().hex[:8]
        self.sessions: list[Session] = [
            Session(
                index=i,
                email=f"bench-{tag}-{i}@example.com",
                password=f"bench-password-{tag}-{i}",
                home=i % len(servers),
            )
            for i in range(args.users)
        ]

    # ---- setup

    async def sign_in(self, http: httpx.AsyncClient, session: Session) -> None:
        session.user_id, session.token = await sign_up(http, session.email, session.password)

    async def open_socket(self, session: Session) -> None:
        url = f"ws://{HOST}:{self.servers[session.home].port}/ws"
        ws, frame = await open_ws(url, session.token, f"user {session.index}")
        session.ws = ws
        if ws.subprotocol != "bearer":
            self.violations.add(
                "wrong_subprotocol", f"user {session.index}: server chose {ws.subprotocol!r}"
            )
        if session.user_id and frame.get("user_id") != session.user_id:
            self.violations.add(
                "wrong_user_id",
                f"user {session.index}: connected.user_id={frame.get('user_id')!r}, "
                f"registered id {session.user_id!r}",
            )
        last_seq = frame.get("last_seq")
        session.connected_last_seq = session.last_seq = last_seq if isinstance(last_seq, int) else 0

    # ---- receiving

    async def read_socket(self, session: Session) -> None:
        ws = session.ws
        assert ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self.on_frame(session, raw, time.perf_counter())
        if not session.closing:
            self.violations.add(
                "socket_closed",
                f"user {session.index}: closed by the server, code={ws.close_code} "
                f"reason={ws.close_reason!r}",
            )
        session.dead = True
        for run in session.runs_by_cmid.values():
            run.done.set()  # wake the lanes; their runs stay incomplete

    def on_frame(self, session: Session, raw: str | bytes, now: float) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            self.violations.add("bad_frame", f"user {session.index}: not JSON: {raw[:200]!r}")
            return
        if not isinstance(frame, dict):
            self.violations.add("bad_frame", f"user {session.index}: not an object: {raw[:200]!r}")
            return
        if "seq" in frame:
            self.on_event(session, frame, now)
            return
        kind = frame.get("type")
        if kind == "ack":
            self.on_ack(session, frame, now)
        elif kind == "error":
            code = str(frame.get("code"))
            self.totals.error_codes[code] += 1
            ref = frame.get("ref")
            self.violations.add(
                "error_frames",
                f"user {session.index}: code={code} message={frame.get('message')!r} ref={ref!r}",
            )
            run = session.runs_by_cmid.get(ref) if isinstance(ref, str) else None
            if run is not None and run.t_ack is None:
                run.failed = True
                run.done.set()
        elif kind == "pong":
            pass
        else:
            self.violations.add("bad_frame", f"user {session.index}: unknown frame {raw[:200]!r}")

    def on_ack(self, session: Session, frame: JsonObject, now: float) -> None:
        cmid = frame.get("client_msg_id")
        run = session.runs_by_cmid.get(cmid) if isinstance(cmid, str) else None
        if run is None:
            self.violations.add("unexpected_ack", f"user {session.index}: {frame!r}")
            return
        if run.via is not None:
            self.violations.add(
                "unexpected_ack",
                f"user {session.index}: socket ack for {cmid}, posted over HTTP to instance "
                f"{run.via}",
            )
            return
        self.apply_ack(session, run, frame, now)

    def apply_ack(self, session: Session, run: Run, ack: JsonObject, now: float) -> None:
        """An ack from the socket (`ack` frame) or from `POST /threads/{id}/runs` (202 body)."""
        if run.t_ack is not None:
            self.violations.add("duplicate_ack", f"user {session.index}: {run.client_msg_id}")
            return
        run.t_ack = now
        run.run_id = str(ack.get("run_id"))
        run.thread_id = str(ack.get("thread_id"))
        if run.sent_thread_id is not None and run.thread_id != run.sent_thread_id:
            self.violations.add(
                "ack_wrong_thread",
                f"user {session.index}: sent on {run.sent_thread_id}, ack says {run.thread_id}",
            )
        session.threads.add(run.thread_id)
        session.runs_by_id[run.run_id] = run
        early = session.pending.pop(run.run_id, [])
        if early:
            self.totals.ack_after_agent_started += 1
        for event, t in early:
            self.on_run_event(session, run, event, t)

    def on_event(self, session: Session, event: JsonObject, now: float) -> None:
        self.totals.events += 1
        if self.totals.window_end is None:
            self.totals.events_in_window += 1
        self.totals.event_types[str(event.get("type"))] += 1
        seq = event.get("seq")
        missing = [key for key in ENVELOPE_KEYS if key not in event]
        if missing or not isinstance(seq, int) or not isinstance(event.get("data"), dict):
            self.violations.add(
                "bad_envelope", f"user {session.index}: missing {missing}: {str(event)[:200]}"
            )
        if not isinstance(seq, int):
            return
        if seq <= session.last_seq:
            self.violations.add(
                "seq_not_increasing", f"user {session.index}: seq {seq} after {session.last_seq}"
            )
        elif seq != session.last_seq + 1:
            self.totals.seq_gaps += 1
        session.last_seq = max(session.last_seq, seq)
        event_id = str(event.get("event_id"))
        if seq in session.received:
            self.violations.add("duplicate_event_id", f"user {session.index}: seq {seq} twice")
        session.received[seq] = event_id
        run_id = event.get("run_id")
        if run_id is None:
            thread_id = event.get("thread_id")
            session.runless.append((seq, thread_id if isinstance(thread_id, str) else None))
            return
        run = session.runs_by_id.get(str(run_id))
        if run is None:
            session.pending.setdefault(str(run_id), []).append((event, now))
        else:
            self.on_run_event(session, run, event, now)

    def on_run_event(self, session: Session, run: Run, event: JsonObject, now: float) -> None:
        kind = event.get("type")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        where = f"user {session.index} run {run.run_id} ({run.kind})"
        if event.get("thread_id") != run.thread_id:
            self.violations.add(
                "event_wrong_thread", f"{where}: {kind} on thread {event.get('thread_id')}"
            )
        if kind not in RUN_EVENT_TYPES:
            return  # e.g. run_queued: about the run, outside its started..completed order
        if run.completed:
            name = (
                "duplicate_agent_completed"
                if kind == "agent_completed"
                else "event_after_agent_completed"
            )
            self.violations.add(name, f"{where}: {kind} seq {event.get('seq')}")
            return
        run.events += 1
        if kind == "agent_started":
            if run.started:
                self.violations.add("duplicate_agent_started", where)
            else:
                run.started = True
                run.t_started = now
        elif not run.started and not run.order_flagged:
            run.order_flagged = True
            self.violations.add("first_event_not_agent_started", f"{where}: first was {kind}")
        if kind == "tool_executing":
            call_id = str(data.get("tool_call_id"))
            if call_id in run.open_tool_calls:
                self.violations.add("tool_unpaired", f"{where}: {call_id} executing twice")
            run.open_tool_calls.add(call_id)
        elif kind == "tool_completed":
            self.on_tool_completed(run, data, where)
        elif kind == "agent_completed":
            self.on_run_completed(run, data, where, now)

    def on_tool_completed(self, run: Run, data: JsonObject, where: str) -> None:
        call_id = str(data.get("tool_call_id"))
        if call_id not in run.open_tool_calls:
            self.violations.add("tool_unpaired", f"{where}: {call_id} completed, never executing")
        run.open_tool_calls.discard(call_id)
        run.tool_results += 1
        if data.get("status") != "ok":
            self.violations.add("tool_error", f"{where}: {data.get('tool')} {data.get('error')}")
        elif run.kind == "tool" and TOOL_RESULT not in json.dumps(data.get("result")):
            self.violations.add(
                "tool_wrong_result", f"{where}: {data.get('tool')} -> {data.get('result')!r}"
            )

    def on_run_completed(self, run: Run, data: JsonObject, where: str, now: float) -> None:
        run.completed = True
        run.t_completed = now
        run.outcome = str(data.get("outcome"))
        self.totals.outcomes[run.outcome] += 1
        self.totals.completed += 1
        if run.outcome != "completed":
            self.violations.add(
                "outcome_not_completed", f"{where}: {run.outcome} error={data.get('error')}"
            )
        if run.open_tool_calls:
            self.violations.add("tool_unpaired", f"{where}: never completed {run.open_tool_calls}")
        if run.kind == "tool" and run.tool_results == 0 and run.outcome == "completed":
            self.violations.add("expected_tool_call_missing", where)
        run.done.set()

    # ---- sending

    async def lane(self, session: Session, indices: list[int]) -> None:
        """Send this lane's messages one after another, each after the previous completed."""
        ws = session.ws
        assert ws is not None
        thread_id: str | None = None
        for position, index in enumerate(indices):
            if session.dead or self.stop_event.is_set():
                return
            alternate = (index + session.index) % 2 == 0
            kind = "tool" if self.args.prompts == "tool" or alternate else "plain"
            content = TOOL_PROMPT if kind == "tool" else PLAIN_PROMPT
            run = Run(
                user=session.index,
                index=index,
                kind=kind,
                client_msg_id=f"bench-{session.index}-{index}-{uuid.uuid4().hex[:12]}",
                sent_thread_id=thread_id,
                via=self.cross_target(session, position),
            )
            session.runs_by_cmid[run.client_msg_id] = run
            self.totals.sent += 1
            if run.via is not None:
                if not await self.post_run(session, run, content):
                    return
            else:
                frame: JsonObject = {
                    "type": "send_message",
                    "content": content,
                    "client_msg_id": run.client_msg_id,
                }
                if thread_id is not None:
                    frame["thread_id"] = thread_id
                run.t_send = time.perf_counter()
                try:
                    await ws.send(json.dumps(frame))
                except ConnectionClosed:
                    return
            try:
                await asyncio.wait_for(run.done.wait(), self.args.run_timeout)
            except TimeoutError:
                self.violations.add(
                    "run_stalled",
                    f"user {session.index} run {run.run_id}: no agent_completed within "
                    f"{self.args.run_timeout} s (ack={run.t_ack is not None}, "
                    f"started={run.started}, events={run.events})",
                )
                return
            if thread_id is None and run.thread_id is not None:
                thread_id = run.thread_id
            if self.args.runs_per_thread and (position + 1) % self.args.runs_per_thread == 0:
                thread_id = None

    def cross_target(self, session: Session, position: int) -> int | None:
        """The other instance this lane's `position`-th run is posted to, or None (socket).

        A share `s` of each lane's runs crosses, spread evenly (0.5: every second run); the
        targets rotate over the instances other than the user's home."""
        count = len(self.servers)
        share = self.args.cross_share
        if count < 2 or math.floor((position + 1) * share) <= math.floor(position * share):
            return None
        others = [i for i in range(count) if i != session.home]
        return others[(session.index + position) % len(others)]

    async def post_run(self, session: Session, run: Run, content: str) -> bool:
        """`POST /threads/{id}/runs` on instance `run.via`; its events reach the user's socket
        on another instance only through the bus. False (and a violation) if it failed."""
        assert run.via is not None
        http = self.http[run.via]
        headers = {"Authorization": f"Bearer {session.token}"}
        where = f"user {session.index} run {run.index} via instance {run.via}"
        try:
            if run.sent_thread_id is None:
                response = await http.post("/threads", json={}, headers=headers)
                if response.status_code != 201:
                    self.violations.add(
                        "http_send_failed",
                        f"{where}: POST /threads -> {response.status_code} {response.text[:200]}",
                    )
                    run.failed = True
                    return False
                run.sent_thread_id = str(response.json()["id"])
                session.threads.add(run.sent_thread_id)
            run.t_send = time.perf_counter()
            response = await http.post(
                f"/threads/{run.sent_thread_id}/runs",
                json={"content": content, "client_msg_id": run.client_msg_id},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            self.violations.add("http_send_failed", f"{where}: {exc!r}")
            run.failed = True
            return False
        now = time.perf_counter()
        if response.status_code != 202:
            self.violations.add(
                "http_send_failed",
                f"{where}: POST /threads/{{id}}/runs -> {response.status_code} "
                f"{response.text[:200]}",
            )
            run.failed = True
            return False
        ack = response.json()
        if ack.get("client_msg_id") != run.client_msg_id:
            self.violations.add("unexpected_ack", f"{where}: HTTP ack {ack!r}")
        self.totals.cross_instance += 1
        self.apply_ack(session, run, ack, now)
        return True

    # ---- measuring

    async def sample_rss(
        self, procs: list[psutil.Process], peaks: list[int], total_peak: list[int]
    ) -> None:
        """Per-instance peak RSS in `peaks`, peak of their sum in `total_peak[0]`."""
        while not self.stop_event.is_set():
            sizes = [tree_rss(proc) for proc in procs]
            for i, size in enumerate(sizes):
                peaks[i] = max(peaks[i], size)
            total_peak[0] = max(total_peak[0], sum(sizes))
            dead = [server for server in self.servers if not server.alive()]
            if dead:
                for server in dead:
                    self.violations.add(
                        "server_exited",
                        f"server {server.index} exited with status {server.returncode()}",
                    )
                self.stop_event.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), SAMPLE_INTERVAL_S)

    async def report_progress(self, t0: float, planned: int) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), 2.0)
            elapsed = time.perf_counter() - t0
            print(
                f"[bench] {elapsed:6.1f} s  runs {self.totals.completed}/{planned}  "
                f"events {self.totals.events}  violations {self.violations.total}",
                file=sys.stderr,
            )

    def check_leftovers(self, session: Session) -> None:
        for run_id, events in session.pending.items():
            for event, _ in events:
                self.violations.add(
                    "foreign_run_event",
                    f"user {session.index}: {event.get('type')} of run {run_id}, never acked here",
                )
        for seq, thread_id in session.runless:
            if thread_id is not None and thread_id not in session.threads:
                self.violations.add(
                    "foreign_thread_event", f"user {session.index}: seq {seq} on {thread_id}"
                )

    # ---- the whole thing

    async def run(self) -> JsonObject:
        setup: dict[str, float] = {}
        async with contextlib.AsyncExitStack() as stack:
            self.http = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=server.base_url, trust_env=False, timeout=HTTP_TIMEOUT_S
                    )
                )
                for server in self.servers
            ]
            t = time.perf_counter()
            gate = asyncio.Semaphore(8)

            async def sign_in(session: Session) -> None:
                async with gate:
                    await self.sign_in(self.http[session.home], session)

            await asyncio.gather(*(sign_in(s) for s in self.sessions))
            setup["sign_in_s"] = time.perf_counter() - t
            print(f"[bench] {len(self.sessions)} users signed in", file=sys.stderr)
            try:
                t = time.perf_counter()
                await asyncio.gather(*(self.open_socket(s) for s in self.sessions))
                setup["connect_s"] = time.perf_counter() - t
                print(f"[bench] {len(self.sessions)} sockets connected", file=sys.stderr)
                return await self.load(setup)
            finally:
                for session in self.sessions:
                    session.closing = True
                    if session.ws is not None:
                        await session.ws.close()

    async def load(self, setup: dict[str, float]) -> JsonObject:
        args = self.args
        procs = [psutil.Process(server.pid) for server in self.servers]
        me = psutil.Process()
        readers = [asyncio.create_task(self.read_socket(s)) for s in self.sessions]
        k = max(1, args.concurrency_per_user)
        lanes_plan = [
            (session, [i for i in range(args.runs) if i % k == lane])
            for session in self.sessions
            for lane in range(min(k, args.runs))
        ]
        planned = args.users * args.runs

        rss_before = [tree_rss(proc) for proc in procs]
        peaks = list(rss_before)
        total_peak = [sum(rss_before)]
        cpu_before = [tree_cpu(proc) for proc in procs]
        client_before = me.cpu_times()
        sampler = asyncio.create_task(self.sample_rss(procs, peaks, total_peak))

        t0 = time.perf_counter()
        progress = asyncio.create_task(self.report_progress(t0, planned))
        lanes = [asyncio.create_task(self.lane(s, idx)) for s, idx in lanes_plan]
        stop_wait = asyncio.create_task(self.stop_event.wait())
        while not stop_wait.done():
            busy = [lane for lane in lanes if not lane.done()]
            budget = self.deadline - time.monotonic()
            if not busy or budget <= 0:
                break
            await asyncio.wait(
                [*busy, stop_wait], timeout=budget, return_when=asyncio.FIRST_COMPLETED
            )
        t_end = time.perf_counter()
        self.totals.window_end = t_end
        cpu_after = [tree_cpu(proc) for proc in procs]
        client_after = me.cpu_times()
        stopped_by_deadline = any(not lane.done() for lane in lanes)
        for task in [*lanes, stop_wait]:
            task.cancel()
        await asyncio.gather(*lanes, stop_wait, return_exceptions=True)
        for lane in lanes:
            error = None if lane.cancelled() else lane.exception()
            if error is not None:
                raise error
        in_flight = sum(
            1
            for s in self.sessions
            for r in s.runs_by_cmid.values()
            if not r.completed and not r.failed
        )
        if stopped_by_deadline:
            print(f"[bench] duration limit reached; {in_flight} runs in flight", file=sys.stderr)

        await asyncio.sleep(DRAIN_S)  # late events after agent_completed still get caught
        rss_after = [tree_rss(proc) for proc in procs]
        self.stop_event.set()
        await asyncio.gather(sampler, progress)
        peaks = [max(peak, after) for peak, after in zip(peaks, rss_after, strict=True)]
        total_peak[0] = max(total_peak[0], sum(rss_after))

        for session in self.sessions:
            session.closing = True
            if session.ws is not None:
                await session.ws.close()
        await asyncio.gather(*readers, return_exceptions=True)

        for session in self.sessions:
            if self.servers[session.home].alive():
                await check_delivery(
                    self.http[session.home],
                    token=session.token,
                    after_seq=session.connected_last_seq,
                    received=session.received,
                    violations=self.violations,
                    who=f"user {session.index}",
                )
        for session in self.sessions:
            self.check_leftovers(session)

        runs = [r for s in self.sessions for r in s.runs_by_cmid.values()]
        # Runs that finished while draining are outside the measured window.
        completed = [r for r in runs if r.t_completed is not None and r.t_completed <= t_end]
        measured = [r for r in runs if r.t_completed is None or r.t_completed <= t_end]
        duration = t_end - t0
        cpu_ms = [
            (after - before) * 1000 for before, after in zip(cpu_before, cpu_after, strict=True)
        ]
        server_cpu_ms = sum(cpu_ms)
        client_cpu_ms = (
            client_after.user + client_after.system - client_before.user - client_before.system
        ) * 1000
        per_run = len(completed) or None
        mib = 1024 * 1024

        def latency(runs: list[Run], attr: str) -> dict[str, float | None]:
            values = [
                (getattr(r, attr) - r.t_send) * 1000 for r in runs if getattr(r, attr) is not None
            ]
            return summarize(values)

        return {
            "benchmark": "load",
            "machine": machine_info(),
            "params": {
                "users": args.users,
                "runs_per_user": args.runs,
                "concurrency_per_user": k,
                "duration_limit_s": args.duration_limit,
                "run_timeout_s": args.run_timeout,
                "chunk_delay_ms": args.chunk_delay_ms,
                "prompts": {"tool": TOOL_PROMPT, "plain": PLAIN_PROMPT, "mix": args.prompts},
                "server_command": " ".join(["python", *self.servers[0].command[1:]]),
                "server_env": sorted(args.server_env),
                "instances": len(self.servers),
                "cross_share": args.cross_share if len(self.servers) > 1 else 0.0,
            },
            "instances": len(self.servers),
            "database": self.args.database_kind,
            "bus": "redis" if self.args.redis_url else "in-process",
            "runs": len(completed),
            "runs_planned": planned,
            "runs_sent": len(runs),
            "duration_s": round(duration, 3),
            "runs_per_s": round(len(completed) / duration, 2) if duration > 0 else None,
            "runs_cross_instance": self.totals.cross_instance,
            "events": self.totals.events_in_window,
            "events_per_s": (
                round(self.totals.events_in_window / duration, 1) if duration > 0 else None
            ),
            "latency_ms": {
                "ack": latency(measured, "t_ack"),
                "agent_started": latency(measured, "t_started"),
                "agent_completed": latency(measured, "t_completed"),
                "agent_completed_tool": latency(
                    [r for r in measured if r.kind == "tool"], "t_completed"
                ),
                "agent_completed_plain": latency(
                    [r for r in measured if r.kind == "plain"], "t_completed"
                ),
            },
            "server": {
                "rss_mb_before": round(sum(rss_before) / mib, 1),
                "rss_mb_peak": round(total_peak[0] / mib, 1),
                "rss_mb_after": round(sum(rss_after) / mib, 1),
                "cpu_ms_per_run": round(server_cpu_ms / per_run, 3) if per_run else None,
                "cpu_s": round(server_cpu_ms / 1000, 3),
                "cpu_cores_busy": round(server_cpu_ms / 1000 / duration, 2) if duration else None,
                "startup_s": round(max(s.startup_s or 0.0 for s in self.servers), 3),
            },
            "servers": [
                {
                    "instance": server.index,
                    "port": server.port,
                    "users": sum(1 for s in self.sessions if s.home == server.index),
                    "rss_mb_before": round(rss_before[i] / mib, 1),
                    "rss_mb_peak": round(peaks[i] / mib, 1),
                    "rss_mb_after": round(rss_after[i] / mib, 1),
                    "cpu_s": round(cpu_ms[i] / 1000, 3),
                    "cpu_cores_busy": round(cpu_ms[i] / 1000 / duration, 2) if duration else None,
                    "startup_s": round(server.startup_s or 0.0, 3),
                }
                for i, server in enumerate(self.servers)
            ],
            "client": {
                "cpu_ms_per_run": round(client_cpu_ms / per_run, 3) if per_run else None,
                "cpu_cores_busy": round(client_cpu_ms / 1000 / duration, 2) if duration else None,
                **{key: round(value, 3) for key, value in setup.items()},
            },
            "notes": {
                "stopped_by_deadline": stopped_by_deadline,
                "in_flight_at_stop": in_flight,
                "outcomes": dict(self.totals.outcomes),
                "event_types": dict(self.totals.event_types.most_common()),
                "error_codes": dict(self.totals.error_codes),
                "seq_gaps": self.totals.seq_gaps,
                "ack_after_agent_started": self.totals.ack_after_agent_started,
            },
            "errors": dict(self.violations.counts),
            "errors_total": self.violations.total,
        }


# --------------------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Netra load benchmark: N users x M runs over WebSockets (JSON on stdout)."
    )
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument("--runs", type=int, default=10, help="runs per user (default 10)")
    parser.add_argument(
        "--concurrency-per-user",
        type=int,
        default=1,
        help="runs kept in flight per user, each lane on its own thread (default 1)",
    )
    parser.add_argument(
        "--duration-limit",
        type=float,
        default=300.0,
        help="stop and report after this many seconds in total (default 300)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=60.0,
        help="a run without agent_completed after this many seconds is a violation (default 60)",
    )
    parser.add_argument(
        "--prompts",
        choices=("mixed", "tool"),
        default="mixed",
        help="mixed (default): the calculator question and a greeting in turn; tool: the"
        " calculator question only (the workload of bench/compare.py)",
    )
    parser.add_argument(
        "--runs-per-thread",
        type=int,
        default=0,
        help="a lane starts a new thread after this many runs (default 0: all on one thread;"
        " compare.py's clients send 4 runs each, so 4 profiles its workload over longer loads)",
    )
    parser.add_argument(
        "--chunk-delay-ms",
        type=int,
        default=0,
        help="the offline model's pause between streamed words (server default 15, a UI nicety;"
        " 0 here so the server, not a sleep, is measured)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for the server (repeatable), e.g. tier limits",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="Netra server processes sharing one PostgreSQL database and one Redis bus; users"
        " are spread round-robin (default 1: one server on SQLite with the in-process bus)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL URL shared by the instances (postgresql://... is run on asyncpg);"
        " default with --instances > 1 or --scale-out: a throwaway database netra_bench_<hex>"
        f" created through {DEFAULT_PG_ADMIN_URL} (see --pg-admin-url) and dropped at the end",
    )
    parser.add_argument(
        "--redis-url",
        help=f"Redis of the scale-out event bus (default {DEFAULT_REDIS_URL} with"
        " --instances > 1 or --scale-out); a unique channel prefix is used per benchmark",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=DEFAULT_PG_ADMIN_URL,
        help="where the throwaway database is created and dropped (default %(default)s)",
    )
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="PostgreSQL + Redis even with --instances 1 (implied by --instances > 1,"
        " --database-url or --redis-url)",
    )
    parser.add_argument(
        "--cross-share",
        type=float,
        default=0.5,
        help="with --instances > 1, the share of each user's runs posted over HTTP to another"
        " instance than the one holding its socket, so their events cross Redis (default 0.5:"
        " every second run)",
    )
    args = parser.parse_args(argv)
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    if not 0.0 <= args.cross_share <= 1.0:
        parser.error("--cross-share must be between 0 and 1")
    args.scale_out = bool(
        args.scale_out or args.instances > 1 or args.database_url or args.redis_url
    )
    if args.scale_out:
        args.redis_url = args.redis_url or DEFAULT_REDIS_URL
        if args.database_url:
            args.database_url = asyncpg_url(args.database_url)
            if not args.database_url.startswith("postgresql"):
                parser.error("--database-url must be a PostgreSQL URL")
    args.database_kind = "postgresql" if args.scale_out else "sqlite"
    if args.users < 1 or args.runs < 1 or args.concurrency_per_user < 1:
        parser.error("--users, --runs and --concurrency-per-user must be at least 1")
    for item in args.server_env:
        if "=" not in item:
            parser.error(f"--server-env wants KEY=VALUE, got {item!r}")
    return args


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def asyncpg_url(url: str) -> str:
    """`postgresql://` / `postgres://` -> `postgresql+asyncpg://` (the server's driver)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url[len(scheme) :]
    return url


class ThrowawayDatabase:
    """`netra_bench_<hex>` on the local PostgreSQL, created for one benchmark and dropped."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"netra_bench_{secrets.token_hex(6)}"
        self.created = False

    @property
    def url(self) -> str:
        base = asyncpg_url(self.admin_url).rsplit("/", 1)[0]
        return f"{base}/{self.name}"

    async def _execute(self, sql: str) -> None:
        import asyncpg  # the server's own driver; only needed in scale-out mode

        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create(self) -> None:
        try:
            asyncio.run(self._execute(f'CREATE DATABASE "{self.name}"'))
        except Exception as exc:
            raise SetupError(f"cannot create database {self.name}: {exc!r}") from exc
        self.created = True

    def drop(self) -> None:
        if not self.created:
            return
        try:
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        except Exception as exc:
            print(f"[bench] could not drop database {self.name}: {exc!r}", file=sys.stderr)
        else:
            self.created = False


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    extra_env = {**UNLIMITED_TIER_ENV, CHUNK_DELAY_ENV: str(args.chunk_delay_ms)}
    throwaway: ThrowawayDatabase | None = None
    if args.scale_out:
        if not args.database_url:
            throwaway = ThrowawayDatabase(args.pg_admin_url)
            args.database_url = throwaway.url
        extra_env.update(
            {
                "NETRA_DATABASE__URL": args.database_url,
                "NETRA_REDIS__URL": args.redis_url,
                "NETRA_REDIS__CHANNEL_PREFIX": f"netra-bench-{secrets.token_hex(6)}",
                # One secret for all instances, so a token from one is valid on the others.
                "NETRA_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            }
        )
    extra_env.update(item.split("=", 1) for item in args.server_env)
    servers = [ServerProcess(extra_env, index=i) for i in range(args.instances)]
    bench: LoadBench | None = None
    failed_logs: list[str] = []
    try:
        if throwaway is not None:
            throwaway.create()
            print(f"[bench] created database {throwaway.name}", file=sys.stderr)
        first, rest = servers[0], servers[1:]
        print(f"[bench] starting server 0 on {first.base_url}", file=sys.stderr)
        first.start()  # runs the migrations before the others start
        print(f"[bench] server 0 ready in {first.startup_s:.2f} s", file=sys.stderr)
        for server in rest:
            print(f"[bench] starting server {server.index} on {server.base_url}", file=sys.stderr)
            server.launch()
        for server in rest:
            server.wait_ready()
            print(
                f"[bench] server {server.index} ready in {server.startup_s:.2f} s",
                file=sys.stderr,
            )

        async def go() -> JsonObject:
            nonlocal bench
            bench = LoadBench(args, servers, started + args.duration_limit)
            return await bench.run()

        report = asyncio.run(go())
        for server in servers:
            server.stop()
        shutdowns = [round(s.shutdown_s, 3) if s.shutdown_s is not None else None for s in servers]
        exit_codes = [s.exit_code for s in servers]
        report["server"]["shutdown_s"] = max((t for t in shutdowns if t is not None), default=None)
        report["server"]["exit_code"] = exit_codes[0] if len(set(exit_codes)) == 1 else exit_codes
        log_totals = dict.fromkeys(("warning", "error", "critical", "traceback"), 0)
        log_examples: list[str] = []
        for server, detail, shutdown in zip(servers, report["servers"], shutdowns, strict=True):
            detail["shutdown_s"] = shutdown
            detail["exit_code"] = server.exit_code
            counts, examples = server.log_problems()
            detail["log"] = counts
            for name, count in counts.items():
                log_totals[name] += count
            log_examples += [f"[{server.index}] {line}" for line in examples]
        report["notes"]["server_log"] = log_totals
        if log_examples:
            print("[bench] server logged problems:", file=sys.stderr)
            for line in log_examples[:20]:
                print(f"  {line}", file=sys.stderr)
    except SetupError as exc:
        print(f"[bench] setup failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("[bench] interrupted; stopping the servers", file=sys.stderr)
        return 130
    finally:
        if bench is not None and bench.violations.total:
            failed_logs = [server.logs() for server in servers]
        for server in servers:
            server.cleanup()
        if throwaway is not None:
            throwaway.drop()
    assert bench is not None
    if bench.violations.total:
        print(f"[bench] {bench.violations.total} correctness violations:", file=sys.stderr)
        for line in bench.violations.examples:
            print(f"  {line}", file=sys.stderr)
        for logs in failed_logs:
            print(logs, file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 1 if bench.violations.total else 0


if __name__ == "__main__":
    sys.exit(main())
