"""The socket half of the client: one WebSocket to ``/ws``, kept open, resumed where the
client stands, its events handed to the runs they belong to exactly once, in order.

**Where the client stands** is ``last_seq``: the seq of the last event it accepted. Every
event with a seq at or below it is dropped, so an event replayed after a reconnect is never
handed on twice. After a dropped socket the stream reconnects (bounded, jittered backoff)
to ``/ws?after_seq=<last_seq>``: the server replays every event after it, then live ones.
When it cannot (``resumed`` with ``recovered: false``: the log no longer holds that point,
or the point is past its newest event), the socket goes on after the frame's ``last_seq``,
and the events of the runs still in progress up to that seq are read over HTTP
(``GET /runs/{id}/events``) and handed on first, so none is lost.

**Sends** go out as ``send_message`` frames, each with a ``client_msg_id``. Until its
``ack`` arrives a frame is sent again on every new socket; the server stores one message per
``client_msg_id`` and acknowledges every copy alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from netra.client.backoff import Backoff
from netra.client.errors import ApiError, AuthenticationError, ClientError, ConnectionLost
from netra.client.models import Event, Json
from netra.client.run import Run
from netra.client.session import Session

CLOSE_POLICY = 1008
"""The server's close code for refused credentials."""


@dataclass
class _Send:
    """A ``send_message`` frame waiting for its ``ack``."""

    text: str
    answer: asyncio.Future[Run]


@dataclass
class _State:
    runs: dict[str, Run] = field(default_factory=dict)
    """Runs in progress, by id."""
    early: dict[str, list[Event]] = field(default_factory=dict)
    """Events of runs not acknowledged yet (a run may start before its ``ack`` is read),
    kept only while a send waits for its ``ack``."""
    sends: dict[str, _Send] = field(default_factory=dict)


