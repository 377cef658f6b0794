"""The end-to-end tests' own fixture: two Netra instances in this process, on one PostgreSQL
database and one Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from tests.conftest import settings_for_test
from tests.support import CanaryWatch, LiveServer, live_server

Cluster = Callable[..., tuple[LiveServer, LiveServer]]


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, canaries: CanaryWatch) -> Iterator[Cluster]:
    """Start instances A and B on this test's PostgreSQL database and the given Redis."""
    with ExitStack() as stack:

        def start(redis_url: str, **sections: Any) -> tuple[LiveServer, LiveServer]:
            bus = {
                "url": redis_url,
                "channel_prefix": f"netra-test-{uuid.uuid4().hex[:8]}",
                **sections.pop("redis", {}),
            }
            servers = []
            for name in ("a", "b"):
                # The session's canary secrets: one JWT secret for both, as in production.
                settings = settings_for_test(
                    tmp_path / name, postgres_url, canaries, redis=bus, **sections
                )
                config = UnifiedConfigurationManager(
                    IsolatedEnvironment.isolated(),
                    overrides=settings.model_dump(exclude_unset=True),
                )
                servers.append(stack.enter_context(live_server(config, canaries)))
            return servers[0], servers[1]

        yield start
