"""The chat page in a real browser (headless Chromium) against a real server.

Each test waits for what it needs to see, with Playwright's auto-waiting assertions (or a
MutationObserver reporting every change of the message list); the bounds on waiting only stop
a hung test. A failing test leaves a screenshot of each of its pages (see conftest.py).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from netra.context import UserExecutionContext
from netra.db.messages import MessageRepository
from netra.db.records import utcnow
from netra.db.repositories import ThreadRepository
from netra.db.sql import Tx
from netra.events.bridge import DELTA_WINDOW_S
from netra.models.base import ModelRequest, StreamPart, TextDelta, Usage
from netra.models.scripted import ScriptedModel, ScriptedTurn
from netra.tools.tool import SideEffects, tool
from tests.conftest import ServerFactory
from tests.support import LiveServer, grant_admin
from tests.web.chat import (
    PASSWORD,
    Person,
    answer,
    expect_completed,
    expect_signed_in,
    runs,
    send,
    sign_up,
    submit_credentials,
)
from tests.web.conftest import ContextFactory


def _stored_answer(person: Person) -> tuple[str, str]:
    """The open thread's only run, and the answer stored for it."""
    items = person.api(f"/threads/{person.thread_id()}/messages")["items"]
    (asked,) = [m for m in items if m["role"] == "user"]
    (answered,) = [m for m in items if m["role"] == "assistant"]
    assert answered["run_id"] == asked["run_id"]
    return asked["run_id"], answered["content"]


