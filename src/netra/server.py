"""Serving with uvicorn: the one place its options are chosen (CLI and tests alike)."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from netra.settings import Settings


def uvicorn_config(app: ASGIApp, settings: Settings, *, port: int | None = None) -> uvicorn.Config:
    """uvloop + httptools where installed, the sans-I/O websockets implementation,
    permessage-deflate off, frame size limited, protocol pings for dead-peer detection."""
    fast = importlib.util.find_spec("uvloop") is not None and sys.platform != "win32"
    return uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port if port is None else port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ws="websockets-sansio",
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
