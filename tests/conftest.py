from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from netra.settings import Settings
from tests.support import LiveServer, live_server

ServerFactory = Callable[..., LiveServer]


def test_settings(data_dir: Path, **sections: Any) -> Settings:
    """Settings for a test server: its own SQLite file, the offline model without pauses."""
    base: dict[str, Any] = {
        "environment": "test",
        "server": {"data_dir": data_dir, "port": 0},
        "models": {"offline_chunk_delay_ms": 0},
        "logging": {"level": "WARNING"},
    }
    for section, values in sections.items():
        base[section] = {**base.get(section, {}), **values}
    return Settings.model_validate(base)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start real servers (each with its own data dir unless given one); stopped at the end."""
    with ExitStack() as stack:
        count = 0

        def start(data_dir: Path | None = None, **sections: Any) -> LiveServer:
            nonlocal count
            count += 1
            directory = data_dir or tmp_path / f"server-{count}"
            return stack.enter_context(live_server(test_settings(directory, **sections)))

        yield start


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory()


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client
