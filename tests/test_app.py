"""What building and starting the application loads: only what the configuration uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import run_python

OPTIONAL = ("alembic", "anthropic", "asyncpg", "mcp", "openai", "redis")
"""Packages a configuration may do without: the provider SDKs, MCP, the Redis client, the
PostgreSQL driver, and Alembic (a database at the head, or empty, needs no migration)."""

PROBE = """
import asyncio, json, sys
from netra.app import create_app
from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment

async def start_and_stop(app):
    async with app.router.lifespan_context(app):
        pass

app = create_app(config=UnifiedConfigurationManager(IsolatedEnvironment.process()))
if sys.argv[1] == "start":
    asyncio.run(start_and_stop(app))
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))))
"""


def _loaded(
    tmp_path: Path, env: dict[str, str], *, start: bool, among: tuple[str, ...] = OPTIONAL
) -> list[str]:
    """The packages ``among`` (default ``OPTIONAL``) a child process has imported after
    building the app from ``env`` (and running its start and stop, when ``start``)."""
    done = run_python(
        "-c",
        PROBE,
        "start" if start else "build",
        *among,
        env={"NETRA_SERVER__DATA_DIR": str(tmp_path), **env},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_the_embedded_default_starts_without_sdks_mcp_redis_postgres_or_alembic(
    tmp_path: Path,
) -> None:
    assert _loaded(tmp_path, {}, start=True) == []
    # A second start, on a database already at the head, loads no more, nor SQLAlchemy
    # (the first built the schema with it).
    assert _loaded(tmp_path, {}, start=True, among=(*OPTIONAL, "sqlalchemy")) == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NETRA_MODELS__DEFAULT": "openai:gpt-4o-mini"}, ["openai"]),
        ({"NETRA_MODELS__FALLBACKS": '["ollama:llama3.1"]'}, ["openai"]),
        ({"NETRA_MODELS__DEFAULT": "anthropic:claude-haiku-4-5"}, ["anthropic"]),
        ({"NETRA_REDIS__URL": "redis://127.0.0.1:1/0"}, ["redis"]),
        ({"NETRA_DATABASE__URL": "postgresql://netra@127.0.0.1:1/netra"}, ["asyncpg"]),
        (
            {
                "NETRA_TOOLS__MCP_SERVERS__FILES__TRANSPORT": "stdio",
                "NETRA_TOOLS__MCP_SERVERS__FILES__COMMAND": "mcp-server-filesystem",
            },
            ["mcp"],
        ),
    ],
    ids=["openai-default", "ollama-fallback", "anthropic", "redis", "postgres", "mcp"],
)
def test_what_the_configuration_names_is_loaded_and_nothing_else(
    tmp_path: Path, env: dict[str, str], expected: list[str]
) -> None:
    assert _loaded(tmp_path, env, start=False) == expected


FREED = """
import asyncio, gc, json, weakref
import httpx
from netra.app import create_app
from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment

async def serve_a_little(app):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://netra") as http:
            for path in ("/", "/docs", "/redoc", "/health", "/openapi.json"):
                assert (await http.get(path)).status_code == 200, path

def one():
    app = create_app(config=UnifiedConfigurationManager(IsolatedEnvironment.process()))
    asyncio.run(serve_a_little(app))
    return weakref.ref(app.state.netra), weakref.ref(app)

refs = [ref for _ in range(2) for ref in one()]
gc.collect()
print(json.dumps([ref() is not None for ref in refs]))
"""


def test_a_stopped_application_leaves_nothing_of_itself_in_the_process(tmp_path: Path) -> None:
    """Nothing process-wide (a library's cache of the endpoints it has seen, a router shared
    by every application) keeps a stopped application and its ``Netra`` alive: a process that
    builds many of them, as a test worker does, would keep them all, and every full garbage
    collection would walk them."""
    done = run_python("-c", FREED, env={"NETRA_SERVER__DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [False, False, False, False]
