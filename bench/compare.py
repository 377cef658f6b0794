#!/usr/bin/env python3
"""Netra side by side with the LangGraph dev server and a raw uvicorn WebSocket server.

The LangGraph dev server on the run path, the raw server on the event path and the cost of
sockets: one command, one JSON object on stdout.

    .venv/bin/python bench/compare.py                 # everything, a few minutes
    .venv/bin/python bench/compare.py --only runs --pairs 5

Parts (``--only``, repeatable; default all):

- ``runs`` (run_path.py): Netra and ``langgraph dev`` (in-memory runtime) on the same run,
  interleaved in pairs: server CPU per run, runs/s at 1 and 50 clients, send →
  ``agent_started`` p50/p99, start → ready; medians and the ratio Netra / LangGraph.
- ``events`` (event_path.py): persisted events delivered per second to 1,000 sockets (runs
  streaming long answers), and a paced 20k events/s over 1,000 sockets (delivered rate,
  latency p99); the raw uvicorn server beside it.
- ``sockets`` (socket_costs.py): RSS per idle authenticated socket at 5,000 sockets, and
  socket accepts per second; the raw server beside it.

Protocol: every server pinned to core 0 (``taskset -c 0``), this client to core 1, the
offline model, everything inside one loopback-only network namespace (``unshare -n``, see
netns.py) so the LangGraph server cannot reach the internet. The peer is installed from PyPI
into bench/.peer/venv on first use, before entering the namespace. Progress goes to
stderr; any correctness violation (a run that does not complete, a missing or misordered
event) makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
from types import FrameType
from typing import Any

import langgraph_peer
import netns
from event_path import BURST_DELAY_MS, EventPath
from machine import load_average, machine_info
from processes import SetupError
from run_path import RunPath
from socket_costs import SocketCosts

JsonObject = dict[str, Any]

PARTS = ("runs", "events", "sockets")
SERVER_CPU = 0
CLIENT_CPU = 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable); default: all of them",
    )
    parser.add_argument(
        "--pairs", type=int, default=3, help="Netra/LangGraph round pairs of `runs` (default 3)"
    )
    parser.add_argument(
        "--clients", type=int, default=50, help="concurrent clients of `runs` (default 50)"
    )
    parser.add_argument(
        "--runs-one", type=int, default=10, help="runs of the single client (default 10)"
    )
    parser.add_argument(
        "--runs-per-client",
        type=int,
        default=4,
        help="runs of each of the concurrent clients (default 4)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of `events` and `sockets`, each Netra then the raw server (default 1)",
    )
    parser.add_argument(
        "--sockets", type=int, default=1000, help="sockets of `events` (default 1000)"
    )
    parser.add_argument(
        "--runs-per-socket",
        type=int,
        default=2,
        help=f"streaming runs per socket in the burst of `events` (default 2: with a"
        f" {BURST_DELAY_MS} ms pause per word, 62k events/s offered over 1,000 sockets)",
    )
    parser.add_argument(
        "--paced-rate",
        type=int,
        default=20_000,
        help="events/s over all sockets in the paced part of `events` (default 20000)",
    )
    parser.add_argument(
        "--window", type=float, default=10.0, help="seconds counted in `events` (default 10)"
    )
    parser.add_argument(
        "--idle-sockets", type=int, default=5000, help="sockets of `sockets` (default 5000)"
    )
    parser.add_argument(
        "--sockets-per-user",
        type=int,
        default=100,
        help="sockets per user in `sockets` (default 100: 50 users for 5,000 sockets)",
    )
    parser.add_argument(
        "--peer-spec",
        default=langgraph_peer.SPEC,
        help="what pip installs into bench/.peer/venv (default %(default)s)",
    )
    parser.add_argument(
        "--no-netns",
        action="store_true",
        help="do not enter a loopback-only network namespace (the peer may then reach out)",
    )
    args = parser.parse_args(argv)
    args.parts = tuple(p for p in PARTS if p in (args.only or PARTS))
    counts = (args.pairs, args.clients, args.runs_one, args.runs_per_client, args.rounds)
    if min(*counts, args.sockets, args.runs_per_socket, args.idle_sockets) < 1:
        parser.error("counts must be at least 1")
    if args.sockets * 1000 / args.paced_rate < BURST_DELAY_MS:
        parser.error(
            f"--paced-rate over --sockets needs a pause under {BURST_DELAY_MS} ms per word, where"
            " Netra's 30 ms delta window would merge words: use more sockets"
        )
    return args


def pin_client() -> str | None:
    """This process on its own core, the servers on another; None if there is one core."""
    if (os.cpu_count() or 1) < 2:
        return None
    os.sched_setaffinity(0, {CLIENT_CPU})
    return str(SERVER_CPU)


def raise_file_limit() -> int:
    """Thousands of sockets need thousands of descriptors; the servers inherit the limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_parts(args: argparse.Namespace, report: JsonObject) -> tuple[int, list[str]]:
    """Fill the report part by part; (violations, their descriptions)."""
    cpus = pin_client()
    report["protocol"] = {
        "server_cpus": cpus,
        "client_cpus": None if cpus is None else str(CLIENT_CPU),
        "file_limit": raise_file_limit(),
        "network_namespace": netns.inside(),
        "outside_reachable": netns.outside_reachable(),
    }
    violations, problems = 0, []
    if "runs" in args.parts:
        report["langgraph"] = langgraph_peer.versions()
        path = RunPath(
            pairs=args.pairs,
            clients=args.clients,
            runs_one=args.runs_one,
            runs_each=args.runs_per_client,
            cpus=cpus,
        )
        report["runs"] = path.run()
        violations += path.violations
        problems += path.problems
    if "events" in args.parts:
        events = EventPath(
            rounds=args.rounds,
            sockets=args.sockets,
            runs_per_socket=args.runs_per_socket,
            paced_rate=args.paced_rate,
            window_s=args.window,
            cpus=cpus,
        )
        report["events"] = events.run()
        violations += events.violations
        problems += events.problems
    if "sockets" in args.parts:
        costs = SocketCosts(
            rounds=args.rounds, sockets=args.idle_sockets, per_user=args.sockets_per_user, cpus=cpus
        )
        report["sockets"] = costs.run()
        violations += costs.violations
        problems += costs.problems
    return violations, problems


