"""The server's WebSocket frames on the wire: built by Netra (``netra.server.text_frame``)
exactly as websockets builds them, in every length class, and read intact by a real client
from a live server."""

from __future__ import annotations

import httpx
import pytest
from websockets.frames import Frame, Opcode

from netra.server import text_frame
from tests.conftest import ServerFactory
from tests.support import make_user, open_socket

LONG = 70_000
"""Longer than a frame with a 16-bit length can say: its header carries 64 bits."""


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, LONG])
def test_a_text_frame_is_the_frame_websockets_builds(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


async def test_events_of_every_length_class_reach_a_client_intact(
    server_factory: ServerFactory,
) -> None:
    """A stored message comes back in its ``message_created`` event, whatever its length:
    one frame each, with a 7-bit, a 16-bit and a 64-bit length."""
    server = server_factory(
        tiers={"free": {"max_message_chars": 100_000}},
        events={"max_string_chars": 100_000},
        websocket={"max_frame_bytes": 500_000},
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        user = await make_user(http)
    socket = await open_socket(server, user.token, max_size=None)
    try:
        for content in ("hi", "x" * 300, "é" * LONG):
            ack = await socket.send_message(content)
            assert ack["type"] == "ack", ack
            created = await socket.until(
                lambda f, m=ack["message_id"]: (
                    f["type"] == "message_created" and f["data"]["message"]["id"] == m
                )
            )
            assert created["data"]["message"]["content"] == content
            await socket.run_to_end(ack["run_id"])
    finally:
        await socket.close()
