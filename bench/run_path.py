"""The run path, side by side: Netra and the LangGraph dev server on the same workload.

One run is "what is 12*7?" → one calculator call → the answer, 8 run events (Netra's offline
model; on the peer, the graph in bench/peer/). A round starts one server pinned to the
server core, times process start → ready, reads its RSS, warms it up with 2 runs, then
measures one client sending runs one after another and `clients` clients doing so at once
(each client on its own thread). Rounds alternate, Netra first: Netra, LangGraph, Netra,
LangGraph … `pairs` times; the summary gives each figure's median over the rounds of each
server and the ratio Netra / LangGraph.

Netra's side is ``load.py``'s LoadBench (every frame checked, sockets compared with
``GET /events``); the peer's is ``langgraph_load.py``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil

from langgraph_load import LangGraphLoad
from langgraph_peer import LangGraphServer
from load import parse_args as load_args
from load_bench import LoadBench
from processes import ServerProcess, tree_rss
from server_env import CHEAP_PASSWORDS_ENV, CHUNK_DELAY_ENV, UNLIMITED_TIER_ENV
from stats import median, ratio

JsonObject = dict[str, Any]

NETRA_ENV = {**UNLIMITED_TIER_ENV, **CHEAP_PASSWORDS_ENV, CHUNK_DELAY_ENV: "0"}
WARM_UP_RUNS = 2
RUN_TIMEOUT_S = 60.0
PHASE_LIMIT_S = 240.0
"""A phase (one load) is cut off after this long; its unfinished runs are violations."""
FIGURES = (
    "runs_per_s",
    "cpu_ms_per_run",
    "agent_started_ms_p50",
    "agent_started_ms_p99",
    "agent_completed_ms_p50",
    "agent_completed_ms_p99",
    "events_per_run",
)


def figures(load: JsonObject, planned: int) -> JsonObject:
    """The compared figures of one load's report (load.py's keys, or the peer's same keys);
    a planned run that did not complete counts as a violation."""
    runs = load["runs"]
    return {
        "runs": runs,
        "runs_missing": planned - runs,
        "runs_per_s": load["runs_per_s"],
        "cpu_ms_per_run": load["server"]["cpu_ms_per_run"],
        "server_cores_busy": load["server"]["cpu_cores_busy"],
        "client_cores_busy": load["client"]["cpu_cores_busy"],
        "agent_started_ms_p50": load["latency_ms"]["agent_started"]["p50"],
        "agent_started_ms_p99": load["latency_ms"]["agent_started"]["p99"],
        "agent_completed_ms_p50": load["latency_ms"]["agent_completed"]["p50"],
        "agent_completed_ms_p99": load["latency_ms"]["agent_completed"]["p99"],
        "events_per_run": round(load["events"] / runs, 2) if runs else None,
        "errors_total": load["errors_total"] + max(0, planned - runs),
    }


class RunPath:
    def __init__(
        self, *, pairs: int, clients: int, runs_one: int, runs_each: int, cpus: str | None
    ) -> None:
        self.pairs = pairs
        self.clients = clients
        self.runs_one = runs_one
        self.runs_each = runs_each
        self.cpus = cpus
        self.rounds: list[JsonObject] = []
        self.problems: list[str] = []
        """Descriptions of the violations seen, for stderr."""

    @property
    def violations(self) -> int:
        return sum(
            phase["errors_total"]
            for r in self.rounds
            for phase in (r["warm_up"], r["clients_1"], r["clients_many"])
        )

    def run(self) -> JsonObject:
        for pair in range(self.pairs):
            for side, go in (("netra", self._netra), ("langgraph", self._langgraph)):
                print(f"[bench] runs: pair {pair + 1}/{self.pairs}, {side}", file=sys.stderr)
                self.rounds.append({"pair": pair, "server": side, **go()})
        return {
            "workload": {
                "prompt": "what is 12*7?",
                "pairs": self.pairs,
                "clients": self.clients,
                "runs_one_client": self.runs_one,
                "runs_per_client": self.runs_each,
                "warm_up_runs": WARM_UP_RUNS,
                "netra_env": NETRA_ENV,
            },
            "summary": self.summary(),
            "rounds": self.rounds,
        }

    def summary(self) -> JsonObject:
        def compare(pick: Callable[[JsonObject], float | None]) -> JsonObject:
            ours = [pick(r) for r in self.rounds if r["server"] == "netra"]
            theirs = [pick(r) for r in self.rounds if r["server"] == "langgraph"]
            netra, peer = median(ours), median(theirs)
            return {
                "netra": netra,
                "langgraph": peer,
                "ratio": ratio(netra, peer),
                "netra_each": ours,
                "langgraph_each": theirs,
            }

        return {
            "start_to_ready_s": compare(lambda r: r["start_to_ready_s"]),
            "rss_mib_at_ready": compare(lambda r: r["rss_mib_at_ready"]),
            "clients_1": {key: compare(lambda r, k=key: r["clients_1"][k]) for key in FIGURES},
            f"clients_{self.clients}": {
                key: compare(lambda r, k=key: r["clients_many"][k]) for key in FIGURES
            },
        }

    def _start(self, server: ServerProcess) -> JsonObject:
        server.start()
        assert server.startup_s is not None
        return {
            "start_to_ready_s": round(server.startup_s, 3),
            "rss_mib_at_ready": round(tree_rss(psutil.Process(server.pid)) / 2**20, 1),
        }

    def _netra(self) -> JsonObject:
        server = ServerProcess(NETRA_ENV, cpus=self.cpus)
        seen = len(self.problems)
        try:
            started = self._start(server)
            return {
                **started,
                "warm_up": self._netra_load(server, 1, WARM_UP_RUNS),
                "clients_1": self._netra_load(server, 1, self.runs_one),
                "clients_many": self._netra_load(server, self.clients, self.runs_each),
            }
        finally:
            if len(self.problems) > seen:
                print(server.logs(), file=sys.stderr)
            server.cleanup()

    def _netra_load(self, server: ServerProcess, users: int, runs: int) -> JsonObject:
        options = ["--users", str(users), "--runs", str(runs), "--prompts", "tool"]
        args = load_args([*options, "--run-timeout", str(RUN_TIMEOUT_S)])
        bench = LoadBench(args, [server], time.monotonic() + PHASE_LIMIT_S)
        report = asyncio.run(bench.run())
        self.problems += [f"netra: {line}" for line in bench.violations.examples]
        return self._checked("netra", figures(report, users * runs))

    def _langgraph(self) -> JsonObject:
        server = LangGraphServer({}, cpus=self.cpus)
        seen = len(self.problems)
        try:
            started = self._start(server)
            return {
                **started,
                "warm_up": self._peer_load(server, 1, WARM_UP_RUNS),
                "clients_1": self._peer_load(server, 1, self.runs_one),
                "clients_many": self._peer_load(server, self.clients, self.runs_each),
            }
        finally:
            if len(self.problems) > seen:
                print(server.logs(), file=sys.stderr)
            server.cleanup()

    def _peer_load(self, server: ServerProcess, clients: int, runs: int) -> JsonObject:
        load = LangGraphLoad(server, clients=clients, runs=runs, run_timeout=RUN_TIMEOUT_S)
        report = asyncio.run(load.run())
        self.problems += [f"langgraph: {line}" for line in load.violations.examples]
        return self._checked("langgraph", figures(report, clients * runs))

    def _checked(self, side: str, phase: JsonObject) -> JsonObject:
        if phase["runs_missing"]:
            self.problems.append(f"{side}: {phase['runs_missing']} runs did not complete")
        return phase
