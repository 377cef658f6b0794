"""``netra chat``: a terminal chat on ``netra.client.Client``. Each line typed is sent; the
answer streams as it comes, with the tool steps; Ctrl-C during an answer cancels its run,
Ctrl-C or Ctrl-D at the prompt ends the chat. A tool that needs approval is asked about
inline. A dropped connection, a server restart among them, is resumed by the client."""

from __future__ import annotations

import getpass
import json
import sys
from typing import TextIO

from netra.client.credentials import CredentialStore, default_path
from netra.client.errors import AuthenticationError, ClientError
from netra.client.models import Event, Tokens
from netra.client.sync import Client, SyncRun


def sign_in(url: str | None, email: str | None, api_key: str | None) -> Client:
    """A client signed in with the API key; else with the tokens saved for the server
    (renewed as they expire, saved again); else with an email and a password asked for."""
    if api_key:
        return Client(url, api_key=api_key)
    store = CredentialStore(default_path())
    probe = Client(url)
    server = probe.url
    probe.close()
    saved = store.load(server)
    if saved is not None and (email is None or saved[0] == email):
        known = saved[0]
        client = Client(
            server,
            access_token=saved[1].access_token,
            refresh_token=saved[1].refresh_token,
            on_tokens=lambda tokens: store.save(server, known, tokens),
        )
        try:
            client.me()
            return client
        except AuthenticationError:
            client.close()
    address = email or input("email: ").strip()
    password = getpass.getpass("password: ")

    def keep(tokens: Tokens) -> None:
        store.save(server, address, tokens)

    client = Client(server, on_tokens=keep)
    try:
        client.login(address, password)
    except BaseException:
        client.close()
        raise
    return client


class Chat:
    """The read-eval loop over one thread (a new one until the first answer names it)."""

    def __init__(
        self, client: Client, thread_id: str | None, agent: str | None, out: TextIO
    ) -> None:
        self.client = client
        self.thread_id = thread_id
        self.agent = agent
        self.out = out

    def loop(self) -> None:
        while True:
            try:
                line = input("you> ")
            except (EOFError, KeyboardInterrupt):
                self.say("\nbye")
                return
            if line.strip():
                run = self.client.send(line, self.thread_id, self.agent)
                self.thread_id = run.thread_id
                self.answer(run)

    def answer(self, run: SyncRun) -> None:
        """Show the run's events until its end; Ctrl-C cancels it (once)."""
        view = _AnswerView(self)
        cancelling = False
        events = iter(run)
        while True:
            try:
                event = next(events)
            except StopIteration:
                return
            except KeyboardInterrupt:
                if not cancelling:
                    cancelling = True
                    view.line("^C cancelling…")
                    self.client.cancel(run.id)
                continue
            view.show(run, event)

    def say(self, text: str, end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()


class _AnswerView:
    """How one answer looks: text as it streams, a line per tool step, the outcome."""

    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        self.shown = 0
        """Characters of the answer's text already shown (a resumed turn streams again)."""
        self.midline = False

    def line(self, text: str) -> None:
        self.chat.say(("\n" if self.midline else "") + text)
        self.midline = False

    def show(self, run: SyncRun, event: Event) -> None:
        data = event.data
        if event.type == "agent_started":
            self.chat.say("netra> ", end="")
            self.midline = True
        elif event.type == "message_delta" or "resumed" in data:
            text = run.text
            if len(text) > self.shown:
                self.chat.say(text[self.shown :], end="")
                self.shown = len(text)
                self.midline = True
        elif event.type == "tool_executing":
            self.line(f"⚙ {data['tool']} {json.dumps(data['arguments'])} running…")
        elif event.type == "tool_completed":
            status = "done" if data["status"] == "ok" else f"failed ({data['error']['code']})"
            self.line(f"⚙ {data['tool']} {status}")
        elif event.type == "approval_required":
            self.approve(run, event)
        elif event.type == "agent_completed":
            outcome = data["outcome"]
            error = data.get("error")
            self.line("" if outcome == "completed" else f"[{outcome}]")
            if error and outcome != "cancelled":
                self.chat.say(f"  {error['code']}: {error['message']}")

    def approve(self, run: SyncRun, event: Event) -> None:
        data = event.data
        self.line("")
        try:
            reply = input(f"approve {data['tool']} {json.dumps(data['arguments'])}? [y/N] ")
        except (EOFError, KeyboardInterrupt):
            reply = ""
        approved = reply.strip().lower() in ("y", "yes")
        decision = self.chat.client.approve(run.id, data["tool_call_id"], approved)
        self.chat.say(f"  {decision}")


def chat(
    url: str | None,
    *,
    email: str | None,
    api_key: str | None,
    thread_id: str | None,
    new: bool,
    agent: str | None,
) -> int:
    """``netra chat``: sign in, pick the thread, talk. The exit code."""
    try:
        client = sign_in(url, email, api_key)
    except AuthenticationError as exc:
        print(f"netra chat: sign-in refused: {exc.message}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        return 130
    try:
        if thread_id is not None:
            thread = client.thread(thread_id)
        elif new:
            thread = None
        else:
            thread = next(iter(client.threads(page_size=1)), None)
        print(
            f"chatting on {client.url} in "
            + (f"thread {thread.id} ({thread.title})" if thread else "a new thread")
            + "; Ctrl-C cancels an answer, Ctrl-D ends",
            flush=True,
        )
        Chat(client, thread.id if thread else None, agent, sys.stdout).loop()
    except ClientError as exc:
        print(f"\nnetra chat: {exc.message}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0
