"""A raw uvicorn WebSocket server: the transport's own cost, the baseline of Netra's event path.

An ASGI app with nothing above uvicorn (uvloop, httptools, the websockets sans-I/O protocol,
no compression, as Netra serves): no accounts, no storage, no bus. Every socket gets a
``connected`` frame, then what its URL asks for:

- ``/ws`` — nothing: an idle socket.
- ``/ws?mode=stream`` — event envelopes as fast as the socket takes them, yielding to the
  event loop after each one.
- ``/ws?mode=paced&interval_ms=50`` — one envelope, then a pause of ``interval_ms``, like
  Netra's offline model between words.

Each envelope is shaped like Netra's ``message_delta`` (same keys, similar size, ``ts`` with
millisecond resolution), encoded once as it is sent. ``GET /ready`` answers 200. Started by
``event_path.RawServer``; imports nothing from Netra or the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def envelope(seq: int, run_id: str, message_id: str) -> str:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {
            "type": "message_delta",
            "seq": seq,
            "event_id": f"ev_{uuid.uuid4().hex}",
            "thread_id": "th_01raw0000000000000000000000",
            "run_id": run_id,
            "agent": "assistant",
            "ts": ts,
            "data": {"message_id": message_id, "delta": f" {seq}"},
        },
        separators=(",", ":"),
    )


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        body = b'{"status":"ready"}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await serve_socket(scope, receive, send)


async def serve_socket(scope: Message, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    hello = {"type": "connected", "user_id": f"usr_{uuid.uuid4().hex}", "last_seq": 0}
    await send({"type": "websocket.send", "text": json.dumps(hello)})
    query = parse_qs(scope.get("query_string", b"").decode())
    mode = query.get("mode", ["idle"])[0]
    interval = float(query.get("interval_ms", ["50"])[0]) / 1000
    closed = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "websocket.disconnect":
            pass
        closed.set()

    watcher = asyncio.ensure_future(watch())
    run_id, message_id = f"run_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    try:
        seq = 0
        while mode in ("stream", "paced") and not closed.is_set():
            await asyncio.sleep(interval if mode == "paced" else 0)
            seq += 1
            await send({"type": "websocket.send", "text": envelope(seq, run_id, message_id)})
        await closed.wait()
    except OSError:  # the client went away mid-send
        pass
    finally:
        watcher.cancel()
