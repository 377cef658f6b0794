"""Fixtures: real servers on 127.0.0.1, on SQLite and on the local PostgreSQL.

Every test that starts a server runs on both backends. PostgreSQL and Redis tests skip,
saying so, when the server is unreachable — except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import pytest
import redis.asyncio
import redis.exceptions
from sqlalchemy.engine import make_url

from netra.config import UnifiedConfigurationManager
from netra.db.manager import DatabaseManager
from netra.env import IsolatedEnvironment
from netra.settings import DatabaseSettings, Settings
from tests.cluster import Cluster, RecordScript
from tests.models.fake_providers import FakeProvider, fake_provider
from tests.redis_process import RedisProcess
from tests.support import CanaryWatch, LiveServer, live_server, run_on_own_loop
from tests.tools.mcp_process import HttpMcpServer

ServerFactory = Callable[..., LiveServer]
ProviderFactory = Callable[[], FakeProvider]
POSTGRES_ADMIN = os.environ.get(
    "NETRA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("NETRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
"""Each test's reports by phase, so a fixture's teardown knows whether the test failed."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def settings_for_test(
    data_dir: Path, database_url: str | None, canaries: CanaryWatch, **sections: Any
) -> Settings:
    """Settings for a test server: its own database, the offline model without pauses, and
    the session's canary secrets."""
    base: dict[str, Any] = {
        "environment": "test",
        "server": {"data_dir": data_dir, "port": 0},
        "database": {"url": database_url, "pool_size": 5, "max_overflow": 5},
        # The cheapest argon2id: a test signs up many users, and hashing is not under test.
        "auth": {
            "jwt_secret": canaries.jwt_secret,
            "password_time_cost": 1,
            "password_memory_kib": 64,
        },
        "models": {
            "offline_chunk_delay_ms": 0,
            "providers": {"openai": {"api_key": canaries.model_api_key}},
        },
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


@pytest.fixture(scope="session", autouse=True)
def canaries() -> Iterator[CanaryWatch]:
    """Secret canaries for the whole session: after the last test, none may have appeared in
    a log record, a payload sent to a client, or a database row."""
    watch = CanaryWatch()
    handler = watch.log_handler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield watch
    finally:
        root.removeHandler(handler)
    assert not watch.hits, "secret canaries leaked:\n" + "\n".join(watch.hits)


def _database_url(name: str, password: str) -> str:
    url = make_url(POSTGRES_ADMIN).set(
        drivername="postgresql+asyncpg", password=password, database=name
    )
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def _postgres_database(password: str, *, template: str | None = None) -> AsyncIterator[str]:
    """A new PostgreSQL database (empty, or a copy of ``template``), dropped afterwards. Its
    URL carries ``password`` (the local server trusts 127.0.0.1, so any password connects)."""
    admin = await _postgres_or_skip()
    name = f"netra_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copy}')
        yield _database_url(name, password)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def postgres_template(canaries: CanaryWatch) -> Iterator[str]:
    """A PostgreSQL database migrated to head once per session; test servers get copies of
    it, so they start without running the migrations (those are tested on empty databases
    in tests/db and by the process tests). Built and dropped on loops of their own: the
    session outlives every test's loop."""
    name = f"netra_template_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        admin = await _postgres_or_skip()
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        db = DatabaseManager(
            _database_url(name, canaries.db_password), DatabaseSettings(pool_size=1)
        )
        try:
            await db.upgrade()
        finally:
            await db.close()

    async def drop() -> None:
        admin = await _postgres_or_skip()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    try:
        run_on_own_loop(create)
        yield name
    finally:
        run_on_own_loop(drop)


@pytest.fixture
async def postgres_url(canaries: CanaryWatch) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    async with _postgres_database(canaries.db_password) as url:
        yield url


@pytest.fixture
async def migrated_postgres_url(
    canaries: CanaryWatch, postgres_template: str
) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, already at the newest migration."""
    async with _postgres_database(canaries.db_password, template=postgres_template) as url:
        yield url


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
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'netra.db'}"
    postgres: str = request.getfixturevalue("postgres_url")
    return postgres


@pytest.fixture
async def db(url: str) -> AsyncIterator[DatabaseManager]:
    """A DatabaseManager on the ``url`` database, at the newest migration."""
    manager = DatabaseManager(url, DatabaseSettings(pool_size=3, max_overflow=2))
    await manager.upgrade()
    yield manager
    await manager.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str | None:
    """The database URL of the test's servers: None (SQLite file) or a fresh PostgreSQL
    database at the newest migration."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("migrated_postgres_url")
    return url


@pytest.fixture
def server_factory(
    tmp_path: Path, backend: str | None, canaries: CanaryWatch
) -> Iterator[ServerFactory]:
    """Start real servers; all servers of one test share its database. Stopped at the end."""
    with ExitStack() as stack:
        count = 0

        def start(
            data_dir: Path | None = None, *, config_file: Path | None = None, **sections: Any
        ) -> LiveServer:
            nonlocal count
            count += 1
            directory = data_dir or tmp_path / f"server-{count}"
            settings = settings_for_test(directory, backend, canaries, **sections)
            config = UnifiedConfigurationManager(
                IsolatedEnvironment.isolated(),
                config_file=config_file,
                overrides=settings.model_dump(exclude_unset=True),
            )
            return stack.enter_context(live_server(config, canaries))

        yield start


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory()


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def providers() -> Iterator[ProviderFactory]:
    """Start fake model providers on 127.0.0.1 (OpenAI- and Anthropic-compatible); each
    answers with the replies a test pushes. Stopped at the end of the test."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(fake_provider())


@pytest.fixture
def provider(providers: ProviderFactory) -> FakeProvider:
    return providers()


@pytest.fixture
async def netra_cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    canaries: CanaryWatch,
) -> AsyncIterator[Cluster]:
    """Real ``netra serve`` / ``netra worker`` processes on this test's PostgreSQL database
    and the local Redis, answering with the fake model (``RecordScript``) and calling the test
    MCP server's ``record`` tool. Every process is killed at the end, whatever happened; their
    logs and the database are scanned for canaries, and the logs shown if the test failed."""
    records = tmp_path / "records.txt"
    mcp = HttpMcpServer(canaries.mcp_header, env={"MCP_RECORD_FILE": str(records)})
    with fake_provider() as model:
        model.responder = RecordScript()
        cluster = Cluster(
            tmp_path / "cluster",
            database_url=postgres_url,
            redis_url=redis_url,
            watch=canaries,
            model=model,
            mcp=mcp,
            records=records,
        )
        try:
            await cluster.prepare()
            yield cluster
        finally:
            reports = request.node.stash.get(REPORTS, {})
            cluster.close(failed=any(report.failed for report in reports.values()))
            mcp.stop()
    canaries.scan_database(postgres_url)
