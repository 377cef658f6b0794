"""LoadBench: the load benchmark's client (``load.py`` runs it; ``run_path.py`` too).

It signs the users in, opens one socket per user, and has each user's lanes send their
messages one after another, each once the previous run completed — over the socket, or a
share of them over HTTP to another instance (``--cross-share``). Meanwhile it samples the
servers' RSS; afterwards it compares every socket with ``GET /events`` and reports latencies,
CPU and RSS, and every breach that ``LoadStreams`` counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
import uuid
from typing import Any

import httpx
import psutil
from websockets.exceptions import ConnectionClosed

from checks import Violations, check_delivery
from client import open_ws, sign_up
from load_streams import VIOLATIONS, LoadStreams, Run, Session, Totals
from machine import machine_info
from processes import HOST, ServerProcess, tree_cpu, tree_rss
from stats import summarize

JsonObject = dict[str, Any]

TOOL_PROMPT = "what is 12*7?"
"""Asks for what the calculator does, so the offline model calls it."""
PLAIN_PROMPT = "hello there!"
"""A greeting: the offline model answers without a tool."""
HTTP_TIMEOUT_S = 30.0
DRAIN_S = 0.5
"""After the load, keep reading this long to catch events sent after `agent_completed`."""
SAMPLE_INTERVAL_S = 0.1


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
        self.streams = LoadStreams(self.violations, self.totals)
        """The checks of every frame received."""
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
                self.streams.on_frame(session, raw, time.perf_counter())
        if not session.closing:
            self.violations.add(
                "socket_closed",
                f"user {session.index}: closed by the server, code={ws.close_code} "
                f"reason={ws.close_reason!r}",
            )
        session.dead = True
        for run in session.runs_by_cmid.values():
            run.done.set()  # wake the lanes; their runs stay incomplete

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
        self.streams.apply_ack(session, run, ack, now)
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
            self.streams.check_leftovers(session)

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
