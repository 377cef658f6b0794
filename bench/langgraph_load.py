"""The side-by-side workload against the LangGraph dev server, over its HTTP API.

Each client owns a thread (``POST /threads``) and sends its runs one after another: ``POST
/threads/{id}/runs/stream`` with the question and ``stream_mode`` custom and values, reading
the server-sent events until the stream ends (a thread takes its next run only then).
Measured as ``load.py`` measures Netra: send → the first custom event (``agent_started``,
Netra's first run event), send → ``agent_completed``, runs per second over the window (first
send → last stream end) and the server's CPU time (user + system, psutil) per run. The
report uses ``load.py``'s key names for these.

Checked on every run: HTTP 200, no ``error`` event, the graph's 8 custom events in Netra's
order, the calculator's result 84, an answer saying so in the final state, an end within the
time limit. Any violation makes the benchmark's exit status 1.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from checks import Violations
from processes import ServerProcess, tree_cpu
from stats import summarize

JsonObject = dict[str, Any]

PROMPT = "what is 12*7?"
RESULT = "84"
ASSISTANT = "agent"
"""The graph's id in bench/peer/langgraph.json."""
EXPECTED_CUSTOM = (
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_thinking",
    "message_delta",
    "message_delta",
    "agent_completed",
)
"""The custom events of one run: the run events Netra streams for the same question."""
VIOLATIONS = (
    "http_error",
    "error_event",
    "wrong_custom_events",
    "tool_wrong_result",
    "answer_missing",
    "run_stalled",
    "server_exited",
)


@dataclass
class PeerRun:
    """One run as the client saw it."""

    client: int
    index: int
    t_send: float = 0.0
    t_started: float | None = None
    t_completed: float | None = None
    t_end: float | None = None
    events: int = 0
    custom: list[JsonObject] = field(default_factory=list)
    values: JsonObject | None = None
    """The last `values` event: the thread's state."""


class LangGraphLoad:
    """`clients` concurrent clients, `runs` runs each, against one `langgraph dev`."""

    def __init__(
        self, server: ServerProcess, *, clients: int, runs: int, run_timeout: float
    ) -> None:
        self.server = server
        self.clients = clients
        self.runs = runs
        self.run_timeout = run_timeout
        self.violations = Violations(VIOLATIONS)
        self.done: list[PeerRun] = []

    async def run(self) -> JsonObject:
        limits = httpx.Limits(max_connections=self.clients + 4)
        async with httpx.AsyncClient(
            base_url=self.server.base_url,
            trust_env=False,
            timeout=httpx.Timeout(self.run_timeout),
            limits=limits,
        ) as http:
            threads = [await self._thread(http) for _ in range(self.clients)]
            process = psutil.Process(self.server.pid)
            me = psutil.Process()
            cpu_before, client_before = tree_cpu(process), me.cpu_times()
            t0 = time.perf_counter()
            await asyncio.gather(*(self._lane(http, i, t) for i, t in enumerate(threads)))
            duration = time.perf_counter() - t0
            cpu_s = tree_cpu(process) - cpu_before
            client_after = me.cpu_times()
        client_s = (
            client_after.user + client_after.system - client_before.user - client_before.system
        )
        completed = [r for r in self.done if r.t_end is not None]
        count = len(completed)

        def latency(attr: str) -> dict[str, float | None]:
            return summarize(
                [(getattr(r, attr) - r.t_send) * 1000 for r in completed if getattr(r, attr)]
            )

        return {
            "runs": count,
            "runs_planned": self.clients * self.runs,
            "duration_s": round(duration, 3),
            "runs_per_s": round(count / duration, 2) if duration > 0 else None,
            "events": sum(r.events for r in completed),
            "latency_ms": {
                "agent_started": latency("t_started"),
                "agent_completed": latency("t_completed"),
                "stream_end": latency("t_end"),
            },
            "server": {
                "cpu_ms_per_run": round(cpu_s * 1000 / count, 3) if count else None,
                "cpu_s": round(cpu_s, 3),
                "cpu_cores_busy": round(cpu_s / duration, 2) if duration > 0 else None,
            },
            "client": {"cpu_cores_busy": round(client_s / duration, 2) if duration > 0 else None},
            "errors": dict(self.violations.counts),
            "errors_total": self.violations.total,
        }

    async def _thread(self, http: httpx.AsyncClient) -> str:
        response = await http.post("/threads", json={})
        response.raise_for_status()
        return str(response.json()["thread_id"])

    async def _lane(self, http: httpx.AsyncClient, client: int, thread_id: str) -> None:
        for index in range(self.runs):
            run = PeerRun(client, index)
            try:
                ok = await asyncio.wait_for(self._one(http, thread_id, run), self.run_timeout)
            except TimeoutError:
                self.violations.add(
                    "run_stalled", f"client {client} run {index}: no end in {self.run_timeout} s"
                )
                ok = False
            except httpx.HTTPError as exc:
                self.violations.add("http_error", f"client {client} run {index}: {exc!r}")
                ok = False
            if not ok:
                if not self.server.alive():
                    self.violations.add("server_exited", f"status {self.server.returncode()}")
                return
            self._check(run)
            self.done.append(run)

    async def _one(self, http: httpx.AsyncClient, thread_id: str, run: PeerRun) -> bool:
        body = {
            "assistant_id": ASSISTANT,
            "input": {"messages": [{"role": "human", "content": PROMPT}]},
            "stream_mode": ["custom", "values"],
        }
        run.t_send = time.perf_counter()
        async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as reply:
            if reply.status_code != 200:
                text = (await reply.aread()).decode(errors="replace")
                self.violations.add(
                    "http_error", f"client {run.client}: {reply.status_code} {text[:200]}"
                )
                return False
            event, data = "", []
            async for line in reply.aiter_lines():
                if line:
                    field_name, _, value = line.partition(":")
                    if field_name == "event":
                        event = value.strip()
                    elif field_name == "data":
                        data.append(value.removeprefix(" "))
                    continue
                if data:
                    self._on_event(run, event, "\n".join(data), time.perf_counter())
                event, data = "", []
        run.t_end = time.perf_counter()
        return True

    def _on_event(self, run: PeerRun, event: str, data: str, now: float) -> None:
        run.events += 1
        if event == "error":
            self.violations.add("error_event", f"client {run.client}: {data[:200]}")
            return
        if event == "values":
            run.values = json.loads(data)
        elif event == "custom":
            payload = json.loads(data)
            run.custom.append(payload)
            kind = payload.get("type")
            if kind == "agent_started" and run.t_started is None:
                run.t_started = now
            elif kind == "agent_completed":
                run.t_completed = now

    def _check(self, run: PeerRun) -> None:
        where = f"client {run.client} run {run.index}"
        kinds = tuple(str(event.get("type")) for event in run.custom)
        if kinds != EXPECTED_CUSTOM:
            self.violations.add("wrong_custom_events", f"{where}: {kinds}")
        results = [e["data"] for e in run.custom if e.get("type") == "tool_completed"]
        if not results or any(
            r.get("status") != "ok" or RESULT not in json.dumps(r.get("result")) for r in results
        ):
            self.violations.add("tool_wrong_result", f"{where}: {results!r}")
        messages = (run.values or {}).get("messages") or [{}]
        answer = str(messages[-1].get("content", ""))
        if RESULT not in answer:
            self.violations.add("answer_missing", f"{where}: final answer {answer[:100]!r}")
