"""Fixtures of the browser tests: one headless Chromium (Debian's, never a downloaded build)
for all of them, a fresh browser context per test, and a screenshot of every open page
of a test that failed, saved under ``tests/web/.artifacts/`` and named in its failure report.

The page needs one database only: these tests run on SQLite, not on both backends.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import _missing

TIMEOUT_MS = 20_000
"""A bound on waiting for what a test expects, so that a hung test stops; never a pause."""
expect.set_options(timeout=TIMEOUT_MS)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium reaches for the network, which is closed here.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / ".artifacts"
CONTEXTS = pytest.StashKey[list[BrowserContext]]()
"""The browser contexts a test opened, for screenshots when it fails."""

ContextFactory = Callable[[], BrowserContext]


@pytest.fixture
def backend() -> str | None:
    """SQLite only: overrides the two-backend ``backend`` of tests/conftest.py."""
    return None


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for all the browser tests of the session. Package-scoped, not
    session-scoped: between its calls Playwright's sync API leaves its own event loop marked
    as running in this thread, which breaks every asyncio test after it, so it must stop when
    the last test of tests/web is done."""
    if not CHROMIUM.exists():
        _missing("Chromium", f"{CHROMIUM} not found (`make test` installs Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_context(browser: Browser, request: pytest.FixtureRequest) -> Iterator[ContextFactory]:
    """Open fresh browser contexts (separate cookies and storage: separate people)."""
    opened = request.node.stash.setdefault(CONTEXTS, [])

    def open_context() -> BrowserContext:
        context = browser.new_context(viewport={"width": 1100, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        opened.append(context)
        return context

    try:
        yield open_context
    finally:
        for context in opened:
            context.close()


@pytest.fixture
def page(new_context: ContextFactory) -> Page:
    return new_context().new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[pytest.TestReport]:
    """A failed test's pages, as they were when it failed: one PNG each, named in the report."""
    report: pytest.TestReport = yield
    contexts = item.stash.get(CONTEXTS, [])
    if report.failed and report.when in ("setup", "call") and contexts:
        folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", item.nodeid)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        lines = []
        for i, context in enumerate(contexts):
            for j, page in enumerate(context.pages):
                path = folder / f"context{i}-page{j}.png"
                try:
                    page.screenshot(path=path, full_page=True, timeout=10_000)
                except Exception as exc:  # a crashed page must not hide the test's failure
                    lines.append(f"{page.url}: no screenshot ({exc})")
                else:
                    lines.append(f"{page.url}: {path}")
        report.sections.append(("screenshots", "\n".join(lines)))
    return report
