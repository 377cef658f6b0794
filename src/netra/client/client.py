"""``AsyncClient``: a Netra server as Python calls — sign in, send and follow runs, answer
approvals, cancel, read threads and messages."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from netra.client.models import Event, Message, Thread, Tokens
from netra.client.run import Run
from netra.client.session import Session, TokensSaved
from netra.client.stream import EventStream

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE = "NETRA_URL"
"""The server's URL when none is given (else ``DEFAULT_URL``)."""


class AsyncClient:
    """One user's connection to a Netra server.

    Credentials: ``api_key`` (``nk_…``), or tokens from an earlier sign-in
    (``access_token``, ``refresh_token``), or none and then ``login``. ``on_tokens`` is told
    every new pair (a sign-in, a refresh), to keep them. ``after_seq``: where an earlier
    client of this user stood in the event stream (its ``last_seq``), to resume from there.
    A server out of reach is tried again, with backoff, for ``reconnect_timeout`` seconds
    before calls raise ``ConnectionLost``. Use it as an async context manager (or ``aclose``).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        on_tokens: TokensSaved | None = None,
        after_seq: int | None = None,
        timeout: float = 10.0,
        reconnect_timeout: float = 60.0,
    ) -> None:
        tokens = Tokens(access_token, refresh_token) if access_token else None
        self._session = Session(
            url or os.environ.get(URL_VARIABLE) or DEFAULT_URL,
            api_key=api_key,
            tokens=tokens,
            on_tokens=on_tokens,
            timeout=timeout,
            reconnect_timeout=reconnect_timeout,
        )
        self._stream = EventStream(
            self._session, reconnect_timeout=reconnect_timeout, after_seq=after_seq
        )

    @property
    def url(self) -> str:
        return self._session.url

    @property
    def tokens(self) -> Tokens | None:
        """The signed-in session's current tokens (None with an API key)."""
        return self._session.tokens

    @property
    def last_seq(self) -> int | None:
        """The seq of the last event the client accepted (None before its first socket)."""
        return self._stream.last_seq

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._stream.aclose()
        await self._session.aclose()

    # ---- accounts -------------------------------------------------------------------------
    async def register(self, email: str, password: str) -> None:
        """Create an account (``POST /auth/register``); then ``login``."""
        await self._session.request(
            "POST", "/auth/register", {"email": email, "password": password}, retry=False
        )

    async def login(self, email: str, password: str) -> Tokens:
        """Sign in; ``AuthenticationError`` for a wrong email or password."""
        return await self._session.login(email, password)

    async def me(self) -> dict[str, Any]:
        """The signed-in user (``GET /me``): ``id``, ``email``, ``roles``, ``tier``, usage."""
        found: dict[str, Any] = await self._session.request("GET", "/me")
        return found

    async def connect(self) -> None:
        """Open the event socket now (the first ``send`` opens it otherwise), so every event
        from here on reaches the runs started later."""
        await self._stream.connect()

    # ---- runs -----------------------------------------------------------------------------
    async def send(
        self,
        content: str,
        thread_id: str | None = None,
        agent: str | None = None,
        *,
        client_msg_id: str | None = None,
    ) -> Run:
        """Send a message to ``thread_id`` (None: a new thread) and start its run; the run,
        whose events ``async for event in run`` yields. Sent again after a dropped socket
        with the same ``client_msg_id`` (one is made when none is given), so the message is
        stored once. ``ApiError`` when the server refuses it (``quota_exceeded``…)."""
        frame: dict[str, Any] = {
            "type": "send_message",
            "content": content,
            "client_msg_id": client_msg_id or f"cm_{uuid.uuid4().hex}",
        }
        if thread_id is not None:
            frame["thread_id"] = thread_id
        if agent is not None:
            frame["agent"] = agent
        frame["ref"] = frame["client_msg_id"]
        return await self._stream.send(frame)

    async def cancel(self, run_id: str) -> str:
        """Cancel a run (its ``agent_completed`` then says ``cancelled``, unless it had ended
        already); the run's status as the server answered."""
        run = await self._session.request("POST", f"/runs/{run_id}/cancel")
        return str(run["status"])

    async def approve(self, run_id: str, tool_call_id: str, approve: bool = True) -> str:
        """Answer an ``approval_required``: the decision that stands (``approved`` or
        ``denied``; the first answer given wins)."""
        answer = await self._session.request(
            "POST",
            f"/runs/{run_id}/tool_calls/{tool_call_id}/decision",
            {"decision": "approve" if approve else "deny"},
        )
        return str(answer["decision"])

    async def run_events(self, run_id: str) -> list[Event]:
        """A run's stored events, in seq order (``GET /runs/{id}/events``, every page)."""
        events: list[Event] = []
        while True:
            after = events[-1].seq if events else 0
            page = await self._session.request(
                "GET", f"/runs/{run_id}/events", params={"after_seq": after}
            )
            if not page["items"]:
                return events
            events += [Event.from_json(raw) for raw in page["items"]]

    # ---- threads and messages -------------------------------------------------------------
    async def create_thread(self, title: str | None = None, agent: str | None = None) -> Thread:
        body = {k: v for k, v in (("title", title), ("agent", agent)) if v is not None}
        return Thread.from_json(await self._session.request("POST", "/threads", body, retry=False))

    async def thread(self, thread_id: str) -> Thread:
        return Thread.from_json(await self._session.request("GET", f"/threads/{thread_id}"))

    async def threads(
        self, *, archived: bool = False, page_size: int = 50
    ) -> AsyncIterator[Thread]:
        """Every thread of the user's (archived ones with ``archived``), newest activity
        first, read a page at a time."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size, "archived": str(archived).lower()}
            if cursor is not None:
                params["cursor"] = cursor
            page = await self._session.request("GET", "/threads", params=params)
            for raw in page["items"]:
                yield Thread.from_json(raw)
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def messages(self, thread_id: str, *, page_size: int = 50) -> AsyncIterator[Message]:
        """Every message of the thread's branch, oldest first. The server pages from the
        newest back, so the pages are read first, then yielded in order."""
        pages: list[list[Message]] = []
        params: dict[str, Any] = {"limit": page_size}
        while True:
            page = await self._session.request(
                "GET", f"/threads/{thread_id}/messages", params=params
            )
            pages.append([Message.from_json(raw) for raw in page["items"]])
            if page["older_cursor"] is None:
                break
            params = {"limit": page_size, "before": page["older_cursor"]}
        for found in reversed(pages):
            for message in found:
                yield message
