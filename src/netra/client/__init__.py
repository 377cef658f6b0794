"""A Python client of Netra's wire protocol (docs/protocol.md): ``AsyncClient`` for asyncio,
``Client`` for everything else. It imports nothing of the server: httpx and websockets are
all it needs. ``netra chat`` (``netra.client.chat``) is a terminal chat built on it."""

from __future__ import annotations

from netra.client.client import AsyncClient
from netra.client.errors import ApiError, AuthenticationError, ClientError, ConnectionLost
from netra.client.models import Event, Message, Thread, Tokens
from netra.client.run import Run
from netra.client.sync import Client, SyncRun

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClientError",
    "ConnectionLost",
    "Event",
    "Message",
    "Run",
    "SyncRun",
    "Thread",
    "Tokens",
]