def table(report: JsonObject) -> list[JsonObject]:
    """One row per compared figure: Netra's median, the other server's, the ratio."""
    rows = []
    for part, versus in (
        ("runs", "langgraph"),
        ("events", "raw_uvicorn"),
        ("sockets", "raw_uvicorn"),
    ):
        summary = report.get(part, {}).get("summary", {})
        for name, entry in summary.items():
            entries = entry.items() if "netra" not in entry else [("", entry)]
            for key, figure in entries:
                rows.append(
                    {
                        "metric": ".".join(x for x in (part, name, key) if x),
                        "netra": figure["netra"],
                        "versus": versus,
                        "other": figure[versus],
                        "ratio": figure["ratio"],
                    }
                )
    return rows


def print_table(rows: list[JsonObject]) -> None:
    for row in rows:
        print(
            f"  {row['metric']:<44} netra {row['netra']!s:>10}   {row['versus']} "
            f"{row['other']!s:>10}   ratio {row['ratio']}",
            file=sys.stderr,
        )


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`: the servers are stopped


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if "runs" in args.parts and not netns.inside():
            langgraph_peer.install(args.peer_spec)  # from PyPI: before leaving the network
        if not args.no_netns and not netns.inside():
            netns.reexec_inside(os.path.abspath(__file__), argv)
        if "runs" in args.parts and not langgraph_peer.installed(args.peer_spec):
            raise SetupError(f"{args.peer_spec} is not installed in {langgraph_peer.VENV}")
        started = time.perf_counter()
        report: JsonObject = {
            "benchmark": "compare",
            "parts": list(args.parts),
            "machine": machine_info(),
            "load_average_before": load_average(),
        }
        violations, problems = run_parts(args, report)
    except SetupError as exc:
        print(f"[bench] setup failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("[bench] interrupted", file=sys.stderr)
        return 130
    report["load_average_after"] = load_average()
    report["duration_s"] = round(time.perf_counter() - started, 1)
    report["errors_total"] = violations
    report["table"] = table(report)
    print_table(report["table"])
    if violations:
        print(f"[bench] {violations} correctness violations:", file=sys.stderr)
        for line in problems[:30]:
            print(f"  {line}", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
