"""Fixtures: fake model providers on 127.0.0.1, stopped at the end of the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from tests.models.fake_providers import FakeProvider, fake_provider

ProviderFactory = Callable[[], FakeProvider]


@pytest.fixture
def providers() -> Iterator[ProviderFactory]:
    """Start fake providers; each answers with the replies a test pushes."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(fake_provider())


@pytest.fixture
def provider(providers: ProviderFactory) -> FakeProvider:
    return providers()