def test_sign_up_then_sign_in_with_the_forms(server: LiveServer, page: Page) -> None:
    person = sign_up(page, server, "signup")
    expect(page.locator("#thread-title")).to_have_text("New chat")
    expect(page.locator("#thread-list li")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#auth-view")).to_be_visible()
    expect(page.locator("#app-view")).to_be_hidden()

    submit_credentials(page, person.email, "not the password", "Sign in")
    expect(page.locator("#auth-error")).to_have_text("wrong email or password")
    expect(page.locator("#app-view")).to_be_hidden()

    submit_credentials(page, person.email, PASSWORD, "Sign in")
    expect_signed_in(page, person.email)
    expect(page.locator("#auth-error")).to_be_empty()
    page.reload()  # the session is kept in the browser
    expect_signed_in(page, person.email)


def test_a_session_signed_out_elsewhere_returns_the_page_to_sign_in(
    server: LiveServer, page: Page
) -> None:
    """The session ends on the server (signed out from another tab or device): the socket is
    closed, the token is refused and cannot be refreshed, and the page says so, forgets the
    token and shows the sign-in form."""
    sign_up(page, server, "lost")
    token = page.evaluate("localStorage.getItem('netra.token')")
    ended = httpx.post(
        server.url + "/auth/logout", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert ended.status_code in (200, 204), ended.text
    expect(page.locator("#auth-view")).to_be_visible()
    expect(page.locator("#auth-error")).to_have_text(
        "Your session has ended. Please sign in again."
    )
    assert page.evaluate("localStorage.getItem('netra.token')") is None


def test_a_question_shows_thinking_the_calculator_and_the_answer(
    server: LiveServer, page: Page
) -> None:
    sign_up(page, server)
    send(page, "what is 12*7?")
    expect(page.locator("#messages article.msg.user .bubble")).to_have_text("what is 12*7?")
    expect(page.locator("#composer-input")).to_have_value("")

    run = runs(page)
    expect(run).to_have_count(1)
    expect(run.locator(".step.thinking").first).to_be_visible()
    calculator = run.locator(".step.tool")
    expect(calculator).to_have_count(1)
    expect(calculator.locator(".step-label")).to_have_text("calculator")
    expect(calculator.locator(".step-args summary")).to_have_text('{"expression":"12*7"}')
    expect(calculator).to_have_attribute("data-status", "ok")
    expect(calculator.locator(".step-result summary")).to_contain_text('"result":84')
    # Opened, a tool's arguments are pretty-printed JSON.
    expect(calculator.locator(".step-args pre")).to_be_hidden()
    calculator.locator(".step-args summary").click()
    expect(calculator.locator(".step-args pre")).to_have_text('{\n  "expression": "12*7"\n}')
    expect_completed(run)
    expect(answer(run)).to_contain_text("12*7 = 84.")
    expect(page.locator("#thread-list .thread-title")).to_have_text(["what is 12*7?"])


# Reports every state of the run blocks, in every page this document loads, to Python:
# {load, status, text} with text null while the block shows its "Working…" placeholder.
_RECORD_RUNS = """
(() => {
  const load = Math.random().toString(36).slice(2);
  window.__netraLoad = load;
  window.__netraTexts = new Set();  // the answers this page load has shown
  document.addEventListener('DOMContentLoaded', () => {
    const box = document.getElementById('messages');
    const report = () => {
      const blocks = [...box.querySelectorAll('article.msg.assistant')].map((run) => {
        const text = run.querySelector('div.text');
        return {
          status: run.querySelector('.badge')?.dataset.status ?? '',
          text: text.classList.contains('placeholder') ? null : text.textContent,
        };
      });
      for (const block of blocks) if (block.text) window.__netraTexts.add(block.text);
      window.recordRuns(load, blocks);
    };
    new MutationObserver(report)
      .observe(box, { subtree: true, childList: true, characterData: true, attributes: true });
  });
})();
"""


class StoryModel:
    """A model whose story goes on, a word every 2 × ``DELTA_WINDOW_S``, until the test ends
    it: the run streams for as long as the test needs it live, the reload included. (At that
    pace the bridge sends each word at once: it holds deltas closer together for the next.)"""

    OPENING = "Once upon a time a lighthouse keeper"
    ON = ("and", "the", "story", "went", "on,")
    END = "The end."

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = asyncio.Event()

    @property
    def id(self) -> str:
        return "story"

    def end(self) -> None:
        """Finish the story (from the test's thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._ended.set)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamPart]:
        self._loop = asyncio.get_running_loop()
        words = itertools.chain(self.OPENING.split(" "), itertools.cycle(self.ON))
        # At most about a minute of story, should the test never end it.
        for index, word in enumerate(itertools.islice(words, 1000)):
            if self._ended.is_set() and index >= len(self.OPENING.split(" ")):
                break
            await asyncio.sleep(2 * DELTA_WINDOW_S)
            yield TextDelta(word if index == 0 else f" {word}")
        yield TextDelta(f" {self.END}")
        yield Usage(input_tokens=10, output_tokens=100)


@pytest.fixture
def story(server_factory: ServerFactory) -> Iterator[tuple[LiveServer, StoryModel]]:
    server = server_factory(models={"default": "story"})
    model = StoryModel()
    server.netra.models.register("story", model)
    yield server, model
    model.end()  # before the server stops, whatever happened


def test_a_reload_mid_run_shows_the_run_continue_and_its_answer_once(
    story: tuple[LiveServer, StoryModel], page: Page
) -> None:
    server, model = story
    seen: list[tuple[str, list[dict[str, Any]]]] = []
    page.expose_function("recordRuns", lambda load, blocks: seen.append((load, blocks)))
    page.add_init_script(_RECORD_RUNS)
    person = sign_up(page, server)

    send(page, "tell me a story")
    expect(answer(runs(page))).to_have_text(re.compile(r"^Once upon"))  # streaming has begun
    before = page.evaluate("window.__netraLoad")
    page.reload()  # the story goes on meanwhile
    # The reloaded page catches up with the run, and follows it live.
    expect(runs(page).locator(".badge")).to_have_text("Running")
    expect(answer(runs(page))).to_have_text(re.compile(rf"^{model.OPENING} and the story"))
    # The story goes on until this page has shown it grow live (three answers at least),
    # however late the reload caught up with it.
    page.wait_for_function("() => window.__netraTexts.size > 2")
    model.end()
    expect_completed(runs(page))

    run_id, stored = _stored_answer(person)
    assert stored.startswith(model.OPENING) and stored.endswith(model.END), stored
    expect(answer(runs(page))).to_have_text(stored)
    expect(runs(page)).to_have_count(1)
    assert (page.locator("#messages").text_content() or "").count(stored) == 1
    events = person.api(f"/runs/{run_id}/events?after_seq=0")["items"]
    assert [e["type"] for e in events].count("agent_completed") == 1

    shown = [(load, block) for load, blocks in seen for block in blocks]
    # Never more than the answer, never a word twice: each state is a prefix of the answer.
    for load, block in shown:
        if block["text"] is not None:
            reloaded = "after" if load != before else "before"
            assert stored.startswith(block["text"]), (f"{reloaded} the reload", block, stored)
    # Live after the reload: the answer grew in this page, word by word, to the whole.
    grown = {block["text"] for load, block in shown if load != before and block["text"]}
    assert len(grown) > 2, grown


def _approval_server(server_factory: ServerFactory) -> tuple[LiveServer, list[str]]:
    """A server whose model asks to send an email (a tool that needs approval), then reports
    the tool's result; ``sent`` lists each email the tool really sent."""
    server = server_factory(models={"default": "scripted"})
    sent: list[str] = []

    @tool(description="Send an email.", side_effects=SideEffects.UNSAFE, requires_approval=True)
    def send_email(to: str, body: str) -> dict[str, str]:
        sent.append(to)
        return {"status": "sent", "to": to}

    def respond(request: ModelRequest) -> ScriptedTurn:
        last = request.messages[-1]
        if last.role == "tool":
            return ScriptedTurn.text(f"Tool said: {last.content}")
        return ScriptedTurn.call(
            "send_email", {"to": "boss@example.com", "body": "I quit"}, call_id="call_mail"
        )

    server.netra.tools.register("send_email", send_email)
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.responder = respond
    return server, sent


def test_the_approval_card_survives_a_reload_and_approve_runs_the_tool_once(
    server_factory: ServerFactory, page: Page
) -> None:
    server, sent = _approval_server(server_factory)
    person = sign_up(page, server)
    send(page, "tell my boss I quit")
    run = runs(page)
    card = run.locator(".step.approval")
    expect(card.get_by_role("button", name="Approve")).to_be_visible()
    expect(card.locator(".step-label")).to_have_text("send_email")
    expect(card.locator(".step-detail")).to_have_text(
        "wants to do something that cannot be undone."
    )
    expect(run.locator(".badge")).to_have_text("Needs approval")

    page.reload()
    expect(card.get_by_role("button", name="Deny")).to_be_visible()
    expect(card.locator(".step-args")).to_have_text('{"to":"boss@example.com","body":"I quit"}')
    expect(run.locator(".badge")).to_have_text("Needs approval")
    assert sent == []

    card.get_by_role("button", name="Approve").click()
    email = run.locator(".step.tool")
    expect(email).to_have_attribute("data-status", "ok")
    expect(email.locator(".step-result summary")).to_have_text(
        '{"status":"sent","to":"boss@example.com"}'
    )
    expect_completed(run)
    expect(answer(run)).to_contain_text('Tool said: {"status": "sent"')
    expect(card.get_by_role("button")).to_have_count(0)  # answered: the buttons are gone
    expect(email).to_have_count(1)

    run_id, _ = _stored_answer(person)
    types = [e["type"] for e in person.api(f"/runs/{run_id}/events?after_seq=0")["items"]]
    assert types.count("approval_required") == 1
    assert types.count("tool_executing") == 1 and types.count("tool_completed") == 1
    assert sent == ["boss@example.com"]


def test_an_approval_that_cannot_be_sent_says_why_and_can_be_sent_again(
    server_factory: ServerFactory, page: Page
) -> None:
    """With the socket down the decision goes over HTTP; when that fails too, the card offers
    its buttons again and the error line says what went wrong."""
    server, sent = _approval_server(server_factory)
    sockets: list[WebSocketRoute] = []
    down = False

    def through(socket: WebSocketRoute) -> None:
        if down:  # the server cannot be reached
            socket.close()
            return
        socket.connect_to_server()
        sockets.append(socket)

    page.route_web_socket(re.compile(r"/ws$"), through)
    sign_up(page, server)
    send(page, "tell my boss I quit")
    run = runs(page)
    card = run.locator(".step.approval")
    approve = card.get_by_role("button", name="Approve")
    expect(approve).to_be_visible()

    down = True
    page.route("**/decision", lambda route: route.abort())
    for socket in sockets:
        socket.close()
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "reconnecting")
    approve.click()
    expect(page.locator("#composer-error")).not_to_be_empty()
    expect(approve).to_be_enabled()
    assert sent == []

    down = False
    page.unroute("**/decision")
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
    approve.click()
    expect(run.locator(".step.tool")).to_have_attribute("data-status", "ok")
    expect_completed(run)
    assert sent == ["boss@example.com"]


def test_deny_on_the_approval_card_shows_the_denial(
    server_factory: ServerFactory, page: Page
) -> None:
    server, sent = _approval_server(server_factory)
    sign_up(page, server)
    send(page, "tell my boss I quit")
    run = runs(page)
    card = run.locator(".step.approval")
    card.get_by_role("button", name="Deny").click()

    email = run.locator(".step.tool")
    expect(email).to_have_attribute("data-status", "error")
    expect(email.locator(".step-error")).to_have_text("the user denied this call")
    expect_completed(run)
    expect(answer(run)).to_contain_text("Tool said:")
    expect(answer(run)).to_contain_text("denied")
    expect(card.get_by_role("button")).to_have_count(0)
    assert sent == []


APPROVALS_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "approvals.toml"


def test_the_readme_approval_example_a_config_agent_whose_tool_waits_for_approve(
    server_factory: ServerFactory, page: Page
) -> None:
    """examples/approvals.toml as shipped: ``server.app`` registers ``send_email`` (it needs
    approval), the ``mailer`` agent may call it; the offline model calls it when asked."""
    server = server_factory(config_file=APPROVALS_EXAMPLE)
    person = sign_up(page, server)
    page.locator("#agent-select").select_option("mailer")
    send(page, 'send_email {"to": "ana@example.com", "body": "Lunch at 1?"}')
    run = runs(page)
    card = run.locator(".step.approval")
    expect(card.locator(".step-label")).to_have_text("send_email")
    expect(run.locator(".badge")).to_have_text("Needs approval")

    card.get_by_role("button", name="Approve").click()
    email = run.locator(".step.tool")
    expect(email).to_have_attribute("data-status", "ok")
    expect_completed(run)
    expect(answer(run)).to_contain_text("The send_email tool returned")
    expect(answer(run)).to_contain_text("ana@example.com")

    run_id, _ = _stored_answer(person)
    events = person.api(f"/runs/{run_id}/events?after_seq=0")["items"]
    assert {e["agent"] for e in events} == {"mailer"}
    assert [e["type"] for e in events].count("approval_required") == 1


def test_two_people_never_see_each_others_threads(
    server: LiveServer, new_context: ContextFactory
) -> None:
    tag = uuid.uuid4().hex[:8]
    people = [
        (sign_up(new_context().new_page(), server, "alice"), f"remember alpaca{tag}"),
        (sign_up(new_context().new_page(), server, "bob"), f"remember bison{tag}"),
    ]
    # Both pages are open and connected while each person chats.
    for person, words in people:
        send(person.page, words)
        expect_completed(runs(person.page))
        expect(answer(runs(person.page))).to_contain_text(words)
        expect(person.page.locator("#thread-list .thread-title")).to_have_text([words])

    for (person, _), (_, theirs) in zip(people, people[::-1], strict=True):
        assert theirs not in person.page.content(), f"{person.email} saw {theirs!r}"
    for (person, words), (_, theirs) in zip(people, people[::-1], strict=True):
        person.page.reload()
        expect_signed_in(person.page, person.email)
        expect(person.page.locator("#thread-list .thread-title")).to_have_text([words])
        assert theirs not in person.page.content(), f"{person.email} saw {theirs!r}"


def test_the_search_box_finds_a_chat_by_its_words_and_opens_it(
    server: LiveServer, page: Page
) -> None:
    sign_up(page, server, "search")
    tag = uuid.uuid4().hex[:8]
    for words in (f"remember the okapi{tag}", f"remember the quokka{tag}"):
        page.get_by_role("button", name="New chat").click()
        send(page, words)
        expect_completed(runs(page))
    expect(page.locator("#thread-list .thread-title")).to_have_count(2)

    box = page.get_by_role("searchbox", name="Search chats")
    box.fill(f"OKAPI{tag}")
    hits = page.locator("#search-results .search-hit")
    expect(hits.first).to_be_visible()
    expect(page.locator("#thread-list")).to_be_hidden()
    expect(hits.locator(".thread-title")).to_have_text([f"remember the okapi{tag}"] * hits.count())
    expect(hits.filter(has_text="in the title")).to_have_count(1)
    asked = hits.locator(".search-excerpt").filter(
        has_text=re.compile(rf"^remember the okapi{tag}$")
    )
    expect(asked).to_have_count(1)  # the question; the answer quoting it is a hit of its own
    asked.click()
    expect(page.locator("#thread-title")).to_have_text(f"remember the okapi{tag}")
    expect(page.locator("#messages article.msg.user .bubble")).to_have_text(
        f"remember the okapi{tag}"
    )

    box.fill("?!")
    expect(page.locator("#search-results .search-empty")).to_contain_text("at least one word")
    box.fill(f"nothing{tag}")
    expect(page.locator("#search-results .search-empty")).to_have_text("No chats match.")
    box.press("Escape")
    expect(page.locator("#search-results")).to_be_hidden()
    expect(page.locator("#thread-list .thread-title")).to_have_count(2)


def test_a_pinned_chat_is_listed_first_and_an_archived_one_apart(
    server: LiveServer, page: Page
) -> None:
    sign_up(page, server, "pins")
    for words in ("oldest chat", "middle chat", "newest chat"):
        page.get_by_role("button", name="New chat").click()
        send(page, words)
        expect_completed(runs(page))
    titles = page.locator("#thread-list .thread-title")
    expect(titles).to_have_text(["newest chat", "middle chat", "oldest chat"])

    titles.filter(has_text="oldest chat").click()
    expect(page.locator("#thread-title")).to_have_text("oldest chat")
    page.get_by_role("button", name="Pin", exact=True).click()
    expect(titles).to_have_text(["oldest chat", "newest chat", "middle chat"])
    expect(page.locator("#thread-list .pin")).to_have_count(1)
    expect(page.get_by_role("button", name="Unpin")).to_be_visible()

    titles.filter(has_text="middle chat").click()
    expect(page.locator("#thread-title")).to_have_text("middle chat")
    page.get_by_role("button", name="Archive", exact=True).click()
    expect(titles).to_have_text(["oldest chat", "newest chat"])
    page.reload()
    expect(titles).to_have_text(["oldest chat", "newest chat"])

    page.get_by_role("button", name="Archived chats").click()
    expect(titles).to_have_text(["middle chat"])
    titles.first.click()
    page.get_by_role("button", name="Unarchive").click()
    expect(titles).to_have_count(0)
    page.get_by_role("button", name="Back to chats").click()
    expect(titles).to_have_text(["oldest chat", "newest chat", "middle chat"])


@pytest.mark.parametrize("summarize", [True, False])
def test_a_step_says_when_earlier_turns_were_summarised_or_left_out(
    server_factory: ServerFactory, page: Page, summarize: bool
) -> None:
    # A window of 400 tokens holds the assistant's prompt, its tools and the question, and
    # at most one earlier turn: the third question goes without the first, which the offline
    # model summarised (or, with summaries off, which was left out).
    server = server_factory(
        models={
            "context_windows": [{"model": "offline", "tokens": 400}],
            "summarize": summarize,
        }
    )
    sign_up(page, server, "window")
    for index, words in enumerate(("hello one", "hello two", "hello three")):
        send(page, words)
        expect(runs(page)).to_have_count(index + 1)
        expect_completed(runs(page).nth(index))
    expect(runs(page).first.locator(".step-note")).to_have_count(0)
    how = "summarised" if summarize else "left out"
    expect(runs(page).last.locator(".step-note").first).to_have_text(
        re.compile(rf"^\((1 earlier turn|2 earlier turns) {how} to fit the model\)$")
    )


def test_each_chat_shows_the_agent_it_uses(server: LiveServer, page: Page) -> None:
    sign_up(page, server, "agents")
    expect(page.locator("#agent-select option")).to_have_count(2)  # assistant, optimizer
    expect(page.locator("#thread-agent")).to_be_hidden()  # a new chat has none yet
    page.locator("#agent-select").select_option("optimizer")
    send(page, "how can I cut my AI costs?")
    expect_completed(runs(page))
    expect(page.locator("#thread-agent")).to_have_text("optimizer")
    expect(page.locator("#agent-select")).to_be_hidden()  # a chat keeps its agent

    page.get_by_role("button", name="New chat").click()
    page.locator("#agent-select").select_option("assistant")
    send(page, "what is 2*3?")
    expect_completed(runs(page))
    expect(page.locator("#thread-agent")).to_have_text("assistant")
    expect(page.locator("#thread-list .thread-agent")).to_have_text(["assistant", "optimizer"])
    page.reload()
    expect(page.locator("#thread-list .thread-agent")).to_have_text(["assistant", "optimizer"])


def test_a_message_over_the_tier_limit_stays_in_the_composer_with_the_error(
    server_factory: ServerFactory, page: Page
) -> None:
    server = server_factory(tiers={"free": {"max_message_chars": 40}})
    sign_up(page, server)
    text = "this message is longer than the forty characters allowed"
    send(page, text)

    expect(page.locator("#composer-error")).to_have_text("message longer than 40 characters")
    expect(page.locator("#composer-input")).to_have_value(text)
    expect(page.locator("#messages article.msg.user .note")).to_have_text(
        "Not sent: message longer than 40 characters"
    )
    expect(runs(page)).to_have_count(0)


def test_older_chats_load_a_page_at_a_time(server: LiveServer, page: Page) -> None:
    """The sidebar shows the newest page of threads; scrolling to its end brings the rest."""
    person = sign_up(page, server, "many")
    token = page.evaluate("localStorage.getItem('netra.token')")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
        for number in range(53):
            created = http.post("/threads", json={"title": f"chat {number:02d}"})
            assert created.status_code == 201, created.text
    page.reload()
    expect_signed_in(page, person.email)
    titles = page.locator("#thread-list .thread-title")
    expect(titles).to_have_count(50)
    expect(titles.first).to_have_text("chat 52")
    expect(page.get_by_role("button", name="Older chats")).to_have_count(1)
    page.locator(".thread-nav").evaluate("nav => { nav.scrollTop = nav.scrollHeight; }")
    expect(titles).to_have_count(53)
    expect(titles.last).to_have_text("chat 00")
    expect(page.get_by_role("button", name="Older chats")).to_have_count(0)


def test_rename_and_delete_a_chat_and_another_tab_follows(server: LiveServer, page: Page) -> None:
    person = sign_up(page, server, "tidy")
    send(page, "a chat to rename")
    expect_completed(runs(page))
    thread_id = person.thread_id()
    other_tab = page.context.new_page()
    other_tab.goto(server.url + "/")
    expect_signed_in(other_tab, person.email)
    titles = other_tab.locator("#thread-list .thread-title")
    expect(titles).to_have_text(["a chat to rename"])

    page.once("dialog", lambda dialog: dialog.accept("Trip to Porto"))
    page.get_by_role("button", name="Rename", exact=True).click()
    expect(page.locator("#thread-title")).to_have_text("Trip to Porto")
    expect(titles).to_have_text(["Trip to Porto"])  # the other tab, from thread_updated

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#thread-title")).to_have_text("New chat")
    expect(page.locator("#thread-list li")).to_have_count(0)
    expect(titles).to_have_count(0)  # the other tab, from thread_deleted
    assert person.api("/threads")["items"] == []
    assert thread_id not in page.content()


def test_earlier_turns_of_a_long_thread_load_on_request(server: LiveServer, page: Page) -> None:
    """The page opens a thread on its newest 50 turns; scrolling up to the top brings the
    rest, in order, ahead of them."""
    person = sign_up(page, server, "long")
    user_id = person.api("/me")["id"]
    ctx = UserExecutionContext(user_id=user_id)
    start = utcnow() - timedelta(hours=1)

    def turns() -> Tx[str]:
        thread = yield from ThreadRepository(ctx).create(title="long", agent="assistant")
        messages = MessageRepository(ctx)
        parent_id = None
        for number in range(53):
            run_id, at = f"run_long{number:03d}", start + timedelta(seconds=number)
            for role, text in (("user", f"question {number}"), ("assistant", f"answer {number}")):
                message = yield from messages.add(
                    thread_id=thread.id,
                    role=role,
                    content=text,
                    parent_id=parent_id,
                    run_id=run_id,
                    at=at,
                )
                parent_id = message.id
        assert parent_id is not None
        yield from ThreadRepository(ctx).touch(thread.id, leaf=parent_id)
        return thread.id

    async def store() -> str:
        return await server.netra.db.transact(turns())

    thread_id = asyncio.run_coroutine_threadsafe(
        store(), server.server.servers[0].get_loop()
    ).result(timeout=30)
    page.goto(f"{server.url}/#{thread_id}")
    expect_signed_in(page, person.email)
    asked = page.locator("#messages article.msg.user .bubble")
    expect(asked).to_have_count(50)
    expect(asked.first).to_have_text("question 3")
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_visible()
    page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
    expect(asked).to_have_count(53)
    expect(asked.first).to_have_text("question 0")
    expect(asked.last).to_have_text("question 52")
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_hidden()


MARKDOWN_ANSWER = """## Spend by model

| model | cost |
|---|---|
| small | $1.20 |

- cheaper **by far**
- see [the docs](https://example.com/docs)

```python
print("hello")
```

<script>window.__pwned = "script"</script>
<img src="x" onerror="window.__pwned = 'img'">
[click me](javascript:window.__pwned='link')
"""


def test_an_answer_renders_as_markdown_and_model_output_never_runs_script(
    server_factory: ServerFactory, page: Page
) -> None:
    server = server_factory(models={"default": "scripted"})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    model.push(ScriptedTurn.text(MARKDOWN_ANSWER))
    sign_up(page, server, "markdown")
    send(page, "show me a table")
    run = runs(page)
    expect_completed(run)
    shown = answer(run)
    expect(shown.locator("h2")).to_have_text("Spend by model")
    expect(shown.locator("td")).to_have_text(["small", "$1.20"])
    expect(shown.locator("li strong")).to_have_text("by far")
    expect(shown.locator("a", has_text="the docs")).to_have_attribute("target", "_blank")
    expect(shown.locator("pre code")).to_have_text('print("hello")')
    expect(shown.locator("pre button")).to_have_text("Copy")
    # Nothing the model wrote ran, or can run: no script, no handler, no javascript: link.
    assert shown.locator("script").count() == 0
    assert shown.locator("[onerror]").count() == 0
    hrefs = shown.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not any(str(href).startswith("javascript:") for href in hrefs), hrefs
    assert page.evaluate("window.__pwned") is None


def test_edit_regenerate_and_the_branch_arrows(server: LiveServer, page: Page) -> None:
    """Editing a question makes a second version of it (‹ 2/2 ›) with its own answer; the
    arrows go back to the first, whole; regenerating an answer adds one beside it."""
    person = sign_up(page, server, "brancher")
    send(page, "what is 2*3?")
    expect_completed(runs(page))
    expect(answer(runs(page))).to_contain_text("6")
    asked = page.locator("#messages article.msg.user")
    asked.get_by_role("button", name="Edit").click()
    page.get_by_label("Edit message").fill("what is 2*4?")
    page.locator(".edit-form").get_by_role("button", name="Send").click()
    expect(asked.locator(".bubble")).to_have_text("what is 2*4?")
    expect(asked.locator(".branch-count")).to_have_text("2/2")
    expect_completed(runs(page))
    expect(answer(runs(page))).to_contain_text("8")
    expect(asked).to_have_count(1)

    asked.get_by_role("button", name="Previous version").click()
    expect(asked.locator(".bubble")).to_have_text("what is 2*3?")
    expect(asked.locator(".branch-count")).to_have_text("1/2")
    expect(answer(runs(page))).to_contain_text("6")

    runs(page).get_by_role("button", name="Regenerate").click()
    expect(runs(page).locator(".branch-count")).to_have_text("2/2")
    expect_completed(runs(page))
    expect(runs(page)).to_have_count(1)
    tree = person.api(f"/threads/{person.thread_id()}/tree")
    assert [node["role"] for node in tree["items"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "assistant",
    ]


def test_an_admin_sees_the_spend_by_day_stacked_with_top_users_models_and_budgets(
    server_factory: ServerFactory, page: Page
) -> None:
    """The spend page: a bar a day stacked by model (or by tier), the users and models that
    cost most, the budgets in force for those users; for admins only."""
    server = server_factory(
        models={"prices": [{"model": "offline", "input_per_mtok": 0, "output_per_mtok": 1000}]},
        tiers={"free": {"usd_per_day": 5}},
    )
    person = sign_up(page, server, "boss")
    expect(page.get_by_role("button", name="Spend")).to_be_hidden()
    send(page, "count to 20")
    expect_completed(runs(page))
    grant_admin(server, person.email)
    page.reload()
    expect_signed_in(page, person.email)
    page.get_by_role("button", name="Spend").click()
    expect(page.locator("#spend-status")).to_contain_text("over 1 run,")
    expect(page.locator("#messages")).to_be_hidden()
    datasets = "Chart.getChart(document.getElementById('spend-chart')).data.datasets"
    assert page.evaluate(f"{datasets}.map((d) => d.label)") == ["offline"]
    today = page.evaluate(f"{datasets}[0].data.at(-1)")
    assert today > 0, "today's bar holds the run's cost"
    expect(page.locator("#spend-users tbody tr")).to_have_count(1)
    expect(page.locator("#spend-users tbody td").first).to_have_text(person.email)
    expect(page.locator("#spend-models tbody td").first).to_have_text("offline")
    expect(page.locator("#spend-budgets tbody td")).to_have_text(
        [person.email, "free", "$5.00", "none", "none"]
    )
    page.locator("#spend-stack").select_option("tier")
    expect(page.locator("#spend-status")).to_contain_text("over 1 run,")
    page.wait_for_function(f"{datasets}[0]?.label === 'free'")
    page.get_by_role("button", name="Back to chat").click()
    expect(page.locator("#messages")).to_be_visible()
