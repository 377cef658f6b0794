"""``Client``: the ``AsyncClient`` for code without an event loop. It owns a private event
loop in a thread of its own; every call runs there and blocks the caller until it is done.
A ``KeyboardInterrupt`` reaches the calling thread as usual, and the call it interrupted
goes on on the loop (an interrupted ``next(run)`` hands its event to the next one)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from netra.client.client import AsyncClient
from netra.client.models import Event, Message, Thread, Tokens
from netra.client.run import Run
from netra.client.session import TokensSaved

T = TypeVar("T")


async def _next(items: AsyncIterator[T]) -> T:
    return await anext(items)


class _Loop:
    """An event loop running in a daemon thread, to run coroutines on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="netra-client", daemon=True
        )
        self._thread.start()

    def submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return self.submit(work).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self.call(_next(items))
            except StopAsyncIteration:
                return

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncRun:
    """A run as ``Client.send`` returns it: ``for event in run`` yields its events until its
    ``agent_completed``, as ``Run`` does."""

    def __init__(self, run: Run, loop: _Loop) -> None:
        self.run = run
        self._loop = loop
        self._next: Future[Event] | None = None

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def thread_id(self) -> str:
        return self.run.thread_id

    @property
    def events(self) -> list[Event]:
        return self.run.events

    @property
    def outcome(self) -> str | None:
        return self.run.outcome

    @property
    def text(self) -> str:
        return self.run.text

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        if self._next is None:
            self._next = self._loop.submit(self.run.__anext__())
        try:
            event = self._next.result()
        except StopAsyncIteration:
            raise StopIteration from None
        finally:
            if self._next.done():
                self._next = None
        return event


class Client:
    """The synchronous face of ``AsyncClient``: the same arguments and methods, blocking.
    Use it as a context manager (or ``close``)."""

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
        self._loop = _Loop()

        async def build() -> AsyncClient:
            return AsyncClient(
                url,
                api_key=api_key,
                access_token=access_token,
                refresh_token=refresh_token,
                on_tokens=on_tokens,
                after_seq=after_seq,
                timeout=timeout,
                reconnect_timeout=reconnect_timeout,
            )

        self.aio = self._loop.call(build())
        """The ``AsyncClient`` underneath (its coroutines run on the client's own loop)."""

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._loop.call(self.aio.aclose())
        self._loop.stop()

    @property
    def url(self) -> str:
        return self.aio.url

    @property
    def tokens(self) -> Tokens | None:
        return self.aio.tokens

    @property
    def last_seq(self) -> int | None:
        return self.aio.last_seq

    def register(self, email: str, password: str) -> None:
        self._loop.call(self.aio.register(email, password))

    def login(self, email: str, password: str) -> Tokens:
        return self._loop.call(self.aio.login(email, password))

    def me(self) -> dict[str, Any]:
        return self._loop.call(self.aio.me())

    def connect(self) -> None:
        self._loop.call(self.aio.connect())

    def send(
        self,
        content: str,
        thread_id: str | None = None,
        agent: str | None = None,
        *,
        client_msg_id: str | None = None,
    ) -> SyncRun:
        run = self._loop.call(self.aio.send(content, thread_id, agent, client_msg_id=client_msg_id))
        return SyncRun(run, self._loop)

    def cancel(self, run_id: str) -> str:
        return self._loop.call(self.aio.cancel(run_id))

    def approve(self, run_id: str, tool_call_id: str, approve: bool = True) -> str:
        return self._loop.call(self.aio.approve(run_id, tool_call_id, approve))

    def run_events(self, run_id: str) -> list[Event]:
        return self._loop.call(self.aio.run_events(run_id))

    def create_thread(self, title: str | None = None, agent: str | None = None) -> Thread:
        return self._loop.call(self.aio.create_thread(title, agent))

    def thread(self, thread_id: str) -> Thread:
        return self._loop.call(self.aio.thread(thread_id))

    def threads(self, *, archived: bool = False, page_size: int = 50) -> Iterator[Thread]:
        return self._loop.iterate(self.aio.threads(archived=archived, page_size=page_size))

    def messages(self, thread_id: str, *, page_size: int = 50) -> Iterator[Message]:
        return self._loop.iterate(self.aio.messages(thread_id, page_size=page_size))
