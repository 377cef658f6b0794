"""The chat page as a person uses it: its forms, its composer, a run's block in the message
list. Selectors are the page's own ids and classes (src/netra/web/static/index.html, app.js)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.support import LiveServer

PASSWORD = "correct horse battery"


@dataclass
class Person:
    """Someone signed in to the page; ``api`` calls the server as them."""

    page: Page
    server: LiveServer
    email: str

    def api(self, path: str) -> Any:
        token = self.page.evaluate("localStorage.getItem('netra.token')")
        response = httpx.get(
            self.server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 200, f"GET {path}: {response.text}"
        return response.json()

    def thread_id(self) -> str:
        """The open thread, from the page's address (``/#<thread id>``, once it has one)."""
        expect(self.page).to_have_url(re.compile(r"#.+"))
        return str(self.page.evaluate("decodeURIComponent(location.hash.slice(1))"))


def open_page(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#auth-view")).to_be_visible()


def submit_credentials(page: Page, email: str, password: str, button: str) -> None:
    page.locator("#auth-email").fill(email)
    page.locator("#auth-password").fill(password)
    page.get_by_role("button", name=button, exact=True).click()


def expect_signed_in(page: Page, email: str) -> None:
    """The chat view, the user's address in the sidebar, and the live connection up."""
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#auth-view")).to_be_hidden()
    expect(page.locator("#user-email")).to_have_text(email)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")


def sign_up(page: Page, server: LiveServer, label: str = "user") -> Person:
    """Create an account with the page's form; the page signs in with it."""
    email = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
    open_page(page, server)
    submit_credentials(page, email, PASSWORD, "Create account")
    expect_signed_in(page, email)
    return Person(page, server, email)


def send(page: Page, text: str) -> None:
    """Type into the composer and press Enter, as a person sends a message."""
    composer = page.locator("#composer-input")
    composer.fill(text)
    composer.press("Enter")


def runs(page: Page) -> Locator:
    """The run blocks of the open thread (each: a status badge, steps, the answer text)."""
    return page.locator("#messages article.msg.assistant")


def answer(run: Locator) -> Locator:
    """A run's answer text as shown (streamed, then the stored message)."""
    return run.locator("div.text")


def expect_completed(run: Locator) -> None:
    expect(run.locator(".badge")).to_have_attribute("data-status", "completed")
