"""The ``netra`` command: serve, worker, database migrations, accounts, usage reports,
configuration, and a terminal chat."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from netra import process
from netra.config import CONFIG_VARIABLE, UnifiedConfigurationManager
from netra.db.manager import DatabaseManager
from netra.env import IsolatedEnvironment
from netra.errors import (
    ConfigurationError,
    InvalidRequest,
    NetraError,
    NotFound,
    StorageUnavailable,
)
from netra.settings import Settings


def _config(args: argparse.Namespace, overrides: dict[str, Any]) -> UnifiedConfigurationManager:
    env = IsolatedEnvironment.process()
    env_file = args.env_file
    if env_file is None and Path(".env").is_file():
        env_file = Path(".env")
    config_file = args.config
    if config_file is None and env.get(CONFIG_VARIABLE):
        config_file = Path(env.get(CONFIG_VARIABLE) or "")
    return UnifiedConfigurationManager(
        env, config_file=config_file, env_file=env_file, overrides=overrides
    )


def _serve(args: argparse.Namespace) -> int:
    from netra.app import create_app
    from netra.server import Server, configure_logging, listen, uvicorn_config

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["server.host"] = args.host
    if args.port is not None:
        overrides["server.port"] = args.port
    if args.data_dir:
        overrides["server.data_dir"] = args.data_dir
    config = _config(args, overrides | _app(args))
    config.check()
    settings = config.settings
    configure_logging(settings)
    # The address first, then the database: either one that cannot be used is one line
    # here, not a traceback or a failure logged after a server that seemed to start.
    sock = listen(settings)
    asyncio.run(_migrate(settings))
    app = create_app(config=config, migrate=False)
    server = Server(uvicorn_config(app, settings), sock)
    # uvicorn handles SIGTERM itself (sockets closed with 1012, runs handed back) and then
    # raises it again; by then the shutdown was clean, so the process exits 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server.run()
    return 0


def _app(args: argparse.Namespace) -> dict[str, Any]:
    """``--app`` as the override of ``server.app`` it is."""
    return {"server.app": args.app} if args.app else {}


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _worker(args: argparse.Namespace) -> int:
    """Execute runs from the shared runs table, serving no HTTP or WebSocket, until
    SIGTERM or SIGINT; then hand the runs held here back, like a serving instance."""
    from netra.instance import Netra
    from netra.server import configure_logging, stopping

    config = _config(args, _app(args))
    config.check()
    if not config.settings.redis.url or config.settings.database.url is None:
        raise ConfigurationError(
            "netra worker needs the scale-out shape (database.url and redis.url shared with "
            "the serving instances); on the embedded shape `netra serve` executes runs itself"
        )
    configure_logging(config.settings)

    async def work() -> None:
        netra = Netra(config, role="worker")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            stopping(signum)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        await netra.start()
        print(f"Netra worker {netra.instance_id} executing runs", flush=True)
        process.started()
        try:
            await stop.wait()
        finally:
            await netra.stop()

    asyncio.run(work())
    return 0


async def _migrate(settings: Settings) -> str:
    """Migrate the configured database to head; what happened, in one line."""
    db = DatabaseManager(settings.database_url, settings.database)
    try:
        before, after = await db.upgrade()
    finally:
        await db.close()
    if before == after:
        return f"database at {db.masked_url} is up to date (revision {after})"
    return f"database at {db.masked_url} migrated from {before or 'empty'} to {after}"


def _db_upgrade(args: argparse.Namespace) -> int:
    print(asyncio.run(_migrate(_config(args, {}).settings)))
    return 0


def _grant_admin(args: argparse.Namespace) -> int:
    from netra.auth.accounts import grant_admin

    settings = _config(args, {}).settings

    async def grant() -> None:
        db = DatabaseManager(settings.database_url, settings.database)
        try:
            await db.upgrade()
            user = await grant_admin(db, args.email)
        finally:
            await db.close()
        print(f"{user.email} now has roles: {', '.join(user.roles)}")

    asyncio.run(grant())
    return 0


def _usage(args: argparse.Namespace) -> int:
    """``netra usage``: the usage report of ``GET /admin/usage``, as a table."""
    from netra.db.accounts import UserRepository
    from netra.db.usage import DEFAULT_DAYS, usage_report

    settings = _config(args, {}).settings
    last = args.to or datetime.now(UTC).date()
    first = args.first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidRequest("--from is after --to: give the first day, then the last")

    async def report() -> tuple[list[list[str]], list[str]]:
        db = DatabaseManager(settings.database_url, settings.database)
        try:
            await db.upgrade()
            scope = None
            if args.user:
                user = await db.transact(UserRepository.by_email(args.user.strip().lower()))
                if user is None:
                    raise NotFound(f"no account with email {args.user!r}")
                scope = user.id
            found, totals = await db.transact(
                usage_report(
                    scope=scope, group=args.group_by, first_day=first, last_day=last, limit=100_000
                )
            )
        finally:
            await db.close()
        rows = [_usage_row(line.key or "", line.as_dict()) for line in found]
        return rows, _usage_row("total", totals.as_dict())

    rows, total = asyncio.run(report())
    print(f"usage from {first} to {last} (UTC), by {args.group_by}")
    header = [args.group_by, "runs", "calls", "input tokens", "output tokens", "cost (USD)"]
    table = [header, *rows, total]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells).rstrip())
    return 0


def _usage_row(key: str, line: dict[str, Any]) -> list[str]:
    return [
        key,
        f"{line['runs']:,}",
        f"{line['calls']:,}",
        f"{line['input_tokens']:,}",
        f"{line['output_tokens']:,}",
        f"{line['cost_usd']:.6f}",
    ]


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def _config_show(args: argparse.Namespace) -> int:
    for path, value, source in _config(args, {}).describe():
        print(f"{path} = {value}    [{source}]")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    config = _config(args, {})
    problems = config.problems()
    if problems:
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return 1
    print(f"configuration is valid for {config.settings.environment}")
    return 0


def _chat(args: argparse.Namespace) -> int:
    from netra.client.chat import chat

    return chat(
        args.url,
        email=args.email,
        api_key=args.api_key or IsolatedEnvironment.process().get("NETRA_API_KEY"),
        thread_id=args.thread,
        new=args.new,
        agent=args.agent,
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="netra", description="Multi-user AI agent chat server.")
    root.add_argument("--config", type=Path, help="TOML config file (or NETRA_CONFIG)")
    root.add_argument("--env-file", type=Path, help=".env file to read (default: ./.env if any)")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--data-dir", help="directory for the SQLite database (./netra-data)")
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="execute runs without serving clients")
    worker.set_defaults(handler=_worker)
    for command in (serve, worker):
        command.add_argument(
            "--app",
            metavar="PKG.MODULE:FUNCTION",
            help="call FUNCTION(netra) before serving, to register tools and agents "
            "(or server.app)",
        )

    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply migrations").set_defaults(handler=_db_upgrade)

    users = commands.add_parser("users", help="accounts").add_subparsers(
        dest="users_command", required=True
    )
    grant = users.add_parser("grant-admin", help="give an existing account the admin role")
    grant.add_argument("email")
    grant.set_defaults(handler=_grant_admin)

    usage = commands.add_parser(
        "usage",
        help="runs and spend over a span of days, summed by user, tier, agent, model or day",
    )
    usage.add_argument(
        "--from", dest="first", type=_day, help="first day, UTC (29 days before --to)"
    )
    usage.add_argument("--to", type=_day, help="last day, UTC, included (today)")
    usage.add_argument(
        "--group-by", choices=("user", "tier", "org", "agent", "model", "day"), default="user"
    )
    usage.add_argument("--user", help="only this account's runs (its email)")
    usage.set_defaults(handler=_usage)

    chat = commands.add_parser("chat", help="chat with an agent in the terminal")
    chat.add_argument("--url", help="the server (default: NETRA_URL, else http://127.0.0.1:8000)")
    chat.add_argument("--email", help="sign in as (asked for when needed)")
    chat.add_argument("--api-key", help="an API key (nk_…) instead of signing in (NETRA_API_KEY)")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("--thread", help="continue this thread (default: the most recent)")
    which.add_argument("--new", action="store_true", help="start a new thread")
    chat.add_argument("--agent", help="the agent to ask (default: the thread's)")
    chat.set_defaults(handler=_chat)

    config = commands.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", required=True
    )
    config.add_parser("show", help="effective settings, masked, with sources").set_defaults(
        handler=_config_show
    )
    config.add_parser("check", help="refuse unsafe settings").set_defaults(handler=_config_check)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.handler not in (_serve, _worker):
        process.started()  # a command that works at once: ready as soon as it is parsed
    try:
        code: int = args.handler(args)
    except StorageUnavailable as exc:
        print(
            f"netra: the database refused the work ({exc.cause}): check its disk space, "
            "permissions and connection, then try again",
            file=sys.stderr,
        )
        return 2
    except NetraError as exc:
        print(f"netra: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
