"""Serving with uvicorn: the one place its options are chosen (CLI and tests alike)."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from netra.settings import Settings


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, refusing a client's bad frame cleanly.

    A frame over ``ws_max_size`` (1009) or a text frame that is not UTF-8 (1007) fails the
    connection (RFC 6455 section 7.1.7). uvicorn then writes the close frame and closes the TCP
    connection at once; the refused frame is usually still arriving, closing a socket with
    unread bytes makes the kernel reset the connection, and the client often never reads its
    close frame (it sees 1006). Here the server half-closes after the close frame, as
    websockets asks, and reads (and drops) what the client still sends until the client
    closes too; uvicorn's close timeout bounds the wait. Invalid UTF-8, which uvicorn logs at
    ERROR with a traceback and closes without a reason, is the client's fault: it gets a
    reason and no log line, so that anyone who can open a socket cannot fill the error log."""

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
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.server.shutdown_grace_s) or None,
    )


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


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    if settings.logging.json_format:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    set_log_level(settings.logging.level)


def set_log_level(level: str) -> None:
    """Applied at start and whenever the reloadable ``logging.level`` changes."""
    for name in ("netra", "uvicorn.error"):
        logging.getLogger(name).setLevel(level)
