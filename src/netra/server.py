"""Serving with uvicorn: the one place its options are chosen (CLI and tests alike)."""

from __future__ import annotations

import errno
import importlib.util
import json
import logging
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from enum import Enum
from types import FrameType
from typing import Any, Protocol

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from netra import process
from netra.errors import ConfigurationError
from netra.settings import Settings

log = logging.getLogger(__name__)
_WHAT_TO_DO = {
    errno.EADDRINUSE: "stop what uses it or choose another --port",
    errno.EACCES: "ports below 1024 need privileges: choose another --port",
    errno.EADDRNOTAVAIL: "no interface of this machine has that address: choose another --host",
}


DIRECT = "netra.websocket.direct"
"""The ASGI extension ``WebSocketProtocol`` adds to every WebSocket scope it serves:
``scope["extensions"][DIRECT]["socket"]`` is the connection's ``DirectSocket``."""


class Written(Enum):
    """What ``DirectSocket.write_texts`` did."""

    SENT = "sent"
    """Every frame was handed to the transport, in one write."""
    PAUSED = "paused"
    """Nothing was written: the transport's buffer is past its high-water mark (the client
    reads slower than the server writes). Wait for ``drained`` and write again."""
    CLOSED = "closed"
    """Nothing was written, nor ever will be: the socket is closing or gone."""


class DirectSocket(Protocol):
    """A WebSocket's sending side without the ASGI ``send`` coroutine: frames written (and
    the socket closed) synchronously, from a callback, several frames per system call.

    An ASGI ``send`` costs a chain of coroutines per frame, and a caller that cannot await
    (the event bus hands events over in a plain callback) needs a task per socket to make
    it. Writing is synchronous underneath: the coroutine only waits while the transport is
    paused. This does the same work with the waiting left to the caller."""

    def write_texts(self, texts: Sequence[str]) -> Written:
        """Frame each text as a text message and write them all at once, unless paused or
        closed (then nothing is written)."""
        ...

    async def drained(self) -> None:
        """Return once the transport takes writes again (at once when it does)."""
        ...

    def close_now(self, code: int, reason: str) -> None:
        """Start the closing handshake now, behind what was written, even while paused
        (a client that stopped reading is closed without waiting for it); no-op when the
        socket is closing or gone already."""
        ...


