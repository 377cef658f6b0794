"""The netra command: config show masks secrets and names sources; config check lists problems."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support import CanaryWatch, run_netra


def test_config_show_masks_secrets_and_names_each_source(
    tmp_path: Path, canaries: CanaryWatch
) -> None:
    (tmp_path / "netra.toml").write_text("[limits]\nmax_steps = 9\n")
    database = f"postgresql+asyncpg://netra:{canaries.db_password}@127.0.0.1:5432/netra"
    done = run_netra(
        "--config",
        "netra.toml",
        "config",
        "show",
        env={
            "NETRA_AUTH__JWT_SECRET": canaries.jwt_secret,
            "NETRA_DATABASE__URL": database,
            "NETRA_SERVER__PORT": "9001",
        },
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    canaries.check("netra config show", done.stdout + done.stderr)
    assert not any(value in done.stdout for value in canaries.values)
    assert "postgresql+asyncpg://netra:***@127.0.0.1:5432/netra" in done.stdout
    lines = dict(line.split(" = ", 1) for line in done.stdout.splitlines())
    assert lines["limits.max_steps"] == "9    [file:netra.toml]"
    assert lines["server.port"] == "9001    [environment]"
    assert lines["auth.jwt_secret"].endswith("[environment]")
    assert lines["tools.timeout_s"] == "30.0    [default]"


def test_the_config_file_can_be_named_by_netra_config(tmp_path: Path) -> None:
    (tmp_path / "netra.toml").write_text("[limits]\nmax_steps = 9\n")
    done = run_netra("config", "show", env={"NETRA_CONFIG": "netra.toml"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" = ", 1) for line in done.stdout.splitlines())
    assert lines["limits.max_steps"] == "9    [file:netra.toml]"
    assert lines["auth.access_token_ttl_s"] == "900    [default]"  # an amount, not a secret


def test_config_check_lists_every_problem_for_production(tmp_path: Path) -> None:
    bad = run_netra(
        "config",
        "check",
        env={
            "NETRA_ENVIRONMENT": "production",
            "NETRA_AUTH__JWT_SECRET": "short",
            "NETRA_LOGGING__LEVEL": "DEBUG",
        },
        cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert bad.stderr.count("problem:") == 2 and "short" not in bad.stderr
    good = run_netra(
        "config",
        "check",
        env={"NETRA_ENVIRONMENT": "production", "NETRA_AUTH__JWT_SECRET": "s" * 40},
        cwd=tmp_path,
    )
    assert good.returncode == 0, good.stderr


def test_an_invalid_setting_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    done = run_netra("config", "show", env={"NETRA_LIMITS__MAX_STEPS": "zero"}, cwd=tmp_path)
    assert done.returncode == 2
    assert "limits.max_steps" in done.stderr and "Traceback" not in done.stderr


def test_a_worker_on_the_embedded_shape_is_refused_with_the_reason(tmp_path: Path) -> None:
    done = run_netra("worker", env={"NETRA_SERVER__DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert done.returncode == 2
    assert "redis.url" in done.stderr and "Traceback" not in done.stderr


def test_a_heartbeat_not_shorter_than_the_lease_is_refused(tmp_path: Path) -> None:
    done = run_netra(
        "config",
        "check",
        env={"NETRA_CLUSTER__LEASE_S": "2", "NETRA_CLUSTER__HEARTBEAT_S": "2"},
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "heartbeat_s must be shorter than lease_s" in done.stderr


@pytest.mark.parametrize(
    ("problem", "says"),
    [
        ("data dir is a file", "cannot create the SQLite database"),
        ("data dir is inside a file", "cannot create the SQLite database"),
        ("database file is garbage", "is not a SQLite database"),
        ("driver not shipped", "which Netra does not ship"),
    ],
)
@pytest.mark.parametrize("command", [("db", "upgrade"), ("serve", "--port", "0")])
def test_an_unusable_database_is_one_line_saying_what_to_do(
    tmp_path: Path, problem: str, says: str, command: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    env = {"NETRA_SERVER__DATA_DIR": str(data)}
    if problem == "data dir is a file":
        data.write_text("not a folder")
    elif problem == "data dir is inside a file":
        data.write_text("not a folder")
        env["NETRA_SERVER__DATA_DIR"] = str(data / "inner")
    elif problem == "database file is garbage":
        data.mkdir()
        (data / "netra.db").write_bytes(b"this is not sqlite" * 100)
    else:
        env["NETRA_DATABASE__URL"] = "mysql://netra@127.0.0.1/netra"
    done = run_netra(*command, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    # At most the log lines before it; the error itself is the last line, and alone.
    *_, last = done.stderr.strip().splitlines()
    assert last.startswith("netra: ") and says in last, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.postgres
def test_a_plain_postgresql_url_gets_the_async_driver(postgres_url: str, tmp_path: Path) -> None:
    plain = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    done = run_netra(
        "db", "upgrade", env={"NETRA_DATABASE__URL": plain, "NETRA_SERVER__DATA_DIR": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert "migrated from empty" in done.stdout


def test_serve_on_a_busy_port_is_one_line_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run_netra(
            "serve", "--port", str(port), env={"NETRA_SERVER__DATA_DIR": str(tmp_path / "data")}
        )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Netra serving" not in done.stdout, done.stdout
    assert "startup complete" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    *_, last = done.stderr.strip().splitlines()
    assert last == (
        f"netra: cannot listen on 127.0.0.1:{port}: address already in use — "
        "stop what uses it or choose another --port"
    ), done.stderr
    assert not (tmp_path / "data" / "netra.db").exists()  # nothing was started


class Serving:
    """A ``netra serve --port 0`` child process, once it printed where it serves."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log
        """Its stderr: the log."""

    def stop(self) -> str:
        """SIGTERM, a clean exit, and the whole log."""
        self.process.terminate()
        assert self.process.wait(timeout=30) == 0
        return self.log.read_text()


@contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[Serving]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    log = tmp_path / "stderr.log"
    with (
        log.open("wb") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "netra", "serve", "--port", "0"],
            env={**clean, "NETRA_SERVER__DATA_DIR": str(tmp_path / "data"), **env},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as process,
    ):
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            served = re.fullmatch(r"Netra serving on (http://127\.0\.0\.1:(\d+))/\n", line)
            assert served, (line, log.read_text())
            yield Serving(process, served.group(1), log)
        finally:
            if process.poll() is None:
                process.kill()


def test_serve_says_where_it_serves_once_it_answers(tmp_path: Path) -> None:
    """``--port 0``: the line names the port the system chose, and the server answers there
    as soon as the line is out."""
    with serving(tmp_path) as server:
        assert not server.url.endswith(":0")
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        server.stop()


def test_every_request_is_one_access_line_without_its_query(tmp_path: Path) -> None:
    secret = f"query-secret-{uuid.uuid4().hex}"
    with serving(tmp_path) as server:
        email = f"log-{uuid.uuid4().hex[:8]}@example.com"
        credentials = {"email": email, "password": "long enough pw"}
        with httpx.Client(base_url=server.url) as http:
            assert http.post("/auth/register", json=credentials).status_code == 201
            token = http.post("/auth/login", json=credentials).json()["access_token"]
            listed = http.get(
                f"/events?after_seq=0&token={secret}", headers={"Authorization": f"Bearer {token}"}
            )
            missing = http.get(f"/threads/th_nothing?token={secret}")

        async def socket() -> None:
            url = f"{server.url.replace('http', 'ws')}/ws?after_seq=0&access_token={secret}"
            async with connect(url, subprotocols=["bearer", token]) as conn:  # type: ignore[list-item]
                assert '"connected"' in str(await conn.recv())

        asyncio.run(socket())
        log = server.stop()
    assert secret not in log, log
    for response, line in (
        (listed, "GET /events 200 "),
        (missing, "GET /threads/th_nothing 401 "),
    ):
        request_id = response.headers["x-request-id"]
        [record] = [entry for entry in log.splitlines() if request_id in entry]
        assert "INFO" in record and line in record, record
        assert re.search(r" \d+\.\d ms ", record), record