class EventStream:
    """The client's socket, resumed, de-duplicated, and routed to ``Run`` handles."""

    def __init__(self, session: Session, *, reconnect_timeout: float, after_seq: int | None):
        self._session = session
        self._reconnect_timeout = reconnect_timeout
        self.last_seq = after_seq
        """The seq of the last event accepted; None until the first socket said where the
        stream stands."""
        self.connections = 0
        """Sockets opened so far (a reconnect adds one)."""
        self._state = _State()
        self._socket: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._failure: ClientError | None = None
        self._backoff = Backoff()
        self._opened = False
        """The current attempt's socket said ``connected``."""
        self._ready = asyncio.Event()
        """A socket is open and past its replay."""

    async def send(self, frame: Json) -> Run:
        """Send a ``send_message`` frame (it carries its ``client_msg_id``) until the server
        acknowledges it; the run it started."""
        self._check()
        self._start()
        text = json.dumps(frame)
        answer: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._state.sends[frame["client_msg_id"]] = _Send(text, answer)
        if self._socket is not None:
            with contextlib.suppress(ConnectionClosed):  # the next socket sends it again
                await self._socket.send(text)
        try:
            return await answer
        finally:
            self._state.sends.pop(frame["client_msg_id"], None)
            if not self._state.sends:
                self._state.early.clear()

    async def connect(self) -> None:
        """Open the socket now (a send opens it otherwise); return once it is open."""
        self._check()
        self._start()
        ready = asyncio.create_task(self._ready.wait())
        assert self._task is not None
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        self._check()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep_open(), name="netra-client-socket")

    async def _keep_open(self) -> None:
        loop = asyncio.get_running_loop()
        refused = False  # the last socket was refused its credentials before it opened
        since = loop.time()  # when the stream was last connected
        try:
            while True:
                stale = self._session.bearer
                self._opened = False
                try:
                    await self._connect_and_read()
                except AuthenticationError:
                    # An access token expires: renew it once and reconnect at once. Refused
                    # again before a socket opened: the credentials are no good.
                    if refused and not self._opened:
                        raise
                    refused = True
                    await self._session.refresh(stale)
                    continue
                except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
                    pass
                if self._opened:
                    refused = False
                    since = loop.time()
                elif loop.time() - since > self._reconnect_timeout:
                    raise ConnectionLost(
                        f"{self._session.url} unreachable for {self._reconnect_timeout:.0f} s"
                    )
                await asyncio.sleep(self._backoff.next_delay())
        except ClientError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug must not leave callers waiting forever
            self._fail(ClientError(f"the event stream stopped: {exc!r}"))
            raise

    async def _connect_and_read(self) -> None:
        url = self._session.url.replace("http", "ws", 1) + "/ws"
        if self.last_seq is not None:
            url += f"?after_seq={self.last_seq}"
        headers = {"Authorization": f"Bearer {self._session.bearer}"}
        try:
            async with connect(
                url, additional_headers=headers, open_timeout=10, max_size=2**24
            ) as socket:
                await self._read(socket)
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise AuthenticationError("the socket was refused its credentials") from exc
            raise
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == CLOSE_POLICY:
                raise AuthenticationError(
                    f"the socket was closed: {closed.rcvd.reason or 'credentials refused'}"
                ) from closed
            raise
        finally:
            self._socket = None
            self._ready.clear()

    async def _read(self, socket: ClientConnection) -> None:
        connected = _frame(await socket.recv())
        if connected.get("type") != "connected":
            raise ClientError(f"unexpected first frame: {connected.get('type')!r}")
        self.connections += 1
        self._opened = True
        self._backoff.reset()
        if self.last_seq is None:
            self.last_seq = int(connected["last_seq"])
        else:
            resumed = _frame(await socket.recv())
            if resumed.get("type") == "resumed" and not resumed["recovered"]:
                await self._fill_gap(int(resumed["last_seq"]))
            elif resumed.get("type") != "resumed":
                self._handle(resumed)
        self._socket = socket
        self._ready.set()
        for pending in list(self._state.sends.values()):
            await socket.send(pending.text)
        async for raw in socket:
            self._handle(_frame(raw))

    async def _fill_gap(self, upto: int) -> None:
        """The socket goes on after ``upto``: read the events of the runs in progress up to
        there over HTTP and hand them on, in seq order."""
        before = self.last_seq or 0
        missing: list[tuple[Run, Event]] = []
        for run in list(self._state.runs.values()):
            after = run.last_seq
            while True:
                try:
                    page = await self._session.request(
                        "GET", f"/runs/{run.id}/events", params={"after_seq": after}
                    )
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                    break  # its thread was deleted: it has nothing more to say
                items = [Event.from_json(raw) for raw in page["items"]]
                if not items:
                    break
                missing += [(run, e) for e in items if before < e.seq <= upto]
                after = items[-1].seq
                if after >= upto:
                    break
        for run, event in sorted(missing, key=lambda pair: pair[1].seq):
            self._deliver(run, event)
        self.last_seq = upto

    def _handle(self, frame: Json) -> None:
        kind = frame.get("type")
        if "seq" in frame:
            self._accept(Event.from_json(frame))
        elif kind == "ack":
            self._acknowledged(frame)
        elif kind == "error":
            pending = self._state.sends.get(str(frame.get("ref")))
            if pending is not None and not pending.answer.done():
                pending.answer.set_exception(
                    ApiError(0, frame["code"], frame["message"], frame.get("retry_after"))
                )

    def _accept(self, event: Event) -> None:
        if self.last_seq is not None and event.seq <= self.last_seq:
            return  # delivered before this socket replayed it
        self.last_seq = event.seq
        if event.run_id is None:
            return
        run = self._state.runs.get(event.run_id)
        if run is not None:
            self._deliver(run, event)
        elif self._state.sends:
            self._state.early.setdefault(event.run_id, []).append(event)

    def _acknowledged(self, ack: Json) -> None:
        pending = self._state.sends.get(ack["client_msg_id"])
        if pending is None or pending.answer.done():
            return  # the ack of a copy sent again
        run = self._state.runs.get(ack["run_id"]) or Run(ack)
        self._state.runs[run.id] = run
        for event in self._state.early.pop(run.id, []):
            self._deliver(run, event)
        pending.answer.set_result(run)

    def _deliver(self, run: Run, event: Event) -> None:
        run.deliver(event)
        if run.done:
            self._state.runs.pop(run.id, None)

    def _fail(self, error: ClientError) -> None:
        self._failure = error
        for pending in self._state.sends.values():
            if not pending.answer.done():
                pending.answer.set_exception(error)
        for run in self._state.runs.values():
            run.fail(error)


def _frame(raw: str | bytes) -> Any:
    return json.loads(raw)
