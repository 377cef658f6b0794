"""Fixtures: real servers on 127.0.0.1, on SQLite and on the local PostgreSQL.

Every test that starts a server runs on both backends. PostgreSQL and Redis tests skip,
saying so, when the server is unreachable — except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import pytest
import redis.asyncio
import redis.exceptions

from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from netra.settings import Settings
from tests.redis_process import RedisProcess
from tests.support import LiveServer, live_server

ServerFactory = Callable[..., LiveServer]
POSTGRES_ADMIN = os.environ.get(
    "NETRA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("NETRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def settings_for_test(data_dir: Path, database_url: str | None, **sections: Any) -> Settings:
    """Settings for a test server: its own database, the offline model without pauses."""
    base: dict[str, Any] = {
        "environment": "test",
        "server": {"data_dir": data_dir, "port": 0},
        "database": {"url": database_url, "pool_size": 5, "max_overflow": 5},
        "models": {"offline_chunk_delay_ms": 0},
        "logging": {"level": "WARNING"},
    }
    for section, values in sections.items():
        base[section] = {**base.get(section, {}), **values}
    return Settings.model_validate(base)


def _missing(what: str, detail: str) -> NoReturn:
    """Skip the test, saying why — or fail it in CI, where every service is required."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI: {detail}")
    pytest.skip(f"{what} unavailable ({detail}); test skipped")


async def _postgres_or_skip() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        _missing("PostgreSQL", f"unreachable at {POSTGRES_ADMIN}: {exc}")


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = await _postgres_or_skip()
    name = f"netra_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def redis_url() -> str:
    """The URL of the local Redis server, once it answered a PING."""
    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        _missing("Redis", f"unreachable at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, on a free port, that the test may kill and restart."""
    executable = RedisProcess.executable()
    if executable is None:
        _missing("redis-server", "not found on PATH")
    process = RedisProcess(executable, tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str | None:
    """The database URL of the test's servers: None (SQLite file) or a fresh PostgreSQL db."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def server_factory(tmp_path: Path, backend: str | None) -> Iterator[ServerFactory]:
    """Start real servers; all servers of one test share its database. Stopped at the end."""
    with ExitStack() as stack:
        count = 0

        def start(
            data_dir: Path | None = None, *, config_file: Path | None = None, **sections: Any
        ) -> LiveServer:
            nonlocal count
            count += 1
            directory = data_dir or tmp_path / f"server-{count}"
            settings = settings_for_test(directory, backend, **sections)
            config = UnifiedConfigurationManager(
                IsolatedEnvironment.isolated(),
                config_file=config_file,
                overrides=settings.model_dump(exclude_unset=True),
            )
            return stack.enter_context(live_server(config))

        yield start


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory()


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client