def test_netra_usage_prints_the_report_as_a_table(tmp_path: Path) -> None:
    """``netra usage`` reads the database the server uses and prints what
    ``GET /admin/usage`` answers, as a table with its totals."""
    from sqlalchemy import text

    from netra.db.manager import DatabaseManager
    from netra.settings import DatabaseSettings

    data = tmp_path / "data"
    data.mkdir()
    env = {"NETRA_SERVER__DATA_DIR": str(data)}

    async def store() -> None:
        db = DatabaseManager(f"sqlite+aiosqlite:///{data / 'netra.db'}", DatabaseSettings())
        await db.upgrade()
        async with db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, roles, tier, disabled,"
                    " event_seq, created_at) VALUES ('usr_cli', 'cli@example.com', 'x',"
                    " '[\"user\"]', 'pro', 0, 0, '2026-11-01 00:00:00.000000')"
                )
            )
            for n, (model, cost) in enumerate((("offline", 0.25), ("openai:gpt-4o", 1.5))):
                await conn.execute(
                    text(
                        "INSERT INTO model_calls (id, user_id, run_id, attempt, agent, model,"
                        " input_tokens, output_tokens, cached_input_tokens, cost_usd, created_at)"
                        " VALUES (:id, 'usr_cli', :run, 1, 'assistant', :model, 1200, 300, 0,"
                        " :cost, '2026-11-02 10:00:00.000000')"
                    ),
                    {"id": f"mc_cli{n}", "run": f"run_cli{n}", "model": model, "cost": cost},
                )
        await db.close()

    asyncio.run(store())
    done = run_netra(
        "usage", "--from", "2026-11-01", "--to", "2026-11-30", "--group-by", "model", env=env
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "usage from 2026-11-01 to 2026-11-30 (UTC), by model"
    assert lines[1].split() == [
        "model",
        "runs",
        "calls",
        "input",
        "tokens",
        "output",
        "tokens",
        "cost",
        "(USD)",
    ]
    assert lines[2].split() == ["offline", "1", "1", "1,200", "300", "0.250000"]
    assert lines[3].split() == ["openai:gpt-4o", "1", "1", "1,200", "300", "1.500000"]
    assert lines[4].split() == ["total", "2", "2", "2,400", "600", "1.750000"]
    by_user = run_netra("usage", "--from", "2026-11-01", "--user", "nobody@example.com", env=env)
    assert by_user.returncode == 2
    assert by_user.stderr.strip() == "netra: no account with email 'nobody@example.com'"
    backwards = run_netra("usage", "--from", "2026-11-30", "--to", "2026-11-01", env=env)
    assert backwards.returncode == 2 and "--from is after --to" in backwards.stderr


def test_a_config_agent_naming_an_unknown_tool_stops_serve_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "netra.toml").write_text('[agents.helper]\ntools = ["calculater"]\n')
    done = run_netra(
        "--config",
        "netra.toml",
        "serve",
        "--port",
        "0",
        env={"NETRA_SERVER__DATA_DIR": str(tmp_path / "data")},
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "netra: agents.helper.tools: unknown tool 'calculater' (did you mean 'calculator'?)"
    ), done.stderr


@pytest.mark.parametrize(
    ("app", "says"),
    [
        ("plugin", "must read pkg.module:function"),
        ("missing_module:setup", "no module named 'missing_module'"),
        ("plugin:absent", "module plugin has no 'absent'"),
        ("plugin:NUMBER", "'NUMBER' is a int, not a function"),
        ("plugin:broken", "setup failed: RuntimeError: no mail server"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_bad_app_is_one_line_and_exit_code_2(
    tmp_path: Path, app: str, says: str, command: str
) -> None:
    (tmp_path / "plugin.py").write_text(
        "NUMBER = 7\n\ndef broken(netra):\n    raise RuntimeError('no mail server')\n"
    )
    env = {"NETRA_SERVER__DATA_DIR": str(tmp_path / "data")}
    if command == "worker":  # the scale-out shape it needs; refused before connecting
        env |= {
            "NETRA_DATABASE__URL": "postgresql+asyncpg://netra@127.0.0.1:9/none",
            "NETRA_REDIS__URL": "redis://127.0.0.1:9/0",
        }
    args = ("--port", "0") if command == "serve" else ()
    done = run_netra(command, *args, "--app", app, env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"netra: --app {app!r}") and says in last, done.stderr
