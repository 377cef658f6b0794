"""Start-up: from launching ``netra serve`` to ``GET /ready`` answering 200, and what it costs.

Launches ``python -m netra serve`` (SQLite, offline model, in-process bus: the embedded
default) N times on a fresh data dir, where the schema is created, and each time once more on
that same data dir, where it is current: a restart. For each launch it records the wall time
from ``Popen`` to the first 200 of ``/ready`` (polled every 10 ms), the server's own CPU time
(user + system) at that moment, and its RSS once it has sat idle for ``--idle-s`` seconds.
Prints JSON: the median and the range of each for first starts and for restarts, every
launch, the load average before and after, and the machine. Wall time is at the mercy of
whatever else runs on the machine; the CPU time much less so.

    python bench/startup.py                # 5 launches
    python bench/startup.py --launches 9 --server-env NETRA_REDIS__URL=redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import httpx
import psutil

from machine import machine_info
from processes import ServerProcess, SetupError, tree_cpu, tree_rss

READY_TIMEOUT_S = 30.0
POLL_S = 0.01


def launch(server: ServerProcess, idle_s: float) -> dict[str, float]:
    """One launch: ``ready_s``, ``cpu_s`` and ``idle_rss_mib``; the server is stopped after."""
    try:
        started = time.perf_counter()
        server.launch()
        process = psutil.Process(server.pid)
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=2.0) as client:
            ready_s, cpu_s = _wait_ready(server, process, client, started)
            time.sleep(idle_s)
            client.get("/ready").raise_for_status()
            rss = tree_rss(process)
        return {
            "ready_s": round(ready_s, 3),
            "cpu_s": round(cpu_s, 3),
            "idle_rss_mib": round(rss / 2**20, 1),
        }
    finally:
        server.stop()


def first_start_and_restart(
    extra_env: dict[str, str], idle_s: float
) -> dict[str, dict[str, float]]:
    """A first start on a fresh data dir (the schema is created), then a restart on the same
    one (the schema is current)."""
    first = ServerProcess(extra_env)
    again = ServerProcess({"NETRA_SERVER__DATA_DIR": str(first.data_dir), **extra_env})
    try:
        return {"first_start": launch(first, idle_s), "restart": launch(again, idle_s)}
    finally:
        first.cleanup()
        again.cleanup()


def _wait_ready(
    server: ServerProcess, process: psutil.Process, client: httpx.Client, started: float
) -> tuple[float, float]:
    while (elapsed := time.perf_counter() - started) < READY_TIMEOUT_S:
        if not server.alive():
            raise SetupError(f"the server exited before ready\n{server.logs()}")
        try:
            ready = client.get("/ready").status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready:
            return elapsed, tree_cpu(process)
        time.sleep(POLL_S)
    raise SetupError(f"GET /ready not 200 within {READY_TIMEOUT_S:.0f} s\n{server.logs()}")


def _summary(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    summary = {}
    for key in ("ready_s", "cpu_s", "idle_rss_mib"):
        values = [run[key] for run in runs]
        summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return summary


def bench(launches: int, idle_s: float, extra_env: dict[str, str]) -> dict[str, object]:
    load_before = os.getloadavg()
    runs = [first_start_and_restart(extra_env, idle_s) for _ in range(launches)]
    return {
        "bench": "startup",
        "launches": launches,
        "server_env": extra_env,
        "first_start": _summary([run["first_start"] for run in runs]),
        "restart": _summary([run["restart"] for run in runs]),
        "runs": runs,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument(
        "--idle-s", type=float, default=1.0, help="seconds idle after ready before reading RSS"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the server (repeatable)",
    )
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.server_env)
    print(json.dumps(bench(args.launches, args.idle_s, extra_env), indent=2))


if __name__ == "__main__":
    main()
