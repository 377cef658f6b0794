"""HTTP keep-alive: an idle connection is closed by the server only after the client pools
in front of it have let it go, so no request is sent on a connection being closed."""

from __future__ import annotations

import asyncio

import httpx

from netra.settings import Settings
from tests.conftest import ServerFactory


def test_the_server_keeps_idle_connections_longer_than_client_pools_do() -> None:
    """Found in CI: the server and httpx both dropped an idle connection after 5 s, and a
    request sent at that moment got "Server disconnected without sending a response"."""
    assert Settings().server.keep_alive_s > httpx.Limits().keepalive_expiry


async def test_an_idle_connection_is_closed_after_keep_alive_s(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(server={"keep_alive_s": 1})
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            assert await reader.read() == b""  # the server closed the idle connection
    finally:
        writer.close()
