"""The server's frames: one model per frame ``docs/protocol.md`` lists, with the keys it lists,
and every frame a live server sends (events aside) is one of those models, byte for byte."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from netra.realtime.frames import SERVER_FRAME, SERVER_FRAME_TYPES, ServerFrame
from tests.conftest import ServerFactory
from tests.support import LiveServer, add_mailer, make_user

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
BURST = 12
"""The frame budget of the test server's sockets: what one socket sends stays within it, and
a second socket spends it, to be told ``rate_limited``."""


def _documented() -> dict[str, tuple[set[str], set[str]]]:
    """``type`` → (keys always sent, keys sent when they apply) of every frame the protocol's
    list of server → client frames shows, read from the document."""
    text = PROTOCOL.read_text()
    section = text.split("**Server → client frames.**", 1)[1].split("**Client → server", 1)[0]
    frames = {}
    for shape in re.findall(r'^- `(\{"type": "\w+".*?\})`', section, flags=re.M):
        kind = re.match(r'\{"type": "(\w+)"', shape)
        assert kind is not None, shape
        keys = re.findall(r'"(\w+)"(\??)(?!:)', shape[kind.end() :])
        frames[kind[1]] = ({k for k, opt in keys if not opt}, {k for k, opt in keys if opt})
    return frames


def test_every_documented_server_frame_is_a_model_with_the_documented_keys() -> None:
    documented = _documented()
    assert set(documented) == SERVER_FRAME_TYPES
    union, _ = get_args(ServerFrame)
    models = {model.model_fields["type"].default: model for model in get_args(union)}
    assert set(models) == SERVER_FRAME_TYPES, "one model per frame"
    for kind, model in models.items():
        fields = {name: f for name, f in model.model_fields.items() if name != "type"}
        always = {name for name, f in fields.items() if f.is_required()}
        assert (always, set(fields) - always) == documented[kind], kind
        assert model.model_config.get("frozen"), kind


class _RawSocket:
    """A socket whose every text frame is kept as the server wrote it."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.texts: list[str] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.conn.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def until(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(15):
            while True:
                text = await self.conn.recv()
                assert isinstance(text, str)
                self.texts.append(text)
                frame: dict[str, Any] = json.loads(text)
                if wanted(frame):
                    return frame

    async def rest(self) -> None:
        """Keep every frame until the server closes the socket."""
        try:
            await self.until(lambda frame: False)
        except ConnectionClosed:
            return


async def _open(server: LiveServer, token: str, query: str = "") -> _RawSocket:
    conn = await connect(f"{server.ws_url}{query}", subprotocols=["bearer", token])  # type: ignore[list-item]
    return _RawSocket(conn)


def _of_type(kind: str, **fields: object) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] == kind and all(f.get(k) == v for k, v in fields.items())


async def test_every_frame_a_live_server_sends_is_its_model_byte_for_byte(
    server_factory: ServerFactory,
) -> None:
    server = add_mailer(server_factory(websocket={"frames_per_s": 0.1, "frame_burst": BURST}))
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user = await make_user(http)
    socket = await _open(server, user.token, "?after_seq=0")
    await socket.until(_of_type("resumed"))
    await socket.send({"type": "ping"})
    await socket.until(_of_type("pong"))
    await socket.send({"type": "send_message", "content": "what is 12*7?", "client_msg_id": "a"})
    ack = await socket.until(_of_type("ack"))
    await socket.until(_of_type("agent_completed", run_id=ack["run_id"]))
    await socket.send({"type": "cancel_run", "run_id": ack["run_id"], "ref": "c"})
    await socket.until(_of_type("cancel_accepted"))
    mail = {"type": "send_message", "content": "mail my boss", "agent": "mailer"}
    await socket.send(mail)
    paused = await socket.until(_of_type("ack"))
    await socket.until(_of_type("approval_required"))
    decision = {"run_id": paused["run_id"], "tool_call_id": "call_mail", "decision": "approve"}
    await socket.send({"type": "approve_tool", "ref": "yes", **decision})
    await socket.until(_of_type("tool_decision"))
    await socket.send({"type": "resume", "after_seq": 10**9})
    await socket.until(_of_type("resumed"))
    await socket.send("not json")
    await socket.until(_of_type("error"))
    await socket.conn.close()

    spender = await _open(server, user.token)
    for _ in range(BURST + 1):
        await spender.send({"type": "ping"})
    await spender.until(_of_type("error", code="rate_limited"))
    await spender.conn.close()
    refused = await _open(server, user.token, "?after_seq=-1")
    await refused.rest()

    frames: list[ServerFrame] = []
    for text in socket.texts + spender.texts + refused.texts:
        if "seq" in json.loads(text):
            continue  # an event: the stored envelope, not a frame of this module
        frame = SERVER_FRAME.validate_json(text)
        assert frame.dumps() == text
        frames.append(frame)
    assert {frame.type for frame in frames} == SERVER_FRAME_TYPES
    retry = [f for f in frames if f.type == "error" and f.code == "rate_limited"]
    assert retry and all(f.retry_after is not None for f in retry), retry