def text_frame(payload: bytes) -> bytes:
    """A whole, unmasked WebSocket text frame (RFC 6455 section 5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, refusing a client's bad frame cleanly, and
    offering its sending side to the application as a ``DirectSocket`` (scope extension
    ``DIRECT``).

    A frame over ``ws_max_size`` (1009) or a text frame that is not UTF-8 (1007) fails the
    connection (RFC 6455 section 7.1.7). uvicorn then writes the close frame and closes the TCP
    connection at once; the refused frame is usually still arriving, closing a socket with
    unread bytes makes the kernel reset the connection, and the client often never reads its
    close frame (it sees 1006). Here the server half-closes after the close frame, as
    websockets asks, and reads (and drops) what the client still sends until the client
    closes too; uvicorn's close timeout bounds the wait. Invalid UTF-8, which uvicorn logs at
    ERROR with a traceback and closes without a reason, is the client's fault: it gets a
    reason and no log line, so that anyone who can open a socket cannot fill the error log."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if not self.handshake_complete:  # the application will be asked to accept or refuse
            self.scope["extensions"][DIRECT] = {"socket": self}

    def write_texts(self, texts: Sequence[str]) -> Written:
        """``DirectSocket.write_texts``: what uvicorn's ``send`` does for a ``websocket.send``
        message, for several texts at once, with the wait for a paused transport left to the
        caller."""
        if (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or self.initial_response is not None
            or self.transport.is_closing()
        ):
            return Written.CLOSED
        if not self.writable.is_set():
            return Written.PAUSED
        if self.conn.state is not State.OPEN:  # the peer's close arrived: nothing more
            return Written.CLOSED
        if self.conn.extensions:  # not negotiated by Netra's server: websockets frames
            for text in texts:
                self.conn.send_text(text.encode())
            self.transport.write(b"".join(self.conn.data_to_send()))
            return Written.SENT
        # What websockets queued itself (a pong) first, then the frames: built here, since
        # a server's unfragmented text frame is a fixed header and the bytes, and
        # websockets' Frame objects cost ten times that per event.
        self.transport.write(
            b"".join([*self.conn.data_to_send(), *(text_frame(t.encode()) for t in texts)])
        )
        return Written.SENT

    async def drained(self) -> None:
        await self.writable.wait()

    def close_now(self, code: int, reason: str) -> None:
        """``DirectSocket.close_now``: what uvicorn's ``send`` does for ``websocket.close``
        after the handshake, without first waiting for a paused transport to drain."""
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        if not self.handshake_complete or self.initial_response is not None:
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            try:
                b"".join(self.frames).decode()
            except UnicodeDecodeError:
                self.frames = []
                self.conn.send_close(1007, "text frames must be valid UTF-8")
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()

    def handle_parser_exception(self) -> None:
        if self.close_sent:  # more bytes after the connection failed: dropped
            return
        assert self.conn.close_sent is not None
        close = self.conn.close_sent
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": close.code, "reason": close.reason}
        )
        for data in self.conn.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():  # websockets' SEND_EOF: half-close
                self.transport.write_eof()
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)


def uvicorn_config(app: ASGIApp, settings: Settings, *, port: int | None = None) -> uvicorn.Config:
    """uvloop + httptools where installed, the sans-I/O websockets implementation (refusing
    bad frames cleanly: ``WebSocketProtocol``), permessage-deflate off, frame size limited,
    protocol pings for dead-peer detection."""
    fast = importlib.util.find_spec("uvloop") is not None and sys.platform != "win32"
    return uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port if port is None else port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ws=WebSocketProtocol,
        ws_max_size=settings.websocket.max_frame_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.websocket.ping_interval_s,
        ws_ping_timeout=settings.websocket.ping_timeout_s,
        timeout_keep_alive=settings.server.keep_alive_s,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.server.shutdown_grace_s) or None,
    )


def listen(settings: Settings) -> socket.socket:
    """The socket ``netra serve`` listens on, bound before anything else starts: an address
    that is taken or not ours is one line for the operator, not a log of a server that
    started and then failed to bind."""
    host, port = settings.server.host, settings.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        advice = _WHAT_TO_DO.get(exc.errno or 0, "choose another --host or --port")
        raise ConfigurationError(
            f"cannot listen on {_address(host, port)}: {reason} — {advice}"
        ) from None
    return sock


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def stopping(signum: int) -> None:
    """Say that a signal stops the process (``Netra.stop`` says what it handed back)."""
    log.info("%s received: stopping", signal.Signals(signum).name)


class Server(uvicorn.Server):
    """uvicorn's server on a socket from ``listen``; says where it serves once it accepts
    connections, that is after the application started, and which signal stops it."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.socket = sock
        self.stop_signal: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only note the signal, the log line is written from the loop.
        self.stop_signal = self.stop_signal or sig
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.stop_signal is not None:
            stopping(self.stop_signal)
        await super().shutdown(sockets=sockets)

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        super().run(sockets=sockets or [self.socket])

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            host, port = self.socket.getsockname()[:2]
            print(f"Netra serving on http://{_address(host, port)}/", flush=True)
            process.started()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _without_query(record: logging.LogRecord) -> bool:
    """uvicorn logs each WebSocket handshake with the URL's query string, which may carry a
    token a client put there (Netra never reads one from it): the path alone is logged."""
    handshake = isinstance(record.msg, str) and record.msg.startswith('%s - "WebSocket %s"')
    if handshake and isinstance(record.args, tuple) and len(record.args) >= 2:
        client, url, *rest = record.args
        record.args = (client, str(url).partition("?")[0], *rest)
    return True


_CREDENTIAL_HEADERS = frozenset({"authorization", "sec-websocket-protocol"})
"""Headers that carry a bearer credential: an access token or an API key."""


def _without_credentials(record: logging.LogRecord) -> bool:
    """At DEBUG, websockets logs every header of a handshake (``< name: value``) on
    uvicorn's logger, and a socket's credential travels in one: its value is logged as
    ``[redacted]``, whatever the level."""
    if record.msg == "< %s: %s" and isinstance(record.args, tuple) and len(record.args) == 2:
        name, _ = record.args
        if str(name).lower() in _CREDENTIAL_HEADERS:
            record.args = (name, "[redacted]")
    return True


def configure_logging(settings: Settings) -> None:
    """Logging of a ``netra`` process: one handler on the root logger, the ``netra`` and
    ``uvicorn.error`` loggers at ``logging.level``. Requests are logged by ``netra.access``
    (``api.middleware``); uvicorn's own access log is off (``uvicorn_config``)."""
    handler = logging.StreamHandler()
    handler.addFilter(_without_query)
    if settings.logging.json_format:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    set_log_level(settings.logging.level)


def set_log_level(level: str) -> None:
    """Applied at start and whenever the reloadable ``logging.level`` changes; whatever the
    level, uvicorn's logger never logs a credential (``_without_credentials``)."""
    for name in ("netra", "uvicorn.error"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger("uvicorn.error").addFilter(_without_credentials)
