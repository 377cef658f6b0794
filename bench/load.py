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
import json
import secrets
import signal
import sys
import time
from types import FrameType
from typing import Any

from load_bench import LoadBench
from processes import ServerProcess, SetupError
from server_env import CHUNK_DELAY_ENV, UNLIMITED_TIER_ENV

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Where `--instances K>1` without `--database-url` creates (and drops) its throwaway database."""
JsonObject = dict[str, Any]


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
