"""What every benchmark client does first over the public protocol (docs/protocol.md):
sign a user up and open an authenticated `/ws` socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from processes import SetupError

CONNECT_TIMEOUT_S = 10.0


async def sign_up(http: httpx.AsyncClient, email: str, password: str) -> tuple[str, str]:
    """Register and log in: (user id, access token)."""
    body = {"email": email, "password": password}
    response = await http.post("/auth/register", json=body)
    if response.status_code != 201:
        raise SetupError(f"POST /auth/register -> {response.status_code} {response.text}")
    user_id = str(response.json().get("id", ""))
    response = await http.post("/auth/login", json=body)
    if response.status_code != 200:
        raise SetupError(f"POST /auth/login -> {response.status_code} {response.text}")
    return user_id, str(response.json()["access_token"])


async def open_ws(
    url: str, token: str | None, who: str, *, max_queue: int = 256
) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect (subprotocols `["bearer", token]`; no token: none, for servers without
    accounts) and read the first frame, which must be `connected`."""
    protocols = [Subprotocol("bearer"), Subprotocol(token)] if token is not None else None
    try:
        ws = await connect(
            url,
            subprotocols=protocols,
            compression=None,
            proxy=None,
            open_timeout=CONNECT_TIMEOUT_S,
            ping_interval=None,
            close_timeout=5,
            max_size=4 * 1024 * 1024,
            max_queue=max_queue,
        )
    except Exception as exc:
        raise SetupError(f"{who}: WebSocket connect failed: {exc!r}") from exc
    try:
        raw = await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT_S)
        frame = json.loads(raw)
    except (TimeoutError, ConnectionClosed, ValueError) as exc:
        await ws.close()
        raise SetupError(f"{who}: no `connected` frame: {exc!r}") from exc
    if not isinstance(frame, dict) or frame.get("type") != "connected":
        await ws.close()
        raise SetupError(f"{who}: first frame is not `connected`: {raw!r}")
    return ws, frame
